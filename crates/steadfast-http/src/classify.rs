//! [`HttpClassifier`] and [`GrpcClassifier`]: what an HTTP or gRPC answer means for the agent.

use std::any::Any;
use std::error::Error;
use std::io;

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderMap, Response, StatusCode};
use steadfast::BoxError;
use steadfast::classify::{Classify, Outcome, OutcomeKind, error_outcome};

use crate::body::{BodyTooLarge, BufferedBody};
use crate::llm;
use crate::reason;
use crate::retry_after::parse_retry_after;
use crate::stream::StreamInfo;

/// `x-should-retry: true|false`: the agent's own verdict (OpenAI, Anthropic), which overrides
/// the status code's.
pub const X_SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");
/// `grpc-status`: the status of a trailers-only gRPC response.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-retry-pushback-ms`: the wait a gRPC server asked for.
pub const GRPC_RETRY_PUSHBACK_MS: HeaderName = HeaderName::from_static("grpc-retry-pushback-ms");

/// Classifies `http::Response<B>` results and HTTP client errors:
///
/// | answer | outcome |
/// |---|---|
/// | 1xx, 2xx, 3xx | success |
/// | 2xx with a [`StreamInfo`] (a stream a [`StreamGuard`](crate::stream::StreamGuard) is still judging) | success, [deferred](Outcome::deferred): the breaker waits for the stream's end |
/// | an LLM provider's error body (OpenAI, Azure, Anthropic, Gemini, Vertex, Mistral, vLLM, TGI, Ollama) | what [`llm::classify_llm_error`] says, with a reason from [`reason`] |
/// | 408, 409, 500, 502, 503, 504, 529, other 5xx | transient (with `Retry-After` if sent) |
/// | 429 | rate-limited, with the wait from [`llm::header_retry_after`] or the body; never processed |
/// | 401, 403, 501 | agent fault |
/// | other 4xx | caller fault |
/// | 503 with `Retry-After` | transient, with the wait; never processed |
/// | `x-should-retry: true` on a failure | transient (rate-limited stays rate-limited; quota exhausted and tokens-over-limit stay final); the server says a repeat is safe |
/// | `x-should-retry: false` on a failure | transient becomes agent fault; no wait |
/// | connection refused | transient; never processed |
/// | reset, closed, timeout errors (`hyper`, `std::io`, `reqwest`, `reqwest_middleware`) | transient |
/// | a `reqwest::Error` from `error_for_status()` | as its status |
/// | errors that classify themselves (`CircuitOpen`, timeouts, ...) | as [`error_outcome`] says |
/// | a body over the buffering limit ([`BodyTooLarge`]) | caller fault |
/// | any other error | transient |
///
/// A success is decided from the status alone: no header is read, nothing is parsed or
/// allocated. Error bodies are read only when already in memory (`BufferedBody`, `Bytes`,
/// `String`, `Vec<u8>`, or a `reqwest::Response` whose error body `ReqwestAgent` read), and at
/// most [`llm::MAX_ERROR_BODY`] bytes of them; a streaming error answer is classified from its
/// status and headers.
///
/// With the `reqwest` feature it also classifies `reqwest::Response`s, by the same rules and
/// with the same memo (`Classify<reqwest::Request, reqwest::Response>` and
/// `Classify<http::Request<B>, reqwest::Response>`): one classifier per agent, whatever its
/// client.
///
/// # Requests that must not be sent twice
///
/// The classifier notes each request's method ([`Classify::note`]): `GET`, `HEAD`, `OPTIONS`,
/// `TRACE`, `PUT` and `DELETE` are idempotent (RFC 9110 §9.2.2), and so is any request that
/// carries an `Idempotency-Key` header; `POST`, `PATCH` and `CONNECT` are not. A retry layer
/// sends a non-idempotent request again only after a failure that proves the agent never acted
/// on it (the rows marked "never processed" above, and an open circuit), never after a
/// response timeout or a 500.
///
/// LLM APIs take prompts as `POST` but create nothing: repeating one costs tokens, not
/// correctness. For them use [`HttpClassifier::llm`] (or
/// [`all_methods_idempotent`](Self::all_methods_idempotent)), which retries every method.
///
/// ```
/// use std::time::Duration;
/// use steadfast::classify::OutcomeKind;
/// use steadfast_http::HttpClassifier;
///
/// let classifier = HttpClassifier::new();
/// let post = http::Request::post("https://api.example.com/v1/orders").body(()).unwrap();
/// let memo = classifier.idempotency(post.method(), post.headers());
/// assert!(!memo.is_idempotent());
///
/// let throttled = http::Response::builder().status(429).header("retry-after", "2").body(()).unwrap();
/// let outcome = classifier.classify_response(&throttled);
/// assert_eq!(outcome.kind(), OutcomeKind::RateLimited);
/// assert_eq!(outcome.retry_after(), Some(Duration::from_secs(2)));
/// assert!(outcome.is_unprocessed(), "a 429 is safe to repeat, even for a POST");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpClassifier {
    all_methods_idempotent: bool,
}

/// What [`HttpClassifier`] notes of a request: whether sending it twice is safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Idempotency {
    idempotent: bool,
}

impl Idempotency {
    /// Whether the request may be sent again after a failure that may have reached the agent.
    pub const fn is_idempotent(self) -> bool {
        self.idempotent
    }
}

/// `Idempotency-Key`: a client-chosen key that makes a `POST` safe to repeat (Stripe's
/// convention, sent by OpenAI's SDKs).
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

impl HttpClassifier {
    /// The classifier: non-idempotent requests are retried only after failures that never
    /// reached the agent.
    pub const fn new() -> Self {
        HttpClassifier {
            all_methods_idempotent: false,
        }
    }

    /// The classifier for LLM APIs, whose prompts are `POST`s that are safe to repeat: every
    /// method counts as idempotent. The same as `new().all_methods_idempotent()`.
    pub const fn llm() -> Self {
        HttpClassifier {
            all_methods_idempotent: true,
        }
    }

    /// The classifier a stack file names by kind (`classifier = "..."` in
    /// `steadfast::config`): `http` is [`new`](Self::new), `llm` is [`llm`](Self::llm); any
    /// other kind is `None`.
    ///
    /// ```
    /// use steadfast_http::HttpClassifier;
    ///
    /// assert_eq!(HttpClassifier::from_kind("llm"), Some(HttpClassifier::llm()));
    /// assert_eq!(HttpClassifier::from_kind("grpc"), None);
    /// ```
    pub fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "http" => Some(Self::new()),
            "llm" => Some(Self::llm()),
            _ => None,
        }
    }

    /// Counts every request as idempotent (see [`HttpClassifier::llm`]).
    #[must_use]
    pub const fn all_methods_idempotent(mut self) -> Self {
        self.all_methods_idempotent = true;
        self
    }

    /// Whether a request with this method and headers may be sent twice.
    pub fn idempotency(&self, method: &http::Method, headers: &HeaderMap) -> Idempotency {
        use http::Method;
        let idempotent = self.all_methods_idempotent
            || matches!(
                *method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::TRACE
                    | Method::PUT
                    | Method::DELETE
            )
            || headers.contains_key(&IDEMPOTENCY_KEY);
        Idempotency { idempotent }
    }

    /// Classifies a status and headers (no body).
    pub fn classify_parts(status: StatusCode, headers: &HeaderMap) -> Outcome {
        classify_http_response(status, headers, None)
    }

    /// Classifies a response (what the layers do through [`Classify`], without a request: the
    /// outcome of an answer does not depend on it).
    pub fn classify_response<B: 'static>(&self, response: &Response<B>) -> Outcome {
        classify_response_result(Ok(response))
    }
}

impl<ReqBody, B: 'static> Classify<http::Request<ReqBody>, Response<B>> for HttpClassifier {
    type Memo = Idempotency;

    #[inline]
    fn note(&self, request: &http::Request<ReqBody>) -> Idempotency {
        self.idempotency(request.method(), request.headers())
    }

    #[inline]
    fn classify(&self, _memo: &Idempotency, result: Result<&Response<B>, &BoxError>) -> Outcome {
        classify_response_result(result)
    }

    fn is_idempotent(&self, memo: &Idempotency) -> bool {
        memo.idempotent
    }
}

/// The classification of a response or a client error, whatever the request.
#[inline]
pub(crate) fn classify_response_result<B: 'static>(
    result: Result<&Response<B>, &BoxError>,
) -> Outcome {
    match result {
        Ok(response) if is_success(response.status()) => {
            // A guarded stream still running: its end is reported to the breaker later.
            if response.extensions().get::<StreamInfo>().is_some() {
                Outcome::success().deferred()
            } else {
                Outcome::success()
            }
        }
        Ok(response) => classify_http_response(
            response.status(),
            response.headers(),
            peek_body(response.body()).or_else(|| peeked_extension(response.extensions())),
        ),
        Err(error) => classify_error(error.as_ref()),
    }
}

#[inline]
fn is_success(status: StatusCode) -> bool {
    status.is_success() || status.is_informational() || status.is_redirection()
}

/// The error body `ReqwestAgent` read, when its answer was turned into an `http::Response`
/// (a guarded stream over reqwest: `http::Response::<reqwest::Body>::from`).
#[cfg_attr(not(feature = "reqwest"), allow(clippy::unnecessary_wraps))]
fn peeked_extension(extensions: &http::Extensions) -> Option<&[u8]> {
    #[cfg(feature = "reqwest")]
    {
        extensions
            .get::<crate::reqwest::PeekedBody>()
            .map(|peeked| peeked.0.as_ref())
    }
    #[cfg(not(feature = "reqwest"))]
    {
        let _ = extensions;
        None
    }
}

fn peek_body<B: 'static>(body: &B) -> Option<&[u8]> {
    let any: &dyn Any = body;
    if let Some(body) = any.downcast_ref::<BufferedBody>() {
        return Some(body.bytes());
    }
    if let Some(body) = any.downcast_ref::<Bytes>() {
        return Some(body);
    }
    if let Some(body) = any.downcast_ref::<String>() {
        return Some(body.as_bytes());
    }
    any.downcast_ref::<Vec<u8>>().map(Vec::as_slice)
}

/// What an HTTP answer means, from its status, headers and (if in memory) body: the
/// classification [`HttpClassifier`] applies to responses, as a free function.
///
/// A success status returns at once, before any header or body is looked at. For an error
/// status, [`llm::classify_llm_error`] reads the body (bounded by [`llm::MAX_ERROR_BODY`]);
/// when it finds nothing, the status decides. Then `x-should-retry` overrides, and a transient
/// or rate-limited outcome gets the wait from the headers or, failing those, the body.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use steadfast::OutcomeKind;
/// use steadfast_http::{classify_http_response, reason};
///
/// let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
/// let outcome = classify_http_response(StatusCode::from_u16(529).unwrap(), &HeaderMap::new(), Some(body));
/// assert_eq!(outcome.kind(), OutcomeKind::Transient);
/// assert_eq!(outcome.reason(), Some(reason::OVERLOADED));
/// ```
pub fn classify_http_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> Outcome {
    if is_success(status) {
        return Outcome::success();
    }
    let outcome = match llm::classify_llm_error(status, headers, body) {
        // Credits that are gone and a request bigger than the whole per-minute budget arrive
        // as 429s, where servers say `x-should-retry: true`; no wait fixes them, so they stay.
        Some(outcome)
            if matches!(
                outcome.reason(),
                Some(reason::QUOTA_EXHAUSTED | reason::TOKENS_OVER_LIMIT)
            ) =>
        {
            return outcome;
        }
        Some(outcome) => outcome,
        None => status_outcome(status),
    };
    let should_retry = headers
        .get(&X_SHOULD_RETRY)
        .map(http::HeaderValue::as_bytes);
    let outcome = match should_retry {
        // The server says repeating the request is safe: it did not act on it.
        Some(b"true") => match outcome.kind() {
            OutcomeKind::RateLimited | OutcomeKind::Transient => outcome.unprocessed(),
            _ => Outcome::transient(reason::X_SHOULD_RETRY).unprocessed(),
        },
        Some(b"false") => {
            return match outcome.kind() {
                OutcomeKind::Transient => Outcome::agent_fault(reason::X_SHOULD_RETRY_FALSE),
                _ => outcome,
            };
        }
        _ => outcome,
    };
    // A 429 refuses the request before any work; a 503 that names a wait is the server
    // saying "not now", before processing: both are safe to repeat whatever the method.
    let outcome = match status.as_u16() {
        429 => outcome.unprocessed(),
        503 if headers.contains_key(http::header::RETRY_AFTER) => outcome.unprocessed(),
        _ => outcome,
    };
    if outcome.retry_after().is_some()
        || !matches!(
            outcome.kind(),
            OutcomeKind::Transient | OutcomeKind::RateLimited
        )
    {
        return outcome;
    }
    let wait = llm::header_retry_after(headers).or_else(|| body.and_then(llm::body_retry_after));
    match wait {
        Some(wait) => outcome.with_retry_after(wait),
        None => outcome,
    }
}

/// The outcome of an error status whose body said nothing more.
fn status_outcome(status: StatusCode) -> Outcome {
    match status.as_u16() {
        429 => Outcome::rate_limited(reason::STATUS_429),
        408 => Outcome::transient(reason::STATUS_408),
        409 => Outcome::transient(reason::STATUS_409),
        500 => Outcome::transient(reason::STATUS_500),
        502 => Outcome::transient(reason::STATUS_502),
        503 => Outcome::transient(reason::STATUS_503),
        504 => Outcome::transient(reason::STATUS_504),
        529 => Outcome::transient(reason::STATUS_529),
        401 => Outcome::agent_fault(reason::STATUS_401),
        403 => Outcome::agent_fault(reason::STATUS_403),
        501 => Outcome::agent_fault(reason::STATUS_501),
        _ if status.is_server_error() => Outcome::transient(reason::STATUS_5XX),
        _ => Outcome::caller_fault(reason::STATUS_4XX),
    }
}

/// Classifies a client error: errors that classify themselves first (anywhere in the chain),
/// then `hyper`, `reqwest` and `std::io` errors found in the `source()` chain.
pub fn classify_error(error: &(dyn Error + 'static)) -> Outcome {
    if let Some(outcome) = error_outcome(error) {
        return outcome;
    }
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(outcome) = classify_one(error) {
            return outcome;
        }
        current = error.source();
    }
    Outcome::transient(reason::ERROR)
}

fn classify_one(error: &(dyn Error + 'static)) -> Option<Outcome> {
    if error.is::<BodyTooLarge>() {
        return Some(Outcome::caller_fault(reason::BODY_TOO_LARGE));
    }
    if let Some(error) = error.downcast_ref::<hyper::Error>() {
        if error.is_timeout() {
            return Some(Outcome::transient(reason::TIMEOUT));
        }
        if error.is_canceled() || error.is_closed() || error.is_incomplete_message() {
            return Some(Outcome::transient(reason::CONNECTION_CLOSED));
        }
        // Other hyper errors may wrap an I/O error: keep looking down the chain.
        return None;
    }
    #[cfg(feature = "reqwest")]
    if let Some(error) = error.downcast_ref::<reqwest::Error>() {
        if error.is_timeout() {
            return Some(Outcome::transient(reason::TIMEOUT));
        }
        if error.is_connect() {
            return Some(Outcome::transient(reason::CONNECT).unprocessed());
        }
        if error.is_builder() {
            return Some(Outcome::caller_fault(reason::INVALID_CLIENT_REQUEST));
        }
        // `Response::error_for_status` turned an answer into this error: judge the status.
        if let Some(status) = error.status() {
            return Some(classify_http_response(status, &HeaderMap::new(), None));
        }
        return None;
    }
    #[cfg(feature = "reqwest-middleware")]
    if let Some(error) = error.downcast_ref::<reqwest_middleware::Error>() {
        // Its variants are `transparent`: `source()` skips the error they wrap (the
        // `reqwest::Error` that knows it timed out), so classify that one directly.
        return Some(match error {
            reqwest_middleware::Error::Reqwest(error) => classify_error(error),
            reqwest_middleware::Error::Middleware(error) => classify_error(&**error),
        });
    }
    if let Some(error) = error.downcast_ref::<io::Error>() {
        use io::ErrorKind::{
            BrokenPipe, ConnectionAborted, ConnectionRefused, ConnectionReset, TimedOut,
            UnexpectedEof,
        };
        return match error.kind() {
            ConnectionRefused => Some(Outcome::transient(reason::CONNECT).unprocessed()),
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                Some(Outcome::transient(reason::CONNECTION_RESET))
            }
            TimedOut => Some(Outcome::transient(reason::TIMEOUT)),
            _ => None,
        };
    }
    None
}

/// Classifies gRPC answers: the `grpc-status` of a trailers-only response (an error sent
/// before any message, which is how servers reject calls) and client errors.
///
/// | code | outcome |
/// |---|---|
/// | 0 OK | success |
/// | 14 UNAVAILABLE, 4 DEADLINE_EXCEEDED, 10 ABORTED, 2 UNKNOWN, 13 INTERNAL, 15 DATA_LOSS | transient |
/// | 8 RESOURCE_EXHAUSTED | rate-limited, wait from `grpc-retry-pushback-ms` or `Retry-After` |
/// | 3 INVALID_ARGUMENT, 9 FAILED_PRECONDITION, 11 OUT_OF_RANGE, 1 CANCELLED, 5 NOT_FOUND, 6 ALREADY_EXISTS | caller fault |
/// | 16 UNAUTHENTICATED, 7 PERMISSION_DENIED, 12 UNIMPLEMENTED | agent fault |
///
/// A response without `grpc-status` in its headers is judged by its HTTP status (a gRPC
/// success is HTTP 200 whose status comes in the trailers, after the stream: a retry layer
/// cannot wait for those). For tonic, classify a `tonic::Status` with
/// [`GrpcClassifier::code`]`(status.code() as i32)`.
///
/// ```
/// use steadfast::classify::{Classify, OutcomeKind};
/// use steadfast_http::GrpcClassifier;
///
/// let unavailable = http::Response::builder().header("grpc-status", "14").body(()).unwrap();
/// let outcome = Classify::<(), _>::classify(&GrpcClassifier::new(), &(), Ok(&unavailable));
/// assert_eq!(outcome.kind(), OutcomeKind::Transient);
/// assert_eq!(GrpcClassifier::code(16).kind(), OutcomeKind::AgentFault);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrpcClassifier {
    _private: (),
}

impl GrpcClassifier {
    /// The classifier.
    pub const fn new() -> Self {
        GrpcClassifier { _private: () }
    }

    /// The outcome of a gRPC status code (see the table above).
    pub const fn code(code: i32) -> Outcome {
        match code {
            0 => Outcome::success(),
            14 => Outcome::transient("UNAVAILABLE"),
            4 => Outcome::transient("DEADLINE_EXCEEDED"),
            10 => Outcome::transient("ABORTED"),
            2 => Outcome::transient("UNKNOWN"),
            13 => Outcome::transient("INTERNAL"),
            15 => Outcome::transient("DATA_LOSS"),
            8 => Outcome::rate_limited("RESOURCE_EXHAUSTED"),
            3 => Outcome::caller_fault("INVALID_ARGUMENT"),
            9 => Outcome::caller_fault("FAILED_PRECONDITION"),
            11 => Outcome::caller_fault("OUT_OF_RANGE"),
            1 => Outcome::caller_fault("CANCELLED"),
            5 => Outcome::caller_fault("NOT_FOUND"),
            6 => Outcome::caller_fault("ALREADY_EXISTS"),
            16 => Outcome::agent_fault("UNAUTHENTICATED"),
            7 => Outcome::agent_fault("PERMISSION_DENIED"),
            12 => Outcome::agent_fault("UNIMPLEMENTED"),
            _ => Outcome::transient("grpc status"),
        }
    }

    /// Classifies the status and headers of a gRPC response.
    pub fn classify_parts(status: StatusCode, headers: &HeaderMap) -> Outcome {
        let Some(code) = headers.get(&GRPC_STATUS) else {
            return classify_http_response(status, headers, None);
        };
        let Some(code) = std::str::from_utf8(code.as_bytes())
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
        else {
            tracing::debug!(value = ?code, "malformed grpc-status");
            return Outcome::transient("malformed grpc-status");
        };
        let outcome = GrpcClassifier::code(code);
        if outcome.is_success() {
            return outcome;
        }
        let pushback = headers
            .get(&GRPC_RETRY_PUSHBACK_MS)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(std::time::Duration::from_millis);
        match pushback.or_else(|| parse_retry_after(headers)) {
            Some(wait) => outcome.with_retry_after(wait),
            None => outcome,
        }
    }
}

/// gRPC methods are all `POST`s on the wire and say nothing of their idempotency, so every
/// request counts as repeatable: retry only the codes the table calls transient.
impl<Req, B: 'static> Classify<Req, Response<B>> for GrpcClassifier {
    type Memo = ();

    #[inline]
    fn note(&self, _request: &Req) {}

    #[inline]
    fn classify(&self, _memo: &(), result: Result<&Response<B>, &BoxError>) -> Outcome {
        match result {
            Ok(response) => GrpcClassifier::classify_parts(response.status(), response.headers()),
            Err(error) => classify_grpc_error(error.as_ref()),
        }
    }
}

/// Classifies a gRPC client error: a `tonic::Status` anywhere in the chain by its code, else as
/// [`classify_error`].
#[cfg(feature = "grpc")]
pub fn classify_grpc_error(error: &(dyn Error + 'static)) -> Outcome {
    if let Some(outcome) = error_outcome(error) {
        return outcome;
    }
    match steadfast::error::find::<tonic::Status>(error) {
        Some(status) => GrpcClassifier::code(status.code() as i32),
        None => classify_error(error),
    }
}

#[cfg(not(feature = "grpc"))]
fn classify_grpc_error(error: &(dyn Error + 'static)) -> Outcome {
    classify_error(error)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use steadfast::OutcomeKind;

    use super::*;

    fn response(status: u16, headers: &[(&'static str, &'static str)]) -> Response<()> {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    fn http<B: 'static>(response: &Response<B>) -> Outcome {
        classify_response_result(Ok(response))
    }

    fn http_error(error: &BoxError) -> Outcome {
        classify_response_result::<()>(Err(error))
    }

    fn grpc(result: Result<&Response<()>, &BoxError>) -> Outcome {
        Classify::<(), _>::classify(&GrpcClassifier::new(), &(), result)
    }

    #[test]
    fn status_codes_map_to_the_documented_kinds() {
        use OutcomeKind::{AgentFault, CallerFault, RateLimited, Success, Transient};
        let table = [
            (200, Success),
            (204, Success),
            (304, Success),
            (408, Transient),
            (409, Transient),
            (500, Transient),
            (502, Transient),
            (503, Transient),
            (504, Transient),
            (529, Transient),
            (507, Transient),
            (429, RateLimited),
            (401, AgentFault),
            (403, AgentFault),
            (501, AgentFault),
            (400, CallerFault),
            (404, CallerFault),
            (413, CallerFault),
            (422, CallerFault),
        ];
        for (status, kind) in table {
            assert_eq!(http(&response(status, &[])).kind(), kind, "{status}");
        }
    }

    #[test]
    fn retry_after_rides_on_transient_and_rate_limited_answers() {
        let outcome = http(&response(503, &[("retry-after", "2")]));
        assert_eq!(outcome.retry_after(), Some(Duration::from_secs(2)));
        let outcome = http(&response(429, &[("retry-after-ms", "1500")]));
        assert_eq!(outcome.retry_after(), Some(Duration::from_millis(1500)));
        assert!(outcome.is_retryable());
        assert!(!http(&response(429, &[])).is_retryable(), "no wait known");
    }

    #[test]
    fn x_should_retry_overrides_the_status() {
        let outcome = http(&response(400, &[("x-should-retry", "true")]));
        assert_eq!(outcome.kind(), OutcomeKind::Transient);
        let outcome = http(&response(503, &[("x-should-retry", "false")]));
        assert_eq!(outcome.kind(), OutcomeKind::AgentFault);
        assert!(!outcome.is_retryable());
        let ok = http(&response(200, &[("x-should-retry", "true")]));
        assert!(ok.is_success());
    }

    #[test]
    fn quota_exhaustion_is_read_from_the_error_code_not_from_words_like_billing() {
        let body = r#"{"error":{"message":"You exceeded your current quota","code":"insufficient_quota"}}"#;
        let quota = Response::builder()
            .status(429)
            .header("retry-after", "1")
            .body(BufferedBody::from(body))
            .unwrap();
        assert_eq!(http(&quota).kind(), OutcomeKind::AgentFault);
        let rate = Response::builder()
            .status(429)
            .header("retry-after", "1")
            .body(String::from(r#"{"error":{"type":"rate_limit_error"}}"#))
            .unwrap();
        assert_eq!(http(&rate).kind(), OutcomeKind::RateLimited);
        // The old substring check called this quota exhaustion because of "billing".
        let billing_link = r#"{"error":{"message":"Please try again in 20s. Visit https://platform.openai.com/account/billing to add a payment method.","type":"requests","code":"rate_limit_exceeded"}}"#;
        let free_tier = Response::builder()
            .status(429)
            .body(Bytes::from(billing_link))
            .unwrap();
        let outcome = http(&free_tier);
        assert_eq!(outcome.kind(), OutcomeKind::RateLimited);
        assert_eq!(outcome.retry_after(), Some(Duration::from_secs(20)));
    }

    #[test]
    fn x_should_retry_true_keeps_a_transient_reason_and_never_revives_quota() {
        let overloaded = Response::builder()
            .status(529)
            .header("x-should-retry", "true")
            .body(Bytes::from_static(
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ))
            .unwrap();
        assert_eq!(http(&overloaded).reason(), Some(reason::OVERLOADED));
        let quota = Response::builder()
            .status(429)
            .header("x-should-retry", "true")
            .body(Bytes::from_static(
                br#"{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}"#,
            ))
            .unwrap();
        assert_eq!(http(&quota).reason(), Some(reason::QUOTA_EXHAUSTED));
        assert!(!http(&quota).is_retryable());
    }

    #[test]
    fn methods_are_idempotent_per_rfc_9110_unless_an_idempotency_key_or_the_llm_switch_says_so() {
        let classifier = HttpClassifier::new();
        let idempotent = |request: &http::Request<()>| {
            let memo = Classify::<_, Response<()>>::note(&classifier, request);
            Classify::<http::Request<()>, Response<()>>::is_idempotent(&classifier, &memo)
        };
        for method in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            let request = http::Request::builder().method(method).body(()).unwrap();
            assert!(idempotent(&request), "{method}");
        }
        for method in ["POST", "PATCH", "CONNECT"] {
            let request = http::Request::builder().method(method).body(()).unwrap();
            assert!(!idempotent(&request), "{method}");
        }
        let keyed = http::Request::post("/v1/chat/completions")
            .header("Idempotency-Key", "stainless-retry-1")
            .body(())
            .unwrap();
        assert!(idempotent(&keyed));
        let llm = HttpClassifier::llm();
        let post = http::Request::post("/v1/chat/completions")
            .body(())
            .unwrap();
        let memo = Classify::<_, Response<()>>::note(&llm, &post);
        assert!(Classify::<http::Request<()>, Response<()>>::is_idempotent(
            &llm, &memo
        ));
    }

    #[test]
    fn failures_that_never_reached_the_agent_are_marked_unprocessed() {
        assert!(http(&response(429, &[])).is_unprocessed());
        assert!(http(&response(503, &[("retry-after", "3")])).is_unprocessed());
        assert!(!http(&response(503, &[])).is_unprocessed());
        assert!(!http(&response(500, &[])).is_unprocessed());
        assert!(!http(&response(504, &[])).is_unprocessed());
        assert!(http(&response(500, &[("x-should-retry", "true")])).is_unprocessed());
    }

    #[test]
    fn connection_errors_are_transient_and_oversized_bodies_caller_faults() {
        let refused: BoxError = Box::new(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(
            http_error(&refused),
            Outcome::transient("connect").unprocessed()
        );
        let boxed: BoxError = Box::new(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(http_error(&boxed), Outcome::transient("connection reset"));
        let too_large: BoxError = Box::new(BodyTooLarge { limit: 1 });
        assert_eq!(http_error(&too_large).kind(), OutcomeKind::CallerFault);
        let other: BoxError = "weird".into();
        assert_eq!(http_error(&other), Outcome::transient("error"));
    }

    #[test]
    fn grpc_codes_map_to_the_documented_kinds() {
        use OutcomeKind::{AgentFault, CallerFault, RateLimited, Success, Transient};
        for (code, kind) in [
            (0, Success),
            (14, Transient),
            (4, Transient),
            (10, Transient),
            (8, RateLimited),
            (3, CallerFault),
            (9, CallerFault),
            (11, CallerFault),
            (16, AgentFault),
            (7, AgentFault),
            (12, AgentFault),
        ] {
            assert_eq!(GrpcClassifier::code(code).kind(), kind, "{code}");
        }
        let of = |headers: &[(&'static str, &'static str)]| grpc(Ok(&response(200, headers)));
        assert!(of(&[]).is_success(), "status arrives in trailers");
        let exhausted = of(&[("grpc-status", "8"), ("grpc-retry-pushback-ms", "250")]);
        assert_eq!(exhausted.retry_after(), Some(Duration::from_millis(250)));
        assert_eq!(of(&[("grpc-status", "x")]).kind(), Transient);
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn tonic_statuses_are_classified_by_code_even_when_boxed() {
        let unavailable: BoxError = Box::new(tonic::Status::unavailable("draining"));
        assert_eq!(grpc(Err(&unavailable)).kind(), OutcomeKind::Transient);
        let denied: BoxError = Box::new(tonic::Status::permission_denied("no"));
        assert_eq!(grpc(Err(&denied)).kind(), OutcomeKind::AgentFault);
    }
}
