//! The reasons [`HttpClassifier`](crate::HttpClassifier) puts on an
//! [`Outcome`](steadfast::Outcome): stable `&'static str`s that events, metrics, dead letters and
//! targeted fallback filter on. Compare against these constants rather than string literals.
//!
//! ```
//! use steadfast_http::{reason, BufferedBody, HttpClassifier};
//!
//! // Anthropic's answer to a prompt over the model's window.
//! let body = r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208656 tokens > 200000 maximum"}}"#;
//! let response = http::Response::builder().status(400).body(BufferedBody::from(body)).unwrap();
//! let outcome = HttpClassifier::llm().classify_response(&response);
//! // A fallback to a bigger-context model can filter on exactly this reason.
//! assert_eq!(outcome.reason(), Some(reason::CONTEXT_LENGTH_EXCEEDED));
//! ```
//!
//! # LLM providers' errors
//!
//! Read from the error body's structured fields first (`error.code`, `error.type`, Gemini's
//! `status` and `details`, TGI's `error_type`), from anchored phrases of the message only when no
//! field decides. "Retry" is what [`BackoffRetryLayer`](steadfast::retry::BackoffRetryLayer)
//! does, "breaker" what a circuit breaker counts, "fallback" whether a
//! `FallbackLayer` tries alternatives (caller faults go only
//! to alternatives that declare they handle that reason).
//!
//! | reason | kind | retry | breaker | fallback | produced for |
//! |---|---|---|---|---|---|
//! | [`CONTEXT_LENGTH_EXCEEDED`] | caller fault | no | ignored | targeted | OpenAI/Azure `code: context_length_exceeded`; Anthropic "prompt is too long"; Gemini "input token count … exceeds the maximum"; vLLM/DeepSeek "maximum context length is"; TGI "`inputs` tokens + `max_new_tokens` must be <=" |
//! | [`CONTENT_FILTERED`] | caller fault | no | ignored | targeted | OpenAI `content_policy_violation`; Azure `content_filter`, `innererror.code: ResponsibleAIPolicyViolation` |
//! | [`TOKENS_OVER_LIMIT`] | caller fault | no | ignored | targeted | OpenAI 429 "Request too large for … tokens per min (TPM): Limit L, Requested R" with R > L: no wait fixes it |
//! | [`REQUEST_TOO_LARGE`] | caller fault | no | ignored | targeted | Anthropic 413 `request_too_large` |
//! | [`INVALID_REQUEST`] | caller fault | no | ignored | targeted | OpenAI/Anthropic/Mistral `invalid_request_error`; vLLM `BadRequestError`; Gemini `INVALID_ARGUMENT`; TGI `validation` |
//! | [`RATE_LIMITED`] | rate-limited | after `retry_after` | failure | yes | OpenAI `rate_limit_exceeded`; Anthropic `rate_limit_error`; Gemini `RESOURCE_EXHAUSTED`; Mistral `rate_limited` |
//! | [`QUOTA_EXHAUSTED`] | agent fault | never (even with `x-should-retry: true`) | failure | yes | OpenAI `insufficient_quota`; Anthropic "credit balance is too low", "reached your specified API usage limits", `billing_error`, `enforced_spend_limit_reached` |
//! | [`OVERLOADED`] | transient | yes | failure | yes | Anthropic 529 `overloaded_error`; Gemini `UNAVAILABLE`; TGI 429 `overloaded`; Ollama "server busy" |
//! | [`SERVER_ERROR`] | transient | yes | failure | yes | OpenAI `server_error`; Anthropic `api_error`; Gemini `INTERNAL`; TGI `generation`; vLLM `InternalServerError` |
//! | [`MODEL_LOADING`] | transient | yes (`estimated_time` as the wait) | failure | yes | Hugging Face "is currently loading"; Ollama "llm server loading model", "waiting for llama runner to start" |
//! | [`TIMEOUT`] | transient | yes | failure | yes | Gemini `DEADLINE_EXCEEDED`; client-side timeouts |
//! | [`AUTHENTICATION`] | agent fault | no | failure | yes | OpenAI `invalid_api_key`; Anthropic `authentication_error`; Gemini `API_KEY_INVALID`, `UNAUTHENTICATED` |
//! | [`PERMISSION_DENIED`] | agent fault | no | failure | yes | Anthropic `permission_error`; Gemini `PERMISSION_DENIED`, `FAILED_PRECONDITION`; OpenAI `unsupported_country_region_territory` |
//! | [`MODEL_NOT_FOUND`] | agent fault | no | failure | yes | OpenAI `model_not_found`; Azure `DeploymentNotFound`; Anthropic `not_found_error`; Gemini `NOT_FOUND`; vLLM `NotFoundError`; Ollama "try pulling it first" |
//!
//! The wait of a transient or rate-limited answer comes from, in order: `retry-after-ms`,
//! `Retry-After`, `x-ratelimit-reset-requests`/`-tokens`, Anthropic's
//! `anthropic-ratelimit-*-reset` instants, Gemini's `RetryInfo.retryDelay`, Hugging Face's
//! `estimated_time`, and a wait named in the message ("Please try again in 20s", "retry after 7
//! seconds").
//!
//! # Status codes and transport errors
//!
//! An error answer whose body says nothing the table above knows is classified by its status:
//!
//! | reason | kind |
//! |---|---|
//! | [`STATUS_408`], [`STATUS_409`], [`STATUS_500`], [`STATUS_502`], [`STATUS_503`], [`STATUS_504`], [`STATUS_529`], [`STATUS_5XX`] | transient |
//! | [`STATUS_429`] | rate-limited |
//! | [`STATUS_401`], [`STATUS_403`], [`STATUS_501`] | agent fault |
//! | [`STATUS_4XX`] | caller fault |
//! | [`X_SHOULD_RETRY`] | transient: the agent said `x-should-retry: true` |
//! | [`X_SHOULD_RETRY_FALSE`] | agent fault: the agent said `x-should-retry: false` on a transient failure |
//! | [`CONNECT`], [`CONNECTION_RESET`], [`CONNECTION_CLOSED`], [`TIMEOUT`], [`ERROR`] | transient (client errors) |
//! | [`BODY_TOO_LARGE`], [`STREAMING_BODY`], [`INVALID_CLIENT_REQUEST`] | caller fault (client errors) |
//!
//! # Streamed answers
//!
//! A streamed answer ([`stream`](crate::stream)) that fails after its head: an in-band error
//! event is classified by the table above (Anthropic's `event: error` with `overloaded_error` is
//! [`OVERLOADED`]); the stream's own deadlines are:
//!
//! | reason | kind |
//! |---|---|
//! | [`FIRST_BYTE_TIMEOUT`], [`STREAM_STALLED`], [`STREAM_DEADLINE`] | transient |

// LLM providers' vocabulary (snake_case, provider-neutral).

/// The prompt (plus the requested completion) does not fit the model's context window. A model
/// with a bigger window may take it; the same model never will.
pub const CONTEXT_LENGTH_EXCEEDED: &str = "context_length_exceeded";
/// The provider's content policy refused the prompt (or would refuse the completion).
pub const CONTENT_FILTERED: &str = "content_filtered";
/// The request alone needs more tokens than the whole per-minute token budget: waiting for the
/// budget to refill cannot help.
pub const TOKENS_OVER_LIMIT: &str = "tokens_over_limit";
/// The request is over the provider's size limit in bytes (HTTP 413).
pub const REQUEST_TOO_LARGE: &str = "request_too_large";
/// The provider rejected the request as malformed or invalid, for no reason more specific above.
pub const INVALID_REQUEST: &str = "invalid_request";
/// The provider is throttling this caller; retry after the wait it named.
pub const RATE_LIMITED: &str = "rate_limited";
/// Credits, quota or a spend limit are used up: nothing works until someone pays or raises a
/// limit, so this is never retried.
pub const QUOTA_EXHAUSTED: &str = "quota_exhausted";
/// The provider (or its queue) is overloaded for everyone; back off and retry.
pub const OVERLOADED: &str = "overloaded";
/// The provider failed internally; retry.
pub const SERVER_ERROR: &str = "server_error";
/// A self-hosted server is still loading the model; retry, after `estimated_time` when given.
pub const MODEL_LOADING: &str = "model_loading";
/// The API key is missing, malformed, revoked or unknown.
pub const AUTHENTICATION: &str = "authentication";
/// The key is valid but may not use this resource (or region, or tier).
pub const PERMISSION_DENIED: &str = "permission_denied";
/// The model (or deployment) does not exist or this key cannot see it.
pub const MODEL_NOT_FOUND: &str = "model_not_found";

// Status-code reasons: the status said it all.

/// HTTP 408 Request Timeout.
pub const STATUS_408: &str = "408";
/// HTTP 409 Conflict.
pub const STATUS_409: &str = "409";
/// HTTP 429 Too Many Requests, with a body that says nothing more.
pub const STATUS_429: &str = "429";
/// HTTP 500 Internal Server Error.
pub const STATUS_500: &str = "500";
/// HTTP 502 Bad Gateway.
pub const STATUS_502: &str = "502";
/// HTTP 503 Service Unavailable.
pub const STATUS_503: &str = "503";
/// HTTP 504 Gateway Timeout.
pub const STATUS_504: &str = "504";
/// HTTP 529, Anthropic's "overloaded" status, with a body that says nothing more.
pub const STATUS_529: &str = "529";
/// HTTP 401 Unauthorized.
pub const STATUS_401: &str = "401";
/// HTTP 403 Forbidden.
pub const STATUS_403: &str = "403";
/// HTTP 501 Not Implemented.
pub const STATUS_501: &str = "501";
/// Any other 5xx.
pub const STATUS_5XX: &str = "5xx";
/// Any other 4xx.
pub const STATUS_4XX: &str = "4xx";
/// The agent said `x-should-retry: true` on a failure that would not otherwise be retried.
pub const X_SHOULD_RETRY: &str = "x-should-retry";
/// The agent said `x-should-retry: false` on a failure that would otherwise be retried.
pub const X_SHOULD_RETRY_FALSE: &str = "x-should-retry: false";

// Client (transport) errors.

/// The connection could not be established.
pub const CONNECT: &str = "connect";
/// The connection was reset, aborted or broken.
pub const CONNECTION_RESET: &str = "connection reset";
/// The connection closed before the answer was complete.
pub const CONNECTION_CLOSED: &str = "connection closed";
/// The call (or, for Gemini's `DEADLINE_EXCEEDED`, the provider) timed out.
pub const TIMEOUT: &str = "timeout";
/// A request body over the buffering limit of [`BufferedBody`](crate::BufferedBody).
pub const BODY_TOO_LARGE: &str = "request body too large";
/// A `reqwest::Request` with a streaming body met a layer that must be able to send it again
/// (`reqwest::StreamingBody`, feature `reqwest`).
pub const STREAMING_BODY: &str = "streaming request body";
/// The HTTP client could not build the request (reqwest's builder errors).
pub const INVALID_CLIENT_REQUEST: &str = "invalid request";
/// Any other client error.
pub const ERROR: &str = "error";

// Streamed answers.

/// No data byte arrived within the first-byte (first-token) deadline.
pub const FIRST_BYTE_TIMEOUT: &str = "first byte timeout";
/// A started stream went silent for longer than its idle timeout.
pub const STREAM_STALLED: &str = "stream stalled";
/// A stream was still running at its total deadline.
pub const STREAM_DEADLINE: &str = "stream deadline";
