//! [`Emergency`]: SIGTERM, SIGINT, a panic, a time limit or a resource limit, wired to the
//! drain, the state savers and a recovery notification; returns the exit code to use.

use std::fmt;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::BoxError;
use crate::events::Event;
use crate::notify::{Notification, NotificationKind, Notifier};

use super::handle::{DrainReport, Shutdown};

/// What started an emergency shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trigger {
    /// A signal: `"SIGTERM"` or `"SIGINT"`.
    Signal(&'static str),
    /// A panic anywhere in the process (its message and location).
    Panic(String),
    /// The time limit given to [`Emergency::deadline`] passed.
    Deadline(Duration),
    /// A resource limit ([`Emergency::rss_limit`]) was crossed.
    Resource(String),
    /// The application asked ([`EmergencyTrigger::fire`]).
    Requested(String),
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Signal(signal) => write!(f, "{signal} received"),
            Trigger::Panic(message) => write!(f, "panic: {message}"),
            Trigger::Deadline(limit) => write!(f, "time limit of {}s reached", limit.as_secs_f64()),
            Trigger::Resource(what) => write!(f, "resource limit: {what}"),
            Trigger::Requested(why) => write!(f, "requested: {why}"),
        }
    }
}

/// Fires an [`Emergency`] from anywhere (sync code, a panic hook, a health check). Cheap to
/// clone; the first trigger wins.
#[derive(Clone, Default)]
pub struct EmergencyTrigger {
    state: Arc<TriggerState>,
}

#[derive(Default)]
struct TriggerState {
    fired: Mutex<Option<Trigger>>,
    wake: Notify,
}

impl fmt::Debug for EmergencyTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmergencyTrigger")
            .field("fired", &self.fired())
            .finish()
    }
}

impl EmergencyTrigger {
    /// Starts the emergency shutdown for `trigger` (ignored if one already fired).
    pub fn fire(&self, trigger: Trigger) {
        let mut fired = self
            .state
            .fired
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if fired.is_none() {
            *fired = Some(trigger);
            // A stored permit: a waiter that starts later still wakes.
            self.state.wake.notify_one();
        }
    }

    /// What fired, if anything did.
    pub fn fired(&self) -> Option<Trigger> {
        self.state
            .fired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

type Saver = Box<dyn FnOnce() -> Result<(), BoxError> + Send>;

/// The emergency shutdown of one process. Build it at startup, then `run` it on a task of its
/// own (or at the end of `main`):
///
/// 1. waits for a trigger: SIGTERM or SIGINT ([`on_signals`](Self::on_signals), feature
///    `signals`), a panic ([`install_panic_hook`](Self::install_panic_hook)), the
///    [`deadline`](Self::deadline), the [`rss_limit`](Self::rss_limit), the
///    [`min_free_disk`](Self::min_free_disk), or
///    [`EmergencyTrigger::fire`];
/// 2. logs the reason and stops admitting calls, drains those in flight for
///    [`drain_timeout`](Self::drain_timeout), then cancels the rest: each fails with
///    `CancelledByShutdown`, which a dead-letter layer outside the `ShutdownLayer` records
///    (and a checkpoint layer outside both releases its step, so the resumed run repeats it);
/// 3. marks every open workflow interrupted in the checkpoint store (feature `checkpoint`;
///    completed steps are already stored: nothing else needs saving) and runs the savers
///    ([`save_breakers`](Self::save_breakers), [`on_save`](Self::on_save));
/// 4. sends a recovery notification ([`Event::EmergencyShutdown`], kind `alert`) to every
///    notifier, naming the workflows to resume and the command that does it;
/// 5. returns an [`EmergencyReport`] whose [`exit_code`](EmergencyReport::exit_code) is 0 when
///    nothing was left (every call finished, no open workflow, every save worked), 1 otherwise.
pub struct Emergency {
    shutdown: Shutdown,
    trigger: EmergencyTrigger,
    drain_timeout: Duration,
    deadline: Option<Duration>,
    signals: bool,
    /// The handlers `on_signals` installed at once (inside a runtime), taken by `wait`.
    #[cfg(feature = "signals")]
    installed: Mutex<Option<Signals>>,
    rss_limit: Option<u64>,
    min_free_disk: Option<(std::path::PathBuf, u64)>,
    resource_interval: Duration,
    /// In a mutex only so that `Emergency` is `Sync` (its `wait` future can be spawned).
    savers: Mutex<Vec<(String, Saver)>>,
    notifiers: Vec<Arc<dyn Notifier>>,
    notify_timeout: Duration,
    resume_command: Option<String>,
    #[cfg(feature = "checkpoint")]
    checkpoints: Option<crate::checkpoint::Checkpoints>,
}

impl fmt::Debug for Emergency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emergency")
            .field("drain_timeout", &self.drain_timeout)
            .field("deadline", &self.deadline)
            .field("signals", &self.signals)
            .field("rss_limit", &self.rss_limit)
            .field("min_free_disk", &self.min_free_disk)
            .field(
                "savers",
                &self
                    .savers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len(),
            )
            .field("notifiers", &self.notifiers.len())
            .finish_non_exhaustive()
    }
}

/// The drain timeout when none is given.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

impl Emergency {
    /// An emergency shutdown that drains `shutdown`'s calls. Nothing triggers it until you add
    /// triggers; the drain timeout is [`DEFAULT_DRAIN_TIMEOUT`].
    pub fn new(shutdown: &Shutdown) -> Self {
        Emergency {
            shutdown: shutdown.clone(),
            trigger: EmergencyTrigger::default(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            deadline: None,
            signals: false,
            #[cfg(feature = "signals")]
            installed: Mutex::new(None),
            rss_limit: None,
            min_free_disk: None,
            resource_interval: Duration::from_secs(1),
            savers: Mutex::new(Vec::new()),
            notifiers: Vec::new(),
            notify_timeout: Duration::from_secs(5),
            resume_command: None,
            #[cfg(feature = "checkpoint")]
            checkpoints: None,
        }
    }

    /// Also triggers on SIGTERM and SIGINT (Ctrl-C). Called inside a tokio runtime, the
    /// handlers are installed at once, so a signal that arrives before [`wait`](Self::wait)
    /// first runs is not lost; otherwise when `wait` starts. From then on those signals no
    /// longer kill the process on their own.
    #[cfg(feature = "signals")]
    #[must_use]
    pub fn on_signals(mut self) -> Self {
        self.signals = true;
        if tokio::runtime::Handle::try_current().is_ok() {
            *self
                .installed
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner) = Some(Signals::install());
        }
        self
    }

    /// How long in-flight calls may run on after the trigger before they are cancelled.
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Triggers once `limit` has passed since [`wait`](Self::wait) started (a job's time
    /// budget, a spot instance's notice): plan it to leave room for the drain.
    #[must_use]
    pub fn deadline(mut self, limit: Duration) -> Self {
        self.deadline = Some(limit);
        self
    }

    /// Triggers when this process's resident memory goes over `bytes` (read from
    /// `/proc/self/status` every second; Linux only, ignored elsewhere).
    #[must_use]
    pub fn rss_limit(mut self, bytes: u64) -> Self {
        self.rss_limit = Some(bytes);
        self
    }

    /// Triggers when the free space on the file system holding `path` (the checkpoint or
    /// dead-letter store's directory) goes under `bytes`, so the stores can still write what
    /// the shutdown saves. Checked every second with POSIX `df -Pk` (no `statvfs` binding: the
    /// crate keeps `unsafe` to one module of its own); a check that fails is logged and retried.
    #[must_use]
    pub fn min_free_disk(mut self, path: impl Into<std::path::PathBuf>, bytes: u64) -> Self {
        self.min_free_disk = Some((path.into(), bytes));
        self
    }

    /// How often the resource limits are checked (default 1 s).
    #[must_use]
    pub fn resource_interval(mut self, every: Duration) -> Self {
        self.resource_interval = every.max(Duration::from_millis(10));
        self
    }

    /// Runs `save` after the drain (e.g. flush a cache); its error makes the exit code 1 and is
    /// in the report.
    #[must_use]
    pub fn on_save(
        mut self,
        what: impl Into<String>,
        save: impl FnOnce() -> Result<(), BoxError> + Send + 'static,
    ) -> Self {
        self.savers
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .push((what.into(), Box::new(save)));
        self
    }

    /// Saves every breaker's state to `path` after the drain (`Registry::save_state`), so
    /// the restarted process keeps known-down agents open.
    #[cfg(all(feature = "serde", feature = "circuit-breaker"))]
    #[must_use]
    pub fn save_breakers(
        self,
        registry: &crate::Registry,
        path: impl Into<std::path::PathBuf>,
    ) -> Self {
        let registry = registry.clone();
        let path = path.into();
        self.on_save("breaker state", move || {
            registry.save_state(&path).map_err(Into::into)
        })
    }

    /// Marks the store's open workflows interrupted, and lists them in the notification.
    #[cfg(feature = "checkpoint")]
    #[must_use]
    pub fn checkpoints(mut self, checkpoints: crate::checkpoint::Checkpoints) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// Sends the recovery notification to `notifier` (each gets at most 5 s).
    #[must_use]
    pub fn notify(mut self, notifier: impl Notifier) -> Self {
        self.notifiers.push(Arc::new(notifier));
        self
    }

    /// The command that resumes a workflow, with `{workflow}` where its id goes
    /// (`"myagent --resume {workflow}"`); it is spelt out in the notification for each open
    /// workflow.
    #[must_use]
    pub fn resume_command(mut self, template: impl Into<String>) -> Self {
        self.resume_command = Some(template.into());
        self
    }

    /// A handle that fires this emergency from anywhere.
    pub fn trigger(&self) -> EmergencyTrigger {
        self.trigger.clone()
    }

    /// Installs a panic hook (after the current one, which still runs) that fires this
    /// emergency with the panic's message.
    pub fn install_panic_hook(&self) {
        let trigger = self.trigger.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            trigger.fire(Trigger::Panic(format!("{message}{location}")));
        }));
    }

    /// Waits for the first trigger.
    pub async fn wait(&self) -> Trigger {
        if let Some(fired) = self.trigger.fired() {
            return fired;
        }
        let deadline = self
            .deadline
            .and_then(|limit| tokio::time::Instant::now().checked_add(limit));
        #[cfg(feature = "signals")]
        let mut signals = if self.signals {
            let installed = self
                .installed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            Some(installed.unwrap_or_else(Signals::install))
        } else {
            None
        };
        let mut woken = pin!(self.trigger.state.wake.notified());
        let mut timer = pin!(async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        });
        let mut resources = pin!(watch_resources(
            self.rss_limit,
            self.min_free_disk.clone(),
            self.resource_interval
        ));
        let external = poll_fn(|cx| {
            if woken.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            #[cfg(feature = "signals")]
            if let Some(signals) = signals.as_mut()
                && let Poll::Ready(signal) = signals.poll(cx)
            {
                return Poll::Ready(Some(Trigger::Signal(signal)));
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Trigger::Deadline(self.deadline.unwrap_or_default())));
            }
            if let Poll::Ready(what) = resources.as_mut().poll(cx) {
                return Poll::Ready(Some(Trigger::Resource(what)));
            }
            Poll::Pending
        })
        .await;
        if let Some(trigger) = external {
            self.trigger.fire(trigger);
        }
        self.trigger
            .fired()
            .unwrap_or_else(|| Trigger::Requested("woken without a trigger".to_owned()))
    }

    /// Waits for a trigger, then shuts down ([`execute`](Self::execute)).
    pub async fn run(self) -> EmergencyReport {
        let trigger = self.wait().await;
        self.execute(trigger).await
    }

    /// Shuts down now, for `trigger`: drain, mark open workflows, save, notify.
    pub async fn execute(self, trigger: Trigger) -> EmergencyReport {
        let reason = trigger.to_string();
        tracing::error!(%reason, drain_timeout_secs = self.drain_timeout.as_secs_f64(), "emergency shutdown");
        let drain = self.shutdown.drain(self.drain_timeout).await;
        let mut errors = Vec::new();
        let mut saved = Vec::new();

        #[allow(unused_mut)]
        let mut open_workflows: Vec<String> = Vec::new();
        #[cfg(feature = "checkpoint")]
        if let Some(checkpoints) = &self.checkpoints {
            match checkpoints.open_workflows().await {
                Ok(open) => {
                    for workflow in &open {
                        if let Err(error) = checkpoints.interrupt(workflow, &reason).await {
                            errors.push(format!(
                                "marking workflow `{workflow}` interrupted: {error}"
                            ));
                        }
                    }
                    saved.push(format!("{} open workflows marked interrupted", open.len()));
                    open_workflows = open;
                }
                Err(error) => errors.push(format!("listing open workflows: {error}")),
            }
        }
        let savers = self
            .savers
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        for (what, save) in savers {
            match save() {
                Ok(()) => saved.push(what),
                Err(error) => errors.push(format!("saving {what}: {error}")),
            }
        }

        let notification = recovery_notification(
            &reason,
            &drain,
            &open_workflows,
            self.resume_command.as_deref(),
            &errors,
        );
        for notifier in &self.notifiers {
            match tokio::time::timeout(self.notify_timeout, notifier.notify(&notification)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => errors.push(format!("notifier `{}`: {error}", notifier.name())),
                Err(_) => errors.push(format!(
                    "notifier `{}` did not answer within {}s",
                    notifier.name(),
                    self.notify_timeout.as_secs_f64()
                )),
            }
        }
        let report = EmergencyReport {
            trigger,
            drain,
            open_workflows,
            saved,
            errors,
            notification,
        };
        tracing::error!(
            exit_code = report.exit_code(),
            cancelled = report.drain.cancelled,
            open_workflows = report.open_workflows.len(),
            "emergency shutdown done"
        );
        report
    }
}

fn recovery_notification(
    reason: &str,
    drain: &DrainReport,
    open_workflows: &[String],
    resume_command: Option<&str>,
    errors: &[String],
) -> Notification {
    use std::fmt::Write as _;
    let mut body = format!(
        "{} calls in flight at the trigger; {} finished, {} cancelled (dead-lettered where a dead-letter layer holds them), {} not cancellable.\n",
        drain.in_flight_at_start,
        drain
            .in_flight_at_start
            .saturating_sub(drain.cancelled + drain.still_running),
        drain.cancelled,
        drain.still_running
    );
    if open_workflows.is_empty() {
        body.push_str("No open workflow to resume.\n");
    } else {
        let _ = writeln!(
            body,
            "Workflows to resume ({}): {}",
            open_workflows.len(),
            open_workflows.join(", ")
        );
        match resume_command {
            Some(template) => {
                body.push_str("Resume with:\n");
                for workflow in open_workflows {
                    let _ = writeln!(body, "  {}", template.replace("{workflow}", workflow));
                }
            }
            None => body.push_str(
                "Resume: restart the application; each workflow goes on from its last completed step (inspect with `steadfast checkpoints show <workflow>`).\n",
            ),
        }
    }
    for error in errors {
        let _ = writeln!(body, "NOT saved: {error}");
    }
    Notification::new(
        NotificationKind::Alert,
        "emergency-shutdown",
        format!("emergency shutdown: {reason}"),
        body,
        Event::EmergencyShutdown {
            reason: Arc::from(reason),
            open_workflows: open_workflows.len(),
            cancelled: drain.cancelled,
        },
    )
}

/// What [`Emergency::execute`] did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EmergencyReport {
    /// What started it.
    pub trigger: Trigger,
    /// The drain.
    pub drain: DrainReport,
    /// The workflows left open (marked interrupted), to resume.
    pub open_workflows: Vec<String>,
    /// What was saved.
    pub saved: Vec<String>,
    /// What failed (a save, a notifier).
    pub errors: Vec<String>,
    /// The recovery notification sent.
    pub notification: Notification,
}

impl EmergencyReport {
    /// Whether nothing was left: every call finished, no workflow open, every save worked.
    pub fn clean(&self) -> bool {
        self.drain.clean() && self.open_workflows.is_empty() && self.errors.is_empty()
    }

    /// The process exit code to use: 0 when [`clean`](Self::clean), 1 when work was left
    /// (calls cancelled, workflows to resume, or a save that failed).
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.clean())
    }
}

/// Fires when RSS goes over `rss_limit` or free disk under its minimum (never without limits).
async fn watch_resources(
    rss_limit: Option<u64>,
    min_free_disk: Option<(std::path::PathBuf, u64)>,
    every: Duration,
) -> String {
    if rss_limit.is_none() && min_free_disk.is_none() {
        return std::future::pending().await;
    }
    loop {
        if let Some(limit) = rss_limit
            && let Some(rss) = rss_bytes()
            && rss > limit
        {
            return format!("resident memory {rss} bytes over the limit of {limit}");
        }
        if let Some((path, minimum)) = &min_free_disk {
            let probe = path.clone();
            match tokio::task::spawn_blocking(move || free_disk_bytes(&probe)).await {
                Ok(Ok(free)) if free < *minimum => {
                    return format!(
                        "free disk on `{}` is {free} bytes, under the minimum of {minimum}",
                        path.display()
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(path = %path.display(), %error, "cannot check free disk space");
                }
                Err(error) => tracing::warn!(%error, "free disk check did not run"),
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Free bytes for unprivileged users on the file system of `path`, from `df -Pk` (POSIX).
fn free_disk_bytes(path: &std::path::Path) -> Result<u64, String> {
    let output = std::process::Command::new("df")
        .arg("-Pk")
        .arg(path)
        .output()
        .map_err(|error| format!("running df: {error}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    // "Filesystem 1024-blocks Used Available Capacity Mounted on", then one line.
    let available_kb: u64 = text
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| format!("unexpected df output: {text}"))?;
    Ok(available_kb.saturating_mul(1024))
}

/// This process's resident set size, from `/proc/self/status` (`VmRSS: N kB`).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(feature = "signals")]
struct Signals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(not(unix))]
    ctrl_c: std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>,
}

#[cfg(feature = "signals")]
impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let install = |kind, name| match signal(kind) {
                Ok(signal) => Some(signal),
                Err(error) => {
                    tracing::error!(%error, signal = name, "cannot handle signal");
                    None
                }
            };
            Signals {
                terminate: install(SignalKind::terminate(), "SIGTERM"),
                interrupt: install(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        Signals {
            ctrl_c: Box::pin(tokio::signal::ctrl_c()),
        }
    }

    fn poll(&mut self, cx: &mut std::task::Context<'_>) -> Poll<&'static str> {
        #[cfg(unix)]
        {
            if let Some(terminate) = self.terminate.as_mut()
                && let Poll::Ready(Some(())) = terminate.poll_recv(cx)
            {
                return Poll::Ready("SIGTERM");
            }
            if let Some(interrupt) = self.interrupt.as_mut()
                && let Poll::Ready(Some(())) = interrupt.poll_recv(cx)
            {
                return Poll::Ready("SIGINT");
            }
            Poll::Pending
        }
        #[cfg(not(unix))]
        self.ctrl_c.as_mut().poll(cx).map(|_| "SIGINT")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown::ShutdownLayer;
    use tower::{Layer, ServiceExt, service_fn};

    #[tokio::test(start_paused = true)]
    async fn a_deadline_drains_cancels_the_rest_and_exits_one() {
        let shutdown = Shutdown::new();
        let agent = ShutdownLayer::new(&crate::Agent::new("gpt"), &shutdown).layer(service_fn(
            |secs: u64| async move {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                Ok::<_, BoxError>(secs)
            },
        ));
        let quick = tokio::spawn(agent.clone().oneshot(2));
        let slow = tokio::spawn(agent.oneshot(600));
        let report = Emergency::new(&shutdown)
            .deadline(Duration::from_secs(1))
            .drain_timeout(Duration::from_secs(5))
            .resume_command("agent --resume {workflow}")
            .run()
            .await;
        assert_eq!(report.trigger, Trigger::Deadline(Duration::from_secs(1)));
        assert_eq!(report.drain.in_flight_at_start, 2);
        assert_eq!(report.drain.cancelled, 1);
        assert_eq!(report.exit_code(), 1);
        assert_eq!(quick.await.unwrap().unwrap(), 2);
        assert!(slow.await.unwrap().is_err());
        assert_eq!(report.notification.event.name(), "emergency_shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fired_trigger_with_nothing_left_exits_zero_and_runs_savers() {
        let shutdown = Shutdown::new();
        let emergency = Emergency::new(&shutdown).on_save("cache", || Ok(()));
        emergency.trigger().fire(Trigger::Requested("test".into()));
        emergency
            .trigger()
            .fire(Trigger::Requested("second".into()));
        let report = emergency.run().await;
        assert_eq!(report.trigger, Trigger::Requested("test".into()));
        assert_eq!(report.saved, ["cache"]);
        assert_eq!(report.exit_code(), 0);
        assert!(report.notification.body.contains("No open workflow"));
    }

    #[tokio::test]
    async fn a_failed_save_is_reported_and_makes_the_exit_code_one() {
        let report = Emergency::new(&Shutdown::new())
            .on_save("breakers", || Err("disk full".into()))
            .execute(Trigger::Signal("SIGTERM"))
            .await;
        assert_eq!(report.exit_code(), 1);
        assert!(report.errors[0].contains("disk full"));
        assert!(report.notification.body.contains("NOT saved"));
    }

    #[cfg(feature = "checkpoint")]
    #[tokio::test]
    async fn open_workflows_are_marked_interrupted_and_named_with_their_resume_command() {
        use crate::checkpoint::{Checkpoints, MemoryCheckpointStore};
        let checkpoints = Checkpoints::new(MemoryCheckpointStore::new());
        checkpoints
            .save("wf-7", "writing", Vec::new())
            .await
            .unwrap();
        checkpoints.save("wf-8", "done", Vec::new()).await.unwrap();
        checkpoints.finish("wf-8").await.unwrap();
        let report = Emergency::new(&Shutdown::new())
            .checkpoints(checkpoints.clone())
            .resume_command("agent --resume {workflow}")
            .execute(Trigger::Signal("SIGTERM"))
            .await;
        assert_eq!(report.open_workflows, ["wf-7"]);
        assert_eq!(report.exit_code(), 1);
        assert!(
            report.notification.body.contains("agent --resume wf-7"),
            "{}",
            report.notification.body
        );
        let state = checkpoints.resume("wf-7").await.unwrap();
        assert_eq!(
            state.summary.interrupted.as_deref(),
            Some("SIGTERM received")
        );
    }

    #[tokio::test]
    async fn memory_and_disk_limits_fire_resource_triggers() {
        let memory = Emergency::new(&Shutdown::new()).rss_limit(1);
        match memory.wait().await {
            Trigger::Resource(what) => assert!(what.contains("resident memory"), "{what}"),
            other => panic!("{other:?}"),
        }
        let disk = Emergency::new(&Shutdown::new()).min_free_disk(std::env::temp_dir(), u64::MAX);
        match disk.wait().await {
            Trigger::Resource(what) => assert!(what.contains("free disk"), "{what}"),
            other => panic!("{other:?}"),
        }
        assert!(free_disk_bytes(&std::env::temp_dir()).unwrap() > 0);
    }

    #[cfg(all(feature = "serde", feature = "circuit-breaker"))]
    #[tokio::test]
    async fn breaker_state_is_saved_for_the_restart() {
        use crate::circuit_breaker::{BreakerConfig, CircuitBreakerLayer};
        let registry = crate::Registry::new();
        let _layer = CircuitBreakerLayer::new(&registry.agent("gpt"), BreakerConfig::default());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("breakers.json");
        let report = Emergency::new(&Shutdown::new())
            .save_breakers(&registry, &path)
            .execute(Trigger::Signal("SIGTERM"))
            .await;
        assert_eq!(report.saved, ["breaker state"]);
        assert_eq!(report.exit_code(), 0);
        assert_eq!(crate::Registry::new().restore_state(&path).unwrap(), 0);
        assert!(std::fs::read_to_string(&path).unwrap().contains("\"gpt\""));
    }

    #[cfg(all(unix, feature = "signals"))]
    #[tokio::test]
    async fn sigterm_sent_before_waiting_is_caught_and_drains() {
        let emergency = Emergency::new(&Shutdown::new()).on_signals();
        // Sent before `wait` runs: the handler installed by `on_signals` keeps it.
        let pid = std::process::id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let report = tokio::time::timeout(Duration::from_secs(10), emergency.run())
            .await
            .expect("SIGTERM triggers the emergency");
        assert_eq!(report.trigger, Trigger::Signal("SIGTERM"));
        assert_eq!(report.exit_code(), 0);
    }

    #[tokio::test]
    async fn a_panic_fires_the_trigger_through_the_hook() {
        let emergency = Emergency::new(&Shutdown::new());
        emergency.install_panic_hook();
        let _ = tokio::spawn(async { panic!("model output unparsable") }).await;
        let _ = std::panic::take_hook();
        match emergency.wait().await {
            Trigger::Panic(message) => {
                assert!(message.contains("model output unparsable"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
