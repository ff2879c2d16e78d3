//! Streamed answers: server-sent events in OpenAI's and Anthropic's shapes, with scripted
//! faults (a stall before the first event or mid-way, a connection reset, an in-band error
//! event, a slow trickle).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use serde_json::json;
use tokio::time::Sleep;

use crate::Route;

/// A streamed (`text/event-stream`) answer: the events of a completion of `tokens` in the
/// route's format, then the end the script chose.
///
/// ```
/// use std::time::Duration;
/// use steadfast_mock::{faults, Reply, Route, StreamReply};
///
/// // Three tokens, one every 50 ms, then Anthropic's overloaded error event.
/// let reply: Reply = StreamReply::tokens(["Hel", "lo", "!"])
///     .every(Duration::from_millis(50))
///     .error_after(4, faults::anthropic::stream_overloaded())
///     .into();
/// # let _ = reply;
/// // An OpenAI stream is one event per token, a final chunk and `[DONE]`.
/// assert_eq!(StreamReply::tokens(["a", "b"]).events(Route::OpenAiChat).len(), 4);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct StreamReply {
    tokens: Vec<String>,
    gap: Duration,
    pauses: Vec<(usize, Duration)>,
    cut: Option<(usize, End)>,
}

/// How a cut stream ends.
#[derive(Clone, Debug, PartialEq)]
enum End {
    /// A TCP reset.
    Reset,
    /// Silence, the connection open, for ever.
    Hang,
    /// An error event, then the end of the body.
    Error(Bytes),
}

impl StreamReply {
    /// A completion of `tokens`, sent as fast as the connection takes them.
    pub fn tokens<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        StreamReply {
            tokens: tokens.into_iter().map(Into::into).collect(),
            gap: Duration::ZERO,
            pauses: Vec::new(),
            cut: None,
        }
    }

    /// Waits `gap` before each event after the first: a slow, steady trickle.
    #[must_use]
    pub fn every(mut self, gap: Duration) -> Self {
        self.gap = gap;
        self
    }

    /// Sends the head at once, then waits `wait` before the first event.
    #[must_use]
    pub fn stall_before_first(self, wait: Duration) -> Self {
        self.pause_after(0, wait)
    }

    /// Waits `wait` after the first `events` events (a stall mid-stream).
    #[must_use]
    pub fn pause_after(mut self, events: usize, wait: Duration) -> Self {
        self.pauses.push((events, wait));
        self
    }

    /// Resets the connection (TCP RST) after `events` events.
    #[must_use]
    pub fn reset_after(mut self, events: usize) -> Self {
        self.cut = Some((events, End::Reset));
        self
    }

    /// Goes silent for ever after `events` events, keeping the connection open (`0`: the head,
    /// then nothing).
    #[must_use]
    pub fn hang_after(mut self, events: usize) -> Self {
        self.cut = Some((events, End::Hang));
        self
    }

    /// Sends `event` (an SSE error event, see [`faults`](crate::faults)) after `events` events,
    /// then ends the body.
    #[must_use]
    pub fn error_after(mut self, events: usize, event: impl Into<Bytes>) -> Self {
        self.cut = Some((events, End::Error(event.into())));
        self
    }

    /// The events of the whole completion on `route` (before any cut), each ending with its
    /// blank line.
    pub fn events(&self, route: Route) -> Vec<Bytes> {
        events(route, &self.tokens, "mock-model", 0)
    }

    pub(crate) fn body(
        &self,
        route: Route,
        model: &str,
        number: u64,
        reset: Arc<AtomicBool>,
    ) -> SseBody {
        let mut events = events(route, &self.tokens, model, number);
        let mut end = None;
        if let Some((after, how)) = &self.cut {
            events.truncate(*after);
            end = Some(how.clone());
        }
        let mut steps = VecDeque::new();
        for (index, event) in events.into_iter().enumerate() {
            for (at, wait) in &self.pauses {
                if *at == index {
                    steps.push_back(Step::Wait(*wait));
                }
            }
            if index > 0 && !self.gap.is_zero() {
                steps.push_back(Step::Wait(self.gap));
            }
            steps.push_back(Step::Send(event));
        }
        let sent = steps
            .iter()
            .filter(|step| matches!(step, Step::Send(_)))
            .count();
        for (at, wait) in &self.pauses {
            if *at == sent {
                steps.push_back(Step::Wait(*wait));
            }
        }
        match end {
            Some(End::Reset) => steps.push_back(Step::Reset),
            Some(End::Hang) => steps.push_back(Step::Hang),
            Some(End::Error(event)) => {
                if !self.gap.is_zero() && sent > 0 {
                    steps.push_back(Step::Wait(self.gap));
                }
                steps.push_back(Step::Send(event));
            }
            None => {}
        }
        SseBody {
            steps,
            sleep: None,
            reset,
        }
    }
}

/// The events of a completion of `tokens` in `route`'s streaming format.
fn events(route: Route, tokens: &[String], model: &str, number: u64) -> Vec<Bytes> {
    let data = |value: serde_json::Value| Bytes::from(format!("data: {value}\n\n"));
    let named = |name: &str, value: serde_json::Value| {
        Bytes::from(format!("event: {name}\ndata: {value}\n\n"))
    };
    match route {
        Route::OpenAiChat => {
            let id = format!("chatcmpl-mock-{number}");
            let chunk = |delta: serde_json::Value, finish: Option<&str>| {
                data(json!({
                    "id": id, "object": "chat.completion.chunk", "created": 1_726_012_687,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
                }))
            };
            let mut out: Vec<Bytes> = tokens
                .iter()
                .map(|token| chunk(json!({"content": token}), None))
                .collect();
            out.push(chunk(json!({}), Some("stop")));
            out.push(Bytes::from_static(b"data: [DONE]\n\n"));
            out
        }
        Route::AnthropicMessages => {
            let mut out = vec![
                named(
                    "message_start",
                    json!({"type": "message_start", "message": {
                    "id": format!("msg_mock_{number}"), "type": "message", "role": "assistant",
                    "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 25, "output_tokens": 1}}}),
                ),
                named(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
                ),
            ];
            out.extend(tokens.iter().map(|token| {
                named(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": token}}),
                )
            }));
            out.push(named(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
            out.push(named(
                "message_delta",
                json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": tokens.len()}}),
            ));
            out.push(named("message_stop", json!({"type": "message_stop"})));
            out
        }
    }
}

#[derive(Debug)]
enum Step {
    Send(Bytes),
    Wait(Duration),
    Reset,
    Hang,
}

/// A scripted reset mid-body: hyper drops the connection, which the server resets.
#[derive(Debug, thiserror::Error)]
#[error("scripted connection reset mid-stream")]
pub(crate) struct StreamReset;

/// The body of a streamed reply: its steps, one at a time.
pub(crate) struct SseBody {
    steps: VecDeque<Step>,
    sleep: Option<Pin<Box<Sleep>>>,
    reset: Arc<AtomicBool>,
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = StreamReset;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamReset>>> {
        loop {
            if let Some(sleep) = &mut self.sleep {
                ready!(sleep.as_mut().poll(cx));
                self.sleep = None;
            }
            match self.steps.pop_front() {
                Some(Step::Send(event)) => return Poll::Ready(Some(Ok(Frame::data(event)))),
                Some(Step::Wait(wait)) => self.sleep = Some(Box::pin(tokio::time::sleep(wait))),
                Some(Step::Reset) => {
                    self.reset.store(true, Ordering::Release);
                    return Poll::Ready(Some(Err(StreamReset)));
                }
                Some(Step::Hang) => {
                    // Nothing will ever come; the server's shutdown aborts the connection.
                    self.steps.push_front(Step::Hang);
                    return Poll::Pending;
                }
                None => return Poll::Ready(None),
            }
        }
    }
}

/// `Infallible` bodies (whole answers) in the server's body type.
pub(crate) fn never(never: Infallible) -> StreamReset {
    match never {}
}
