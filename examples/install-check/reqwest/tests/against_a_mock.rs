//! The README's reqwest setup against a local mock of the OpenAI API. Two prompts: the first
//! meets a 503 (retried), then, like the second, a 400 `context_length_exceeded`, which the
//! fallback on another host answers, with its own key.

use install_check_reqwest::{Fallback, chat, over_client, with_middleware};
use steadfast::Registry;
use steadfast_mock::{MockServer, Route, Script, faults};
use tower::ServiceExt;

async fn servers() -> (MockServer, MockServer, Fallback) {
    let primary = MockServer::start().await.unwrap();
    primary.script(
        Route::OpenAiChat,
        Script::steps([faults::openai::overloaded().into()])
            .then(faults::openai::context_length_exceeded()),
    );
    let big = MockServer::start().await.unwrap();
    let fallback = Fallback {
        base_url: format!("http://{}", big.addr()),
        api_key: "big-key".to_owned(),
    };
    (primary, big, fallback)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn over_a_reqwest_client() {
    let (primary, big, fallback) = servers().await;
    let client = client();
    let stack = over_client(&Registry::new(), &client, &fallback).unwrap();
    let url = primary.url(Route::OpenAiChat);
    for _ in 0..2 {
        let request = chat(&client, &url, "sk-openai", "hi").build().unwrap();
        let answer = stack.clone().oneshot(request).await.unwrap();
        assert_eq!(answer.status(), 200);
    }
    assert_eq!(
        primary.requests(Route::OpenAiChat),
        3,
        "the 503 retried, two 400s"
    );
    assert_eq!(
        big.requests(Route::OpenAiChat),
        2,
        "both too long: the fallback answered"
    );
    let sent = big.last_request(Route::OpenAiChat).unwrap();
    assert_eq!(sent.headers["authorization"], "Bearer big-key");
}

#[tokio::test]
async fn over_a_client_with_middleware() {
    let (primary, big, fallback) = servers().await;
    let client = with_middleware(&Registry::new(), &client(), &fallback).unwrap();
    let url = primary.url(Route::OpenAiChat);
    for _ in 0..2 {
        let answer = client
            .post(&url)
            .bearer_auth("sk-openai")
            .json(&serde_json::json!({"model": "gpt-4o", "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    assert_eq!(
        primary.requests(Route::OpenAiChat),
        3,
        "the 503 retried, two 400s"
    );
    assert_eq!(
        big.requests(Route::OpenAiChat),
        2,
        "both too long: the fallback answered"
    );
    let sent = big.last_request(Route::OpenAiChat).unwrap();
    assert_eq!(sent.headers["authorization"], "Bearer big-key");
}
