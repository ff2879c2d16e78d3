//! Success bodies in each provider's shape.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::Route;

/// The body of a successful answer to `request` on `route`; `number` makes the id unique.
///
/// The shapes follow real answers: OpenAI's `chat.completion` as returned by
/// `api.openai.com` (https://community.openai.com/t/x-ratelimit-headers-missing/935514 shows
/// one in full) and Anthropic's `message` as in https://docs.anthropic.com/en/api/messages.
/// The requested `model` is echoed, as the real APIs do.
pub(crate) fn body(route: Route, request: &[u8], number: u64) -> Bytes {
    let model = serde_json::from_slice::<Value>(request)
        .ok()
        .and_then(|request| request.get("model")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "mock-model".to_owned());
    let body = match route {
        Route::OpenAiChat => json!({
            "id": format!("chatcmpl-mock-{number}"),
            "object": "chat.completion",
            "created": 1_726_012_687,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "This is a test!", "refusal": null},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 13, "completion_tokens": 5, "total_tokens": 18},
            "system_fingerprint": null
        }),
        Route::AnthropicMessages => json!({
            "id": format!("msg_mock_{number}"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "Hi! My name is Claude."}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 2095, "output_tokens": 503}
        }),
    };
    Bytes::from(body.to_string())
}
