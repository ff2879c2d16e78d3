//! The axum example: the app answers through the stack in `route_layer` and its status routes
//! see the breaker.

use steadfast_examples::axum_app::run;

#[tokio::test]
async fn the_handler_degrades_to_502_then_503_and_the_status_routes_show_the_open_breaker() {
    let summary = run().await.unwrap();
    let statuses: Vec<u16> = summary
        .prompts
        .iter()
        .map(|exchange| exchange.status)
        .collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 502, 503, 503],
        "{:#?}",
        summary.prompts
    );
    assert!(summary.prompts[0].body.starts_with("summary: "));
    assert_eq!(
        summary.prompts[5].retry_after.as_deref(),
        Some("5"),
        "an open circuit tells the caller when to come back"
    );
    for (index, kind) in [(3, "retries_exhausted"), (5, "circuit_open")] {
        let exchange = &summary.prompts[index];
        assert_eq!(
            exchange.agent.as_deref(),
            Some("summarizer"),
            "{exchange:?}"
        );
        let body: serde_json::Value = serde_json::from_str(&exchange.body).unwrap();
        assert_eq!(body["error"]["type"], kind, "{exchange:?}");
    }
    assert_eq!(summary.prompts[0].agent, None, "a success names no agent");

    assert_eq!(summary.health.status, 503, "the only agent is down");

    let agents = summary.status["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["name"], "summarizer");
    assert_eq!(agents[0]["breaker"]["state"], "open");
    assert_eq!(agents[0]["breaker"]["counts"]["successes"], 3);
    assert_eq!(summary.status["health"], "unhealthy");
}
