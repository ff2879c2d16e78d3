//! # steadfast-mock
//!
//! A mock LLM API for steadfast's tests and demo: a real HTTP/1.1 server on `127.0.0.1` (an
//! OS-assigned port) that speaks OpenAI's `POST /v1/chat/completions` and Anthropic's
//! `POST /v1/messages`, answers each route from a [`Script`], and counts what it received.
//!
//! | piece | what it is |
//! |---|---|
//! | [`MockServer`] | start, script a [`Route`], read counters and the last request, shut down |
//! | [`Script`] | replies in order, then one for ever: `always`, `fail_next(n, ..)`, `steps`, `then` |
//! | [`Reply`] | success in the provider's shape, an exact [`Fault`], a delay, a connection reset, a stream |
//! | [`StreamReply`] | a streamed (SSE) answer with scripted stalls, resets, error events, trickle |
//! | [`faults`] | real providers' error answers, byte for byte (OpenAI, Azure, Anthropic) |
//!
//! ```
//! use std::time::Duration;
//! use steadfast_mock::{faults, MockServer, Reply, Route, Script};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = MockServer::start().await.unwrap();
//! // Overloaded once (after 10 ms), then fine.
//! server.script(
//!     Route::AnthropicMessages,
//!     Script::steps([Reply::from(faults::anthropic::overloaded()).after(Duration::from_millis(10))]),
//! );
//!
//! let mut socket = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
//! let body = r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[]}"#;
//! let request = format!(
//!     "POST /v1/messages HTTP/1.1\r\nhost: mock\r\nx-api-key: test-key\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
//!     body.len()
//! );
//! socket.write_all(request.as_bytes()).await.unwrap();
//! let mut answer = String::new();
//! socket.read_to_string(&mut answer).await.unwrap();
//! assert!(answer.starts_with("HTTP/1.1 529"));
//! assert!(answer.ends_with(r#""message": "Overloaded"
//! }
//! }"#));
//!
//! assert_eq!(server.requests(Route::AnthropicMessages), 1);
//! let last = server.last_request(Route::AnthropicMessages).unwrap();
//! assert_eq!(last.headers["x-api-key"], "test-key");
//! server.shutdown().await;
//! # }
//! ```
//!
//! Streaming: [`Reply::Stream`] with a [`StreamReply`] answers `text/event-stream` in OpenAI's
//! (`chat.completion.chunk` events, `data: [DONE]`) or Anthropic's (`message_start` ...
//! `message_stop`) shape, with scripted faults: a stall before the first event or mid-stream, a
//! connection reset after N events, an in-band error event ([`faults`]), a slow trickle.
#![forbid(unsafe_code)]

pub mod faults;
mod script;
mod server;
mod stream;
mod success;

pub use script::{Fault, Reply, Script};
pub use server::{MAX_REQUEST_BODY, MockError, MockServer, RecordedRequest, Route};
pub use stream::StreamReply;
