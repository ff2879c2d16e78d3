//! `reqwest::Error`s are classified like hyper's: a refused connection is transient.
#![cfg(feature = "reqwest")]

use steadfast::BoxError;
use steadfast::classify::OutcomeKind;
use steadfast_http::classify_error;

#[tokio::test]
async fn a_refused_reqwest_connection_is_a_transient_connect_error() {
    // Bind then drop a listener: its port is free and nothing answers on it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap_err();
    let outcome = classify_error(&err);
    assert_eq!(outcome.kind(), OutcomeKind::Transient, "{err:?}");
    assert_eq!(outcome.reason(), Some("connect"));
    let boxed: BoxError = Box::new(err);
    assert_eq!(classify_error(boxed.as_ref()).reason(), Some("connect"));
    assert!(
        classify_error(boxed.as_ref()).is_unprocessed(),
        "a refused connection never reached the agent"
    );
}

#[tokio::test]
async fn an_error_for_status_is_classified_by_its_status() {
    use steadfast_mock::{MockServer, Route, Script, faults};
    let server = MockServer::start().await.unwrap();
    server.script(
        Route::OpenAiChat,
        Script::always(faults::openai::overloaded()),
    );
    let err = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(server.url(Route::OpenAiChat))
        .body("{}")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap_err();
    let outcome = classify_error(&err);
    assert_eq!(outcome.kind(), OutcomeKind::Transient, "{err:?}");
    assert_eq!(outcome.reason(), Some("503"));
}

/// reqwest-middleware's error is `transparent`: its `source()` skips the `reqwest::Error` that
/// knows it is a timeout. The classifier looks inside.
#[cfg(feature = "reqwest-middleware")]
#[tokio::test]
async fn a_timeout_inside_a_reqwest_middleware_error_is_a_timeout() {
    use std::time::Duration;
    use steadfast_mock::{MockServer, Reply, Route, Script};
    let server = MockServer::start().await.unwrap();
    server.script(
        Route::OpenAiChat,
        Script::always(Reply::Success.after(Duration::from_secs(5))),
    );
    let client = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder().no_proxy().build().unwrap(),
    )
    .build();
    let err = client
        .post(server.url(Route::OpenAiChat))
        .timeout(Duration::from_millis(50))
        .body("{}")
        .send()
        .await
        .unwrap_err();
    assert!(std::error::Error::source(&err).is_none_or(|source| !source.is::<reqwest::Error>()));
    let outcome = classify_error(&err);
    assert_eq!(outcome.reason(), Some("timeout"), "{err:?}");
}
