//! [`StreamBody`]: a response body with a first-byte deadline, a stall timeout, a total
//! deadline and in-band SSE error recognition.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
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
        resume: Resume<B>,
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

/// What [`State::take_stashed`] found.
enum Stashed {
    Frame(Frame<Bytes>),
    Error(StreamError),
    Nothing,
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

/// What a [resume hook](StreamBody::resume_with) returns: the body that continues the answer
/// (typically the body of a new request that sends the partial answer back as a prefix).
pub type Resumption<B> = Pin<Box<dyn Future<Output = Result<B, BoxError>> + Send>>;

type Hook<B> = Box<dyn FnMut(&StreamError) -> Option<Resumption<B>> + Send>;

/// The opt-in resume state. The hook and the pending continuation sit in a `Mutex` only so the
/// body stays `Sync` (only `get_mut` is ever used: no lock is taken).
struct Resume<B> {
    hook: Option<Mutex<Hook<B>>>,
    pending: Option<Mutex<Resumption<B>>>,
    body: Option<Pin<Box<B>>>,
    resumes: u32,
}

impl<B> Resume<B> {
    const fn none() -> Self {
        Resume {
            hook: None,
            pending: None,
            body: None,
            resumes: 0,
        }
    }
}

/// Fails the stream with `error`, unless a resume hook continues it (then `None`).
fn fail_or_resume<B>(
    state: &mut State,
    resume: &mut Resume<B>,
    error: StreamError,
) -> Option<BoxError> {
    if !state.priming
        && error.is_mid_stream()
        && let Some(hook) = &mut resume.hook
    {
        let hook = hook.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(continuation) = hook(&error) {
            state.on_resume(&error);
            resume.pending = Some(Mutex::new(continuation));
            resume.body = None;
            resume.resumes += 1;
            return None;
        }
    }
    Some(state.fail(error))
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
            resume: Resume::none(),
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

    /// Opt-in resumption: when the stream fails after its first byte (a stall, a reset, an
    /// in-band error), `hook` is asked for a continuation first. It sees the [`StreamError`]
    /// (what failed, what was delivered) and returns the body that continues the answer (for
    /// example the stream of a new request that sends the partial answer back as an assistant
    /// prefix), or `None` to end with the error. The continuation's bytes follow the delivered
    /// ones in this same body; its start and its pauses are bounded by the idle timeout, and a
    /// failure of the continuation asks the hook again (return `None` to stop).
    ///
    /// Nothing is resumed silently: the hook is yours, and it decides what the continuation
    /// asks for. The failure is still reported when it happens (breaker, metrics, log); the
    /// continuation is a call of its own (send it through a guarded stack to have it judged).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Full, StreamBody as Frames};
    /// use steadfast_http::stream::{StreamBody, StreamConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // The first stream dies after "Hel"; the continuation sends "lo".
    /// let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = vec![
    ///     Ok(http_body::Frame::data(Bytes::from_static(b"Hel"))),
    ///     Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset")),
    /// ];
    /// let first = Frames::new(futures_util_iter(frames)).boxed_unsync();
    /// let mut resumed = 0;
    /// let body = StreamBody::new(first, StreamConfig::default()).resume_with(move |failure| {
    ///     assert_eq!(failure.delivered().bytes, 3);
    ///     resumed += 1;
    ///     (resumed == 1).then(|| {
    ///         Box::pin(async {
    ///             let rest = Full::new(Bytes::from_static(b"lo"))
    ///                 .map_err(|never| -> std::io::Error { match never {} });
    ///             Ok(rest.boxed_unsync())
    ///         }) as steadfast_http::stream::Resumption<_>
    ///     })
    /// });
    /// let whole = body.collect().await.unwrap().to_bytes();
    /// assert_eq!(whole, "Hello");
    /// # }
    /// # fn futures_util_iter<T: Unpin>(items: Vec<T>) -> impl futures_core::Stream<Item = T> + Unpin {
    /// #     struct Iter<T>(std::vec::IntoIter<T>);
    /// #     impl<T: Unpin> futures_core::Stream for Iter<T> {
    /// #         type Item = T;
    /// #         fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<T>> {
    /// #             std::task::Poll::Ready(self.0.next())
    /// #         }
    /// #     }
    /// #     Iter(items.into_iter())
    /// # }
    /// ```
    #[must_use]
    pub fn resume_with<F>(mut self, hook: F) -> Self
    where
        F: FnMut(&StreamError) -> Option<Resumption<B>> + Send + 'static,
    {
        self.resume.hook = Some(Mutex::new(Box::new(hook)));
        self
    }

    /// How many times the stream was resumed.
    pub fn resumes(&self) -> u32 {
        self.resume.resumes
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

    /// A resume hook continues the stream after `error`: report the failure now, and start
    /// judging the continuation (a new SSE stream; counts go on).
    #[cold]
    fn on_resume(&mut self, error: &StreamError) {
        if let Some(report) = &mut self.report {
            report.resumed(error);
        }
        if let Some(scanner) = &mut self.scanner {
            scanner.restart();
        }
        self.pending_error = None;
        let now = Instant::now();
        self.active = false;
        self.last_active = now;
        self.rearm(now);
    }

    /// The frame held while priming, else the in-band error found in the last chunk.
    #[cold]
    fn take_stashed(&mut self) -> Stashed {
        if let Some(frame) = self.held.take() {
            return Stashed::Frame(frame);
        }
        match self.pending_error.take() {
            Some(error) => Stashed::Error(error),
            None => Stashed::Nothing,
        }
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
    /// The next frame from the agent (or a continuation), judged; holds nothing.
    #[inline]
    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            let state = &mut *this.state;
            let resume = &mut *this.resume;
            if state.done {
                return Poll::Ready(None);
            }
            if let Some(pending) = &mut resume.pending {
                let continuation = pending.get_mut().unwrap_or_else(PoisonError::into_inner);
                match continuation.as_mut().poll(cx) {
                    Poll::Ready(Ok(body)) => {
                        resume.pending = None;
                        resume.body = Some(Box::pin(body));
                        state.active = true;
                    }
                    Poll::Ready(Err(error)) => {
                        resume.pending = None;
                        let error = StreamError::body(error, state.delivered());
                        if let Some(error) = fail_or_resume(state, resume, error) {
                            return Poll::Ready(Some(Err(error)));
                        }
                    }
                    Poll::Pending => match state.poll_deadlines(cx) {
                        Poll::Ready(error) => {
                            if let Some(error) = fail_or_resume(state, resume, error) {
                                return Poll::Ready(Some(Err(error)));
                            }
                        }
                        Poll::Pending => return Poll::Pending,
                    },
                }
                continue;
            }
            let polled = match &mut resume.body {
                Some(body) => body.as_mut().poll_frame(cx),
                None => this.inner.as_mut().poll_frame(cx),
            };
            match polled {
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
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(Some(Err(error))) => {
                    let error = StreamError::body(error.into(), state.delivered());
                    if let Some(error) = fail_or_resume(state, resume, error) {
                        return Poll::Ready(Some(Err(error)));
                    }
                }
                Poll::Ready(None) => {
                    state.finish(Finish::Complete, Outcome::success(), None);
                    return Poll::Ready(None);
                }
                Poll::Pending => match state.poll_deadlines(cx) {
                    Poll::Ready(error) => {
                        if let Some(error) = fail_or_resume(state, resume, error) {
                            return Poll::Ready(Some(Err(error)));
                        }
                    }
                    Poll::Pending => return Poll::Pending,
                },
            }
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
        let this = self.as_mut().project();
        // `is_some` first: `take` would copy the whole (large) slot on every chunk.
        if this.state.held.is_some() || this.state.pending_error.is_some() {
            match this.state.take_stashed() {
                Stashed::Frame(frame) => return Poll::Ready(Some(Ok(frame))),
                Stashed::Error(error) => {
                    if let Some(error) = fail_or_resume(this.state, this.resume, error) {
                        return Poll::Ready(Some(Err(error)));
                    }
                }
                Stashed::Nothing => {}
            }
        }
        self.poll_next(cx)
    }

    fn is_end_stream(&self) -> bool {
        if self.state.held.is_some() || self.state.pending_error.is_some() {
            return false;
        }
        if self.state.done {
            return true;
        }
        if self.resume.pending.is_some() {
            return false;
        }
        match &self.resume.body {
            Some(body) => body.is_end_stream(),
            None => self.inner.is_end_stream(),
        }
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
