//! A failed HTTP request dead-lettered into a real journal keeps what a replay needs and none
//! of the secrets: no byte of any journal file holds the API key.
#![cfg(feature = "dead-letter")]

use std::os::unix::fs::PermissionsExt;

use steadfast::BoxError;
use steadfast::dead_letter::{DeadLetterLayer, DeadLetterSink, DeadLettered, JournalSink};
use steadfast_http::BufferedBody;
use steadfast_http::dead_letter::{HttpRequestEncoder, decode_request};
use tower::{Layer, ServiceExt, service_fn};

const API_KEY: &str = "sk-live-9f8e7d6c5b4a";

#[tokio::test]
async fn no_secret_reaches_any_journal_byte_and_the_request_replays() {
    let dir = tempfile::tempdir().unwrap();
    let journal = JournalSink::open(dir.path()).unwrap();
    let agent = service_fn(|_: http::Request<BufferedBody>| async {
        Err::<http::Response<String>, BoxError>("503 overloaded".into())
    });
    let gpt = steadfast::Agent::new("gpt").classifier(steadfast_http::HttpClassifier::new());
    let stack = DeadLetterLayer::new(&gpt, journal.clone())
        .encoder(HttpRequestEncoder::new())
        .layer(agent);

    let request = http::Request::post(format!("http://127.0.0.1:9/v1/chat?api_key={API_KEY}"))
        .header("authorization", format!("Bearer {API_KEY}"))
        .header("x-api-key", API_KEY)
        .header("content-type", "application/json")
        .body(BufferedBody::from(r#"{"prompt":"summarise this"}"#))
        .unwrap();
    let err = stack.oneshot(request).await.unwrap_err();
    let id = err
        .downcast_ref::<DeadLettered>()
        .expect("dead-lettered")
        .id();

    let record = journal.get(id).await.unwrap().expect("stored");
    let replay = decode_request(&record.request).unwrap();
    assert_eq!(replay.method(), http::Method::POST);
    assert_eq!(replay.uri().path(), "/v1/chat");
    assert_eq!(replay.headers()["content-type"], "application/json");
    assert_eq!(
        replay.body().bytes().as_ref(),
        br#"{"prompt":"summarise this"}"#
    );
    drop(journal);

    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes
                .windows(API_KEY.len())
                .any(|window| window == API_KEY.as_bytes()),
            "{} holds the API key",
            path.display()
        );
        if path.extension().is_some_and(|ext| ext == "dlq") {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is readable by others", path.display());
        }
    }
    assert!(files >= 1, "the journal wrote no file");
}
