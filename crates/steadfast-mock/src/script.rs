//! What the mock answers: a [`Reply`] per request, drawn from a route's [`Script`].

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use crate::stream::StreamReply;

/// One answer to one request.
///
/// Non-exhaustive so streaming replies (SSE: a list of events with pauses, an in-band error
/// event, a cut mid-stream) can be added as new variants without breaking scripts.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// A `200 OK` in the route's provider format: an OpenAI `chat.completion` or an Anthropic
    /// `message`, echoing the requested `model`.
    Success,
    /// An exact error answer: status, headers and body bytes as given.
    Fault(Fault),
    /// Waits, then answers with the inner reply (the wait counts from when the request's body
    /// has been read).
    Delayed(Duration, Box<Reply>),
    /// Reads the request, then closes the connection with a TCP reset (`SO_LINGER` 0) instead
    /// of answering: what a crashing upstream or a load balancer dropping the connection does.
    Reset,
    /// A `200 OK` streamed as server-sent events in the route's format, with the faults the
    /// [`StreamReply`] scripts.
    Stream(StreamReply),
}

impl From<StreamReply> for Reply {
    fn from(stream: StreamReply) -> Self {
        Reply::Stream(stream)
    }
}

impl Reply {
    /// This reply, after `wait`.
    #[must_use]
    pub fn after(self, wait: Duration) -> Reply {
        Reply::Delayed(wait, Box::new(self))
    }
}

impl From<Fault> for Reply {
    fn from(fault: Fault) -> Self {
        Reply::Fault(fault)
    }
}

/// An error answer, byte for byte: status, headers, body.
///
/// ```
/// use steadfast_mock::Fault;
///
/// let fault = Fault::json(503, r#"{"error":"busy"}"#).header("retry-after", "2");
/// assert_eq!(fault.status().as_u16(), 503);
/// assert_eq!(fault.headers()["retry-after"], "2");
/// assert_eq!(fault.headers()["content-type"], "application/json");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Fault {
    /// A fault with `status` and `body` and no headers.
    ///
    /// # Panics
    ///
    /// When `status` is not a valid HTTP status (100..=999): a script is test code, and a typo
    /// there should fail the test at once.
    pub fn new(status: u16, body: impl Into<Bytes>) -> Self {
        Fault {
            status: StatusCode::from_u16(status).expect("a status code in 100..=999"),
            headers: HeaderMap::new(),
            body: body.into(),
        }
    }

    /// A fault with a JSON body (`content-type: application/json`).
    pub fn json(status: u16, body: impl Into<Bytes>) -> Self {
        Fault::new(status, body).header(CONTENT_TYPE.as_str(), "application/json")
    }

    /// Adds a header (appended, so a name may repeat).
    ///
    /// # Panics
    ///
    /// When `name` or `value` is not a valid header name or value.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        let value = HeaderValue::from_str(value).expect("a valid header value");
        self.headers.append(name, value);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

/// A route's script: replies to give in order, then one to give for ever.
///
/// ```
/// use steadfast_mock::{faults, Reply, Script};
///
/// // Overloaded twice, then fine.
/// let mut script = Script::fail_next(2, faults::anthropic::overloaded());
/// assert!(matches!(script.next_reply(), Reply::Fault(_)));
/// assert!(matches!(script.next_reply(), Reply::Fault(_)));
/// assert_eq!(script.next_reply(), Reply::Success);
/// assert_eq!(script.next_reply(), Reply::Success);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    steps: VecDeque<Reply>,
    then: Reply,
}

impl Default for Script {
    /// Always succeed.
    fn default() -> Self {
        Script::always(Reply::Success)
    }
}

impl Script {
    /// Answer `reply` to every request.
    pub fn always(reply: impl Into<Reply>) -> Self {
        Script {
            steps: VecDeque::new(),
            then: reply.into(),
        }
    }

    /// Answer `reply` to the next `count` requests, then succeed.
    pub fn fail_next(count: usize, reply: impl Into<Reply>) -> Self {
        let reply = reply.into();
        Script {
            steps: std::iter::repeat_n(reply, count).collect(),
            then: Reply::Success,
        }
    }

    /// Answer `replies` in order, then succeed.
    pub fn steps(replies: impl IntoIterator<Item = Reply>) -> Self {
        Script {
            steps: replies.into_iter().collect(),
            then: Reply::Success,
        }
    }

    /// What to answer once the steps are used up (instead of success).
    #[must_use]
    pub fn then(mut self, reply: impl Into<Reply>) -> Self {
        self.then = reply.into();
        self
    }

    /// The reply to the next request, consuming a step if any is left.
    pub fn next_reply(&mut self) -> Reply {
        self.steps.pop_front().unwrap_or_else(|| self.then.clone())
    }

    /// Steps not yet used.
    pub fn remaining_steps(&self) -> usize {
        self.steps.len()
    }
}
