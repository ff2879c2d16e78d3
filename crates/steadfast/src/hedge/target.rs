//! Where hedges go: the agent itself ([`SameAgent`], the default) or other agents
//! ([`Alternatives`], set with [`HedgeLayer::to`](super::HedgeLayer::to)).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tower::ServiceExt;
use tower_service::Service;

use crate::agent::{Agent, Scope};
use crate::classify::{self, Classify, Outcome};
use crate::error::BoxError;
use crate::sync::Spread;

/// Hedges go to the agent the layer wraps, through a clone of its service (the default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SameAgent;

/// An attempt sent to an alternative: its result, judged by the alternative's own classifier.
pub(crate) type AlternativeFuture<Res> =
    Pin<Box<dyn Future<Output = (Result<Res, BoxError>, Outcome)> + Send>>;

/// One call's reference to the alternatives.
pub(crate) type TargetList<Req, Res> = crate::sync::Local<Vec<Target<Req, Res>>>;

type StartFn<Req, Res> = dyn Fn(Req) -> AlternativeFuture<Res> + Send + Sync;

/// One agent hedges may go to.
pub(crate) struct Target<Req, Res> {
    pub(crate) name: Arc<str>,
    pub(crate) scope: Arc<Scope>,
    /// Readies a clone of the agent's service, calls it, and classifies the result with the
    /// agent's classifier (boxed: a hedge allocates anyway, and alternatives differ in type).
    start: Arc<StartFn<Req, Res>>,
}

impl<Req, Res> Target<Req, Res> {
    pub(crate) fn new<C, S>(agent: &Agent<C>, service: S) -> Self
    where
        C: Classify<Req, Res> + Clone + Send + Sync + 'static,
        C::Memo: Send,
        S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        Req: Send + 'static,
        Res: Send + 'static,
    {
        let classifier = agent.classifier_ref().clone();
        let start = move |request: Req| -> AlternativeFuture<Res> {
            let classifier = classifier.clone();
            let memo = classifier.note(&request);
            let call = service.clone().oneshot(request);
            Box::pin(async move {
                let result = call.await.map_err(Into::into);
                let outcome = classify::classify(&classifier, &memo, result.as_ref());
                (result, outcome)
            })
        };
        Target {
            name: agent.name_arc().clone(),
            scope: agent.scope.clone(),
            start: Arc::new(start),
        }
    }

    pub(crate) fn start(&self, request: Req) -> AlternativeFuture<Res> {
        (self.start)(request)
    }
}

impl<Req, Res> Clone for Target<Req, Res> {
    fn clone(&self) -> Self {
        Target {
            name: self.name.clone(),
            scope: self.scope.clone(),
            start: self.start.clone(),
        }
    }
}

/// Hedges go to other agents, in the order they were added with
/// [`HedgeLayer::to`](super::HedgeLayer::to): the first hedge of a request to the first
/// alternative whose circuit is closed, the next hedge to the next one, and so on; never to the
/// agent the layer wraps. `Req`/`Res` are the request and response types all of them share.
pub struct Alternatives<Req, Res> {
    pub(crate) targets: Spread<Vec<Target<Req, Res>>>,
}

impl<Req, Res> Alternatives<Req, Res> {
    pub(crate) fn new(targets: Vec<Target<Req, Res>>) -> Self {
        Alternatives {
            targets: Spread::new(targets),
        }
    }

    /// The alternatives' names, in the order hedges try them.
    pub fn names(&self) -> Vec<&str> {
        self.targets.iter().map(|target| &*target.name).collect()
    }
}

impl<Req, Res> Clone for Alternatives<Req, Res> {
    fn clone(&self) -> Self {
        Alternatives {
            targets: self.targets.clone(),
        }
    }
}

impl<Req, Res> fmt::Debug for Alternatives<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Alternatives").field(&self.names()).finish()
    }
}
