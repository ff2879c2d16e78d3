//! reqwest quotes the request URL in its errors; the secrets the encoder took out of the request
//! scrub them from the real error chain, whatever reqwest's URL printing did to them.
#![cfg(all(feature = "dead-letter", feature = "reqwest"))]

use std::error::Error;

use steadfast_http::BufferedBody;
use steadfast_http::dead_letter::HttpRequestEncoder;

const KEY: &str = "sk-live-reqwest-0123456789";
const PASSWORD: &str = "pa55-w0rd-reqwest";

fn chain(error: &(dyn Error + 'static)) -> Vec<String> {
    std::iter::successors(Some(error), |&error| error.source())
        .map(ToString::to_string)
        .collect()
}

#[tokio::test]
async fn the_error_chain_of_a_failed_reqwest_call_is_scrubbed_of_the_request_secrets() {
    // Bind then drop a listener: its port is free and nothing answers on it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://bob:{PASSWORD}@127.0.0.1:{port}/v1/chat?alt=sse;API%5FKey={KEY}&n=1");
    let error = reqwest::Client::new()
        .post(&url)
        .send()
        .await
        .expect_err("nothing listens");
    let chain = chain(&error);
    // Without scrubbing the chain would store the key (what the review found). reqwest 0.13
    // moves userinfo into an `authorization` header and leaves it out of the URL it quotes;
    // other clients do quote it, which the unit tests cover.
    assert!(chain.iter().any(|line| line.contains(KEY)), "{chain:?}");

    let request = http::Request::post(url.as_str())
        .body(BufferedBody::from("{}"))
        .unwrap();
    let (_, secrets) = HttpRequestEncoder::new()
        .encode_with_secrets(&request)
        .unwrap();
    for line in &chain {
        let scrubbed = secrets.scrub(line);
        assert!(
            !scrubbed.contains(KEY) && !scrubbed.contains(PASSWORD),
            "{scrubbed}"
        );
    }
    let first = secrets.scrub(&chain[0]);
    assert!(
        first.contains(&format!(
            "(http://127.0.0.1:{port}/v1/chat?alt=sse;API%5FKey=[REDACTED]&n=1)"
        )),
        "{first}"
    );
}
