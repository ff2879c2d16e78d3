//! [`Fanout`]: calls its agents in parallel and decides as soon as the outcome is known.

use std::collections::HashSet;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_service::Service;

use crate::agent::Agent;
use crate::classify::{self, Classify, FailedResponse, Outcome};
#[cfg(feature = "degrade")]
use crate::degrade::{DegradationLevel, Level};
use crate::error::{BoxError, ConfigError};

use super::policy::{Tally, Threshold, Verdict};
use super::report::{
    AgentFailure, Answer, FailureReason, FanoutError, FanoutFailure, FanoutReport,
};

/// The default per-agent deadline.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// The default success ratio: half the agents.
pub const DEFAULT_SUCCESS_RATIO: f64 = 0.5;

/// One agent of a fan-out: a named service, required or optional, with an optional deadline of
/// its own.
pub struct FanoutAgent<Req, Res> {
    name: Arc<str>,
    required: bool,
    deadline: Option<Duration>,
    service: BoxCloneSyncService<Req, Res, BoxError>,
    classify: Arc<ClassifyFn<Req, Res>>,
}

type ClassifyFn<Req, Res> = dyn Fn(&Req, Result<&Res, &BoxError>) -> Outcome + Send + Sync;

impl<Req: 'static, Res: 'static> FanoutAgent<Req, Res> {
    fn new<C, S>(agent: &Agent<C>, required: bool, service: S) -> Self
    where
        C: Classify<Req, Res> + Clone + Send + Sync + 'static,
        S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        let classifier = agent.classifier_ref().clone();
        FanoutAgent {
            name: agent.name_arc().clone(),
            required,
            deadline: None,
            service: BoxCloneSyncService::new(service.map_err(Into::<BoxError>::into)),
            classify: Arc::new(move |request, result| {
                let memo = classifier.note(request);
                classify::classify(&classifier, &memo, result)
            }),
        }
    }

    /// An agent whose failure fails the fan-out.
    pub fn required<C, S>(agent: &Agent<C>, service: S) -> Self
    where
        C: Classify<Req, Res> + Clone + Send + Sync + 'static,
        S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        Self::new(agent, true, service)
    }

    /// An agent that only counts towards the threshold.
    pub fn optional<C, S>(agent: &Agent<C>, service: S) -> Self
    where
        C: Classify<Req, Res> + Clone + Send + Sync + 'static,
        S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        Self::new(agent, false, service)
    }
}

impl<Req, Res> FanoutAgent<Req, Res>
where
    Req: Clone + Send + 'static,
    Res: Send + 'static,
{
    /// This agent's call, under its deadline (`default` unless it has its own), judged by its
    /// classifier.
    fn call(&self, request: Req, default: Duration) -> AgentCall<Res> {
        let deadline = self.deadline.unwrap_or(default);
        let kept = request.clone();
        let call = self.service.clone().oneshot(request);
        let classify = self.classify.clone();
        Box::pin(async move {
            let Ok(result) = tokio::time::timeout(deadline, call).await else {
                return Err(FailureReason::TimedOut(deadline));
            };
            // An answer is what the agent's classifier says is one: an HTTP 503 is not.
            let outcome = classify(&kept, result.as_ref());
            match result {
                Ok(response) if outcome.is_success() => Ok(response),
                Ok(_) => Err(FailureReason::Error(FailedResponse::new(outcome).into())),
                Err(error) => Err(FailureReason::Error(error)),
            }
        })
    }
}

impl<Req, Res> FanoutAgent<Req, Res> {
    /// This agent's own deadline (instead of the fan-out's).
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

impl<Req, Res> Clone for FanoutAgent<Req, Res> {
    fn clone(&self) -> Self {
        FanoutAgent {
            name: self.name.clone(),
            required: self.required,
            deadline: self.deadline,
            service: self.service.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<Req, Res> fmt::Debug for FanoutAgent<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanoutAgent")
            .field("name", &self.name)
            .field("required", &self.required)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// Calls N agents in parallel with the same request and succeeds when every required agent
/// answered and the [`Threshold`] is met (default: half of all agents answered). Decides as
/// soon as the outcome is certain and drops (cancels) the calls still running.
///
/// Also a `Service<Req>` (response [`FanoutReport`], error [`FanoutError`] as a `BoxError`), so
/// other layers (degrade, dead-letter) can wrap it. Cheap to clone.
pub struct Fanout<Req, Res> {
    shared: Arc<Inner<Req, Res>>,
}

struct Inner<Req, Res> {
    agents: Vec<FanoutAgent<Req, Res>>,
    deadline: Duration,
    threshold: Threshold,
    #[cfg(feature = "degrade")]
    skip_optional: Option<(DegradationLevel, Level)>,
}

/// Builds a validated [`Fanout`].
pub struct FanoutBuilder<Req, Res> {
    agents: Vec<FanoutAgent<Req, Res>>,
    deadline: Duration,
    threshold: Threshold,
    #[cfg(feature = "degrade")]
    skip_optional: Option<(DegradationLevel, Level)>,
}

impl<Req: 'static, Res: 'static> Fanout<Req, Res> {
    /// A builder with no agents, a 30 s per-agent deadline and a 50 % success ratio.
    pub fn builder() -> FanoutBuilder<Req, Res> {
        FanoutBuilder {
            agents: Vec::new(),
            deadline: DEFAULT_DEADLINE,
            threshold: Threshold::Ratio(DEFAULT_SUCCESS_RATIO),
            #[cfg(feature = "degrade")]
            skip_optional: None,
        }
    }
}

impl<Req: 'static, Res: 'static> FanoutBuilder<Req, Res> {
    /// Adds an agent whose failure fails the fan-out.
    #[must_use]
    pub fn required<C, S>(self, agent: &Agent<C>, service: S) -> Self
    where
        C: Classify<Req, Res> + Clone + Send + Sync + 'static,
        S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        self.agent(FanoutAgent::required(agent, service))
    }

    /// Adds an agent that only counts towards the threshold.
    #[must_use]
    pub fn optional<C, S>(self, agent: &Agent<C>, service: S) -> Self
    where
        C: Classify<Req, Res> + Clone + Send + Sync + 'static,
        S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        self.agent(FanoutAgent::optional(agent, service))
    }
}

impl<Req, Res> FanoutBuilder<Req, Res> {
    /// Adds a configured agent.
    #[must_use]
    pub fn agent(mut self, agent: FanoutAgent<Req, Res>) -> Self {
        self.agents.push(agent);
        self
    }

    /// The deadline of every agent without its own.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Succeed once this share of all agents answered (and every required one did).
    #[must_use]
    pub fn success_ratio(mut self, ratio: f64) -> Self {
        self.threshold = Threshold::Ratio(ratio);
        self
    }

    /// Succeed once this many agents answered (and every required one did).
    #[must_use]
    pub fn quorum(mut self, quorum: usize) -> Self {
        self.threshold = Threshold::Quorum(quorum);
        self
    }

    /// While `level` is `at` or worse, optional agents are not called (they are listed in
    /// `skipped`) and the threshold counts only the agents called: a degraded application
    /// spends its capacity on what it needs. Feature `degrade`.
    #[cfg(feature = "degrade")]
    #[must_use]
    pub fn skip_optional_at(mut self, level: DegradationLevel, at: Level) -> Self {
        self.skip_optional = Some((level, at));
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<Fanout<Req, Res>, ConfigError> {
        let invalid =
            |setting: &'static str, problem: String| ConfigError::new("fanout", setting, problem);
        if self.agents.is_empty() {
            return Err(invalid(
                "agents",
                "a fan-out needs at least one agent; add one with `required` or `optional`".into(),
            ));
        }
        let mut names = HashSet::new();
        for agent in &self.agents {
            if !names.insert(agent.name.clone()) {
                return Err(invalid("agents", "an agent is used twice (results are reported by name); give each its own agent".into())
                    .with_value(&agent.name));
            }
            if agent.deadline.unwrap_or(self.deadline).is_zero() {
                return Err(invalid(
                    "deadline",
                    format!("agent `{}` would have no time to answer", agent.name),
                )
                .with_value("0s"));
            }
        }
        match self.threshold {
            Threshold::Ratio(ratio) if !(ratio > 0.0 && ratio <= 1.0) => {
                return Err(invalid(
                    "success_ratio",
                    "must be in (0, 1], e.g. 0.5 for half the agents".into(),
                )
                .with_value(ratio));
            }
            Threshold::Quorum(quorum) if quorum == 0 || quorum > self.agents.len() => {
                return Err(invalid(
                    "quorum",
                    format!(
                        "cannot be met by {} agent(s); use 1..={}",
                        self.agents.len(),
                        self.agents.len()
                    ),
                )
                .with_value(quorum));
            }
            _ => {}
        }
        crate::classify::register::<FanoutError>();
        Ok(Fanout {
            shared: Arc::new(Inner {
                agents: self.agents,
                deadline: self.deadline,
                threshold: self.threshold,
                #[cfg(feature = "degrade")]
                skip_optional: self.skip_optional,
            }),
        })
    }
}

type AgentCall<Res> = Pin<Box<dyn Future<Output = Result<Res, FailureReason>> + Send>>;

impl<Req, Res> Fanout<Req, Res>
where
    Req: Clone + Send + 'static,
    Res: Send + 'static,
{
    /// Calls every agent with a clone of `request` and waits until the outcome is decided.
    pub async fn call(&self, request: Req) -> Result<FanoutReport<Res>, FanoutError> {
        let agents = &self.shared.agents;
        let skip_optional = self.skips_optional();
        let mut skipped = Vec::new();
        let mut calls: Vec<Option<AgentCall<Res>>> = agents
            .iter()
            .map(|agent| {
                if skip_optional && !agent.required {
                    skipped.push(agent.name.clone());
                    return None;
                }
                Some(agent.call(request.clone(), self.shared.deadline))
            })
            .collect();
        drop(request);

        let mut tally = Tally {
            total: agents.len() - skipped.len(),
            required_total: agents.iter().filter(|agent| agent.required).count(),
            ..Tally::default()
        };
        let mut answered = Vec::new();
        let mut failed = Vec::new();
        let threshold = self.shared.threshold;
        let verdict = poll_fn(|cx: &mut Context<'_>| {
            // Decided before anything answered when too few agents were called.
            let verdict = tally.verdict(threshold);
            if verdict != Verdict::Pending {
                return Poll::Ready(verdict);
            }
            let mut progressed = true;
            while progressed {
                progressed = false;
                for (index, slot) in calls.iter_mut().enumerate() {
                    let Some(call) = slot else { continue };
                    let Poll::Ready(result) = call.as_mut().poll(cx) else {
                        continue;
                    };
                    *slot = None;
                    progressed = true;
                    let agent = &agents[index];
                    match result {
                        Ok(response) => {
                            tally.answered += 1;
                            tally.required_answered += usize::from(agent.required);
                            answered.push(Answer {
                                agent: agent.name.clone(),
                                required: agent.required,
                                response,
                            });
                        }
                        Err(reason) => {
                            tally.failed += 1;
                            tally.required_failed += usize::from(agent.required);
                            failed.push(AgentFailure {
                                agent: agent.name.clone(),
                                required: agent.required,
                                reason,
                            });
                        }
                    }
                    let verdict = tally.verdict(threshold);
                    if verdict != Verdict::Pending {
                        return Poll::Ready(verdict);
                    }
                }
            }
            Poll::Pending
        })
        .await;

        // Dropping the calls still running cancels them.
        let cancelled: Vec<Arc<str>> = calls
            .iter()
            .zip(agents)
            .filter(|(slot, _)| slot.is_some())
            .map(|(_, agent)| agent.name.clone())
            .collect();
        drop(calls);
        tracing::debug!(
            ?verdict,
            answered = answered.len(),
            failed = failed.len(),
            cancelled = cancelled.len(),
            "fan-out decided"
        );

        conclude(
            verdict,
            threshold.needed(tally.total),
            answered,
            failed,
            cancelled,
            skipped,
        )
    }

    // Without `degrade` there is no level to read, and so nothing of `self` to use.
    #[cfg_attr(not(feature = "degrade"), allow(clippy::unused_self))]
    fn skips_optional(&self) -> bool {
        #[cfg(feature = "degrade")]
        if let Some((level, at)) = &self.shared.skip_optional {
            return level.get() >= *at;
        }
        false
    }
}

fn conclude<Res>(
    verdict: Verdict,
    needed: usize,
    answered: Vec<Answer<Res>>,
    failed: Vec<AgentFailure>,
    cancelled: Vec<Arc<str>>,
    skipped: Vec<Arc<str>>,
) -> Result<FanoutReport<Res>, FanoutError> {
    let failure = match verdict {
        Verdict::Succeeded | Verdict::Pending => {
            return Ok(FanoutReport {
                answered,
                failed,
                cancelled,
                skipped,
            });
        }
        Verdict::RequiredFailed => FanoutFailure::RequiredFailed {
            agent: failed
                .iter()
                .find(|failure| failure.required)
                .map_or_else(|| Arc::from("?"), |failure| failure.agent.clone()),
        },
        Verdict::Unreachable => FanoutFailure::BelowThreshold {
            answered: answered.len(),
            needed,
        },
    };
    Err(FanoutError::new(
        failure,
        answered.into_iter().map(|answer| answer.agent).collect(),
        failed,
        cancelled,
        skipped,
    ))
}

impl<Req, Res> Service<Req> for Fanout<Req, Res>
where
    Req: Clone + Send + 'static,
    Res: Send + 'static,
{
    type Response = FanoutReport<Res>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<FanoutReport<Res>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let fanout = self.clone();
        Box::pin(async move { fanout.call(request).await.map_err(Into::into) })
    }
}

impl<Req, Res> Clone for Fanout<Req, Res> {
    fn clone(&self) -> Self {
        Fanout {
            shared: self.shared.clone(),
        }
    }
}

impl<Req, Res> fmt::Debug for Fanout<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Fanout");
        debug
            .field("agents", &self.shared.agents)
            .field("deadline", &self.shared.deadline)
            .field("threshold", &self.shared.threshold);
        #[cfg(feature = "degrade")]
        debug.field("skip_optional", &self.shared.skip_optional);
        debug.finish()
    }
}

impl<Req, Res> fmt::Debug for FanoutBuilder<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("FanoutBuilder");
        debug
            .field("agents", &self.agents)
            .field("deadline", &self.deadline)
            .field("threshold", &self.threshold);
        #[cfg(feature = "degrade")]
        debug.field("skip_optional", &self.skip_optional);
        debug.finish()
    }
}
