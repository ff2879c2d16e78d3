//! [`NotificationPolicy`]: which events become notifications, pure and clock-free.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::time::Duration;

use tokio::time::Instant;

use steadfast::events::Event;
use steadfast::notify::{Notification, NotificationKind};

/// Which agents page, and how often.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// Agents whose events notify; empty means every agent is critical.
    pub critical_agents: Vec<String>,
    /// How long a recovered agent must stay up before the recovery message (default 60 s).
    pub recovery_settle: Duration,
    /// The same warning for the same subject is sent at most once per this (default 10 min).
    pub dedupe_window: Duration,
    /// Messages per subject per `rate_window` (default 5).
    pub max_per_window: u32,
    /// The rate-limit window (default 1 h).
    pub rate_window: Duration,
    /// Whether warnings (retries exhausted, fallback used, dead-lettered, degraded) notify
    /// (default: no, they are in metrics and logs).
    pub warnings: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            critical_agents: Vec::new(),
            recovery_settle: Duration::from_secs(60),
            dedupe_window: Duration::from_secs(600),
            max_per_window: 5,
            rate_window: Duration::from_secs(3600),
            warnings: false,
        }
    }
}

impl PolicyConfig {
    /// Only these agents notify.
    #[must_use]
    pub fn critical<I, S>(mut self, agents: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.critical_agents = agents.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`recovery_settle`](Self::recovery_settle).
    #[must_use]
    pub fn recovery_settle(mut self, settle: Duration) -> Self {
        self.recovery_settle = settle;
        self
    }

    /// Sets [`dedupe_window`](Self::dedupe_window).
    #[must_use]
    pub fn dedupe_window(mut self, window: Duration) -> Self {
        self.dedupe_window = window;
        self
    }

    /// At most `messages` per subject per `window` (at least 1 message).
    #[must_use]
    pub fn rate_limit(mut self, messages: u32, window: Duration) -> Self {
        self.max_per_window = messages.max(1);
        self.rate_window = window;
        self
    }

    /// Sets [`warnings`](Self::warnings).
    #[must_use]
    pub fn warnings(mut self, warnings: bool) -> Self {
        self.warnings = warnings;
        self
    }
}

/// Why an event produced no notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Suppressed {
    /// Not something that notifies (breaker transitions, retries scheduled, ...).
    NotNotifiable,
    /// The agent is not critical.
    NotCritical,
    /// Warnings are off.
    WarningsOff,
    /// Part of an incident already alerted (a flap, a repeat).
    Duplicate,
    /// The subject hit its rate limit.
    RateLimited,
    /// A recovery held until the agent stays up for `recovery_settle`.
    Settling,
}

/// The outcome of [`NotificationPolicy::on_event`].
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Send this.
    Send(Notification),
    /// Send nothing, for this reason.
    Suppress(Suppressed),
}

#[derive(Debug, Default)]
struct Subject {
    incident: Incident,
    /// Send times within the rate window, oldest first.
    sent: VecDeque<Instant>,
    /// Last send time of each warning kind.
    warned: HashMap<&'static str, Instant>,
}

#[derive(Debug, Default)]
enum Incident {
    #[default]
    Quiet,
    Down {
        alerted: bool,
        folded: u32,
    },
    Settling {
        alerted: bool,
        folded: u32,
        since: Instant,
        event: Event,
    },
}

/// Turns events into notifications: criticality, incident tracking, de-duplication and rate
/// limiting. Pure: time comes in as arguments, so it is tested without a runtime; the
/// dispatcher drives it.
///
/// Per subject (agent or queue) the policy tracks the incident:
///
/// ```text
///            AgentUnhealthy: alert                AgentRecovered
///   Quiet ─────────────────────────▶ Down ─────────────────────────▶ Settling
///     ▲                               ▲   AgentUnhealthy (a flap):      │
///     │                               └──────── folded, no message ─────┤
///     └──────── recovery_settle passes: one recovery message ───────────┘
/// ```
///
/// so a flapping agent sends one alert, then one recovery once it has stayed up for
/// `recovery_settle`. Warnings (retries exhausted, fallback used, dead-lettered, degraded) are
/// off by default; when on, the same warning for the same subject is sent at most once per
/// `dedupe_window`. Alerts and warnings share a per-subject rate limit (`max_per_window`
/// messages per `rate_window`); recoveries of a sent alert are never rate-limited, so no
/// alert is left without its all-clear. Only critical agents notify at all (queue-level
/// events, `DlqOverThreshold`, always do).
#[derive(Debug)]
pub struct NotificationPolicy {
    config: PolicyConfig,
    subjects: HashMap<String, Subject>,
}

impl NotificationPolicy {
    /// A policy with `config`.
    pub fn new(config: PolicyConfig) -> Self {
        NotificationPolicy {
            config,
            subjects: HashMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    fn is_critical(&self, agent: &str) -> bool {
        self.config.critical_agents.is_empty()
            || self.config.critical_agents.iter().any(|name| name == agent)
    }

    /// Decides what `event`, seen at `now`, sends.
    pub fn on_event(&mut self, event: &Event, now: Instant) -> Decision {
        match event {
            Event::AgentUnhealthy { agent, .. } => {
                if !self.is_critical(agent) {
                    return Decision::Suppress(Suppressed::NotCritical);
                }
                self.on_down(agent, event, now)
            }
            Event::AgentRecovered { agent, .. } => {
                if !self.is_critical(agent) {
                    return Decision::Suppress(Suppressed::NotCritical);
                }
                self.on_up(agent, event, now)
            }
            Event::DlqOverThreshold { queue, .. } => self.warn(queue, event, now, true),
            Event::RetriesExhausted { agent, .. }
            | Event::FallbackUsed { agent, .. }
            | Event::DeadLettered { agent, .. }
            | Event::Degraded { agent, .. } => {
                if !self.config.warnings {
                    return Decision::Suppress(Suppressed::WarningsOff);
                }
                if !self.is_critical(agent) {
                    return Decision::Suppress(Suppressed::NotCritical);
                }
                self.warn(agent, event, now, false)
            }
            _ => Decision::Suppress(Suppressed::NotNotifiable),
        }
    }

    fn subject(&mut self, name: &str) -> &mut Subject {
        match self.subjects.entry(name.to_owned()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(Subject::default()),
        }
    }

    fn on_down(&mut self, agent: &str, event: &Event, now: Instant) -> Decision {
        let (max, window) = (self.config.max_per_window, self.config.rate_window);
        let subject = self.subject(agent);
        match &mut subject.incident {
            Incident::Down { folded, .. } => {
                *folded += 1;
                Decision::Suppress(Suppressed::Duplicate)
            }
            Incident::Settling {
                alerted, folded, ..
            } => {
                // A flap: the incident goes on, without a new message.
                subject.incident = Incident::Down {
                    alerted: *alerted,
                    folded: *folded + 1,
                };
                Decision::Suppress(Suppressed::Duplicate)
            }
            Incident::Quiet => {
                let allowed = admit(&mut subject.sent, now, max, window);
                subject.incident = Incident::Down {
                    alerted: allowed,
                    folded: 0,
                };
                if allowed {
                    Decision::Send(notification(NotificationKind::Alert, agent, event, 0))
                } else {
                    Decision::Suppress(Suppressed::RateLimited)
                }
            }
        }
    }

    fn on_up(&mut self, agent: &str, event: &Event, now: Instant) -> Decision {
        let subject = self.subject(agent);
        if let Incident::Down { alerted, folded } = subject.incident {
            subject.incident = Incident::Settling {
                alerted,
                folded,
                since: now,
                event: event.clone(),
            };
            Decision::Suppress(Suppressed::Settling)
        } else {
            Decision::Suppress(Suppressed::Duplicate)
        }
    }

    fn warn(&mut self, name: &str, event: &Event, now: Instant, alert: bool) -> Decision {
        let (max, window, dedupe) = (
            self.config.max_per_window,
            self.config.rate_window,
            self.config.dedupe_window,
        );
        let subject = self.subject(name);
        let kind = event.name();
        if subject
            .warned
            .get(kind)
            .is_some_and(|last| now.saturating_duration_since(*last) < dedupe)
        {
            return Decision::Suppress(Suppressed::Duplicate);
        }
        if !admit(&mut subject.sent, now, max, window) {
            return Decision::Suppress(Suppressed::RateLimited);
        }
        subject.warned.insert(kind, now);
        let kind = if alert {
            NotificationKind::Alert
        } else {
            NotificationKind::Warning
        };
        Decision::Send(notification(kind, name, event, 0))
    }

    /// The recoveries due at `now` (agents that stayed up for `recovery_settle`).
    pub fn on_tick(&mut self, now: Instant) -> Vec<Notification> {
        let settle = self.config.recovery_settle;
        let mut due = Vec::new();
        for (name, subject) in &mut self.subjects {
            if let Incident::Settling {
                alerted,
                folded,
                since,
                event,
            } = &subject.incident
                && now.saturating_duration_since(*since) >= settle
            {
                if *alerted {
                    due.push(notification(
                        NotificationKind::Recovery,
                        name,
                        event,
                        *folded,
                    ));
                }
                subject.incident = Incident::Quiet;
            }
        }
        due.sort_by(|a, b| a.subject.cmp(&b.subject));
        due
    }

    /// When [`on_tick`](Self::on_tick) next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let settle = self.config.recovery_settle;
        self.subjects
            .values()
            .filter_map(|subject| match &subject.incident {
                Incident::Settling { since, .. } => Some(*since + settle),
                _ => None,
            })
            .min()
    }
}

/// Sliding-window rate limit: admits a message at `now` if fewer than `max` were sent in the
/// last `window`, and records it.
fn admit(sent: &mut VecDeque<Instant>, now: Instant, max: u32, window: Duration) -> bool {
    while sent
        .front()
        .is_some_and(|at| now.saturating_duration_since(*at) >= window)
    {
        sent.pop_front();
    }
    if sent.len() >= max as usize {
        return false;
    }
    sent.push_back(now);
    true
}

fn notification(kind: NotificationKind, subject: &str, event: &Event, folded: u32) -> Notification {
    let title = match (kind, event) {
        (NotificationKind::Alert, Event::AgentUnhealthy { .. }) => {
            format!("agent `{subject}` is down")
        }
        (NotificationKind::Recovery, _) => format!("agent `{subject}` recovered"),
        (_, Event::DlqOverThreshold { .. }) => {
            format!("dead-letter queue `{subject}` is filling up")
        }
        _ => format!("`{subject}`: {}", event.name().replace('_', " ")),
    };
    let mut body = event.to_string();
    if folded > 0 {
        let _ = write!(body, " ({folded} more state changes during the incident)");
    }
    Notification::new(kind, subject, title, body, event.clone()).with_suppressed(folded)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    fn down(agent: &str) -> Event {
        Event::AgentUnhealthy {
            agent: Arc::from(agent),
            reason: "consecutive_failures",
        }
    }

    fn up(agent: &str) -> Event {
        Event::AgentRecovered {
            agent: Arc::from(agent),
            reason: "probes_succeeded",
        }
    }

    fn sent_kind(decision: &Decision) -> Option<NotificationKind> {
        match decision {
            Decision::Send(notification) => Some(notification.kind),
            Decision::Suppress(_) => None,
        }
    }

    #[test]
    fn a_flapping_agent_sends_one_alert_then_one_recovery_after_it_settles() {
        let mut policy = NotificationPolicy::new(
            PolicyConfig::default().recovery_settle(Duration::from_secs(60)),
        );
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(
            sent_kind(&policy.on_event(&down("gpt"), at(0))),
            Some(NotificationKind::Alert)
        );
        for secs in [10, 30, 50] {
            assert_eq!(
                policy.on_event(&up("gpt"), at(secs)),
                Decision::Suppress(Suppressed::Settling)
            );
            assert!(policy.on_tick(at(secs + 5)).is_empty());
            assert_eq!(
                policy.on_event(&down("gpt"), at(secs + 10)),
                Decision::Suppress(Suppressed::Duplicate)
            );
        }
        policy.on_event(&up("gpt"), at(100));
        assert_eq!(policy.next_deadline(), Some(at(160)));
        assert!(policy.on_tick(at(159)).is_empty());
        let recovered = policy.on_tick(at(160));
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].kind, NotificationKind::Recovery);
        assert_eq!(recovered[0].suppressed, 3);
        assert_eq!(recovered[0].title, "agent `gpt` recovered");
        assert_eq!(policy.next_deadline(), None);
        // A new incident later alerts again.
        assert_eq!(
            sent_kind(&policy.on_event(&down("gpt"), at(500))),
            Some(NotificationKind::Alert)
        );
    }

    #[test]
    fn only_critical_agents_notify() {
        let mut policy = NotificationPolicy::new(PolicyConfig::default().critical(["gpt"]));
        let now = Instant::now();
        assert_eq!(
            policy.on_event(&down("tool"), now),
            Decision::Suppress(Suppressed::NotCritical)
        );
        assert!(sent_kind(&policy.on_event(&down("gpt"), now)).is_some());
    }

    #[test]
    fn breaker_transitions_alone_do_not_notify() {
        let mut policy = NotificationPolicy::new(PolicyConfig::default());
        let event = Event::RetryScheduled {
            agent: Arc::from("gpt"),
            attempt: 2,
            delay: Duration::from_millis(100),
            reason: None,
        };
        assert_eq!(
            policy.on_event(&event, Instant::now()),
            Decision::Suppress(Suppressed::NotNotifiable)
        );
    }

    #[test]
    fn warnings_are_off_by_default_and_deduplicated_when_on() {
        let exhausted = Event::RetriesExhausted {
            agent: Arc::from("gpt"),
            attempts: 3,
            reason: None,
        };
        let now = Instant::now();
        let mut quiet = NotificationPolicy::new(PolicyConfig::default());
        assert_eq!(
            quiet.on_event(&exhausted, now),
            Decision::Suppress(Suppressed::WarningsOff)
        );
        let mut policy = NotificationPolicy::new(
            PolicyConfig::default()
                .warnings(true)
                .dedupe_window(Duration::from_secs(600)),
        );
        assert_eq!(
            sent_kind(&policy.on_event(&exhausted, now)),
            Some(NotificationKind::Warning)
        );
        assert_eq!(
            policy.on_event(&exhausted, now + Duration::from_secs(599)),
            Decision::Suppress(Suppressed::Duplicate)
        );
        assert!(sent_kind(&policy.on_event(&exhausted, now + Duration::from_secs(600))).is_some());
    }

    #[test]
    fn a_full_dead_letter_queue_alerts_once_per_dedupe_window() {
        let event = Event::DlqOverThreshold {
            queue: Arc::from("requests.dlq"),
            depth: 1200,
            threshold: 1000,
        };
        let mut policy = NotificationPolicy::new(PolicyConfig::default().critical(["gpt"]));
        let now = Instant::now();
        let first = policy.on_event(&event, now);
        let Decision::Send(notification) = first else {
            panic!("expected an alert, got {first:?}");
        };
        assert_eq!(notification.kind, NotificationKind::Alert);
        assert_eq!(
            notification.title,
            "dead-letter queue `requests.dlq` is filling up"
        );
        assert_eq!(
            policy.on_event(&event, now + Duration::from_secs(1)),
            Decision::Suppress(Suppressed::Duplicate)
        );
    }

    #[test]
    fn a_rate_limited_alert_sends_no_recovery() {
        let mut policy = NotificationPolicy::new(
            PolicyConfig::default()
                .rate_limit(1, Duration::from_secs(3600))
                .recovery_settle(Duration::ZERO),
        );
        let now = Instant::now();
        assert!(sent_kind(&policy.on_event(&down("gpt"), now)).is_some());
        policy.on_event(&up("gpt"), now);
        assert_eq!(policy.on_tick(now).len(), 1);
        assert_eq!(
            policy.on_event(&down("gpt"), now + Duration::from_secs(1)),
            Decision::Suppress(Suppressed::RateLimited)
        );
        policy.on_event(&up("gpt"), now + Duration::from_secs(2));
        assert!(policy.on_tick(now + Duration::from_secs(2)).is_empty());
    }

    #[derive(Clone, Debug)]
    enum Step {
        Down(u8),
        Up(u8),
        Wait(u16),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u8..3).prop_map(Step::Down),
            (0u8..3).prop_map(Step::Up),
            (0u16..200).prop_map(Step::Wait),
        ]
    }

    proptest! {
        /// Whatever the sequence of ups and downs, per agent the messages alternate alert,
        /// recovery, alert, ...; never more than the rate limit in any window; and once every
        /// agent is up and settled, no alert is left without its recovery.
        #[test]
        fn alerts_and_recoveries_alternate_and_respect_the_rate_limit(
            steps in proptest::collection::vec(step(), 0..80),
        ) {
            let config = PolicyConfig::default()
                .recovery_settle(Duration::from_secs(30))
                .rate_limit(3, Duration::from_secs(300));
            let mut policy = NotificationPolicy::new(config);
            let mut now = Instant::now();
            let mut sent: Vec<(String, NotificationKind, Instant)> = Vec::new();
            let mut record = |notification: Notification, at: Instant| {
                sent.push((notification.subject, notification.kind, at));
            };
            for step in steps {
                match step {
                    Step::Down(agent) | Step::Up(agent) => {
                        let name = format!("agent-{agent}");
                        let event = if matches!(step, Step::Down(_)) { down(&name) } else { up(&name) };
                        if let Decision::Send(notification) = policy.on_event(&event, now) {
                            record(notification, now);
                        }
                    }
                    Step::Wait(secs) => {
                        now += Duration::from_secs(u64::from(secs));
                        for notification in policy.on_tick(now) {
                            record(notification, now);
                        }
                    }
                }
            }
            for agent in 0..3 {
                let name = format!("agent-{agent}");
                if let Decision::Send(notification) = policy.on_event(&up(&name), now) {
                    record(notification, now);
                }
            }
            now += Duration::from_secs(30);
            for notification in policy.on_tick(now) {
                record(notification, now);
            }
            for agent in 0..3 {
                let name = format!("agent-{agent}");
                let mine: Vec<_> = sent.iter().filter(|(subject, ..)| *subject == name).collect();
                for (index, (_, kind, _)) in mine.iter().enumerate() {
                    let expected = if index % 2 == 0 { NotificationKind::Alert } else { NotificationKind::Recovery };
                    prop_assert_eq!(*kind, expected);
                }
                prop_assert_eq!(mine.len() % 2, 0, "an alert without recovery: {:?}", mine);
                let alerts: Vec<_> = mine.iter().filter(|(_, kind, _)| *kind == NotificationKind::Alert).map(|(.., at)| *at).collect();
                for (index, at) in alerts.iter().enumerate() {
                    let in_window = alerts[index..].iter().take_while(|later| later.saturating_duration_since(*at) < Duration::from_secs(300)).count();
                    prop_assert!(in_window <= 3);
                }
            }
        }
    }
}
