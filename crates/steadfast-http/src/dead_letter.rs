//! Dead-lettering HTTP requests (feature `dead-letter`): an encoder that keeps the method, URI,
//! headers and body of a request, **with secrets redacted by default**, and the decoder that
//! turns a stored record back into a request for replay.
//!
//! The stored form is the request as HTTP/1.1 would send it (`POST /v1/chat HTTP/1.1`, header
//! lines, a blank line, the body), so `steadfast dlq show` prints something a person can read
//! and `curl` could send.
//!
//! Redacted unless told otherwise: the headers `authorization`, `proxy-authorization`,
//! `cookie`, `set-cookie`, `x-api-key`, `api-key`, `x-goog-api-key`, `openai-organization`,
//! and the URI query parameters `key`, `api_key`, `apikey`, `access_token`, `token`, `sig`,
//! `signature`: their values become `[REDACTED]`. Add names, a body hook for secrets in bodies,
//! or (knowingly) turn redaction off.
//!
//! ```
//! use steadfast::dead_letter::{DeadLetterLayer, MemorySink};
//! use steadfast_http::BufferedBody;
//! use steadfast_http::dead_letter::{HttpRequestEncoder, decode_request};
//! use steadfast::dead_letter::EncodeRequest;
//!
//! let encoder = HttpRequestEncoder::new().redact_header("x-team-secret");
//! let request = http::Request::post("https://api.example.com/v1/chat?key=sk-live-123")
//!     .header("authorization", "Bearer sk-live-123")
//!     .header("x-team-secret", "hunter2")
//!     .body(BufferedBody::from(r#"{"prompt":"hello"}"#))
//!     .unwrap();
//! let stored = encoder.encode(&request).unwrap();
//! let text = String::from_utf8_lossy(&stored);
//! assert!(!text.contains("sk-live-123") && !text.contains("hunter2"));
//!
//! let replayed = decode_request(&stored).unwrap();
//! assert_eq!(replayed.uri(), "https://api.example.com/v1/chat?key=%5BREDACTED%5D");
//! assert_eq!(replayed.headers()["authorization"], "[REDACTED]");
//! assert_eq!(replayed.body().bytes().as_ref(), br#"{"prompt":"hello"}"#);
//!
//! // In the stack: DeadLetterLayer::new(&agent, sink).encoder(encoder)
//! let gpt = steadfast::Agent::new("gpt").classifier(steadfast_http::HttpClassifier::llm());
//! let _layer = DeadLetterLayer::new(&gpt, MemorySink::new(100)).encoder(HttpRequestEncoder::new());
//! ```

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use steadfast::BoxError;
use steadfast::dead_letter::EncodeRequest;

use crate::BufferedBody;

/// What replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// Headers whose values are redacted by default.
pub const DEFAULT_REDACTED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "openai-organization",
];

/// URI query parameters whose values are redacted by default.
pub const DEFAULT_REDACTED_QUERY_PARAMS: &[&str] = &[
    "key",
    "api_key",
    "apikey",
    "access_token",
    "token",
    "sig",
    "signature",
];

type BodyRedactor = Arc<dyn Fn(&Bytes) -> Bytes + Send + Sync>;

/// Encodes HTTP requests for a [`DeadLetterLayer`](steadfast::dead_letter::DeadLetterLayer),
/// redacting secrets. See the [module docs](self).
#[derive(Clone)]
pub struct HttpRequestEncoder {
    headers: Arc<HashSet<HeaderName>>,
    query_params: Arc<HashSet<String>>,
    body: Option<BodyRedactor>,
    redact: bool,
}

impl Default for HttpRequestEncoder {
    fn default() -> Self {
        HttpRequestEncoder::new()
    }
}

impl HttpRequestEncoder {
    /// An encoder redacting the default headers and query parameters.
    pub fn new() -> Self {
        HttpRequestEncoder {
            headers: Arc::new(
                DEFAULT_REDACTED_HEADERS
                    .iter()
                    .map(|name| HeaderName::from_static(name))
                    .collect(),
            ),
            query_params: Arc::new(
                DEFAULT_REDACTED_QUERY_PARAMS
                    .iter()
                    .map(|name| (*name).to_owned())
                    .collect(),
            ),
            body: None,
            redact: true,
        }
    }

    /// Also redacts the header `name` (case-insensitive). A name that is not a valid header
    /// name cannot occur in a request, so it is ignored.
    #[must_use]
    pub fn redact_header(mut self, name: &str) -> Self {
        if let Ok(name) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
            Arc::make_mut(&mut self.headers).insert(name);
        }
        self
    }

    /// Also redacts the URI query parameter `name` (exact match).
    #[must_use]
    pub fn redact_query_param(mut self, name: &str) -> Self {
        Arc::make_mut(&mut self.query_params).insert(name.to_owned());
        self
    }

    /// Passes the body through `redact` before storing it (e.g. to blank a field holding a
    /// customer's token).
    #[must_use]
    pub fn redact_body(mut self, redact: impl Fn(&Bytes) -> Bytes + Send + Sync + 'static) -> Self {
        self.body = Some(Arc::new(redact));
        self
    }

    /// Stores requests exactly as they are, secrets included. Only for requests that carry none.
    #[must_use]
    pub fn without_redaction(mut self) -> Self {
        self.redact = false;
        self
    }

    fn uri(&self, uri: &Uri) -> String {
        let text = uri.to_string();
        if !self.redact {
            return text;
        }
        let Some((before, query)) = text.split_once('?') else {
            return text;
        };
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if self.query_params.contains(name) => format!("{name}={REDACTED}"),
                _ => pair.to_owned(),
            })
            .collect();
        format!("{before}?{}", redacted.join("&"))
    }

    fn encode_parts(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &http::HeaderMap,
        body: &Bytes,
    ) -> Bytes {
        let uri = self.uri(uri);
        let body = match (&self.body, self.redact) {
            (Some(redact), true) => redact(body),
            _ => body.clone(),
        };
        let mut out = BytesMut::with_capacity(64 + uri.len() + headers.len() * 32 + body.len());
        out.put_slice(method.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(uri.as_bytes());
        out.put_slice(b" HTTP/1.1\r\n");
        for (name, value) in headers {
            out.put_slice(name.as_str().as_bytes());
            out.put_slice(b": ");
            if self.redact && self.headers.contains(name) {
                out.put_slice(REDACTED.as_bytes());
            } else {
                out.put_slice(value.as_bytes());
            }
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        out.put_slice(&body);
        out.freeze()
    }
}

impl<B: RequestBody> EncodeRequest<Request<B>> for HttpRequestEncoder {
    fn encode(&self, request: &Request<B>) -> Result<Bytes, BoxError> {
        Ok(self.encode_parts(
            request.method(),
            request.uri(),
            request.headers(),
            &request.body().body_bytes(),
        ))
    }
}

/// Request bodies whose bytes are in memory, so they can be stored.
pub trait RequestBody {
    /// The body's bytes (a cheap reference-counted copy where possible).
    fn body_bytes(&self) -> Bytes;
}

impl RequestBody for BufferedBody {
    fn body_bytes(&self) -> Bytes {
        self.bytes().clone()
    }
}

impl RequestBody for Bytes {
    fn body_bytes(&self) -> Bytes {
        self.clone()
    }
}

impl RequestBody for String {
    fn body_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl RequestBody for Vec<u8> {
    fn body_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl RequestBody for () {
    fn body_bytes(&self) -> Bytes {
        Bytes::new()
    }
}

impl fmt::Debug for HttpRequestEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequestEncoder")
            .field("redact", &self.redact)
            .field("headers", &self.headers)
            .field("query_params", &self.query_params)
            .field("body_redactor", &self.body.is_some())
            .finish()
    }
}

/// A stored request that cannot be turned back into a request, with what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// No blank line ends the head.
    #[error(
        "stored request has no end of headers (a blank line); was it written by HttpRequestEncoder?"
    )]
    NoEndOfHead,
    /// The first line is not `METHOD URI HTTP/1.1`.
    #[error("stored request line `{line}` is not `METHOD URI HTTP/1.1`")]
    RequestLine {
        /// The line found.
        line: String,
    },
    /// A header line is not `name: value`, or its name or value is invalid.
    #[error("stored header line {number} is not a valid `name: value` header")]
    Header {
        /// Its 1-based number among the header lines.
        number: usize,
    },
}

/// Rebuilds a request stored by [`HttpRequestEncoder`], for replay. Redacted values stay
/// redacted (in the URI as `%5BREDACTED%5D`): give the replaying client its own credentials
/// (e.g. a layer that sets `authorization`).
pub fn decode_request(stored: &[u8]) -> Result<Request<BufferedBody>, DecodeError> {
    let end = stored
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or(DecodeError::NoEndOfHead)?;
    let head = &stored[..end];
    let body = Bytes::copy_from_slice(&stored[end + 4..]);
    let mut lines = head
        .split(|byte| *byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let request_line = lines.next().unwrap_or_default();
    let bad_line = || DecodeError::RequestLine {
        line: String::from_utf8_lossy(request_line).into_owned(),
    };
    let text = std::str::from_utf8(request_line).map_err(|_| bad_line())?;
    let mut parts = text.splitn(3, ' ');
    let (Some(method), Some(uri), Some("HTTP/1.1")) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_line());
    };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| bad_line())?;
    // A redacted query holds `[` and `]`, which a URI does not accept unescaped.
    let uri = uri.replace(REDACTED, "%5BREDACTED%5D");
    let uri: Uri = uri.parse().map_err(|_| bad_line())?;
    let mut request = Request::builder().method(method).uri(uri);
    for (index, line) in lines.enumerate() {
        let header = || DecodeError::Header { number: index + 1 };
        let colon = line
            .iter()
            .position(|byte| *byte == b':')
            .ok_or_else(header)?;
        let name = HeaderName::from_bytes(&line[..colon]).map_err(|_| header())?;
        let value = line[colon + 1..]
            .strip_prefix(b" ")
            .unwrap_or(&line[colon + 1..]);
        let value = HeaderValue::from_bytes(value).map_err(|_| header())?;
        request = request.header(name, value);
    }
    request
        .body(BufferedBody::from(body))
        .map_err(|_| bad_line())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoder() -> HttpRequestEncoder {
        HttpRequestEncoder::new()
    }

    #[test]
    fn keeps_method_uri_headers_and_body_and_round_trips() {
        let request = Request::put("http://127.0.0.1:8080/v1/models/gpt?stream=false")
            .header("content-type", "application/json")
            .header("x-request-id", "abc")
            .body(BufferedBody::from(Bytes::from_static(
                b"{\"a\":1}\r\n\r\nstill body",
            )))
            .unwrap();
        let stored = encoder().encode(&request).unwrap();
        assert!(
            stored
                .starts_with(b"PUT http://127.0.0.1:8080/v1/models/gpt?stream=false HTTP/1.1\r\n")
        );
        let back = decode_request(&stored).unwrap();
        assert_eq!(back.method(), Method::PUT);
        assert_eq!(
            back.uri(),
            "http://127.0.0.1:8080/v1/models/gpt?stream=false"
        );
        assert_eq!(back.headers()["content-type"], "application/json");
        assert_eq!(back.headers()["x-request-id"], "abc");
        assert_eq!(back.body().bytes().as_ref(), b"{\"a\":1}\r\n\r\nstill body");
    }

    #[test]
    fn redacts_default_headers_and_query_params() {
        let request =
            Request::post("https://api.example.com/v1?model=x&key=AIzaSECRET&api_key=SECRET2")
                .header("Authorization", "Bearer sk-SECRET3")
                .header("x-api-key", "SECRET4")
                .header("cookie", "session=SECRET5")
                .header("accept", "application/json")
                .body(BufferedBody::from("{}"))
                .unwrap();
        let stored = encoder().encode(&request).unwrap();
        let text = String::from_utf8_lossy(&stored);
        for secret in ["SECRET", "sk-"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(
            text.contains("model=x&key=[REDACTED]&api_key=[REDACTED]"),
            "{text}"
        );
        assert!(text.contains("authorization: [REDACTED]\r\n"), "{text}");
        assert!(text.contains("accept: application/json\r\n"), "{text}");
    }

    #[test]
    fn extra_names_body_hook_and_opt_out() {
        let request = Request::post("/v1?session=s1")
            .header("x-team-secret", "hunter2")
            .header("authorization", "Bearer kept")
            .body(BufferedBody::from(r#"{"token":"t0p"}"#))
            .unwrap();
        let stored = encoder()
            .redact_header("X-Team-Secret")
            .redact_query_param("session")
            .redact_body(|body| Bytes::from(String::from_utf8_lossy(body).replace("t0p", REDACTED)))
            .encode(&request)
            .unwrap();
        let text = String::from_utf8_lossy(&stored);
        assert!(
            !text.contains("hunter2") && !text.contains("s1") && !text.contains("t0p"),
            "{text}"
        );
        let raw = encoder().without_redaction().encode(&request).unwrap();
        assert!(String::from_utf8_lossy(&raw).contains("Bearer kept"));
    }

    #[test]
    fn malformed_records_give_typed_errors() {
        assert_eq!(
            decode_request(b"GET / HTTP/1.1\r\nno end").unwrap_err(),
            DecodeError::NoEndOfHead
        );
        assert!(matches!(
            decode_request(b"GET /\r\n\r\n"),
            Err(DecodeError::RequestLine { .. })
        ));
        assert_eq!(
            decode_request(b"GET / HTTP/1.1\r\nok: 1\r\nbroken\r\n\r\n").unwrap_err(),
            DecodeError::Header { number: 2 }
        );
    }

    proptest! {
        #[test]
        fn a_secret_header_value_never_reaches_the_stored_bytes(secret in "[A-Za-z0-9_\\-]{12,40}", other in "[a-z]{1,8}") {
            let request = Request::get(format!("http://h/p?{other}=1&token={secret}"))
                .header("authorization", format!("Bearer {secret}"))
                .header("x-api-key", secret.as_str())
                .header(format!("x-{other}"), "visible")
                .body(BufferedBody::from(Bytes::new()))
                .unwrap();
            let stored = encoder().encode(&request).unwrap();
            prop_assert!(!stored.windows(secret.len()).any(|window| window == secret.as_bytes()));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_request(&bytes);
        }
    }
}
