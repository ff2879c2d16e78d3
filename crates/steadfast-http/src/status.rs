//! Status routes for axum (feature `axum`): health for load balancers, the registry as JSON, a
//! self-refreshing status page, manual breaker control behind a guard, and Prometheus metrics.
//!
//! | route | answers |
//! |---|---|
//! | `GET /health` | `200` while the instance can serve, `503` when it cannot ([`HealthRule`]); the body's `status` says which (below) |
//! | `GET /status` | the [`Registry`] snapshot as JSON (see `docs/operations.md`) |
//! | `GET /status/ui` | a small self-contained HTML page (no external assets) that refreshes itself |
//! | `POST /agents/{name}/reset`, `/open`, `/close` | manual breaker control; `403` unless a guard is configured, `401` when the guard refuses |
//! | `GET /metrics` | Prometheus text format, when a [`PrometheusHandle`] is given; `404` otherwise |
//!
//! `GET /health` answers a status code that always agrees with its body's `status`:
//!
//! | `status` | code | when |
//! |---|---|---|
//! | `healthy` | `200` | every agent is healthy (or none is registered) |
//! | `degraded` | `200` | some agent is not healthy, but the [`HealthRule`] says the instance still serves |
//! | `unhealthy` | `503` | the [`HealthRule`] says the instance cannot serve |
//!
//! Each agent's own health is in `agents`; `serving` is `false` exactly when the code is `503`.
//!
//! ```
//! use steadfast::Registry;
//! use steadfast_http::status::StatusRoutes;
//!
//! let registry = Registry::new();
//! let app: axum::Router = axum::Router::new()
//!     .merge(StatusRoutes::new(registry).bearer_token("s3cret").router());
//! ```

use std::fmt;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use steadfast::Registry;
use steadfast::registry::Health;

/// Decides whether a request may use the control routes.
type Guard = Arc<dyn Fn(&HeaderMap) -> bool + Send + Sync>;

/// When `GET /health` answers `503`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HealthRule {
    /// Only when every registered agent is unhealthy (nothing can answer): with fallbacks in
    /// the stack, one agent down does not take the instance out of the load balancer. The
    /// default.
    #[default]
    AllUnhealthy,
    /// As soon as any agent is unhealthy.
    AnyUnhealthy,
}

/// Builds the status routes. See the [module docs](self).
#[derive(Clone)]
pub struct StatusRoutes {
    registry: Registry,
    guard: Option<Guard>,
    prometheus: Option<PrometheusHandle>,
    health_rule: HealthRule,
}

/// The routes' shared state.
#[derive(Clone)]
struct Routes(Arc<StatusRoutes>);

impl StatusRoutes {
    /// Routes over `registry`, with control disabled and no metrics.
    pub fn new(registry: Registry) -> Self {
        StatusRoutes {
            registry,
            guard: None,
            prometheus: None,
            health_rule: HealthRule::default(),
        }
    }

    /// Enables the control routes for requests `guard` accepts.
    #[must_use]
    pub fn control_guard(
        mut self,
        guard: impl Fn(&HeaderMap) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.guard = Some(Arc::new(guard));
        self
    }

    /// Enables the control routes for requests carrying `Authorization: Bearer <token>`
    /// (compared in constant time).
    #[must_use]
    pub fn bearer_token(self, token: impl Into<String>) -> Self {
        let expected = format!("Bearer {}", token.into()).into_bytes();
        self.control_guard(move |headers| {
            headers
                .get(header::AUTHORIZATION)
                .is_some_and(|value| constant_time_eq(value.as_bytes(), &expected))
        })
    }

    /// Serves `GET /metrics` from this Prometheus recorder (install it with
    /// `metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()` before
    /// building the layers).
    #[must_use]
    pub fn prometheus(mut self, handle: PrometheusHandle) -> Self {
        self.prometheus = Some(handle);
        self
    }

    /// When `GET /health` answers `503`.
    #[must_use]
    pub fn health_rule(mut self, rule: HealthRule) -> Self {
        self.health_rule = rule;
        self
    }

    /// The routes, ready to merge into an application's router.
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> axum::Router<S> {
        axum::Router::new()
            .route("/health", get(health))
            .route("/status", get(status))
            .route("/status/ui", get(status_ui))
            .route("/agents/{name}/{action}", post(control))
            .route("/metrics", get(metrics))
            .with_state(Routes(Arc::new(self)))
    }
}

impl fmt::Debug for StatusRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusRoutes")
            .field("registry", &self.registry)
            .field("control", &self.guard.is_some())
            .field("metrics", &self.prometheus.is_some())
            .field("health_rule", &self.health_rule)
            .finish()
    }
}

/// [`StatusRoutes::new`]`(registry).router()`: every route, control disabled, no metrics.
pub fn status_routes(registry: Registry) -> axum::Router {
    StatusRoutes::new(registry).router()
}

/// A Prometheus recorder builder with steadfast's histogram buckets
/// ([`steadfast::telemetry::LATENCY_BUCKETS`] for the `_duration_seconds` histograms,
/// [`steadfast::telemetry::ATTEMPT_BUCKETS`] for `steadfast_call_attempts`), so they are exported
/// as Prometheus histograms (`_bucket{le=...}`) rather than summaries. Add your own settings,
/// then `install_recorder()` (or `build_recorder()`) before making the agents.
///
/// ```
/// let recorder = steadfast_http::status::prometheus_builder()?.build_recorder();
/// let handle = recorder.handle();
/// # let _ = handle;
/// # Ok::<(), metrics_exporter_prometheus::BuildError>(())
/// ```
pub fn prometheus_builder() -> Result<PrometheusBuilder, BuildError> {
    let mut builder = PrometheusBuilder::new();
    for metric in steadfast::telemetry::METRICS {
        if let Some(buckets) = steadfast::telemetry::buckets_for(metric.name) {
            builder =
                builder.set_buckets_for_metric(Matcher::Full(metric.name.to_owned()), buckets)?;
        }
    }
    Ok(builder)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

async fn health(State(Routes(routes)): State<Routes>) -> Response {
    let snapshot = routes.registry.snapshot();
    let unhealthy = |health: Health| health == Health::Unhealthy;
    let failing = match routes.health_rule {
        HealthRule::AllUnhealthy => {
            !snapshot.agents.is_empty()
                && snapshot.agents.iter().all(|agent| unhealthy(agent.health))
        }
        HealthRule::AnyUnhealthy => snapshot.agents.iter().any(|agent| unhealthy(agent.health)),
    };
    let agents: serde_json::Map<String, serde_json::Value> = snapshot
        .agents
        .iter()
        .map(|agent| (agent.name.clone(), json!(agent.health.as_str())))
        .collect();
    let (code, status) = health_answer(failing, snapshot.health);
    (
        code,
        Json(json!({ "status": status.as_str(), "serving": !failing, "agents": agents })),
    )
        .into_response()
}

/// The instance's health as `/health` reports it, and its status code: `unhealthy` (503)
/// exactly when the rule says it cannot serve; otherwise `healthy` (200) when every agent is,
/// else `degraded` (200). So the code and the body never disagree.
fn health_answer(failing: bool, worst: Health) -> (StatusCode, Health) {
    match (failing, worst) {
        (true, _) => (StatusCode::SERVICE_UNAVAILABLE, Health::Unhealthy),
        (false, Health::Healthy) => (StatusCode::OK, Health::Healthy),
        (false, _) => (StatusCode::OK, Health::Degraded),
    }
}

async fn status(State(Routes(routes)): State<Routes>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        routes.registry.snapshot().to_json(),
    )
        .into_response()
}

async fn status_ui() -> Html<&'static str> {
    Html(STATUS_PAGE)
}

async fn control(
    State(Routes(routes)): State<Routes>,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let refuse = |code: StatusCode, message: String| {
        (code, Json(json!({ "error": message }))).into_response()
    };
    let Some(guard) = &routes.guard else {
        return refuse(
            StatusCode::FORBIDDEN,
            "control routes are disabled: configure a guard with StatusRoutes::control_guard or bearer_token".into(),
        );
    };
    if !guard(&headers) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "not authorised to control breakers".into(),
        );
    }
    let Some(breaker) = routes.registry.breaker(&name) else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("no agent named `{name}` has a breaker"),
        );
    };
    match action.as_str() {
        "reset" => breaker.reset(),
        "open" => breaker.force_open(),
        "close" => breaker.force_closed(),
        other => {
            return refuse(
                StatusCode::NOT_FOUND,
                format!("unknown action `{other}`: use reset, open or close"),
            );
        }
    }
    tracing::warn!(agent = %name, action = %action, "breaker changed by an operator");
    Json(json!({ "agent": name, "state": breaker.state().as_str() })).into_response()
}

async fn metrics(State(Routes(routes)): State<Routes>) -> Response {
    match &routes.prometheus {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "metrics are not configured: pass a PrometheusHandle to StatusRoutes::prometheus",
        )
            .into_response(),
    }
}

/// The status page: one file, no external assets, refreshing itself from `../status` (the JSON
/// route beside it, wherever the routes are nested) every two seconds.
const STATUS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>steadfast status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
  h1 { font-size: 1.3rem; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ddd; vertical-align: top; }
  .healthy { color: #137333; } .degraded { color: #b06000; } .unhealthy { color: #c5221f; font-weight: bold; }
  .muted { color: #777; } ul { margin: 0; padding-left: 1rem; }
</style>
</head>
<body>
<h1>steadfast: <span id="overall" class="muted">loading...</span></h1>
<table>
  <thead><tr><th>agent</th><th>health</th><th>breaker</th><th>failure rate</th><th>next probe</th><th>recent failures</th></tr></thead>
  <tbody id="agents"></tbody>
</table>
<p class="muted">Refreshes every 2 s. <span id="updated"></span></p>
<script>
function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}
function percent(rate) { return rate === null || rate === undefined ? "-" : (rate * 100).toFixed(1) + " %"; }
function render(snapshot) {
  const overall = document.getElementById("overall");
  overall.textContent = snapshot.health;
  overall.className = snapshot.health;
  const body = document.getElementById("agents");
  body.replaceChildren();
  for (const agent of snapshot.agents) {
    const breaker = agent.breaker || {};
    const row = document.createElement("tr");
    row.dataset.agent = agent.name;
    row.appendChild(cell(agent.name));
    row.appendChild(cell(agent.health, agent.health));
    row.appendChild(cell(breaker.state || "-"));
    row.appendChild(cell(percent(breaker.failure_rate)));
    row.appendChild(cell(breaker.next_probe_in_secs == null ? "-" : "in " + breaker.next_probe_in_secs.toFixed(1) + " s"));
    const failures = document.createElement("td");
    const list = document.createElement("ul");
    for (const failure of (breaker.recent_failures || []).slice(-5).reverse()) {
      const item = document.createElement("li");
      item.textContent = failure.secs_ago.toFixed(1) + " s ago: " + failure.kind + (failure.reason ? " (" + failure.reason + ")" : "");
      list.appendChild(item);
    }
    failures.appendChild(list);
    row.appendChild(failures);
    body.appendChild(row);
  }
  document.getElementById("updated").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
}
async function refresh() {
  try {
    const response = await fetch("../status", { cache: "no-store" });
    render(await response.json());
  } catch (error) {
    document.getElementById("updated").textContent = "Status unavailable: " + error;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"#;
