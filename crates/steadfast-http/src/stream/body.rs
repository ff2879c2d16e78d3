//! [`StreamBody`]: a response body with a first-byte deadline, a stall timeout, a total
//! deadline and in-band SSE error recognition.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use steadfast::{BoxError, Outcome};
use tokio::time::{Instant, Sleep};

use super::config::StreamConfig;
use super::error::{Delivered, StreamError, StreamErrorKind};
use super::metrics::{Finish, Report};
use super::sse::SseScanner;

/// How many silence checks make one idle timeout: a stall is declared between `idle` and
/// `idle + 2 * idle / STALL_CHECKS` after the last byte.
const STALL_CHECKS: u32 = 8;

pin_project! {
    /// A streamed response body (any [`http_body::Body`] of [`Bytes`]: hyper's `Incoming`,
    /// reqwest's `Body`, axum's `Body`) judged while it streams:
    ///
    /// - **first byte**: no data byte within [`StreamConfig::first_byte`] of the call is a
    ///   [`StreamErrorKind::FirstByteTimeout`];
    /// - **stall**: once started, silence longer than [`StreamConfig::idle`] is a
    ///   [`StreamErrorKind::Stalled`]; a slow but steady trickle never is;
    /// - **total**: still running at [`StreamConfig::total`] is a
    ///   [`StreamErrorKind::DeadlineExceeded`];
    /// - **in-band errors**: in server-sent events, OpenAI's `data: {"error": ...}` and
    ///   Anthropic's `event: error` (`overloaded_error`, ...) are a [`StreamErrorKind::InBand`],
    ///   classified with the same vocabulary as error answers ([`crate::llm`]). The chunk that
    ///   carries the error event is delivered (it is the provider's own message), then the error;
    /// - **transport errors** (reset, closed early) are a [`StreamErrorKind::Body`], classified
    ///   like client errors.
    ///
    /// Every failure is a [`StreamError`] with its [`Outcome`] and what was
    /// [delivered](StreamError::delivered). After a failure the body ends.
    ///
    /// Per chunk it costs a counter, a flag and the SSE scanner's look at each line start: no
    /// allocation, no clock read, no timer reset. One timer (boxed once per stream) serves all
    /// three deadlines; during the stream it wakes every `idle / 8` to check for silence.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Full};
    /// use steadfast_http::reason;
    /// use steadfast_http::stream::{StreamBody, StreamConfig, StreamError, StreamErrorKind};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // An Anthropic stream that is overloaded after its first event.
    /// let sse = concat!(
    ///     "event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
    ///     "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    /// );
    /// let config = StreamConfig::builder().idle(Duration::from_secs(5)).build().unwrap();
    /// let mut body = StreamBody::new(Full::new(Bytes::from_static(sse.as_bytes())), config);
    /// // The chunk is delivered (it is the provider's own message), then the typed error.
    /// let chunk = body.frame().await.unwrap().unwrap().into_data().unwrap();
    /// assert!(chunk.starts_with(b"event: message_start"));
    /// let err = body.frame().await.unwrap().unwrap_err();
    /// let err = err.downcast_ref::<StreamError>().unwrap();
    /// assert_eq!(err.kind(), StreamErrorKind::InBand);
    /// assert_eq!(err.outcome().reason(), Some(reason::OVERLOADED));
    /// assert_eq!(err.delivered().events, 1, "message_start was complete");
    /// assert!(body.frame().await.is_none(), "a failed stream ends");
    /// # }
    /// ```
    pub struct StreamBody<B> {
        #[pin]
        inner: B,
        state: State,
    }

    impl<B> PinnedDrop for StreamBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let state = this.project().state;
            // The caller stopped reading a stream it had been handed: not the agent's doing.
            let outcome = Outcome::success();
            state.finish(Finish::Abandoned, outcome, None);
        }
    }
}

struct State {
    config: StreamConfig,
    started: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    scanner: Option<SseScanner>,
    /// A frame read while priming, not yet handed to the caller.
    held: Option<Frame<Bytes>>,
    /// An in-band error found in a chunk that was handed on: returned next.
    pending_error: Option<StreamError>,
    /// Data bytes received (all handed on, once priming is over).
    bytes: u64,
    first_byte_at: Option<Instant>,
    /// A byte arrived since the last silence check.
    active: bool,
    /// The last silence check that found activity (or the first byte).
    last_active: Instant,
    /// Whether bytes of this stream have been (or will be, once held) handed to the caller.
    priming: bool,
    done: bool,
    report: Option<Report>,
}

impl<B> StreamBody<B> {
    /// Guards `body` with `config`'s deadlines, counted from now. SSE scanning is on when
    /// [`StreamConfig::scan_sse`] is (use [`wrap_response`](Self::wrap_response) to decide it
    /// from the `content-type`).
    pub fn new(body: B, config: StreamConfig) -> Self {
        Self::with_start(body, config, Instant::now(), config.scan_sse, None)
    }

    /// Guards a response's body; its SSE scanning is on only for `text/event-stream`.
    pub fn wrap_response(
        response: http::Response<B>,
        config: StreamConfig,
    ) -> http::Response<StreamBody<B>> {
        let sse = config.scan_sse && is_event_stream(response.headers());
        response.map(|body| Self::with_start(body, config, Instant::now(), sse, None))
    }

    /// A body that only passes `body` through (no deadline, no scanning, no report): what the
    /// guard gives error answers, which are judged at their head.
    pub fn passthrough(body: B) -> Self {
        let config = StreamConfig {
            first_byte: None,
            idle: None,
            total: None,
            scan_sse: false,
        };
        let mut body = Self::with_start(body, config, Instant::now(), false, None);
        body.state.priming = false;
        body
    }

    pub(crate) fn with_start(
        body: B,
        config: StreamConfig,
        started: Instant,
        sse: bool,
        report: Option<Report>,
    ) -> Self {
        let timer = first_timer(&config, started);
        Self::with_timer(body, config, started, sse, report, timer)
    }

    /// With the timer the guard armed at the call (so one timer serves the head and the body).
    pub(crate) fn with_timer(
        body: B,
        config: StreamConfig,
        started: Instant,
        sse: bool,
        report: Option<Report>,
        timer: Option<Pin<Box<Sleep>>>,
    ) -> Self {
        StreamBody {
            inner: body,
            state: State {
                config,
                started,
                timer,
                scanner: sse.then(SseScanner::default),
                held: None,
                pending_error: None,
                bytes: 0,
                first_byte_at: None,
                active: false,
                last_active: started,
                priming: false,
                done: false,
                report,
            },
        }
    }

    /// What has been delivered so far.
    pub fn delivered(&self) -> Delivered {
        self.state.delivered()
    }

    /// The time from the call to the first data byte, once it arrived.
    pub fn time_to_first_byte(&self) -> Option<Duration> {
        self.state
            .first_byte_at
            .map(|at| at.saturating_duration_since(self.state.started))
    }

    /// Whether the body is scanned for in-band SSE errors.
    pub fn scans_sse(&self) -> bool {
        self.state.scanner.is_some()
    }

    /// Whether the stream already ended (or failed).
    pub(crate) fn is_done(&self) -> bool {
        self.state.done
    }

    pub(crate) fn set_priming(&mut self, priming: bool) {
        self.state.priming = priming;
    }

    /// From now on the end of the stream (clean or not) is reported to the agent's breaker.
    pub(crate) fn settle_breaker(&mut self) {
        if let Some(report) = &mut self.state.report {
            report.settle = true;
        }
    }
}

/// Whether the headers announce server-sent events.
pub(crate) fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim_start()
                .get(..17)
                .is_some_and(|start| start.eq_ignore_ascii_case("text/event-stream"))
        })
}

/// The timer for the first deadline of a stream started at `started`, if it has one.
pub(crate) fn first_timer(config: &StreamConfig, started: Instant) -> Option<Pin<Box<Sleep>>> {
    first_deadline(config, started).map(|at| Box::pin(tokio::time::sleep_until(at)))
}

fn first_deadline(config: &StreamConfig, started: Instant) -> Option<Instant> {
    let first = config.first_byte.or(config.idle).map(|wait| started + wait);
    let total = config.total.map(|wait| started + wait);
    match (first, total) {
        (Some(first), Some(total)) => Some(first.min(total)),
        (first, total) => first.or(total),
    }
}

impl State {
    fn delivered(&self) -> Delivered {
        if self.priming {
            return Delivered::default();
        }
        Delivered {
            bytes: self.bytes,
            events: self.scanner.as_ref().map_or(0, SseScanner::events),
        }
    }

    /// The frame held while priming, else the in-band error found in the last chunk.
    #[cold]
    fn take_stashed(&mut self) -> Option<Result<Frame<Bytes>, BoxError>> {
        if let Some(frame) = self.held.take() {
            return Some(Ok(frame));
        }
        let error = self.pending_error.take()?;
        Some(Err(self.fail(error)))
    }

    /// The end of the stream: report once.
    fn finish(&mut self, how: Finish, outcome: Outcome, error: Option<&StreamError>) {
        self.done = true;
        self.timer = None;
        if let Some(report) = self.report.take() {
            let handed = !self.priming || how == Finish::Complete;
            report.finish(how, outcome, error, self.bytes, handed);
        }
    }

    fn fail(&mut self, error: StreamError) -> BoxError {
        let error = match &self.report {
            Some(report) => error.for_agent(Some(&report.agent)),
            None => error,
        };
        self.finish(Finish::Failed, error.outcome(), Some(&error));
        Box::new(error)
    }

    /// A data chunk arrived: count it, note the first byte, scan it; `Some` is an in-band
    /// error it carried.
    #[inline]
    fn on_data(&mut self, data: &Bytes) -> Option<StreamError> {
        self.bytes += data.len() as u64;
        self.active = true;
        if self.first_byte_at.is_none() {
            self.on_first_byte();
        }
        if let Some(scanner) = &mut self.scanner
            && let Err(found) = scanner.scan(data)
        {
            return Some(StreamError::in_band(
                found.outcome,
                &found.payload,
                self.delivered(),
            ));
        }
        None
    }

    #[cold]
    fn on_first_byte(&mut self) {
        let now = Instant::now();
        self.first_byte_at = Some(now);
        self.active = false;
        self.last_active = now;
        if let Some(report) = &self.report {
            report.first_byte(now.saturating_duration_since(self.started));
        }
        self.rearm(now);
    }

    /// Sets the timer for the next check after `now`: a silence check, or the total deadline.
    fn rearm(&mut self, now: Instant) {
        let check = self
            .config
            .idle
            .map(|idle| now + (idle / STALL_CHECKS).max(Duration::from_nanos(1)));
        let total = self.config.total.map(|total| self.started + total);
        let next = match (check, total) {
            (Some(check), Some(total)) => Some(check.min(total)),
            (check, total) => check.or(total),
        };
        match (next, &mut self.timer) {
            (Some(at), Some(timer)) => timer.as_mut().reset(at),
            (Some(at), None) => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            (None, _) => self.timer = None,
        }
    }

    /// Polls the timer; `Ready` with the error when a deadline passed.
    fn poll_deadlines(&mut self, cx: &mut Context<'_>) -> Poll<StreamError> {
        loop {
            let Some(timer) = &mut self.timer else {
                return Poll::Pending;
            };
            ready!(timer.as_mut().poll(cx));
            let now = Instant::now();
            let since_start = now.saturating_duration_since(self.started);
            if let Some(total) = self.config.total
                && since_start >= total
            {
                return Poll::Ready(StreamError::timeout(
                    StreamErrorKind::DeadlineExceeded,
                    self.delivered(),
                    total,
                ));
            }
            if self.first_byte_at.is_none() {
                return Poll::Ready(StreamError::timeout(
                    StreamErrorKind::FirstByteTimeout,
                    self.delivered(),
                    since_start,
                ));
            }
            if std::mem::take(&mut self.active) {
                self.last_active = now;
            } else if let Some(idle) = self.config.idle {
                let silent = now.saturating_duration_since(self.last_active);
                if silent >= idle {
                    return Poll::Ready(StreamError::timeout(
                        StreamErrorKind::Stalled,
                        self.delivered(),
                        silent,
                    ));
                }
            }
            self.rearm(now);
        }
    }
}

impl<B> StreamBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    /// The next frame from the agent, judged; holds nothing.
    #[inline]
    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let state = this.state;
        if state.done {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && !data.is_empty()
                    && let Some(error) = state.on_data(data)
                {
                    if state.priming {
                        return Poll::Ready(Some(Err(state.fail(error))));
                    }
                    // The provider's error event is delivered, then the error.
                    state.pending_error = Some(error);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                let error = StreamError::body(error.into(), state.delivered());
                Poll::Ready(Some(Err(state.fail(error))))
            }
            Poll::Ready(None) => {
                state.finish(Finish::Complete, Outcome::success(), None);
                Poll::Ready(None)
            }
            Poll::Pending => match state.poll_deadlines(cx) {
                Poll::Ready(error) => Poll::Ready(Some(Err(state.fail(error)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    /// Waits for the first data frame (or the end, or trailers) and holds it, so the caller
    /// is handed nothing until the stream has proved it started. `Err` is the stream's
    /// failure before its first byte.
    pub(crate) fn poll_prime(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), BoxError>> {
        loop {
            match ready!(self.as_mut().poll_next(cx)) {
                Some(Ok(frame)) => {
                    if frame.data_ref().is_some_and(Bytes::is_empty) {
                        continue;
                    }
                    let state = self.as_mut().project().state;
                    state.held = Some(frame);
                    state.priming = false;
                    return Poll::Ready(Ok(()));
                }
                Some(Err(error)) => return Poll::Ready(Err(error)),
                None => {
                    self.as_mut().project().state.priming = false;
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl<B> Body for StreamBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let state = self.as_mut().project().state;
        // `is_some` first: `take` would copy the whole (large) slot on every chunk.
        if state.held.is_some() || state.pending_error.is_some() {
            return Poll::Ready(state.take_stashed());
        }
        self.poll_next(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.state.held.is_none()
            && self.state.pending_error.is_none()
            && (self.state.done || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        if let Some(data) = self.state.held.as_ref().and_then(Frame::data_ref) {
            let held = data.len() as u64;
            hint.set_lower(hint.lower().saturating_add(held));
            if let Some(upper) = hint.upper() {
                hint.set_upper(upper.saturating_add(held));
            }
        }
        hint
    }
}

impl<B> fmt::Debug for StreamBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamBody")
            .field("config", &self.state.config)
            .field("delivered", &self.delivered())
            .field("time_to_first_byte", &self.time_to_first_byte())
            .field("done", &self.state.done)
            .finish_non_exhaustive()
    }
}

/// What a guarded response carries in its extensions: the stream's time to first byte. Its
/// presence also tells [`HttpClassifier`](crate::HttpClassifier) that the answer is a stream
/// still running, so a circuit breaker waits for the stream's own report
/// ([`Outcome::deferred`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    time_to_first_byte: Option<Duration>,
    agent: Arc<str>,
}

impl StreamInfo {
    pub(crate) fn new(time_to_first_byte: Option<Duration>, agent: Arc<str>) -> Self {
        StreamInfo {
            time_to_first_byte,
            agent,
        }
    }

    /// The time from the call to the first data byte (`None` for an empty body).
    pub fn time_to_first_byte(&self) -> Option<Duration> {
        self.time_to_first_byte
    }

    /// The agent whose stream this is.
    pub fn agent(&self) -> &str {
        &self.agent
    }
}
