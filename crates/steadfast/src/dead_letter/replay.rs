//! [`Replay`]: feed dead letters back through a service.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tower_service::Service;

use crate::error::{BoxError, ConfigError};

/// The slowest replay rate accepted: one record a day.
pub const MIN_RATE_PER_SECOND: f64 = 1.0 / 86_400.0;
/// The fastest replay rate accepted: faster is no limit at all on one connection.
pub const MAX_RATE_PER_SECOND: f64 = 1_000_000.0;
/// The most calls a replay keeps in flight at once.
pub const MAX_CONCURRENCY: usize = 1024;

use super::id::DeadLetterId;
use super::record::DeadLetterRecord;
use super::sink::{DeadLetterSink, SinkError};

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ReplayReport {
    /// Records tried.
    pub attempted: usize,
    /// Records the service answered; they were removed from the sink.
    pub succeeded: usize,
    /// Records that failed again (or could not be decoded); kept with `replay_count + 1`.
    pub failed: Vec<(DeadLetterId, String)>,
}

type Progress<'a> = Box<dyn FnMut(&DeadLetterRecord, Result<(), &str>) + Send + 'a>;
type Filter<'a> = Box<dyn Fn(&DeadLetterRecord) -> bool + Send + Sync + 'a>;

/// Replays the oldest records of a sink through a service, oldest first: a success removes the
/// record, a failure keeps it with its `replay_count` incremented.
///
/// ```
/// use bytes::Bytes;
/// use steadfast::BoxError;
/// use steadfast::classify::OutcomeKind;
/// use steadfast::dead_letter::{DeadLetterRecord, DeadLetterSink, MemorySink, Replay};
/// use tower::service_fn;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let sink = MemorySink::new(100);
/// sink.append(DeadLetterRecord::new("gpt", Bytes::from_static(b"hello"), OutcomeKind::Transient)).await?;
/// let agent = service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt.len()) });
///
/// let report = Replay::new(&sink)
///     .run(agent, |record: &DeadLetterRecord| Ok(String::from_utf8(record.request.to_vec())?))
///     .await?;
/// assert_eq!(report.succeeded, 1);
/// assert!(sink.is_empty());
/// # Ok(()) }
/// ```
pub struct Replay<'a> {
    sink: &'a dyn DeadLetterSink,
    limit: usize,
    interval: Option<Duration>,
    concurrency: usize,
    filter: Option<Filter<'a>>,
    progress: Option<Progress<'a>>,
}

impl fmt::Debug for Replay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replay")
            .field("limit", &self.limit)
            .field("interval", &self.interval)
            .field("concurrency", &self.concurrency)
            .field("filtered", &self.filter.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> Replay<'a> {
    /// Replays from `sink`, all records, as fast as the service takes them.
    pub fn new(sink: &'a dyn DeadLetterSink) -> Self {
        Replay {
            sink,
            limit: usize::MAX,
            interval: None,
            concurrency: 1,
            filter: None,
            progress: None,
        }
    }

    /// Only records for which `keep` is true (e.g. one agent, one reason, older than an hour);
    /// the others are not touched. The [`limit`](Self::limit) counts kept records. With a
    /// filter, the sink's records are read in full before replaying (the sink lists, it does
    /// not query).
    pub fn filter(mut self, keep: impl Fn(&DeadLetterRecord) -> bool + Send + Sync + 'a) -> Self {
        self.filter = Some(Box::new(keep));
        self
    }

    /// At most this many calls in flight at once (default 1: one after the other), from 1 to
    /// [`MAX_CONCURRENCY`]; the [rate](Self::rate_per_second) still spaces their starts. Zero
    /// and larger values are refused with a [`ConfigError`] naming `concurrency`.
    pub fn concurrency(mut self, concurrency: usize) -> Result<Self, ConfigError> {
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(ConfigError::new(
                "replay",
                "concurrency",
                format!("must be from 1 (one call at a time) to {MAX_CONCURRENCY}"),
            )
            .with_value(concurrency));
        }
        self.concurrency = concurrency;
        Ok(self)
    }

    /// At most this many records.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// At most this many calls per second (a recovering agent should not get a burst), from
    /// [`MIN_RATE_PER_SECOND`] (one a day) to [`MAX_RATE_PER_SECOND`]. NaN, infinite, zero,
    /// negative and smaller rates are refused with a [`ConfigError`] naming `rate_per_second`;
    /// leave it unset for no limit.
    pub fn rate_per_second(mut self, rate: f64) -> Result<Self, ConfigError> {
        if !(rate.is_finite() && (MIN_RATE_PER_SECOND..=MAX_RATE_PER_SECOND).contains(&rate)) {
            return Err(ConfigError::new(
                "replay",
                "rate_per_second",
                format!(
                    "must be a number of calls per second from {MIN_RATE_PER_SECOND:e} (one a day) \
                     to {MAX_RATE_PER_SECOND}; leave it unset for no limit"
                ),
            )
            .with_value(rate));
        }
        self.interval = Some(Duration::from_secs_f64(1.0 / rate));
        Ok(self)
    }

    /// Called after each record with its result (for progress bars).
    pub fn on_progress(
        mut self,
        progress: impl FnMut(&DeadLetterRecord, Result<(), &str>) + Send + 'a,
    ) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }

    /// Replays through `service`, turning each record into a request with `decode`.
    pub async fn run<S, Req, D>(
        mut self,
        mut service: S,
        mut decode: D,
    ) -> Result<ReplayReport, SinkError>
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
        D: FnMut(&DeadLetterRecord) -> Result<Req, BoxError>,
    {
        let records = match &self.filter {
            None => self.sink.list(self.limit).await?,
            Some(keep) => {
                let mut records = self.sink.list(usize::MAX).await?;
                records.retain(|record| keep(record));
                records.truncate(self.limit);
                records
            }
        };
        let mut report = ReplayReport::default();
        let mut ticker = self.interval.map(|every| {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker
        });
        // Calls in flight, each with its record; polled here, never spawned, so neither the
        // service nor its futures need to be `Send` or `'static`. The rate ticker is polled
        // beside them, so a call in flight keeps going while the next one waits for its slot.
        let mut in_flight: Vec<(DeadLetterRecord, Pin<Box<S::Future>>)> = Vec::new();
        let mut records = records.into_iter().peekable();
        let concurrency = self.concurrency;
        loop {
            let more = records.peek().is_some();
            if in_flight.is_empty() && !more {
                break;
            }
            let step = poll_fn(|cx| {
                for index in 0..in_flight.len() {
                    if let Poll::Ready(result) = in_flight[index].1.as_mut().poll(cx) {
                        let (record, _) = in_flight.swap_remove(index);
                        return Poll::Ready(Some((record, result.map(drop).map_err(Into::into))));
                    }
                }
                if more && in_flight.len() < concurrency {
                    match ticker.as_mut() {
                        None => return Poll::Ready(None),
                        Some(ticker) => {
                            if ticker.poll_tick(cx).is_ready() {
                                return Poll::Ready(None);
                            }
                        }
                    }
                }
                Poll::Pending
            })
            .await;
            if let Some((record, result)) = step {
                self.settle(record, result, &mut report).await?;
                continue;
            }
            let Some(record) = records.next() else {
                continue;
            };
            report.attempted += 1;
            let started: Result<S::Future, BoxError> = async {
                let request = decode(&record)?;
                poll_fn(|cx| service.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                Ok(service.call(request))
            }
            .await;
            match started {
                Ok(call) => in_flight.push((record, Box::pin(call))),
                Err(error) => self.settle(record, Err(error), &mut report).await?,
            }
        }
        Ok(report)
    }

    async fn settle(
        &mut self,
        mut record: DeadLetterRecord,
        outcome: Result<(), BoxError>,
        report: &mut ReplayReport,
    ) -> Result<(), SinkError> {
        match outcome {
            Ok(()) => {
                self.sink.remove(record.id).await?;
                report.succeeded += 1;
                if let Some(progress) = self.progress.as_mut() {
                    progress(&record, Ok(()));
                }
            }
            Err(error) => {
                let message = error.to_string();
                record.replay_count += 1;
                self.sink.update(record.clone()).await?;
                if let Some(progress) = self.progress.as_mut() {
                    progress(&record, Err(&message));
                }
                report.failed.push((record.id, message));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::MemorySink;

    #[test]
    fn rates_that_cannot_be_a_schedule_are_refused_by_name() {
        let sink = MemorySink::new(1);
        for rate in [f64::NAN, f64::INFINITY, 0.0, -1.0, 1e-300, 1e300] {
            let error = Replay::new(&sink).rate_per_second(rate).unwrap_err();
            assert_eq!(error.setting(), "rate_per_second", "{rate}");
        }
        assert!(Replay::new(&sink).rate_per_second(5.0).is_ok());
        assert!(
            Replay::new(&sink)
                .rate_per_second(MIN_RATE_PER_SECOND)
                .is_ok()
        );
    }
}
