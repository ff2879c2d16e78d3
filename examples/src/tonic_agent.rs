//! A tonic gRPC agent wrapped by the same layers, judged by
//! [`GrpcClassifier`](steadfast_http::GrpcClassifier)'s rules.
//!
//! No `protoc` needed: the two messages below are written by hand with `prost`'s derive (what
//! `prost-build` would generate from the proto in the comment), and the client and server use
//! tonic's generic `client::Grpc` and `server::Grpc` with `tonic_prost::ProstCodec`, which is
//! all tonic's generated code does for a unary method.
//!
//! ```proto
//! syntax = "proto3";
//! package steadfast.examples;
//! service Agent { rpc Ask (AskRequest) returns (AskReply); }
//! message AskRequest { string prompt = 1; }
//! message AskReply { string answer = 1; }
//! ```
//!
//! The layers wrap the *typed* client ([`GrpcAgent`]: `Service<AskRequest>`), because a retry
//! must resend the request and `AskRequest` is `Clone` where tonic's HTTP body is not. The
//! server answers from a script: `OK`; `UNAVAILABLE` then `OK`; a hang (the per-attempt timeout
//! fires) then `OK`; `INVALID_ARGUMENT` (a caller fault: not retried, not held against the
//! agent); an outage of `UNAVAILABLE`s that opens the breaker; then `OK` for the probe.
//!
//! ```text
//! cargo run -p steadfast-examples --example tonic_agent
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::PathAndQuery;
use steadfast::prelude::*;
use steadfast::retry::count_attempts;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;
use tower::{Service, ServiceBuilder, ServiceExt};

/// `AskRequest { string prompt = 1; }`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AskRequest {
    /// The prompt.
    #[prost(string, tag = "1")]
    pub prompt: String,
}

/// `AskReply { string answer = 1; }`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AskReply {
    /// The answer.
    #[prost(string, tag = "1")]
    pub answer: String,
}

/// The method's path: `/package.Service/Method`.
pub const ASK_PATH: &str = "/steadfast.examples.Agent/Ask";

/// One scripted answer of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `OK` with an answer.
    Answer,
    /// `UNAVAILABLE`.
    Unavailable,
    /// `INVALID_ARGUMENT`.
    InvalidArgument,
    /// Never answers.
    Hang,
}

/// The server's script, one entry per call it receives (the last repeats).
pub const SCRIPT: [Reply; 10] = [
    Reply::Answer,
    Reply::Unavailable,
    Reply::Answer,
    Reply::Hang,
    Reply::Answer,
    Reply::InvalidArgument,
    Reply::Unavailable,
    Reply::Unavailable,
    Reply::Unavailable,
    Reply::Answer,
];

/// The per-attempt timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(200);
/// How long the breaker stays open after it trips.
pub const OPEN_FOR: Duration = Duration::from_millis(300);

/// The gRPC server: routes `Ask` to the script, everything else to `UNIMPLEMENTED`.
#[derive(Clone, Debug)]
pub struct AgentServer {
    script: Arc<[Reply]>,
    hits: Arc<AtomicUsize>,
}

impl NamedService for AgentServer {
    const NAME: &'static str = "steadfast.examples.Agent";
}

impl Service<http::Request<Body>> for AgentServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != ASK_PATH {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        let script = self.script.clone();
        let hits = self.hits.clone();
        let ask = tower::service_fn(move |request: tonic::Request<AskRequest>| {
            let hit = hits.fetch_add(1, Ordering::SeqCst);
            let reply = script[hit.min(script.len() - 1)];
            async move {
                match reply {
                    Reply::Answer => Ok(tonic::Response::new(AskReply {
                        answer: format!("you asked: {}", request.get_ref().prompt),
                    })),
                    Reply::Unavailable => Err(Status::unavailable("model server overloaded")),
                    Reply::InvalidArgument => Err(Status::invalid_argument(
                        "prompt exceeds the context window",
                    )),
                    Reply::Hang => std::future::pending().await,
                }
            }
        });
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<AskReply, AskRequest>::default());
            Ok(grpc.unary(ask, request).await)
        })
    }
}

/// The typed client as an agent: `Service<AskRequest, Response = AskReply, Error = Status>`.
#[derive(Clone, Debug)]
pub struct GrpcAgent {
    grpc: tonic::client::Grpc<Channel>,
}

impl GrpcAgent {
    /// An agent calling `Ask` over `channel`.
    pub fn new(channel: Channel) -> Self {
        GrpcAgent {
            grpc: tonic::client::Grpc::new(channel),
        }
    }
}

impl Service<AskRequest> for GrpcAgent {
    type Response = AskReply;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<AskReply, Status>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        // The channel's readiness is awaited per call on a clone, so this agent is always
        // ready, as the layers above it expect.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: AskRequest) -> Self::Future {
        let mut grpc = self.grpc.clone();
        Box::pin(async move {
            grpc.ready()
                .await
                .map_err(|error| Status::unavailable(format!("agent not reachable: {error}")))?;
            let response = grpc
                .unary(
                    tonic::Request::new(request),
                    PathAndQuery::from_static(ASK_PATH),
                    ProstCodec::<AskRequest, AskReply>::default(),
                )
                .await?;
            Ok(response.into_inner())
        })
    }
}

/// Classifies the typed results: an answer is a success; an error (a `tonic::Status`, a
/// timeout, an open circuit, anywhere in the chain) is judged by
/// [`GrpcClassifier`](steadfast_http::GrpcClassifier)'s rules ([`steadfast_http::classify_grpc_error`]).
pub fn classify(result: Result<&AskReply, &BoxError>) -> Outcome {
    match result {
        Ok(_) => Outcome::success(),
        Err(error) => steadfast_http::classify_grpc_error(error.as_ref()),
    }
}

/// One call through the stack.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// What the call meets on the server.
    pub label: &'static str,
    /// The answer, if any.
    pub answer: Option<String>,
    /// The gRPC code of the final error's `Status`, if there is one.
    pub code: Option<Code>,
    /// Whether the final error was the breaker refusing the call.
    pub circuit_open: bool,
    /// The final error, if any.
    pub error: Option<String>,
    /// Attempts the retry layer made.
    pub attempts: u32,
    /// Time from calling to the final answer or error.
    pub elapsed: Duration,
}

/// What happened.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Every call, in order.
    pub exchanges: Vec<Exchange>,
    /// Calls the server received.
    pub server_hits: usize,
    /// The breaker's state before the last call (after the outage).
    pub state_after_outage: BreakerState,
    /// Failures the breaker counted (caller faults are not among them).
    pub breaker_failures: u64,
    /// Caller faults the breaker saw and ignored.
    pub breaker_caller_faults: u64,
    /// The breaker's state at the end.
    pub final_state: BreakerState,
}

/// Runs the example (about 1.5 s): starts the gRPC server on `127.0.0.1:0`, makes seven calls.
pub async fn run() -> Result<Summary, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let hits = Arc::new(AtomicUsize::new(0));
    let server = AgentServer {
        script: SCRIPT.to_vec().into(),
        hits: hits.clone(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(server)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            }),
    );

    let channel = Endpoint::from_shared(format!("http://{addr}"))?.connect_lazy();
    // One agent, named once with its classifier, for every layer.
    let grpc_agent = Agent::new("grpc-agent").classifier(classify);
    let breaker = CircuitBreakerLayer::new(
        &grpc_agent,
        BreakerConfig::builder()
            .consecutive_failures(3)
            .initial_open_duration(OPEN_FOR)
            .half_open_probes(1)
            .build()?,
    );
    let breaker_handle = breaker.handle();
    let retry = BackoffRetryLayer::new(
        &grpc_agent,
        RetryConfig::builder()
            .max_retries(2)
            .base(Duration::from_millis(50))
            .max_backoff(Duration::from_millis(100))
            .deadline(Duration::from_secs(3))
            .build()?,
    )
    .seed(11);
    // The fallback, dead-letter and degrade layers go above `backoff_retry` (see in_process).
    let stack = ServiceBuilder::new()
        .backoff_retry(retry)
        .circuit_breaker(breaker)
        .timeout(ATTEMPT_TIMEOUT)
        .service(GrpcAgent::new(channel));

    let labels = [
        "answers",
        "UNAVAILABLE, then answers",
        "hangs past the timeout, then answers",
        "INVALID_ARGUMENT (caller fault)",
        "outage: UNAVAILABLE x3",
        "while the circuit is open",
        "probe after the open time",
    ];
    let mut exchanges = Vec::with_capacity(labels.len());
    let mut state_after_outage = breaker_handle.state();
    for (index, label) in labels.into_iter().enumerate() {
        if index == labels.len() - 1 {
            state_after_outage = breaker_handle.state();
            tokio::time::sleep(OPEN_FOR + Duration::from_millis(50)).await;
        }
        let request = AskRequest {
            prompt: format!("question {}", index + 1),
        };
        let started = Instant::now();
        let (result, attempts) = count_attempts(stack.clone().oneshot(request)).await;
        let elapsed = started.elapsed();
        let attempts = attempts.unwrap_or(1);
        exchanges.push(match result {
            Ok(reply) => Exchange {
                label,
                answer: Some(reply.answer),
                code: None,
                circuit_open: false,
                error: None,
                attempts,
                elapsed,
            },
            Err(error) => Exchange {
                label,
                answer: None,
                code: steadfast::error::find::<Status>(error.as_ref()).map(Status::code),
                circuit_open: steadfast::error::find::<CircuitOpen>(error.as_ref()).is_some(),
                error: Some(error.to_string()),
                attempts,
                elapsed,
            },
        });
    }

    // The channel's connection would hold the graceful shutdown open: drop it first.
    drop(stack);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server).await???;
    let counts = breaker_handle.counts();
    Ok(Summary {
        exchanges,
        server_hits: hits.load(Ordering::SeqCst),
        state_after_outage,
        breaker_failures: counts.failures,
        breaker_caller_faults: counts.caller_faults,
        final_state: breaker_handle.state(),
    })
}
