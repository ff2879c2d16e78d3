//! [`ChaosLayer`]: fault injection for one agent.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::agent::Agent;

use super::config::ChaosConfig;
use super::error::ChaosError;
use super::handle::{ChaosHandle, ChaosShared};
use super::service::Chaos;

/// Injects faults into calls to an agent: errors, fake responses and latency at configured
/// rates, and outage windows; switchable at runtime through its [`ChaosHandle`]. Deterministic
/// under a seed: the same seed and the same order of calls inject the same faults.
///
/// Every service the layer wraps shares one handle (and one random sequence). The
/// `F` parameter is the response closure ([`NoResponse`] until
/// [`responses`](Self::responses) sets one).
pub struct ChaosLayer<F = NoResponse> {
    shared: Arc<ChaosShared>,
    responder: F,
}

/// The response "closure" of a [`ChaosLayer`] without one: the response rate does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoResponse;

/// Produces the fake response a [`ChaosLayer`] answers with, from the request. Implemented for
/// closures `Fn(&Req) -> Res`.
pub trait InjectResponse<Req, Res> {
    /// The fake response, or `None` to let the call through.
    fn response(&self, request: &Req) -> Option<Res>;
}

impl<Req, Res> InjectResponse<Req, Res> for NoResponse {
    fn response(&self, _request: &Req) -> Option<Res> {
        None
    }
}

impl<F, Req, Res> InjectResponse<Req, Res> for F
where
    F: Fn(&Req) -> Res,
{
    fn response(&self, request: &Req) -> Option<Res> {
        Some(self(request))
    }
}

impl ChaosLayer {
    /// Fault injection for `agent` as `config` says (switched on or off by its `enabled`), with
    /// no injected responses.
    pub fn new<C>(agent: &Agent<C>, config: &ChaosConfig) -> Self {
        crate::classify::register::<ChaosError>();
        ChaosLayer {
            shared: ChaosShared::new(agent.name_arc().clone(), config),
            responder: NoResponse,
        }
    }
}

impl<F> ChaosLayer<F> {
    /// Answers the calls that draw a "response" fault with `responder(&request)` (e.g. an HTTP
    /// 503) instead of calling the agent.
    pub fn responses<F2>(self, responder: F2) -> ChaosLayer<F2> {
        ChaosLayer {
            shared: self.shared,
            responder,
        }
    }

    /// The runtime switch of this layer's faults.
    pub fn handle(&self) -> ChaosHandle {
        ChaosHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<S, F: Clone> Layer<S> for ChaosLayer<F> {
    type Service = Chaos<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Chaos {
            inner,
            shared: self.shared.clone(),
            responder: self.responder.clone(),
        }
    }
}

impl<F: Clone> Clone for ChaosLayer<F> {
    fn clone(&self) -> Self {
        ChaosLayer {
            shared: self.shared.clone(),
            responder: self.responder.clone(),
        }
    }
}

impl<F> fmt::Debug for ChaosLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosLayer")
            .field("handle", &self.handle())
            .finish_non_exhaustive()
    }
}
