//! The sync task of one breaker: between the breaker (through its handle: its state watch, its
//! failure signal, `open_until`, `close_remote`) and the fleet (the channel, through the
//! connection task, and the agent's keys). Calls through the breaker never wait on it.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;
use steadfast::circuit_breaker::{BreakerHandle, BreakerState, TransitionReason};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::fleet::{Inner, Remote};
use crate::protocol::{self, Keys, Message};

static OPEN: LazyLock<Script> = LazyLock::new(|| Script::new(protocol::OPEN));
static CLOSE: LazyLock<Script> = LazyLock::new(|| Script::new(protocol::CLOSE));
static READ: LazyLock<Script> = LazyLock::new(|| Script::new(protocol::READ));
static LEASE: LazyLock<Script> = LazyLock::new(|| Script::new(protocol::LEASE));
static STREAK: LazyLock<Script> = LazyLock::new(|| Script::new(protocol::STREAK));

/// While this replica's share of the fleet's streak is not zero, how often the task looks
/// whether a success ended it (successes never signal: they are the hot path).
const STREAK_POLL: Duration = Duration::from_millis(100);

struct Task {
    inner: Arc<Inner>,
    handle: BreakerHandle,
    agent: String,
    keys: Keys,
    /// The half-open lease this replica holds: for which probe time, and until when.
    granted: Option<(Instant, Instant)>,
    /// The run of failures last reported to the fleet.
    reported_run: u32,
    /// The state (and since when) last handled: a watch coalesces changes.
    seen: (BreakerState, Instant),
}

pub(crate) async fn run(
    inner: Arc<Inner>,
    handle: BreakerHandle,
    mut remote: mpsc::UnboundedReceiver<Remote>,
    mut alive: watch::Receiver<()>,
) {
    let mut states = handle.watch();
    states.mark_unchanged();
    let agent = handle.name().to_owned();
    let mut task = Task {
        keys: Keys::new(&inner.config.prefix, &agent),
        agent,
        seen: (handle.state(), handle.state_since()),
        inner,
        handle: handle.clone(),
        granted: None,
        reported_run: 0,
    };
    loop {
        let lease_at = task.lease_at();
        let poll_at = (task.reported_run > 0).then(|| Instant::now() + STREAK_POLL);
        tokio::select! {
            biased;
            _ = alive.changed() => return,
            message = remote.recv() => match message {
                Some(message) => task.on_remote(message).await,
                None => return,
            },
            changed = states.changed() => {
                if changed.is_err() {
                    return;
                }
                task.on_local_change().await;
            }
            () = handle.failure_recorded() => task.report_run().await,
            () = sleep_until(lease_at) => task.try_lease().await,
            () = sleep_until(poll_at) => task.report_run().await,
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Task {
    fn open_until(&self) -> Option<Instant> {
        match self.handle.state() {
            BreakerState::Open => self.handle.next_probe_at(),
            _ => None,
        }
    }

    /// When to ask for the half-open lease: `lease_lead` before the open time ends (so the
    /// answer is in before the first probe could go), and, holding it, `lease_lead` before it
    /// runs out (to renew it while this replica's health check keeps failing, or to give way
    /// if this replica never probed). A failed health check moves the open time without
    /// waking this task; the renewal sees it.
    fn lease_at(&self) -> Option<Instant> {
        let until = self.open_until()?;
        let at = match self.granted {
            Some((granted_for, expires)) if granted_for == until => expires,
            Some((_, expires)) => expires.min(until),
            None => until,
        };
        Some(at.checked_sub(self.inner.config.lease_lead).unwrap_or(at))
    }

    async fn eval(&self, script: &Script, keys: &[&str], args: &[String]) -> Option<i64> {
        let mut connection = self.inner.connection()?;
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(arg.as_str());
        }
        match tokio::time::timeout(
            self.inner.config.io_timeout,
            invocation.invoke_async::<i64>(&mut connection),
        )
        .await
        {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                tracing::debug!(agent = %self.agent, %error, "fleet sync: Redis command failed; local state only");
                None
            }
            Err(_) => {
                tracing::debug!(agent = %self.agent, "fleet sync: Redis too slow; local state only");
                None
            }
        }
    }

    async fn on_remote(&mut self, remote: Remote) {
        match remote {
            Remote::Message(Message::Open { remaining, .. }) => {
                self.granted = None;
                self.handle.open_until(Instant::now() + remaining);
            }
            Remote::Message(Message::Close { .. }) => {
                self.granted = None;
                self.handle.close_remote();
            }
            Remote::Resync => self.resync().await,
        }
        self.note_seen();
    }

    /// Marks the current state as handled, so the watch's news of a change this task made
    /// itself is not published back.
    fn note_seen(&mut self) {
        self.seen = (self.handle.state(), self.handle.state_since());
    }

    async fn on_local_change(&mut self) {
        let now = (self.handle.state(), self.handle.state_since());
        if now == self.seen {
            return;
        }
        self.seen = now;
        let reason = self.handle.last_transition_reason();
        match (now.0, reason) {
            (_, Some(TransitionReason::Remote)) => {}
            (BreakerState::Open, _) => self.publish_open().await,
            (BreakerState::Closed, Some(TransitionReason::ProbesSucceeded)) => {
                self.publish_close().await;
            }
            _ => {}
        }
    }

    /// This replica's breaker opened on its own: record the open period and tell the fleet.
    async fn publish_open(&mut self) {
        let Some(until) = self.open_until() else {
            return;
        };
        let remaining = until.saturating_duration_since(Instant::now());
        let message = Message::Open {
            agent: self.agent.clone(),
            remaining,
            replica: self.inner.replica.to_string(),
        };
        self.granted = None;
        self.reported_run = 0;
        let keys = [
            self.keys.state.as_str(),
            self.keys.streak.as_str(),
            self.keys.lease.as_str(),
        ];
        let args = [
            millis(remaining).to_string(),
            millis(self.inner.config.probe_lease).to_string(),
            self.inner.channel.clone(),
            message.encode(),
            self.inner.replica.to_string(),
        ];
        if self.eval(&OPEN, &keys, &args).await.is_some() {
            tracing::debug!(agent = %self.agent, open_ms = millis(remaining), "fleet sync: published open");
        }
    }

    /// This replica's probes succeeded: the fleet closes.
    async fn publish_close(&mut self) {
        let message = Message::Close {
            agent: self.agent.clone(),
            replica: self.inner.replica.to_string(),
        };
        self.granted = None;
        self.reported_run = 0;
        let keys = [
            self.keys.state.as_str(),
            self.keys.streak.as_str(),
            self.keys.lease.as_str(),
        ];
        let args = [self.inner.channel.clone(), message.encode()];
        if self.eval(&CLOSE, &keys, &args).await.is_some() {
            tracing::debug!(agent = %self.agent, "fleet sync: published close");
        }
    }

    /// Redis is (back) up: learn the fleet's state, and tell the fleet what this replica learned
    /// alone while it could not.
    async fn resync(&mut self) {
        let Some(left) = self.eval(&READ, &[self.keys.state.as_str()], &[]).await else {
            return;
        };
        let state = self.handle.state();
        let own_open = state == BreakerState::Open
            && self.handle.last_transition_reason() != Some(TransitionReason::Remote);
        if left >= 0 {
            // Open in the fleet (0: a half-open period is in progress somewhere: open, and
            // ask for the lease at once).
            let left = Duration::from_millis(left.unsigned_abs()).max(Duration::from_millis(1));
            self.granted = None;
            self.handle.open_until(Instant::now() + left);
        } else if own_open {
            self.publish_open().await;
        }
        self.reported_run = 0;
        if self.handle.consecutive_failures() > 0 {
            self.report_run().await;
        }
    }

    /// Asks for the fleet's half-open lease. Granted (or Redis unreachable: the local decision
    /// stands): the breaker goes half-open at its time as usual. Refused: the open time moves to
    /// when the holder's lease ends, and the holder's verdict (open again, or close) will come.
    async fn try_lease(&mut self) {
        let Some(until) = self.open_until() else {
            return;
        };
        let lease = self.inner.config.probe_lease;
        if matches!(self.granted, Some((granted_for, _)) if granted_for == until) {
            // The lease ran out and this breaker is still open at the same time: it never got
            // a call to probe with. Give way to a replica that has calls: wait a lease.
            self.granted = None;
            self.handle.open_until(Instant::now() + lease);
            return;
        }
        let keys = [self.keys.lease.as_str(), self.keys.state.as_str()];
        let left = until.saturating_duration_since(Instant::now());
        let args = [
            self.inner.replica.to_string(),
            millis(lease).to_string(),
            millis(left).to_string(),
        ];
        match self.eval(&LEASE, &keys, &args).await {
            Some(-1) => self.granted = Some((until, Instant::now() + lease)),
            Some(left) => {
                self.granted = None;
                let wait =
                    Duration::from_millis(left.unsigned_abs()) + self.inner.config.lease_lead;
                self.handle.open_until(Instant::now() + wait);
            }
            None => self.granted = Some((until, until.max(Instant::now()) + lease)),
        }
    }

    /// Reports this replica's run of failures; the fleet opens when the runs add up to one
    /// breaker's threshold.
    async fn report_run(&mut self) {
        if self.handle.state() != BreakerState::Closed {
            self.reported_run = 0;
            return;
        }
        let run = self.handle.consecutive_failures();
        let threshold = self.handle.config().consecutive_failures();
        if run == self.reported_run || threshold == 0 {
            return;
        }
        let open_for = self
            .handle
            .config()
            .open_duration_for_trip(self.handle.trips().saturating_add(1));
        let message = Message::Open {
            agent: self.agent.clone(),
            remaining: open_for,
            replica: self.inner.replica.to_string(),
        };
        let keys = [self.keys.streak.as_str(), self.keys.state.as_str()];
        let args = [
            self.inner.replica.to_string(),
            run.to_string(),
            millis(self.inner.config.streak_window).to_string(),
            threshold.to_string(),
            millis(open_for).to_string(),
            millis(self.inner.config.probe_lease).to_string(),
            self.inner.channel.clone(),
            message.encode(),
        ];
        match self.eval(&STREAK, &keys, &args).await {
            Some(1) => {
                tracing::debug!(agent = %self.agent, run, "fleet sync: the fleet's failures tripped it");
                self.reported_run = 0;
                self.granted = None;
                self.handle.open_until(Instant::now() + open_for);
                self.note_seen();
            }
            Some(_) => self.reported_run = run,
            None => {}
        }
    }
}
