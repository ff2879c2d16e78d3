//! Canned error answers of real providers, byte for byte.
//!
//! The bodies are the fixtures of `steadfast-http`'s tests (one copy, so the mock and the
//! classifier tests cannot drift apart); `crates/steadfast-http/tests/fixtures/llm/SOURCES.md`
//! gives the public source of each. Headers are only those seen with them in the same sources;
//! add more with [`Fault::header`] (`retry-after`, `x-should-retry`, ...).

use crate::Fault;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../steadfast-http/tests/fixtures/llm/", $name))
    };
}

/// OpenAI and Azure OpenAI (`POST /v1/chat/completions`).
pub mod openai {
    use super::Fault;

    /// 429 of the free tier: `rate_limit_exceeded`, "Please try again in 20s", and a link to
    /// `.../account/billing` that is not a quota problem.
    pub fn rate_limit_free_tier() -> Fault {
        Fault::json(429, fixture!("openai_429_free_tier_rate_limit.json"))
    }

    /// 429 `insufficient_quota`: credits are gone; no wait helps.
    pub fn insufficient_quota() -> Fault {
        Fault::json(429, fixture!("openai_429_insufficient_quota.json"))
    }

    /// 400 `context_length_exceeded`.
    pub fn context_length_exceeded() -> Fault {
        Fault::json(400, fixture!("openai_400_context_length_exceeded.json"))
    }

    /// 429 "Request too large for gpt-4o … on tokens per min (TPM): Limit 30000, Requested 35064".
    pub fn request_over_tpm_budget() -> Fault {
        Fault::json(429, fixture!("openai_429_tpm_request_too_large.json"))
    }

    /// 401 `invalid_api_key`.
    pub fn invalid_api_key() -> Fault {
        Fault::json(401, fixture!("openai_401_invalid_api_key.json"))
    }

    /// 404 `model_not_found`.
    pub fn model_not_found() -> Fault {
        Fault::json(404, fixture!("openai_404_model_not_found.json"))
    }

    /// 503 `server_error`: "That model is currently overloaded with other requests."
    pub fn overloaded() -> Fault {
        Fault::json(503, fixture!("openai_503_model_overloaded.json"))
    }

    /// Azure OpenAI's 400 `content_filter` with its `innererror`.
    pub fn azure_content_filter() -> Fault {
        Fault::json(400, fixture!("azure_400_content_filter_innererror.json"))
    }

    /// The error object OpenAI sends inside a stream when the server fails mid-answer (a `data:`
    /// line with an `error` object, then the stream ends), for
    /// [`StreamReply::error_after`](crate::StreamReply::error_after).
    pub fn stream_server_error() -> &'static str {
        "data: {\"error\":{\"message\":\"The server had an error while processing your request. Sorry about that!\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n"
    }

    /// Azure OpenAI's 429 "Rate limit is exceeded. Try again in 2 seconds." with its
    /// `x-ratelimit-*` headers and no `retry-after`.
    pub fn azure_rate_limit() -> Fault {
        Fault::json(429, fixture!("azure_429_rate_limit.json"))
            .header("x-ratelimit-limit-requests", "8")
            .header("x-ratelimit-limit-tokens", "8000")
            .header("x-ratelimit-remaining-requests", "7")
            .header("x-ratelimit-remaining-tokens", "1014")
    }
}

/// Anthropic (`POST /v1/messages`).
pub mod anthropic {
    use super::Fault;

    /// 529 `overloaded_error`.
    pub fn overloaded() -> Fault {
        Fault::json(529, fixture!("anthropic_529_overloaded.json"))
    }

    /// 429 `rate_limit_error` with the `anthropic-ratelimit-*` headers of a real 429 (requests
    /// exhausted, reset one second after its `date`), `x-should-retry: true` and no
    /// `retry-after`.
    pub fn rate_limited() -> Fault {
        Fault::json(429, fixture!("anthropic_429_rate_limit.json"))
            .header("anthropic-ratelimit-requests-limit", "5")
            .header("anthropic-ratelimit-requests-remaining", "0")
            .header("anthropic-ratelimit-requests-reset", "2024-03-26T20:00:00Z")
            .header("anthropic-ratelimit-tokens-limit", "25000")
            .header("anthropic-ratelimit-tokens-remaining", "16000")
            .header("anthropic-ratelimit-tokens-reset", "2024-03-26T20:00:00Z")
            .header("date", "Tue, 26 Mar 2024 19:59:59 GMT")
            .header("request-id", "req_01T5fCVnYdf9X5ZW6KayReBK")
            .header("x-should-retry", "true")
    }

    /// Anthropic's mid-stream `event: error` with `overloaded_error`, as its streaming
    /// documentation shows it, for [`StreamReply::error_after`](crate::StreamReply::error_after).
    pub fn stream_overloaded() -> &'static str {
        "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n"
    }

    /// 400 "prompt is too long: 208310 tokens > 200000 maximum".
    pub fn prompt_too_long() -> Fault {
        Fault::json(400, fixture!("anthropic_400_prompt_too_long.json"))
    }

    /// 400 "Your credit balance is too low to access the Anthropic API."
    pub fn credit_balance_too_low() -> Fault {
        Fault::json(400, fixture!("anthropic_400_credit_balance_too_low.json"))
    }

    /// 400 "You have reached your specified API usage limits."
    pub fn usage_limits_reached() -> Fault {
        Fault::json(400, fixture!("anthropic_400_usage_limits.json"))
    }

    /// 401 `authentication_error` "invalid x-api-key".
    pub fn authentication() -> Fault {
        Fault::json(401, fixture!("anthropic_401_authentication.json"))
    }
}
