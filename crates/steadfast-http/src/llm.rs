//! The error vocabulary of LLM APIs: OpenAI, Azure OpenAI, Anthropic, Google Gemini and Vertex
//! AI, Mistral, and self-hosted vLLM, Hugging Face TGI and Ollama.
//!
//! [`classify_llm_error`] reads an error answer's status, headers and (bounded) body and says
//! what the provider meant, with a reason from [`reason`] (see the table there).
//! [`HttpClassifier`](crate::HttpClassifier) calls it for every error status whose body is
//! already in memory, and falls back to the status code when it returns `None`.
//!
//! Why not match substrings of the body: providers put links to their billing pages in ordinary
//! rate-limit messages (OpenAI's free tier: "…Please try again in 20s… Visit
//! `https://platform.openai.com/account/billing` to add a payment method."), and Gemini's
//! per-minute 429s open with "You exceeded your current quota". So the structured fields decide
//! (`error.code`, `error.type`, Gemini's `status` and `details`, Azure's `innererror`, TGI's
//! `error_type`), and the message is read only where no field decides, for anchored phrases
//! ("prompt is too long", "try pulling it first"), never a bare word.
//!
//! ```
//! use std::time::Duration;
//! use http::{HeaderMap, StatusCode};
//! use steadfast::OutcomeKind;
//! use steadfast_http::{llm, reason};
//!
//! let free_tier = br#"{"error":{"message":"Rate limit reached for default-gpt-3.5-turbo in organization org-xxx on requests per min. Limit: 3 / min. Please try again in 20s. Contact us through our help center at help.openai.com if you continue to have issues. Please add a payment method to your account to increase your rate limit. Visit https://platform.openai.com/account/billing to add a payment method.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
//! let outcome = llm::classify_llm_error(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), Some(free_tier)).unwrap();
//! assert_eq!(outcome.kind(), OutcomeKind::RateLimited);
//! assert_eq!(outcome.reason(), Some(reason::RATE_LIMITED));
//! assert_eq!(outcome.retry_after(), Some(Duration::from_secs(20)));
//! ```
//!
//! Hostile bodies are safe: at most [`MAX_ERROR_BODY`] bytes are parsed (a longer body is cut
//! and then usually fails to parse, leaving the status to decide), `serde_json` refuses nesting
//! deeper than 128 levels instead of overflowing the stack, numbers out of range fail the parse,
//! invalid UTF-8 fails the parse, and the phrase search runs over at most that many bytes.

use std::time::{Duration, SystemTime};

use http::header::{DATE, HeaderName};
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};
use steadfast::{Outcome, OutcomeKind};

use crate::reason;
use crate::retry_after::{parse_go_duration, parse_retry_after_at};

/// The most bytes of an error body that are parsed. Real error bodies are well under 4 KiB
/// (Azure's content-filter answer with its `innererror`, the largest seen, is about 800 bytes);
/// the bound keeps a hostile or mistaken multi-megabyte body from costing more than a few
/// hundred microseconds.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// `anthropic-ratelimit-requests-reset`: when the request limit is replenished (RFC 3339).
pub const ANTHROPIC_RATELIMIT_REQUESTS_RESET: HeaderName =
    HeaderName::from_static("anthropic-ratelimit-requests-reset");
/// `anthropic-ratelimit-tokens-reset`: when the token limit is replenished (RFC 3339).
pub const ANTHROPIC_RATELIMIT_TOKENS_RESET: HeaderName =
    HeaderName::from_static("anthropic-ratelimit-tokens-reset");
/// `anthropic-ratelimit-input-tokens-reset`: when the input-token limit is replenished.
pub const ANTHROPIC_RATELIMIT_INPUT_TOKENS_RESET: HeaderName =
    HeaderName::from_static("anthropic-ratelimit-input-tokens-reset");
/// `anthropic-ratelimit-output-tokens-reset`: when the output-token limit is replenished.
pub const ANTHROPIC_RATELIMIT_OUTPUT_TOKENS_RESET: HeaderName =
    HeaderName::from_static("anthropic-ratelimit-output-tokens-reset");

/// Each Anthropic limit: its reset header and the matching `…-remaining` header.
const ANTHROPIC_LIMITS: [(HeaderName, HeaderName); 4] = [
    (
        ANTHROPIC_RATELIMIT_REQUESTS_RESET,
        HeaderName::from_static("anthropic-ratelimit-requests-remaining"),
    ),
    (
        ANTHROPIC_RATELIMIT_TOKENS_RESET,
        HeaderName::from_static("anthropic-ratelimit-tokens-remaining"),
    ),
    (
        ANTHROPIC_RATELIMIT_INPUT_TOKENS_RESET,
        HeaderName::from_static("anthropic-ratelimit-input-tokens-remaining"),
    ),
    (
        ANTHROPIC_RATELIMIT_OUTPUT_TOKENS_RESET,
        HeaderName::from_static("anthropic-ratelimit-output-tokens-remaining"),
    ),
];

/// What an LLM provider's error answer means, or `None` when neither its body nor its headers
/// say more than its status code (the caller then classifies by status).
///
/// `body` is the answer's body if it is in memory; only its first [`MAX_ERROR_BODY`] bytes are
/// read. A success status is never classified here (`None`), and nothing is allocated before the
/// status is known to be an error. The wait ([`Outcome::retry_after`]) is set on transient and
/// rate-limited outcomes from [`header_retry_after`], else from the body (Gemini's
/// `RetryInfo.retryDelay`, Hugging Face's `estimated_time`, a wait named in the message).
pub fn classify_llm_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> Option<Outcome> {
    classify_llm_error_at(status, headers, body, SystemTime::now())
}

/// [`classify_llm_error`] with an explicit "now" for `Retry-After` dates and Anthropic's reset
/// instants when the answer has no `Date` header (for tests and replays).
pub fn classify_llm_error_at(
    status: StatusCode,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    now: SystemTime,
) -> Option<Outcome> {
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    with_body(body?, |fields, message| {
        let lower = message.map(str::to_ascii_lowercase);
        let lower = lower.as_deref();
        let outcome = from_fields(status, fields, lower).or_else(|| from_message(status, lower))?;
        if !matches!(
            outcome.kind(),
            OutcomeKind::Transient | OutcomeKind::RateLimited
        ) {
            return Some(outcome);
        }
        let wait = header_retry_after_at(headers, now).or_else(|| body_wait(fields, message));
        Some(match wait {
            Some(wait) => outcome.with_retry_after(wait),
            None => outcome,
        })
    })
}

/// The wait an error body names, for answers the status alone classifies (Azure's
/// `{"error":{"code":"429","message":"Rate limit is exceeded. Try again in 2 seconds."}}`):
/// Gemini's `RetryInfo.retryDelay`, else Hugging Face's `estimated_time`, else a wait named in
/// the message ([`wait_hint`]). At most [`MAX_ERROR_BODY`] bytes are read.
pub fn body_retry_after(body: &[u8]) -> Option<Duration> {
    with_body(body, body_wait)
}

fn body_wait(fields: &Fields<'_>, message: Option<&str>) -> Option<Duration> {
    fields
        .retry_delay()
        .or_else(|| fields.estimated_time())
        .or_else(|| message.and_then(wait_hint))
}

/// Parses at most [`MAX_ERROR_BODY`] bytes of `body` and hands its fields and message to `read`.
/// A body that is not JSON (a proxy's text page, a giant cut short) is read as one message.
fn with_body<R>(body: &[u8], read: impl FnOnce(&Fields<'_>, Option<&str>) -> R) -> R {
    let body = &body[..body.len().min(MAX_ERROR_BODY)];
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => {
            let fields = Fields::of(&value);
            read(&fields, fields.message)
        }
        Err(_) => read(&Fields::default(), Some(&String::from_utf8_lossy(body))),
    }
}

/// The wait the headers ask for: [`parse_retry_after`](crate::parse_retry_after)'s headers
/// (`retry-after-ms`, `Retry-After`, `x-ratelimit-reset-*`), else [`anthropic_reset_wait`].
pub fn header_retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_retry_after_at(headers, SystemTime::now())
}

/// [`header_retry_after`] with an explicit "now" (used when the answer has no `Date`).
pub fn header_retry_after_at(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    parse_retry_after_at(headers, now).or_else(|| anthropic_reset_wait(headers, now))
}

/// The wait until Anthropic's exhausted limit is replenished, from the
/// `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset` instants (RFC 3339).
///
/// The limits whose `…-remaining` is `0` are the ones that refused the call, so the latest of
/// their resets is the wait; when no `…-remaining` says `0` (or none is sent), the latest reset
/// of all. The instants are counted from the answer's `Date` header when it parses (both are the
/// server's clock, so a skewed local clock does not matter), else from `now`. A reset in the past
/// is a wait of zero; malformed values are skipped.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderMap;
/// use steadfast_http::llm::anthropic_reset_wait;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("date", "Tue, 26 Mar 2024 19:59:59 GMT".parse().unwrap());
/// headers.insert("anthropic-ratelimit-requests-remaining", "0".parse().unwrap());
/// headers.insert("anthropic-ratelimit-requests-reset", "2024-03-26T20:00:00Z".parse().unwrap());
/// assert_eq!(anthropic_reset_wait(&headers, SystemTime::now()), Some(Duration::from_secs(1)));
/// ```
pub fn anthropic_reset_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let mut exhausted: Option<SystemTime> = None;
    let mut any: Option<SystemTime> = None;
    for (reset, remaining) in &ANTHROPIC_LIMITS {
        let Some(at) = headers
            .get(reset)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_rfc3339)
        else {
            continue;
        };
        any = Some(any.map_or(at, |other| other.max(at)));
        let spent = headers
            .get(remaining)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|text| text.trim() == "0");
        if spent {
            exhausted = Some(exhausted.map_or(at, |other| other.max(at)));
        }
    }
    let at = exhausted.or(any)?;
    let server_now = headers
        .get(DATE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| httpdate::parse_http_date(text).ok())
        .unwrap_or(now);
    Some(at.duration_since(server_now).unwrap_or(Duration::ZERO))
}

/// A wait named in an error message: the duration after "try again in", "retry in" or "retry
/// after" (any case), compact Go-style (`20s`, `1.5s`, `6ms`, `2m30s`, `7m12s`,
/// `25.465784708s`) or a number and a word (`2 seconds`, `500 milliseconds`, `1 minute`).
///
/// ```
/// use std::time::Duration;
/// use steadfast_http::llm::wait_hint;
///
/// assert_eq!(wait_hint("Limit: 3 / min. Please try again in 20s. Contact us"), Some(Duration::from_secs(20)));
/// assert_eq!(wait_hint("Please try again in 2m30s."), Some(Duration::from_secs(150)));
/// assert_eq!(wait_hint("Rate limit is exceeded. Try again in 2 seconds."), Some(Duration::from_secs(2)));
/// assert_eq!(wait_hint("Please retry after 7 seconds."), Some(Duration::from_secs(7)));
/// assert_eq!(wait_hint("try again later"), None);
/// ```
pub fn wait_hint(message: &str) -> Option<Duration> {
    const ANCHORS: [&str; 3] = ["try again in ", "retry in ", "retry after "];
    for anchor in ANCHORS {
        let mut from = 0;
        while let Some(found) = find_ignore_ascii_case(&message[from..], anchor) {
            let start = from + found + anchor.len();
            if let Some(wait) = parse_hint_duration(&message[start..]) {
                return Some(wait);
            }
            from = start;
        }
    }
    None
}

/// The byte offset of `needle` (ASCII, lower case) in `haystack`, ignoring ASCII case.
fn find_ignore_ascii_case(haystack: &str, needle: &str) -> Option<usize> {
    let needle = needle.as_bytes();
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}

/// Parses the duration at the start of `text`; trailing text (". Contact us…") is ignored.
fn parse_hint_duration(text: &str) -> Option<Duration> {
    let (number, rest) = leading_number(text)?;
    if let Some(words) = rest.strip_prefix(' ') {
        let word_len = words
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(words.len());
        let scale = match words[..word_len].to_ascii_lowercase().as_str() {
            "ms" | "millisecond" | "milliseconds" => 1e-3,
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hour" | "hours" => 3600.0,
            _ => return None,
        };
        return Duration::try_from_secs_f64(number * scale).ok();
    }
    // Compact: one or more number-unit pairs, as Go prints durations.
    let mut total = 0.0_f64;
    let mut number = number;
    let mut rest = rest;
    loop {
        let (scale, unit_len) = if rest.starts_with("ms") {
            (1e-3, 2)
        } else if rest.starts_with("us") {
            (1e-6, 2)
        } else if rest.starts_with("µs") {
            (1e-6, "µs".len())
        } else if rest.starts_with("ns") {
            (1e-9, 2)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else {
            return None;
        };
        total += number * scale;
        rest = &rest[unit_len..];
        match leading_number(rest) {
            Some((next, after)) => {
                number = next;
                rest = after;
            }
            None => break,
        }
    }
    Duration::try_from_secs_f64(total).ok()
}

/// A non-negative decimal number at the start of `text` (`20`, `1.5`), and the rest.
fn leading_number(text: &str) -> Option<(f64, &str)> {
    let integer = text.bytes().take_while(u8::is_ascii_digit).count();
    if integer == 0 {
        return None;
    }
    let mut len = integer;
    if text[len..].starts_with('.') {
        let fraction = text[len + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if fraction > 0 {
            len += 1 + fraction;
        }
    }
    let number: f64 = text[..len].parse().ok()?;
    number.is_finite().then_some((number, &text[len..]))
}

/// The fields of an error body that classification reads, whatever the provider's envelope.
#[derive(Default)]
struct Fields<'a> {
    /// `error.code` when it is a string (OpenAI, Azure, Mistral); numeric codes repeat the status.
    code: Option<&'a str>,
    /// `error.type` (OpenAI, Anthropic, Mistral, vLLM) or TGI's `error_type`.
    kind: Option<&'a str>,
    /// Gemini's and Vertex's `error.status` (`RESOURCE_EXHAUSTED`, ...).
    status: Option<&'a str>,
    /// `error.message`, a string `error` (TGI, Ollama, Hugging Face), or `detail`.
    message: Option<&'a str>,
    /// Azure's `error.innererror.code`.
    inner_code: Option<&'a str>,
    /// Anthropic's `error.details.error_code`.
    detail_code: Option<&'a str>,
    /// Gemini's `error.details` (`google.rpc.ErrorInfo`, `RetryInfo`, ...).
    details: &'a [Value],
    /// Hugging Face's `estimated_time` (seconds until a loading model is ready).
    estimated_time: Option<f64>,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value) -> Self {
        // Vertex AI wraps the error object in a one-element array.
        let value = match value {
            Value::Array(items) => match items.first() {
                Some(first) => first,
                None => return Fields::default(),
            },
            other => other,
        };
        match value {
            Value::String(message) => Fields {
                message: Some(message),
                ..Fields::default()
            },
            Value::Object(top) => match top.get("error") {
                // OpenAI, Azure, Anthropic, Gemini, llama.cpp: {"error": {...}}.
                Some(Value::Object(error)) => Fields::of_envelope(error),
                // TGI, Ollama, Hugging Face: {"error": "...", "error_type"?, "estimated_time"?}.
                Some(Value::String(message)) => Fields {
                    message: Some(message),
                    kind: str_field(top, "error_type"),
                    estimated_time: top.get("estimated_time").and_then(Value::as_f64),
                    ..Fields::default()
                },
                // vLLM and Mistral: {"object": "error", "message", "type", "param", "code"};
                // also Mistral's bare {"message": ...} and FastAPI's {"detail": "..."}.
                _ => Fields::of_envelope(top),
            },
            _ => Fields::default(),
        }
    }

    fn of_envelope(error: &'a Map<String, Value>) -> Self {
        Fields {
            code: str_field(error, "code"),
            kind: str_field(error, "type"),
            status: str_field(error, "status"),
            message: str_field(error, "message").or_else(|| str_field(error, "detail")),
            inner_code: error
                .get("innererror")
                .and_then(Value::as_object)
                .and_then(|inner| str_field(inner, "code")),
            detail_code: error
                .get("details")
                .and_then(Value::as_object)
                .and_then(|details| str_field(details, "error_code")),
            details: error
                .get("details")
                .and_then(Value::as_array)
                .map_or(&[], Vec::as_slice),
            estimated_time: None,
        }
    }

    /// The `@type`-tagged entries of Gemini's `details` whose type name ends with `suffix`.
    fn details_of(&self, suffix: &'static str) -> impl Iterator<Item = &'a Map<String, Value>> {
        self.details
            .iter()
            .filter_map(Value::as_object)
            .filter(move |detail| str_field(detail, "@type").is_some_and(|t| t.ends_with(suffix)))
    }

    /// Gemini's `ErrorInfo.reason` (`API_KEY_INVALID`, ...) equals `wanted`.
    fn has_error_info(&self, wanted: &str) -> bool {
        self.details_of("google.rpc.ErrorInfo")
            .any(|info| str_field(info, "reason") == Some(wanted))
    }

    /// Gemini's `RetryInfo.retryDelay`, a protobuf duration such as `"20s"` or `"45.83s"`.
    fn retry_delay(&self) -> Option<Duration> {
        self.details_of("google.rpc.RetryInfo")
            .find_map(|info| str_field(info, "retryDelay").and_then(parse_go_duration))
    }

    fn estimated_time(&self) -> Option<Duration> {
        self.estimated_time
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
    }
}

fn str_field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    object.get(name).and_then(Value::as_str)
}

/// The verdict of the structured fields, most specific first.
fn from_fields(status: StatusCode, fields: &Fields<'_>, lower: Option<&str>) -> Option<Outcome> {
    // Anthropic's monthly spend cap arrives as an ordinary-looking 429 rate_limit_error; only
    // this field tells it apart, and no wait helps until the next month.
    if fields.detail_code == Some("enforced_spend_limit_reached") {
        return Some(Outcome::agent_fault(reason::QUOTA_EXHAUSTED));
    }
    if fields.inner_code == Some("ResponsibleAIPolicyViolation") {
        return Some(Outcome::caller_fault(reason::CONTENT_FILTERED));
    }
    if let Some(outcome) = fields.code.and_then(|code| from_code(code, lower)) {
        return Some(outcome);
    }
    if fields.has_error_info("API_KEY_INVALID") {
        return Some(Outcome::agent_fault(reason::AUTHENTICATION));
    }
    if let Some(outcome) = fields.kind.and_then(|kind| from_type(status, kind, lower)) {
        return Some(outcome);
    }
    fields
        .status
        .and_then(|google| from_google_status(google, lower))
}

/// OpenAI's and Azure's `error.code`.
fn from_code(code: &str, lower: Option<&str>) -> Option<Outcome> {
    Some(match code {
        "context_length_exceeded" => Outcome::caller_fault(reason::CONTEXT_LENGTH_EXCEEDED),
        "content_filter" | "content_policy_violation" => {
            Outcome::caller_fault(reason::CONTENT_FILTERED)
        }
        "insufficient_quota" => Outcome::agent_fault(reason::QUOTA_EXHAUSTED),
        // Azure writes the status as the code: {"error":{"code":"429","message":...}}.
        "rate_limit_exceeded" | "429" => rate_limited_unless_too_large(lower),
        "invalid_api_key" => Outcome::agent_fault(reason::AUTHENTICATION),
        "model_not_found" | "DeploymentNotFound" => Outcome::agent_fault(reason::MODEL_NOT_FOUND),
        "unsupported_country_region_territory" => Outcome::agent_fault(reason::PERMISSION_DENIED),
        "server_error" => Outcome::transient(reason::SERVER_ERROR),
        _ => return None,
    })
}

/// `error.type` (OpenAI, Anthropic, Mistral, vLLM's exception names) and TGI's `error_type`.
fn from_type(status: StatusCode, kind: &str, lower: Option<&str>) -> Option<Outcome> {
    Some(match kind {
        "overloaded_error" | "overloaded" => Outcome::transient(reason::OVERLOADED),
        "api_error"
        | "server_error"
        | "InternalServerError"
        | "generation"
        | "incomplete_generation" => Outcome::transient(reason::SERVER_ERROR),
        "rate_limit_error" | "rate_limited" => rate_limited_unless_too_large(lower),
        // OpenAI's older 429s name the exhausted limit in `type`.
        "requests" | "tokens" if status == StatusCode::TOO_MANY_REQUESTS => {
            rate_limited_unless_too_large(lower)
        }
        "insufficient_quota" | "billing_error" => Outcome::agent_fault(reason::QUOTA_EXHAUSTED),
        "authentication_error" => Outcome::agent_fault(reason::AUTHENTICATION),
        "permission_error" => Outcome::agent_fault(reason::PERMISSION_DENIED),
        "not_found_error" | "NotFoundError" => Outcome::agent_fault(reason::MODEL_NOT_FOUND),
        "request_too_large" => Outcome::caller_fault(reason::REQUEST_TOO_LARGE),
        // Generic "bad request" types: the message may name something more specific (Anthropic
        // reports the context window and an empty balance this way).
        "invalid_request_error" | "BadRequestError" | "validation" => {
            from_invalid_message(lower).unwrap_or(Outcome::caller_fault(reason::INVALID_REQUEST))
        }
        _ => return None,
    })
}

/// Gemini's and Vertex AI's canonical `error.status`.
fn from_google_status(status: &str, lower: Option<&str>) -> Option<Outcome> {
    Some(match status {
        "RESOURCE_EXHAUSTED" => Outcome::rate_limited(reason::RATE_LIMITED),
        "UNAVAILABLE" => Outcome::transient(reason::OVERLOADED),
        "INTERNAL" => Outcome::transient(reason::SERVER_ERROR),
        "DEADLINE_EXCEEDED" => Outcome::transient(reason::TIMEOUT),
        "UNAUTHENTICATED" => Outcome::agent_fault(reason::AUTHENTICATION),
        // FAILED_PRECONDITION is how Gemini says "not in your region / enable billing".
        "PERMISSION_DENIED" | "FAILED_PRECONDITION" => {
            Outcome::agent_fault(reason::PERMISSION_DENIED)
        }
        "NOT_FOUND" => Outcome::agent_fault(reason::MODEL_NOT_FOUND),
        "INVALID_ARGUMENT" => {
            from_invalid_message(lower).unwrap_or(Outcome::caller_fault(reason::INVALID_REQUEST))
        }
        _ => return None,
    })
}

/// A rate limit, unless the message says the request alone is over the per-minute token budget
/// (OpenAI: "Request too large for gpt-4o in organization org-… on tokens per min (TPM): Limit
/// 30000, Requested 36278."): that 429 repeats however long the caller waits.
fn rate_limited_unless_too_large(lower: Option<&str>) -> Outcome {
    if lower.is_some_and(says_request_over_token_budget) {
        Outcome::caller_fault(reason::TOKENS_OVER_LIMIT)
    } else {
        Outcome::rate_limited(reason::RATE_LIMITED)
    }
}

fn says_request_over_token_budget(lower: &str) -> bool {
    if !(lower.starts_with("request too large for") && lower.contains("tokens per min")) {
        return false;
    }
    // When both numbers are there, believe them over the wording.
    let number_after = |label: &str| {
        let start = lower.find(label)? + label.len();
        leading_number(&lower[start..]).map(|(number, _)| number)
    };
    match (number_after("limit "), number_after("requested ")) {
        (Some(limit), Some(requested)) => requested > limit,
        _ => true,
    }
}

/// Phrases that say the prompt is over the model's window, each with a second phrase it needs
/// (`""` when it stands alone).
const CONTEXT_PHRASES: [(&str, &str); 6] = [
    // OpenAI, Azure, vLLM, DeepSeek: "This model's maximum context length is 4097 tokens."
    ("maximum context length is", ""),
    // Anthropic: "prompt is too long: 208656 tokens > 200000 maximum".
    ("prompt is too long", ""),
    // vLLM V1: "The prompt (total length 25938) is too long to fit into the model".
    ("is too long to fit into the model", ""),
    // TGI: "`inputs` tokens + `max_new_tokens` must be <= 2048. Given: ...".
    ("`inputs` tokens + `max_new_tokens` must be <=", ""),
    // TGI: "`inputs` must have less than 1024 tokens. Given: 1168".
    ("`inputs` must have less than", ""),
    // Gemini: "The input token count (1200293) exceeds the maximum number of tokens allowed".
    ("input token count", "exceeds the maximum"),
];

/// Phrases of credits or spend limits that are used up.
const QUOTA_PHRASES: [&str; 3] = [
    // Anthropic: "Your credit balance is too low to access the Anthropic API."
    "credit balance is too low",
    // Anthropic: "You have reached your specified API usage limits." (and "workspace API").
    "you have reached your specified api usage limits",
    "you have reached your specified workspace api usage limits",
];

/// Phrases of a self-hosted server still loading its model. Hugging Face: "Model
/// bigscience/bloom is currently loading"; Ollama: "unexpected server status: llm server loading
/// model", "timed out waiting for llama runner to start".
const LOADING_PHRASES: [&str; 3] = [
    "is currently loading",
    "loading model",
    "waiting for llama runner to start",
];

/// Phrases of a server too busy to queue the request. Ollama: "server busy, please try again.
/// maximum pending requests exceeded" and "unexpected server status: llm busy - no slots
/// available"; TGI's message "Model is overloaded" when a proxy dropped its `error_type`.
const BUSY_PHRASES: [&str; 3] = [
    "server busy, please try again",
    "no slots available",
    "model is overloaded",
];

/// Anchored phrases inside generic "invalid request" answers.
fn from_invalid_message(lower: Option<&str>) -> Option<Outcome> {
    let lower = lower?;
    if CONTEXT_PHRASES
        .iter()
        .any(|(phrase, also)| lower.contains(phrase) && lower.contains(also))
    {
        return Some(Outcome::caller_fault(reason::CONTEXT_LENGTH_EXCEEDED));
    }
    if QUOTA_PHRASES.iter().any(|phrase| lower.contains(phrase)) {
        return Some(Outcome::agent_fault(reason::QUOTA_EXHAUSTED));
    }
    None
}

/// The last resort, for bodies without a deciding field (Ollama's and Hugging Face's bare
/// `{"error": "..."}`, text bodies): anchored phrases, each only with a status it can come with.
fn from_message(status: StatusCode, lower: Option<&str>) -> Option<Outcome> {
    let lower = lower?;
    if let Some(outcome) = from_invalid_message(Some(lower)) {
        return Some(outcome);
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        if LOADING_PHRASES.iter().any(|phrase| lower.contains(phrase)) {
            return Some(Outcome::transient(reason::MODEL_LOADING));
        }
        if BUSY_PHRASES.iter().any(|phrase| lower.contains(phrase)) {
            return Some(Outcome::transient(reason::OVERLOADED));
        }
    }
    if status == StatusCode::TOO_MANY_REQUESTS && says_request_over_token_budget(lower) {
        return Some(Outcome::caller_fault(reason::TOKENS_OVER_LIMIT));
    }
    // Ollama: "model \"llama3\" not found, try pulling it first".
    if status.is_client_error() && lower.contains("not found, try pulling it first") {
        return Some(Outcome::agent_fault(reason::MODEL_NOT_FOUND));
    }
    None
}

/// An RFC 3339 instant (`2024-03-26T20:00:00Z`, `2024-03-26T20:00:00.5+01:00`).
///
/// Written here because `httpdate` reads only HTTP-dates and no crate in the tree reads RFC 3339
/// with offsets; the arithmetic is the proleptic Gregorian "days from civil" of Howard Hinnant.
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.is_ascii() {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = &text[range];
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // 60 is a leap second; treat it as the next second's start.
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0_u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        // Only the first nine digits matter (nanoseconds); more are allowed and ignored.
        for (index, digit) in fraction.bytes().take(9).enumerate() {
            if index < len {
                nanos += u32::from(digit - b'0') * 10_u32.pow(8 - index as u32);
            }
        }
        rest = &fraction[len..];
    }
    let offset_seconds: i64 = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let part = [*h1, *h2, *m1, *m2];
            if !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let hours = i64::from(h1 - b'0') * 10 + i64::from(h2 - b'0');
            let minutes = i64::from(m1 - b'0') * 10 + i64::from(m2 - b'0');
            if hours > 23 || minutes > 59 {
                return None;
            }
            let magnitude = hours * 3600 + minutes * 60;
            if *sign == b'+' { magnitude } else { -magnitude }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let seconds = u64::try_from(seconds).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12; // March = 0
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc3339_instants_with_fractions_and_offsets() {
        let at = |text| {
            parse_rfc3339(text).map(|time| time.duration_since(SystemTime::UNIX_EPOCH).unwrap())
        };
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(Duration::ZERO));
        // 2024-03-26T20:00:00Z, checked against `date -d ... +%s`.
        assert_eq!(
            at("2024-03-26T20:00:00Z"),
            Some(Duration::from_secs(1_711_483_200))
        );
        assert_eq!(
            at("2024-03-26T21:00:00.25+01:00"),
            Some(Duration::new(1_711_483_200, 250_000_000))
        );
        assert_eq!(
            at("2024-03-26t19:30:00-00:30"),
            Some(Duration::from_secs(1_711_483_200))
        );
        assert_eq!(
            at("2000-02-29T00:00:00Z"),
            Some(Duration::from_secs(951_782_400))
        );
        for bad in [
            "",
            "2024-03-26",
            "2024-13-01T00:00:00Z",
            "2024-03-26T24:00:00Z",
            "2024-03-26T20:00:00",
            "2024-03-26T20:00:00+1:00",
            "1969-12-31T23:59:59Z",
            "2024-03-26T20:00:00.Z",
            "２０２４-03-26T20:00:00Z",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn wait_hints_in_the_forms_providers_write() {
        for (message, millis) in [
            ("Please try again in 20s.", 20_000),
            ("Please try again in 1.5s.", 1_500),
            ("Please try again in 6ms. Contact", 6),
            ("Please try again in 2m30s", 150_000),
            ("Please try again in 7m12s. Visit", 432_000),
            ("Please retry in 25.465784708s.", 25_465),
            ("Rate limit is exceeded. Try again in 30 seconds.", 30_000),
            ("Please retry after 86400 seconds.", 86_400_000),
            ("TRY AGAIN IN 1 minute", 60_000),
        ] {
            let wait = wait_hint(message).unwrap_or_else(|| panic!("{message}"));
            assert_eq!(wait.as_millis(), millis, "{message}");
        }
        for message in [
            "try again later",
            "try again in a moment",
            "retry in s",
            "please retry after the storm",
            "try again in 5 fortnights",
            "try again in 20x",
        ] {
            assert_eq!(wait_hint(message), None, "{message}");
        }
    }

    #[test]
    fn tpm_check_believes_the_numbers() {
        let over = "request too large for gpt-4o in organization org-x on tokens per min (tpm): limit 30000, requested 36278. the input";
        assert!(says_request_over_token_budget(over));
        let under = "request too large for gpt-4o in organization org-x on tokens per min (tpm): limit 30000, requested 2000.";
        assert!(!says_request_over_token_budget(under));
        assert!(!says_request_over_token_budget(
            "rate limit reached for gpt-4o on tokens per min (tpm): limit 30000, used 29000, requested 2000"
        ));
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips_through_days_from_civil(seconds in 0u64..253_402_300_799) {
            // Format with httpdate's civil conversion, then compare: two independent algorithms.
            let time = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
            let http = httpdate::fmt_http_date(time); // "Tue, 26 Mar 2024 20:00:00 GMT"
            let parsed = httpdate::parse_http_date(&http).unwrap();
            prop_assert_eq!(parsed, time);
            let fields: Vec<&str> = http.split([' ', ':']).collect();
            let month = ["Jan","Feb","Mar","Apr","May","Jun","Jul","Aug","Sep","Oct","Nov","Dec"]
                .iter().position(|m| *m == fields[2]).unwrap() + 1;
            let rfc = format!("{}-{:02}-{}T{}:{}:{}Z", fields[3], month, fields[1], fields[4], fields[5], fields[6]);
            prop_assert_eq!(parse_rfc3339(&rfc), Some(time), "{}", rfc);
        }

        #[test]
        fn wait_hint_never_panics(text in ".{0,200}") {
            let _ = wait_hint(&text);
        }
    }
}
