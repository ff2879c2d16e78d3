//! A stack read from TOML (and the same stack from JSON), built over three mock LLM servers on
//! 127.0.0.1: the file's retry count and fallback order are what the servers see.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use steadfast::config::{AgentConfig, BoxAgent, StackConfig};
use steadfast::provenance::{Provenance, Served};
use steadfast::{BoxError, Registry};
use steadfast_http::{BufferedBody, HttpClassifier};
use steadfast_mock::{MockServer, Reply, Route, Script, faults};
use tower::{ServiceExt, service_fn};

type HttpClient = Client<HttpConnector, BufferedBody>;

/// The file: `primary` retries twice, then falls back to `backup`, then `spare`.
fn stack_toml(primary: &MockServer, backup: &MockServer, spare: &MockServer) -> String {
    format!(
        r#"
[agents.primary]
endpoint = "http://{primary}"
classifier = "llm"
timeout = "5s"
fallback = ["backup", "spare"]
retry = {{ max_retries = 2, base = "1ms", max_backoff = "2ms", jitter = "none" }}
breaker = {{ consecutive_failures = 10 }}

[agents.backup]
endpoint = "http://{backup}"
classifier = "llm"
timeout = "5s"
breaker = {{ consecutive_failures = 10 }}

[agents.spare]
endpoint = "http://{spare}"
classifier = "http"
"#,
        primary = primary.addr(),
        backup = backup.addr(),
        spare = spare.addr(),
    )
}

/// An HTTP agent by endpoint: sends the request's path to the endpoint's base URL.
fn http_agent(
    client: &HttpClient,
    agent: &AgentConfig,
) -> Result<BoxAgent<Request<BufferedBody>, Response<Bytes>>, BoxError> {
    let base = agent
        .endpoint()
        .filter(|endpoint| endpoint.starts_with("http://"))
        .ok_or_else(|| format!("agent `{}` needs an http:// endpoint", agent.name()))?
        .to_owned();
    let client = client.clone();
    Ok(BoxAgent::new(service_fn(
        move |request: Request<BufferedBody>| {
            let client = client.clone();
            let base = base.clone();
            async move {
                let (mut parts, body) = request.into_parts();
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                parts.uri = format!("{base}{path}").parse()?;
                let response = client.request(Request::from_parts(parts, body)).await?;
                let (parts, body) = response.into_parts();
                let body = body.collect().await?.to_bytes();
                Ok::<_, BoxError>(Response::from_parts(parts, body))
            }
        },
    )))
}

fn chat() -> Request<BufferedBody> {
    Request::post(Route::OpenAiChat.path())
        .header("content-type", "application/json")
        .body(BufferedBody::from(
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
        ))
        .unwrap()
}

async fn servers() -> (MockServer, MockServer, MockServer) {
    let primary = MockServer::start().await.unwrap();
    primary.script(
        Route::OpenAiChat,
        Script::always(faults::openai::overloaded()),
    );
    let backup = MockServer::start().await.unwrap();
    backup.script(
        Route::OpenAiChat,
        Script::always(steadfast_mock::Fault::json(
            500,
            r#"{"error":{"message":"boom"}}"#,
        )),
    );
    let spare = MockServer::start().await.unwrap();
    spare.script(Route::OpenAiChat, Script::always(Reply::Success));
    (primary, backup, spare)
}

#[tokio::test]
async fn a_toml_stack_over_mock_agents_retries_then_falls_back_in_order() {
    let (primary, backup, spare) = servers().await;
    let text = stack_toml(&primary, &backup, &spare);
    run_with(
        StackConfig::from_toml(&text).unwrap(),
        primary,
        backup,
        spare,
    )
    .await;
}

#[tokio::test]
async fn the_same_stack_in_json_behaves_the_same() {
    let (primary, backup, spare) = servers().await;
    let text = stack_toml(&primary, &backup, &spare);
    let value: toml::Value = toml::from_str(&text).unwrap();
    let json = serde_json::to_string_pretty(&value).unwrap();
    run_with(
        StackConfig::from_json(&json).unwrap(),
        primary,
        backup,
        spare,
    )
    .await;
}

async fn run_with(config: StackConfig, primary: MockServer, backup: MockServer, spare: MockServer) {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let registry = Registry::new();
    let stacks = config
        .builder(&registry)
        .classifiers(HttpClassifier::from_kind)
        .agents(move |agent| http_agent(&client, agent))
        .mark_responses()
        .build()
        .unwrap();

    let response = stacks
        .service("primary")
        .unwrap()
        .oneshot(chat())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.served(),
        Served::Fallback {
            name: "spare".into()
        }
    );
    // 1 + max_retries at the primary, then each alternative once, in the file's order.
    assert_eq!(primary.requests(Route::OpenAiChat), 3);
    assert_eq!(backup.requests(Route::OpenAiChat), 1);
    assert_eq!(spare.requests(Route::OpenAiChat), 1);
    let counters = registry.counters("primary").unwrap();
    assert_eq!((counters.retries, counters.fallbacks), (2, 1));

    // Each agent's own stack is there too: `backup` has no retries and no chain.
    let response = stacks
        .service("backup")
        .unwrap()
        .oneshot(chat())
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        500,
        "no retry layer: the 500 comes back as is"
    );
    assert_eq!(backup.requests(Route::OpenAiChat), 2);
    for server in [primary, backup, spare] {
        server.shutdown().await;
    }
}
