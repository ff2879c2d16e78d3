//! [`DegradeLayer`]: what to answer when the agent (and every fallback) failed.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::error::BoxError;
use crate::events::EventBus;
use crate::provenance::{Marked, ServedCounters, Unmarked};

use crate::registry::Registry;
use crate::report::ReportTo;

use super::level::{DegradationLevel, Level};
use super::service::{DegradeService, Shared};

/// Turns an error into a degraded answer: the request view captured before the call and the
/// error go to a [`Degrade`] function; `Some(answer)` replaces the error (counted in
/// `steadfast_served_total{source="degraded"}` and, with
/// [`mark_responses`](Self::mark_responses), marked [`Served::Degraded`](crate::provenance::Served)),
/// `None` passes the error through.
///
/// The view (`Fn(&Req) -> View`, default none: `()`) is captured before the inner service takes
/// the request, so the request is never cloned: capture only what the fallback answer needs
/// (the user's language, the question's id, an `Arc` of the prompt).
///
/// With a [`DegradationLevel`] and [`shed_at`](Self::shed_at), calls are not even attempted
/// while the level is at or above the given one: the degrade function answers straight away,
/// with a [`Shed`](super::Shed) error.
pub struct DegradeLayer<D, V = NoView, P = Unmarked> {
    agent: Arc<str>,
    degrade: D,
    view: V,
    marker: P,
    level: Option<DegradationLevel>,
    shed_at: Option<Level>,
    report_to: ReportTo,
}

/// Turns the final error, and the view of the request captured before the call, into a degraded
/// response, or `None` to let the error through. Closures `Fn(&View, &BoxError) -> Option<Res>`
/// implement it.
pub trait Degrade<View, Res> {
    /// The degraded answer for `error`, if there is one.
    fn degrade(&self, view: &View, error: &BoxError) -> Option<Res>;
}

impl<F, View, Res> Degrade<View, Res> for F
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

/// Captures nothing: the degrade function sees `&()`.
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

impl<D> DegradeLayer<D> {
    /// Degrades with `degrade`, seeing no request view (`&()`).
    pub fn new(degrade: D) -> Self {
        DegradeLayer {
            agent: Arc::from("agent"),
            degrade,
            view: NoView,
            marker: Unmarked,
            level: None,
            shed_at: None,
            report_to: ReportTo::default(),
        }
    }
}

impl<D, V, P> DegradeLayer<D, V, P> {
    /// Names the agent (metrics label `agent`, logs).
    #[must_use]
    pub fn named(mut self, agent: impl Into<Arc<str>>) -> Self {
        self.agent = agent.into();
        self
    }

    /// Captures `view(&request)` before each call and hands it to the degrade function.
    #[must_use]
    pub fn view<V2>(self, view: V2) -> DegradeLayer<D, V2, P> {
        DegradeLayer {
            agent: self.agent,
            degrade: self.degrade,
            view,
            marker: self.marker,
            level: self.level,
            shed_at: self.shed_at,
            report_to: self.report_to,
        }
    }

    /// Marks degraded answers with [`Served::Degraded`](crate::provenance::Served) (requires
    /// `Res:` [`Provenance`](crate::provenance::Provenance)).
    #[must_use]
    pub fn mark_responses(self) -> DegradeLayer<D, V, Marked> {
        DegradeLayer {
            agent: self.agent,
            degrade: self.degrade,
            view: self.view,
            marker: Marked,
            level: self.level,
            shed_at: self.shed_at,
            report_to: self.report_to,
        }
    }

    /// Attaches a shared level (read by [`shed_at`](Self::shed_at)).
    #[must_use]
    pub fn level(mut self, level: DegradationLevel) -> Self {
        self.level = Some(level);
        self
    }

    /// Reports to `registry`: each degraded answer bumps the agent's `degraded` counter and,
    /// unless [`events`](Self::events) gave a bus, is published on the registry's bus as
    /// [`Event::Degraded`](crate::events::Event::Degraded) with `from: "primary"`,
    /// `to: "degraded"` and the reason (`"shed"`, `"timeout"`, `"circuit open"`, ... or
    /// `"error"`). An error passed through and a success report nothing.
    #[must_use]
    pub fn register(mut self, registry: &Registry) -> Self {
        self.report_to.set_registry(registry);
        self
    }

    /// Publishes `Degraded` events on `bus`, in place of a registry's bus. Counters still need
    /// [`register`](Self::register).
    #[must_use]
    pub fn events(mut self, bus: &EventBus) -> Self {
        self.report_to.set_bus(bus);
        self
    }

    /// While the attached level is `at` or worse, answers with the degrade function without
    /// calling the inner service (the error it sees is [`Shed`](super::Shed)). Needs
    /// [`level`](Self::level); costs one atomic load per call.
    #[must_use]
    pub fn shed_at(mut self, at: Level) -> Self {
        self.shed_at = Some(at);
        self
    }
}

impl<S, D: Clone, V: Clone, P: Clone> Layer<S> for DegradeLayer<D, V, P> {
    type Service = DegradeService<S, D, V, P>;

    fn layer(&self, inner: S) -> Self::Service {
        DegradeService {
            inner,
            shared: Arc::new(Shared {
                agent: self.agent.clone(),
                counters: ServedCounters::new(&self.agent),
                degrade: self.degrade.clone(),
                view: self.view.clone(),
                marker: self.marker.clone(),
                shed: match (&self.level, self.shed_at) {
                    (Some(level), Some(at)) => Some((level.clone(), at)),
                    _ => None,
                },
                reporter: self.report_to.resolve(&self.agent),
            }),
        }
    }
}

impl<D: Clone, V: Clone, P: Clone> Clone for DegradeLayer<D, V, P> {
    fn clone(&self) -> Self {
        DegradeLayer {
            agent: self.agent.clone(),
            degrade: self.degrade.clone(),
            view: self.view.clone(),
            marker: self.marker.clone(),
            level: self.level.clone(),
            shed_at: self.shed_at,
            report_to: self.report_to.clone(),
        }
    }
}

impl<D, V, P> fmt::Debug for DegradeLayer<D, V, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DegradeLayer")
            .field("agent", &self.agent)
            .field("marker", &std::any::type_name::<P>())
            .field("level", &self.level)
            .field("shed_at", &self.shed_at)
            .field("report_to", &self.report_to)
            .finish_non_exhaustive()
    }
}
