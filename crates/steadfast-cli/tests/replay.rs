//! `steadfast dlq replay` end to end: requests stored by the real stack (secrets redacted) in a
//! real SQLite store held open by the "application", sent by the binary to a local mock agent
//! over HTTP (IPv6) and HTTPS (a CA the test makes), with the credential put back from the
//! environment or a header file. Plus the exit codes of bad command lines.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use steadfast::dead_letter::{DeadLetterSink, EncodeRequest};
use steadfast_http::BufferedBody;
use steadfast_http::dead_letter::HttpRequestEncoder;
use steadfast_sqlite::SqliteSink;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

const SECRET: &str = "sk-live-0123456789abcdef";

fn steadfast(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steadfast"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What the mock agent saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: http::HeaderMap,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A mock agent on `addr` (TLS with `tls`): logs every request, answers 503 to bodies holding
/// "fail" and 200 otherwise, with a chunked JSON body.
async fn mock_agent(addr: &str, tls: Option<TlsAcceptor>) -> (String, Log) {
    let listener = TcpListener::bind(addr).await.unwrap();
    let local = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let seen = log.clone();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (seen, tls) = (seen.clone(), tls.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await?.to_bytes();
                        let fail = body.windows(4).any(|w| w == b"fail");
                        seen.lock().unwrap().push(Seen {
                            method: parts.method.to_string(),
                            path: parts.uri.to_string(),
                            headers: parts.headers,
                            body,
                        });
                        let status = if fail { 503 } else { 200 };
                        Ok::<_, hyper::Error>(
                            http::Response::builder()
                                .status(status)
                                // No length known up front: hyper answers chunked.
                                .body(
                                    Full::new(Bytes::from_static(br#"{"ok":true}"#))
                                        .map_frame(|frame| frame),
                                )
                                .unwrap(),
                        )
                    }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    (format!("{scheme}://{local}"), log)
}

/// A CA made for this test (written to `dir/ca.pem`) and a server certificate it signed for
/// 127.0.0.1 and localhost.
fn test_tls(dir: &Path) -> (std::path::PathBuf, TlsAcceptor) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "steadfast test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![server_cert.der().clone(), ca.der().clone()], key)
    .unwrap();
    (ca_path, TlsAcceptor::from(Arc::new(config)))
}

/// Stores a request as the stack's dead-letter layer would (HttpRequestEncoder, secrets
/// redacted), under `agent` with `reason`.
async fn store_request(
    store: &SqliteSink,
    agent: &str,
    reason: &str,
    request: http::Request<BufferedBody>,
) -> steadfast::dead_letter::DeadLetterRecord {
    let encoded = HttpRequestEncoder::new().encode(&request).unwrap();
    let mut record = steadfast::dead_letter::DeadLetterRecord::new(
        agent,
        encoded,
        steadfast::OutcomeKind::Transient,
    );
    record.reason = reason.to_string();
    store.append(record.clone()).await.unwrap();
    record
}

fn chat(uri: &str, body: &'static str) -> http::Request<BufferedBody> {
    http::Request::put(uri)
        .header("authorization", format!("Bearer {SECRET}"))
        .header("content-type", "application/json")
        .header("x-request-id", "req-7")
        .body(BufferedBody::from(body))
        .unwrap()
}

/// Every byte of the store's files (database, WAL, shared memory), read by another process:
/// opening and closing the database file here would drop the application's SQLite locks
/// (POSIX locks belong to the process, and any close releases them).
fn store_bytes(dir: &Path) -> Vec<u8> {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    assert!(!files.is_empty());
    let output = Command::new("cat").args(&files).output().unwrap();
    assert!(output.status.success());
    output.stdout
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_over_https_puts_the_credential_back_from_the_environment_and_the_store_never_held_it()
 {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("dlq");
    let app = SqliteSink::open(&store_dir).unwrap();
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"héllo"}]}"#;
    let kept = store_request(
        &app,
        "gpt",
        "overloaded",
        chat(
            "https://api.example.invalid/v1/chat/completions?stream=false",
            body,
        ),
    )
    .await;
    let other = store_request(
        &app,
        "claude",
        "overloaded",
        chat("https://api.example.invalid/v1/messages", "{}"),
    )
    .await;
    assert!(
        !holds(&store_bytes(&store_dir), SECRET),
        "the store holds the secret"
    );

    let (ca_path, acceptor) = test_tls(dir.path());
    let (url, log) = mock_agent("127.0.0.1:0", Some(acceptor)).await;
    let path = store_dir.to_str().unwrap();
    let key = "sk-replay-from-env-42";
    let base = [
        "dlq",
        "--dir",
        path,
        "replay",
        "--to",
        &url,
        "--agent",
        "gpt",
        "--credential-env",
        "STEADFAST_TEST_KEY",
    ];

    // Without --ca-cert the test's certificate is not trusted: nothing reaches the agent and
    // the record is kept, its replay count raised.
    let output = steadfast(&base, &[("STEADFAST_TEST_KEY", key)]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    assert!(log.lock().unwrap().is_empty());
    assert_eq!(app.get(kept.id).await.unwrap().unwrap().replay_count, 1);

    let mut args = base.to_vec();
    args.extend(["--ca-cert", ca_path.to_str().unwrap(), "--json"]);
    let output = steadfast(&args, &[("STEADFAST_TEST_KEY", key)]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["succeeded"], 1);
    assert_eq!(report["attempted"], 1);

    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(request.path, "/v1/chat/completions?stream=false");
    assert_eq!(
        request.headers["authorization"],
        format!("Bearer {key}").as_str()
    );
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["x-request-id"], "req-7");
    assert_eq!(
        request.headers["x-steadfast-dead-letter-id"],
        kept.id.to_string().as_str()
    );
    assert_eq!(request.body, body.as_bytes());

    // The replayed record is gone, the filtered-out one untouched; neither credential was
    // ever written to the store.
    assert!(app.get(kept.id).await.unwrap().is_none());
    assert_eq!(app.get(other.id).await.unwrap().unwrap().replay_count, 0);
    let bytes = store_bytes(&store_dir);
    assert!(!holds(&bytes, SECRET) && !holds(&bytes, key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_over_http_to_ipv6_with_a_header_file_concurrency_and_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let app = SqliteSink::open(dir.path().join("dlq")).unwrap();
    let (url, log) = mock_agent("[::1]:0", None).await;
    // Stored with the agent's own (IPv6) URL: no --to needed.
    let mut ids = Vec::new();
    for body in [r#"{"n":1}"#, r#"{"n":"fail"}"#, r#"{"n":3}"#] {
        let record = store_request(
            &app,
            "gpt",
            "overloaded",
            chat(&format!("{url}/v1/chat"), body),
        )
        .await;
        ids.push(record.id);
    }
    let headers = dir.path().join("headers");
    std::fs::write(
        &headers,
        "# for the replay\nAuthorization: Bearer from-file\nx-api-key: k-file\n",
    )
    .unwrap();
    let path = dir.path().join("dlq");
    let output = steadfast(
        &[
            "dlq",
            "--dir",
            path.to_str().unwrap(),
            "--json",
            "replay",
            "--header-file",
            headers.to_str().unwrap(),
            "--concurrency",
            "2",
            "--rate",
            "1000",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (report["attempted"].as_u64(), report["succeeded"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(report["failed"][0]["id"], ids[1].to_string().as_str());
    assert!(
        report["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{report}"
    );

    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(request.headers["authorization"], "Bearer from-file");
        assert_eq!(request.headers["x-api-key"], "k-file");
    }
    let left = app.list(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].id, left[0].replay_count), (ids[1], 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_names_the_credential_headers_never_their_values_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = SqliteSink::open(dir.path().join("dlq")).unwrap();
    store_request(
        &app,
        "gpt",
        "overloaded",
        chat("https://api.example.invalid/v1/chat", "{}"),
    )
    .await;
    let path = dir.path().join("dlq");
    let output = steadfast(
        &[
            "dlq",
            "--dir",
            path.to_str().unwrap(),
            "replay",
            "--dry-run",
            "--json",
            "--credential-env",
            "STEADFAST_TEST_KEY",
            "--credential-header",
            "x-api-key",
            "--older-than",
            "0s",
        ],
        &[("STEADFAST_TEST_KEY", "k-dry-run-secret")],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(!stdout.contains("k-dry-run-secret"), "{stdout}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan["selected"], 1);
    let request = &plan["requests"][0];
    assert_eq!(request["method"], "PUT");
    assert_eq!(request["url"], "https://api.example.invalid/v1/chat");
    let headers: Vec<&str> = request["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert!(headers.contains(&"x-api-key"), "{headers:?}");
    // The stored `authorization: [REDACTED]` is not sent.
    assert!(!headers.contains(&"authorization"), "{headers:?}");
    assert_eq!(app.list(10).await.unwrap()[0].replay_count, 0);

    // The table form aligns its columns under the header.
    let output = steadfast(
        &[
            "dlq",
            "--dir",
            path.to_str().unwrap(),
            "replay",
            "--dry-run",
        ],
        &[],
    );
    let table = text(&output.stdout);
    let lines: Vec<&str> = table.lines().collect();
    let url_at = lines[0].find("URL").unwrap();
    assert_eq!(lines[1].find("https://"), Some(url_at), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_command_lines_exit_2_with_a_message_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let app = SqliteSink::open(dir.path().join("dlq")).unwrap();
    store_request(&app, "gpt", "overloaded", chat("/v1/relative", "{}")).await;
    let path = dir.path().join("dlq");
    let path = path.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["replay", "--rate", "NaN", "--to", "http://127.0.0.1:1"],
            "NaN",
        ),
        (
            &["replay", "--rate", "0", "--to", "http://127.0.0.1:1"],
            "cannot be a schedule",
        ),
        (
            &["replay", "--rate", "-1", "--to", "http://127.0.0.1:1"],
            "cannot be a schedule",
        ),
        (
            &["replay", "--rate", "1e-300", "--to", "http://127.0.0.1:1"],
            "cannot be a schedule",
        ),
        (&["replay", "--concurrency", "0"], "in flight"),
        (&["replay", "--older-than", "soon"], "not a duration"),
        (&["replay", "--to", "ftp://x"], "ftp://x"),
        (
            &[
                "replay",
                "--credential-env",
                "STEADFAST_TEST_SURELY_UNSET_71",
            ],
            "STEADFAST_TEST_SURELY_UNSET_71",
        ),
        (
            &["replay", "--ca-cert", "/no/such/ca.pem"],
            "/no/such/ca.pem",
        ),
        (&["replay"], "--to"), // a relative stored URI and no --to
        (&["show", "not-an-id"], "not-an-id"),
        (&["purge"], "--yes"),
    ];
    for (args, expected) in cases {
        let mut full = vec!["dlq", "--dir", path];
        full.extend_from_slice(args);
        let output = steadfast(&full, &[]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let output = steadfast(&["dlq", "stats"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--dir"));
    // Nothing was touched by any of them.
    assert_eq!(app.list(10).await.unwrap()[0].replay_count, 0);
}

#[allow(clippy::ptr_arg, clippy::unnecessary_wraps)]
fn encode_prompt(prompt: &String) -> Result<Bytes, steadfast::BoxError> {
    Ok(Bytes::from(prompt.clone()))
}

/// The stack dead-letters a call whose primary and two alternatives all failed: `list` shows
/// the attempts the record holds, the same count the error names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_the_attempts_the_error_names() {
    use steadfast::dead_letter::DeadLetterLayer;
    use steadfast::fallback::FallbackLayer;
    use steadfast::{Agent, BoxError};
    use tower::{ServiceBuilder, ServiceExt};
    let dir = tempfile::tempdir().unwrap();
    let app = SqliteSink::open(dir.path().join("dlq")).unwrap();
    let down = || tower::service_fn(|_: String| async { Err::<String, BoxError>("down".into()) });
    let assistant = Agent::new("assistant");
    let stack = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(&assistant, app.clone()).encoder(encode_prompt))
        .layer(
            FallbackLayer::new(&assistant)
                .then(&Agent::new("b"), down())
                .then(&Agent::new("c"), down())
                .then(&Agent::new("d"), down()),
        )
        .service(down());
    let error = stack.oneshot("hi".into()).await.unwrap_err();
    assert!(
        steadfast::error::chain(error.as_ref())
            .iter()
            .any(|l| l.contains("(4 attempts"))
    );

    let path = dir.path().join("dlq");
    let output = steadfast(&["dlq", "--dir", path.to_str().unwrap(), "list"], &[]);
    let table = text(&output.stdout);
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    let column = header.iter().position(|h| *h == "ATTEMPTS").unwrap();
    assert_eq!(
        lines[1].split_whitespace().nth(column),
        Some("4"),
        "{table}"
    );
    let output = steadfast(
        &["dlq", "--dir", path.to_str().unwrap(), "list", "--json"],
        &[],
    );
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed[0]["attempts"], 4);
}
