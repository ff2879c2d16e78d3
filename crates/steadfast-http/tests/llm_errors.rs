//! LLM providers' real error answers through `HttpClassifier`. Every body is a fixture in
//! `tests/fixtures/llm/`, taken from the provider's docs, source or a public issue thread; the
//! URL is beside each use here and in `tests/fixtures/llm/SOURCES.md`.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use steadfast::classify::{Outcome, OutcomeKind};
use steadfast_http::{BufferedBody, HttpClassifier, reason};

fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", "llm", name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Classifies `body` answered with `status` and `headers`, as a `Response<Bytes>`.
fn classify(status: u16, headers: &[(&str, &str)], body: &str) -> Outcome {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = builder.body(Bytes::from(fixture(body))).unwrap();
    HttpClassifier::new().classify_response(&response)
}

fn assert_outcome(outcome: Outcome, kind: OutcomeKind, reason: &str) {
    assert_eq!(outcome.kind(), kind, "{outcome}");
    assert_eq!(outcome.reason(), Some(reason), "{outcome}");
}

// ---------------------------------------------------------------------------------------------
// OpenAI

#[test]
fn openai_free_tier_429_with_a_billing_link_is_a_rate_limit_of_20s() {
    // https://github.com/binary-husky/gpt_academic/issues/1105
    let outcome = classify(429, &[], "openai_429_free_tier_rate_limit.json");
    assert_outcome(outcome, OutcomeKind::RateLimited, reason::RATE_LIMITED);
    assert_eq!(outcome.retry_after(), Some(Duration::from_secs(20)));
    assert!(outcome.is_retryable());
    assert!(outcome.counts_against_agent());
}

#[test]
fn openai_free_tier_429_of_2023_with_a_null_code_is_read_from_its_type() {
    // https://github.com/ChatGPTNextWeb/NextChat/issues/793
    let outcome = classify(429, &[], "openai_429_free_tier_code_null.json");
    assert_outcome(outcome, OutcomeKind::RateLimited, reason::RATE_LIMITED);
    assert_eq!(outcome.retry_after(), Some(Duration::from_secs(20)));
}

#[test]
fn openai_insufficient_quota_is_an_agent_fault_that_is_never_retried() {
    // https://github.com/alexrudall/ruby-openai/issues/501
    let outcome = classify(429, &[], "openai_429_insufficient_quota.json");
    assert_outcome(outcome, OutcomeKind::AgentFault, reason::QUOTA_EXHAUSTED);
    assert!(!outcome.is_retryable());
    assert_eq!(outcome.retry_after(), None);
    // Not even when the server's headers invite a retry.
    let outcome = classify(
        429,
        &[("x-should-retry", "true"), ("retry-after", "1")],
        "openai_429_insufficient_quota.json",
    );
    assert_outcome(outcome, OutcomeKind::AgentFault, reason::QUOTA_EXHAUSTED);
    assert!(!outcome.is_retryable());
}

#[test]
fn openai_context_length_exceeded_is_a_caller_fault() {
    // https://github.com/chathub-dev/chathub/issues/126
    let outcome = classify(400, &[], "openai_400_context_length_exceeded.json");
    assert_outcome(
        outcome,
        OutcomeKind::CallerFault,
        reason::CONTEXT_LENGTH_EXCEEDED,
    );
    assert!(!outcome.counts_against_agent());
}

#[test]
fn openai_429_for_a_request_over_the_whole_tpm_budget_is_a_caller_fault() {
    // https://github.com/enricoros/big-AGI/issues/636: Limit 30000, Requested 35064.
    let outcome = classify(
        429,
        &[("x-should-retry", "true"), ("retry-after", "1")],
        "openai_429_tpm_request_too_large.json",
    );
    assert_outcome(outcome, OutcomeKind::CallerFault, reason::TOKENS_OVER_LIMIT);
    assert!(!outcome.is_retryable());
    assert!(!outcome.counts_against_agent());
}

#[test]
fn openai_invalid_api_key_and_unknown_model_are_agent_faults() {
    // https://github.com/chatanywhere/GPT_API_free/issues/62
    let outcome = classify(401, &[], "openai_401_invalid_api_key.json");
    assert_outcome(outcome, OutcomeKind::AgentFault, reason::AUTHENTICATION);
    // https://github.com/rd-1-2022/ai-openai-helloworld/issues/9
    let outcome = classify(404, &[], "openai_404_model_not_found.json");
    assert_outcome(outcome, OutcomeKind::AgentFault, reason::MODEL_NOT_FOUND);
}

#[test]
fn openai_503_server_error_is_transient() {
    // https://github.com/ikechan8370/chatgpt-plugin/issues/125
    let outcome = classify(503, &[], "openai_503_model_overloaded.json");
    assert_outcome(outcome, OutcomeKind::Transient, reason::SERVER_ERROR);
}

#[test]
fn openai_retry_after_ms_beats_retry_after_and_the_reset_headers() {
    // Headers of a real 429: https://github.com/wrtnlabs/autobe/issues/136
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("retry-after", "1"),
        ("retry-after-ms", "494"),
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-limit-tokens", "30000000"),
        ("x-ratelimit-remaining-requests", "9999"),
        ("x-ratelimit-remaining-tokens", "0"),
        ("x-ratelimit-reset-requests", "6ms"),
        ("x-ratelimit-reset-tokens", "1m0.052s"),
    ] {
        headers.insert(name, value.parse().unwrap());
    }
    let outcome = HttpClassifier::classify_parts(StatusCode::TOO_MANY_REQUESTS, &headers);
    assert_outcome(outcome, OutcomeKind::RateLimited, reason::STATUS_429);
    assert_eq!(outcome.retry_after(), Some(Duration::from_millis(494)));
    // The header's wait wins over the 20 s a body names.
    let mut builder = Response::builder().status(429);
    for (name, value) in &headers {
        builder = builder.header(name, value);
    }
    let response = builder
        .body(Bytes::from(fixture("openai_429_free_tier_rate_limit.json")))
        .unwrap();
    let outcome = HttpClassifier::new().classify_response(&response);
    assert_eq!(outcome.retry_after(), Some(Duration::from_millis(494)));
}

// ---------------------------------------------------------------------------------------------
// Azure OpenAI

#[test]
fn azure_content_filter_is_a_caller_fault_with_or_without_innererror() {
    // https://github.com/openai/openai-python/issues/331
    let outcome = classify(400, &[], "azure_400_content_filter.json");
    assert_outcome(outcome, OutcomeKind::CallerFault, reason::CONTENT_FILTERED);
    // https://github.com/compl-ai/compl-ai/issues/20
    let outcome = classify(400, &[], "azure_400_content_filter_innererror.json");
    assert_outcome(outcome, OutcomeKind::CallerFault, reason::CONTENT_FILTERED);
}

#[test]
fn azure_429_takes_its_wait_from_the_message_when_no_header_names_one() {
    // Body and headers: https://github.com/microsoft/copilot-camp/issues/551
    let outcome = classify(
        429,
        &[
            ("x-ratelimit-limit-requests", "8"),
            ("x-ratelimit-limit-tokens", "8000"),
            ("x-ratelimit-remaining-requests", "7"),
            ("x-ratelimit-remaining-tokens", "1014"),
        ],
        "azure_429_rate_limit.json",
    );
    assert_outcome(outcome, OutcomeKind::RateLimited, reason::RATE_LIMITED);
    assert_eq!(outcome.retry_after(), Some(Duration::from_secs(2)));
}

// ---------------------------------------------------------------------------------------------
// Anthropic

#[test]
fn anthropic_529_overloaded_is_transient() {
    // https://docs.llmgateway.io/troubleshooting/anthropic-529-overloaded
    let outcome = classify(529, &[], "anthropic_529_overloaded.json");
    assert_outcome(outcome, OutcomeKind::Transient, reason::OVERLOADED);
    assert!(outcome.is_retryable());
    let outcome = classify(
        529,
        &[("x-should-retry", "true"), ("retry-after", "3")],
        "anthropic_529_overloaded.json",
    );
    assert_outcome(outcome, OutcomeKind::Transient, reason::OVERLOADED);
    assert_eq!(outcome.retry_after(), Some(Duration::from_secs(3)));
}

#[test]
fn anthropic_prompt_is_too_long_is_a_context_length_caller_fault() {
    // https://github.com/anthropics/claude-code/issues/12186
    let outcome = classify(400, &[], "anthropic_400_prompt_too_long.json");
    assert_outcome(
        outcome,
        OutcomeKind::CallerFault,
        reason::CONTEXT_LENGTH_EXCEEDED,
    );
}

#[test]
fn anthropic_400_credit_balance_and_usage_limits_are_agent_faults() {
    // https://github.com/anthropics/claude-code/issues/66314
    let outcome = classify(400, &[], "anthropic_400_credit_balance_too_low.json");
    assert_outcome(outcome, OutcomeKind::AgentFault, reason::QUOTA_EXHAUSTED);
    assert!(!outcome.is_retryable());
    assert!(outcome.counts_against_agent());
    // https://github.com/anthropics/claude-code/issues/38035
    let outcome = classify(400, &[], "anthropic_400_usage_limits.json");
    assert_outcome(outcome, OutcomeKind::AgentFault, reason::QUOTA_EXHAUSTED);
}

#[test]
fn anthropic_429_waits_for_the_exhausted_limit_to_reset_by_the_server_clock() {
    // Body: https://github.com/anthropics/claude-code/issues/71670. Headers (no retry-after):
    // https://github.com/anthropics/anthropic-sdk-typescript/issues/357.
    let headers = [
        ("anthropic-ratelimit-requests-limit", "5"),
        ("anthropic-ratelimit-requests-remaining", "0"),
        ("anthropic-ratelimit-requests-reset", "2024-03-26T20:00:00Z"),
        ("anthropic-ratelimit-tokens-limit", "25000"),
        ("anthropic-ratelimit-tokens-remaining", "16000"),
        ("anthropic-ratelimit-tokens-reset", "2024-03-26T20:00:00Z"),
        ("date", "Tue, 26 Mar 2024 19:59:59 GMT"),
        ("request-id", "req_01T5fCVnYdf9X5ZW6KayReBK"),
        ("x-should-retry", "true"),
    ];
    let outcome = classify(429, &headers, "anthropic_429_rate_limit.json");
    assert_outcome(outcome, OutcomeKind::RateLimited, reason::RATE_LIMITED);
    // 20:00:00 less the 19:59:59 of `date`, whatever this machine's clock says.
    assert_eq!(outcome.retry_after(), Some(Duration::from_secs(1)));
    // With no body the same headers still give the wait.
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(name, value.parse().unwrap());
    }
    let outcome = HttpClassifier::classify_parts(StatusCode::TOO_MANY_REQUESTS, &map);
    assert_eq!(outcome.retry_after(), Some(Duration::from_secs(1)));
}

#[test]
fn anthropic_429_with_null_details_is_a_plain_rate_limit() {
    // https://github.com/anthropics/claude-code/issues/69703
    let outcome = classify(429, &[], "anthropic_429_details_null.json");
    assert_outcome(outcome, OutcomeKind::RateLimited, reason::RATE_LIMITED);
    assert!(
        !outcome.is_retryable(),
        "no wait named: not retried blindly"
    );
}

#[test]
fn anthropic_authentication_error_is_an_agent_fault() {
    // https://github.com/cline/cline/issues/12
    let outcome = classify(401, &[], "anthropic_401_authentication.json");
    assert_outcome(outcome, OutcomeKind::AgentFault, reason::AUTHENTICATION);
}

// ---------------------------------------------------------------------------------------------
// Google Gemini and Vertex AI

#[test]
fn gemini_429_is_a_rate_limit_with_its_retry_info_despite_the_quota_wording() {
    // https://github.com/RooCodeInc/Roo-Code/issues/3883: the message says "You exceeded your
    // current quota, please check your plan and billing details" for a per-minute limit.
    let outcome = classify(429, &[], "gemini_429_resource_exhausted_retry_info.json");
    assert_outcome(outcome, OutcomeKind::RateLimited, reason::RATE_LIMITED);
    assert_eq!(outcome.retry_after(), Some(Duration::from_secs(26)));
}

#[test]
fn gemini_400_api_key_invalid_is_an_agent_fault() {
    // https://github.com/continuedev/continue/issues/8516 (array-wrapped as received)
    let outcome = classify(400, &[], "gemini_400_api_key_invalid.json");
    assert_outcome(outcome, OutcomeKind::AgentFault, reason::AUTHENTICATION);
}

#[test]
fn gemini_input_token_count_over_the_maximum_is_a_context_length_fault() {
    // https://github.com/google-gemini/gemini-cli/issues/6678
    let outcome = classify(400, &[], "gemini_400_input_token_count.json");
    assert_outcome(
        outcome,
        OutcomeKind::CallerFault,
        reason::CONTEXT_LENGTH_EXCEEDED,
    );
}

#[test]
fn gemini_503_unavailable_is_transient() {
    // https://github.com/google-gemini/cookbook/issues/425
    let outcome = classify(503, &[], "gemini_503_model_overloaded.json");
    assert_outcome(outcome, OutcomeKind::Transient, reason::OVERLOADED);
}

#[test]
fn vertex_array_wrapped_429_is_a_rate_limit() {
    // https://github.com/google-gemini/gemini-cli/issues/14831: "try again later" names no wait.
    let outcome = classify(429, &[], "vertex_429_resource_exhausted_array.json");
    assert_outcome(outcome, OutcomeKind::RateLimited, reason::RATE_LIMITED);
    assert_eq!(outcome.retry_after(), None);
    let outcome = classify(
        429,
        &[("retry-after", "5")],
        "vertex_429_resource_exhausted_array.json",
    );
    assert_eq!(outcome.retry_after(), Some(Duration::from_secs(5)));
}

// ---------------------------------------------------------------------------------------------
// Self-hosted: vLLM, TGI, Ollama, Hugging Face; and Mistral

#[test]
fn vllm_flat_errors_are_caller_faults() {
    // https://github.com/vllm-project/vllm/issues/4667
    let outcome = classify(400, &[], "vllm_400_bad_request.json");
    assert_outcome(outcome, OutcomeKind::CallerFault, reason::INVALID_REQUEST);
    // Message of https://github.com/vllm-project/vllm/issues/20409 in vLLM's envelope.
    let outcome = classify(400, &[], "vllm_400_context_length.json");
    assert_outcome(
        outcome,
        OutcomeKind::CallerFault,
        reason::CONTEXT_LENGTH_EXCEEDED,
    );
}

#[test]
fn tgi_422_too_long_input_and_429_full_queue() {
    // https://github.com/huggingface/text-generation-inference/issues/628, TGI's envelope.
    let outcome = classify(422, &[], "tgi_422_validation.json");
    assert_outcome(
        outcome,
        OutcomeKind::CallerFault,
        reason::CONTEXT_LENGTH_EXCEEDED,
    );
    // TGI router/src/infer.rs + server.rs: a full queue is 429 `overloaded`, a server-side
    // condition that backoff helps, not a per-caller rate limit with a wait.
    let outcome = classify(429, &[], "tgi_429_overloaded.json");
    assert_outcome(outcome, OutcomeKind::Transient, reason::OVERLOADED);
    assert!(outcome.is_retryable());
}

#[test]
fn ollama_errors_by_their_anchored_phrases() {
    // https://github.com/ollama/ollama/issues/3876
    let outcome = classify(404, &[], "ollama_404_model_not_found.json");
    assert_outcome(outcome, OutcomeKind::AgentFault, reason::MODEL_NOT_FOUND);
    // ollama server/sched.go ErrMaxQueue, 503 since ollama/ollama#4144.
    let outcome = classify(503, &[], "ollama_503_server_busy.json");
    assert_outcome(outcome, OutcomeKind::Transient, reason::OVERLOADED);
    // https://github.com/ollama/ollama/issues/4159
    let outcome = classify(500, &[], "ollama_500_no_slots.json");
    assert_outcome(outcome, OutcomeKind::Transient, reason::OVERLOADED);
}

#[test]
fn hugging_face_model_loading_waits_its_estimated_time() {
    // https://github.com/huggingface/transformers/issues/32665
    let outcome = classify(503, &[], "huggingface_503_model_loading.json");
    assert_outcome(outcome, OutcomeKind::Transient, reason::MODEL_LOADING);
    assert_eq!(outcome.retry_after(), Some(Duration::from_secs(20)));
}

#[test]
fn mistral_flat_errors() {
    // https://github.com/solbrowse/extension/issues/16
    let outcome = classify(400, &[], "mistral_400_invalid_request.json");
    assert_outcome(outcome, OutcomeKind::CallerFault, reason::INVALID_REQUEST);
    // https://github.com/cline/cline/issues/9085
    let outcome = classify(429, &[], "mistral_429_rate_limited.json");
    assert_outcome(outcome, OutcomeKind::RateLimited, reason::RATE_LIMITED);
    // https://github.com/editor-code-assistant/eca/issues/231: `message` is an object.
    let outcome = classify(422, &[], "mistral_422_message_object.json");
    assert_outcome(outcome, OutcomeKind::CallerFault, reason::INVALID_REQUEST);
    // https://github.com/pydantic/pydantic-ai/issues/1885: no field decides, the status does.
    let outcome = classify(429, &[], "mistral_429_bare_message.json");
    assert_outcome(outcome, OutcomeKind::RateLimited, reason::STATUS_429);
}

// ---------------------------------------------------------------------------------------------
// Which bodies are read

#[test]
fn every_in_memory_body_type_is_read_and_a_streaming_body_is_not() {
    let body = fixture("anthropic_400_prompt_too_long.json");
    let text = String::from_utf8(body.clone()).unwrap();
    let http = |response: &dyn Fn() -> Outcome| response();
    let buffered = Response::builder()
        .status(400)
        .body(BufferedBody::from(body.clone()))
        .unwrap();
    let as_vec = Response::builder().status(400).body(body.clone()).unwrap();
    let as_string = Response::builder().status(400).body(text).unwrap();
    for outcome in [
        http(&|| HttpClassifier::new().classify_response(&buffered)),
        http(&|| HttpClassifier::new().classify_response(&as_vec)),
        http(&|| HttpClassifier::new().classify_response(&as_string)),
    ] {
        assert_eq!(outcome.reason(), Some(reason::CONTEXT_LENGTH_EXCEEDED));
    }
    // A body type the classifier cannot peek at: the status decides.
    let streaming = Response::builder()
        .status(400)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let outcome = HttpClassifier::new().classify_response(&streaming);
    assert_outcome(outcome, OutcomeKind::CallerFault, reason::STATUS_4XX);
}

#[test]
fn a_success_is_never_parsed_whatever_its_body_says() {
    let response = Response::builder()
        .status(200)
        .body(Bytes::from(fixture("openai_429_insufficient_quota.json")))
        .unwrap();
    assert!(
        HttpClassifier::new()
            .classify_response(&response)
            .is_success()
    );
}
