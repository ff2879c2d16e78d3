//! [`ResponseFuture`]: passes successes through untouched, degrades errors.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use crate::classify::classify_known_error;
use crate::error::BoxError;
use crate::events::Event;
use crate::provenance::{MarkServed, Served};
use crate::registry::AgentCounters;

use super::error::Shed;
use super::layer::Degrade;
use super::service::Shared;

pin_project! {
    /// The future of a [`DegradeService`](super::DegradeService) call.
    pub struct ResponseFuture<F, View, D, V, P> {
        #[pin]
        kind: Kind<F>,
        view: View,
        shared: Arc<Shared<D, V, P>>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] future: F },
        Shed { error: Option<Shed> },
    }
}

impl<F, View, D, V, P> ResponseFuture<F, View, D, V, P> {
    pub(crate) fn called(future: F, view: View, shared: Arc<Shared<D, V, P>>) -> Self {
        ResponseFuture {
            kind: Kind::Called { future },
            view,
            shared,
        }
    }

    pub(crate) fn shed(view: View, shared: Arc<Shared<D, V, P>>, error: Shed) -> Self {
        ResponseFuture {
            kind: Kind::Shed { error: Some(error) },
            view,
            shared,
        }
    }
}

impl<F, View, D, V, P, Res, E> Future for ResponseFuture<F, View, D, V, P>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    D: Degrade<View, Res>,
    P: MarkServed<Res>,
{
    type Output = Result<Res, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let error: BoxError = match this.kind.project() {
            KindProj::Called { future } => match ready!(future.poll(cx)) {
                Ok(response) => return Poll::Ready(Ok(response)),
                Err(error) => error.into(),
            },
            KindProj::Shed { error } => match error.take() {
                Some(shed) => shed.into(),
                None => return Poll::Pending, // polled after completion
            },
        };
        let shared = &**this.shared;
        match shared.degrade.degrade(this.view, &error) {
            Some(mut response) => {
                let reason = reason_of(&error);
                let served = Served::Degraded {
                    reason: Cow::Borrowed(reason),
                };
                shared.reporter.report(
                    || Event::Degraded {
                        agent: shared.agent.clone(),
                        from: "primary",
                        to: "degraded",
                        reason: Some(reason),
                    },
                    AgentCounters::record_degraded,
                );
                tracing::debug!(agent = %shared.agent, error = %error, "answer degraded");
                shared.marker.mark(&mut response, &served);
                shared.counters.count(&served);
                Poll::Ready(Ok(response))
            }
            None => Poll::Ready(Err(error)),
        }
    }
}

/// A short reason for the degraded answer: what steadfast recognises in the error chain.
fn reason_of(error: &BoxError) -> &'static str {
    if crate::error::find::<Shed>(error.as_ref()).is_some() {
        return "shed";
    }
    classify_known_error(error)
        .and_then(|outcome| outcome.reason())
        .unwrap_or("error")
}

impl<F, View, D, V, P> fmt::Debug for ResponseFuture<F, View, D, V, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("agent", &self.shared.agent)
            .finish_non_exhaustive()
    }
}
