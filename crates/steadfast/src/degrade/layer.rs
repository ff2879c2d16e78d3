//! [`DegradeLayer`]: what to answer when the agent (and every fallback) failed.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::agent::{Agent, Reporter};
use crate::error::BoxError;
use crate::provenance::{Marked, Unmarked};
use crate::sync::Spread;

use super::level::{DegradationLevel, Level};
use super::service::{Degrade, Shared};

/// Turns a final failure into a degraded answer: the request view captured before the call and
/// the error go to a [`Degrader`]; `Some(answer)` replaces the failure (an
/// [`Event::Degraded`](crate::events::Event::Degraded) on the agent's event path and, with
/// [`mark_responses`](Self::mark_responses), a [`Served::Degraded`](crate::provenance::Served)
/// mark), `None` passes the failure through.
///
/// A failure is what the agent's classifier says it is: an `Err`, or an `Ok` classified as a
/// failure (an HTTP 503), which the degrader sees as a
/// [`FailedResponse`](crate::classify::FailedResponse) error; when it declines, the caller gets
/// the original response back.
///
/// The view (`Fn(&Req) -> View`, default none: `()`) is captured before the inner service takes
/// the request, so the request is never cloned: capture only what the fallback answer needs
/// (the user's language, the question's id, an `Arc` of the prompt).
///
/// With a [`DegradationLevel`] and [`shed_at`](Self::shed_at), calls are not even attempted
/// while the level is at or above the given one: the degrader answers straight away, with a
/// [`Shed`](super::Shed) error.
pub struct DegradeLayer<D, C, V = NoView, P = Unmarked> {
    reporter: Arc<Reporter>,
    classifier: C,
    degrader: D,
    view: V,
    marker: P,
    level: Option<DegradationLevel>,
    shed_at: Option<Level>,
}

/// Turns the final error, and the view of the request captured before the call, into a degraded
/// response, or `None` to let the failure through. Closures `Fn(&View, &BoxError) -> Option<Res>`
/// implement it.
pub trait Degrader<View, Res> {
    /// The degraded answer for `error`, if there is one.
    fn degrade(&self, view: &View, error: &BoxError) -> Option<Res>;
}

impl<F, View, Res> Degrader<View, Res> for F
where
    F: Fn(&View, &BoxError) -> Option<Res>,
{
    fn degrade(&self, view: &View, error: &BoxError) -> Option<Res> {
        self(view, error)
    }
}

/// Captures what a degraded answer needs from the request, before the inner service consumes
/// it. Closures `Fn(&Req) -> View` implement it; [`NoView`] captures nothing.
pub trait CaptureView<Req> {
    /// What is kept.
    type View;

    /// Takes it from the request.
    fn capture(&self, request: &Req) -> Self::View;
}

/// Captures nothing: the degrader sees `&()`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoView;

impl<Req> CaptureView<Req> for NoView {
    type View = ();

    #[inline]
    fn capture(&self, _request: &Req) {}
}

impl<F, Req, View> CaptureView<Req> for F
where
    F: Fn(&Req) -> View,
{
    type View = View;

    #[inline]
    fn capture(&self, request: &Req) -> View {
        self(request)
    }
}

impl<D, C: Clone> DegradeLayer<D, C> {
    /// Degrades `agent`'s failures (as its classifier calls them) with `degrader`, which sees
    /// no request view (`&()`).
    pub fn new(agent: &Agent<C>, degrader: D) -> Self {
        crate::classify::register::<super::Shed>();
        DegradeLayer {
            reporter: agent.reporter().clone(),
            classifier: agent.classifier_ref().clone(),
            degrader,
            view: NoView,
            marker: Unmarked,
            level: None,
            shed_at: None,
        }
    }
}

impl<D, C, V, P> DegradeLayer<D, C, V, P> {
    /// Captures `view(&request)` before each call and hands it to the degrader.
    #[must_use]
    pub fn view<V2>(self, view: V2) -> DegradeLayer<D, C, V2, P> {
        DegradeLayer {
            reporter: self.reporter,
            classifier: self.classifier,
            degrader: self.degrader,
            view,
            marker: self.marker,
            level: self.level,
            shed_at: self.shed_at,
        }
    }

    /// Marks degraded answers with [`Served::Degraded`](crate::provenance::Served) (requires
    /// `Res:` [`Provenance`](crate::provenance::Provenance)).
    #[must_use]
    pub fn mark_responses(self) -> DegradeLayer<D, C, V, Marked> {
        DegradeLayer {
            reporter: self.reporter,
            classifier: self.classifier,
            degrader: self.degrader,
            view: self.view,
            marker: Marked,
            level: self.level,
            shed_at: self.shed_at,
        }
    }

    /// Attaches a shared level (read by [`shed_at`](Self::shed_at)).
    #[must_use]
    pub fn level(mut self, level: DegradationLevel) -> Self {
        self.level = Some(level);
        self
    }

    /// While the attached level is `at` or worse, answers with the degrader without calling the
    /// inner service (the error it sees is [`Shed`](super::Shed)). Needs
    /// [`level`](Self::level); costs one atomic load per call.
    #[must_use]
    pub fn shed_at(mut self, at: Level) -> Self {
        self.shed_at = Some(at);
        self
    }
}

impl<S, D: Clone, C: Clone, V: Clone, P: Clone> Layer<S> for DegradeLayer<D, C, V, P> {
    type Service = Degrade<S, D, C, V, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Degrade {
            inner,
            classifier: self.classifier.clone(),
            shared: Spread::new(Shared {
                reporter: self.reporter.clone(),
                degrader: self.degrader.clone(),
                view: self.view.clone(),
                marker: self.marker.clone(),
                shed: match (&self.level, self.shed_at) {
                    (Some(level), Some(at)) => Some((level.clone(), at)),
                    _ => None,
                },
            }),
        }
    }
}

impl<D: Clone, C: Clone, V: Clone, P: Clone> Clone for DegradeLayer<D, C, V, P> {
    fn clone(&self) -> Self {
        DegradeLayer {
            reporter: self.reporter.clone(),
            classifier: self.classifier.clone(),
            degrader: self.degrader.clone(),
            view: self.view.clone(),
            marker: self.marker.clone(),
            level: self.level.clone(),
            shed_at: self.shed_at,
        }
    }
}

impl<D, C, V, P> fmt::Debug for DegradeLayer<D, C, V, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DegradeLayer")
            .field("agent", &self.reporter.name)
            .field("marker", &std::any::type_name::<P>())
            .field("level", &self.level)
            .field("shed_at", &self.shed_at)
            .finish_non_exhaustive()
    }
}
