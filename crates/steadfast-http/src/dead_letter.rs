//! Dead-lettering HTTP requests (feature `dead-letter`): an encoder that keeps the method, URI,
//! headers and body of a request, **with secrets redacted by default**, and the decoder that
//! turns a stored record back into a request for replay.
//!
//! The stored form is the request as HTTP/1.1 would send it (`POST /v1/chat HTTP/1.1`, header
//! lines, a blank line, the body), so `steadfast dlq show` prints something a person can read
//! and `curl` could send.
//!
//! Redaction is a [`Redactor`] pass; the
//! [`redact` module](crate::redact) lists every rule and default name. In short: the values of
//! credential headers, of sensitive query parameters (any case, percent-encoded or not, after
//! `&` or `;`), of sensitive JSON keys at any depth and of sensitive form fields become
//! `[REDACTED]`, and URL userinfo is removed. Add names, a body hook for other body formats, or
//! (knowingly) turn redaction off.
//!
//! A dead letter also stores the error chain, and HTTP clients quote the URL in their errors
//! (reqwest: `error sending request for url (https://...?key=sk-...)`).
//! [`HttpRequestEncoder::encode_with_secrets`] returns, with the stored bytes, the
//! [`Secrets`] it removed, whose [`scrub`](crate::redact::Secrets::scrub)
//! takes them (and any sensitive query value or userinfo) out of such text. `DeadLetterLayer`
//! does not call it yet (the hook is being added to `steadfast`); until then, keep URLs out of
//! the errors that reach it (reqwest: `Error::without_url`).
//!
//! ```
//! use steadfast::dead_letter::{DeadLetterLayer, EncodeRequest, MemorySink};
//! use steadfast_http::BufferedBody;
//! use steadfast_http::dead_letter::{HttpRequestEncoder, decode_request};
//!
//! let encoder = HttpRequestEncoder::new().redact_header("x-team-secret");
//! let request = http::Request::post("https://api.example.com/v1/chat?Key=sk-live-123")
//!     .header("authorization", "Bearer sk-live-123")
//!     .header("x-team-secret", "hunter2")
//!     .body(BufferedBody::from(r#"{"prompt":"hello","api_key":"sk-live-123"}"#))
//!     .unwrap();
//! let (stored, secrets) = encoder.encode_with_secrets(&request).unwrap();
//! let text = String::from_utf8_lossy(&stored);
//! assert!(!text.contains("sk-live-123") && !text.contains("hunter2"));
//!
//! let error = "error sending request for url (https://api.example.com/v1/chat?Key=sk-live-123)";
//! assert_eq!(
//!     secrets.scrub(error),
//!     "error sending request for url (https://api.example.com/v1/chat?Key=[REDACTED])"
//! );
//!
//! let replayed = decode_request(&stored).unwrap();
//! assert_eq!(replayed.uri(), "https://api.example.com/v1/chat?Key=%5BREDACTED%5D");
//! assert_eq!(replayed.headers()["authorization"], "[REDACTED]");
//! assert_eq!(
//!     replayed.body().bytes().as_ref(),
//!     br#"{"prompt":"hello","api_key":"[REDACTED]"}"#
//! );
//! // `EncodeRequest::encode` stores the same bytes.
//! assert_eq!(encoder.encode(&request).unwrap(), stored);
//!
//! // In the stack: DeadLetterLayer::new(&agent, sink).encoder(encoder)
//! let gpt = steadfast::Agent::new("gpt").classifier(steadfast_http::HttpClassifier::llm());
//! let _layer = DeadLetterLayer::new(&gpt, MemorySink::new(100)).encoder(HttpRequestEncoder::new());
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use steadfast::BoxError;
use steadfast::dead_letter::EncodeRequest;

use crate::BufferedBody;
use crate::redact::{RedactedParts, Redactor, Secrets};

pub use crate::redact::{DEFAULT_REDACTED_HEADERS, DEFAULT_REDACTED_QUERY_PARAMS, REDACTED};

/// Encodes HTTP requests for a [`DeadLetterLayer`](steadfast::dead_letter::DeadLetterLayer),
/// redacting secrets. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct HttpRequestEncoder {
    redactor: Redactor,
    redact: bool,
}

impl Default for HttpRequestEncoder {
    fn default() -> Self {
        HttpRequestEncoder::new()
    }
}

impl HttpRequestEncoder {
    /// An encoder redacting with [`Redactor::new`]'s defaults.
    pub fn new() -> Self {
        HttpRequestEncoder {
            redactor: Redactor::new(),
            redact: true,
        }
    }

    /// Redacts with `redactor` (e.g. [`Redactor::empty`] plus your own names) instead.
    #[must_use]
    pub fn redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// Also redacts the header `name` (case-insensitive).
    #[must_use]
    pub fn redact_header(mut self, name: &str) -> Self {
        self.redactor = self.redactor.redact_header(name);
        self
    }

    /// Also redacts the URI query parameter (and form field) `name` (case-insensitive, matched
    /// after percent-decoding).
    #[must_use]
    pub fn redact_query_param(mut self, name: &str) -> Self {
        self.redactor = self.redactor.redact_query_param(name);
        self
    }

    /// Also redacts the value of the JSON key `name` at any depth (case-insensitive).
    #[must_use]
    pub fn redact_json_key(mut self, name: &str) -> Self {
        self.redactor = self.redactor.redact_json_key(name);
        self
    }

    /// Passes the body through `redact` before storing it (e.g. for a body format the built-in
    /// JSON and form rules do not read). The JSON and form rules still run on its output. To
    /// have the values it removes scrubbed from the error chain too, use
    /// [`Redactor::body_hook`] through [`redactor`](Self::redactor).
    #[must_use]
    pub fn redact_body(mut self, redact: impl Fn(&Bytes) -> Bytes + Send + Sync + 'static) -> Self {
        self.redactor = self.redactor.body_hook(move |body, _| redact(body));
        self
    }

    /// Stores requests exactly as they are, secrets included, and scrubs nothing. Only for
    /// requests that carry none.
    #[must_use]
    pub fn without_redaction(mut self) -> Self {
        self.redact = false;
        self
    }

    /// The stored form of `request` and the secret values taken out of it, to scrub the error
    /// chain (or any other text stored with it) with [`Secrets::scrub`]. Without redaction the
    /// secrets are empty and scrub nothing.
    pub fn encode_with_secrets<B: RequestBody>(
        &self,
        request: &Request<B>,
    ) -> Result<(Bytes, Secrets), BoxError> {
        let body = request.body().body_bytes();
        if !self.redact {
            let headers: Vec<_> = request
                .headers()
                .iter()
                .map(|(name, value)| (name.clone(), value.as_bytes().to_vec()))
                .collect();
            let bytes = encode_head_and_body(
                request.method(),
                &request.uri().to_string(),
                &headers,
                &body,
            );
            return Ok((bytes, Secrets::new()));
        }
        let RedactedParts {
            uri,
            headers,
            body,
            secrets,
            ..
        } = self
            .redactor
            .redact_parts(request.uri(), request.headers(), &body);
        if !secrets.is_complete() {
            tracing::warn!(
                ?secrets,
                "a request held more secret values than are kept for scrubbing; all were \
                 redacted in the stored request, but the error chain may still quote some"
            );
        }
        Ok((
            encode_head_and_body(request.method(), &uri, &headers, &body),
            secrets,
        ))
    }
}

fn encode_head_and_body(
    method: &Method,
    uri: &str,
    headers: &[(HeaderName, Vec<u8>)],
    body: &Bytes,
) -> Bytes {
    let head_len: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let mut out = BytesMut::with_capacity(32 + uri.len() + head_len + body.len());
    out.put_slice(method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(uri.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    out.put_slice(body);
    out.freeze()
}

impl<B: RequestBody> EncodeRequest<Request<B>> for HttpRequestEncoder {
    fn encode(&self, request: &Request<B>) -> Result<Bytes, BoxError> {
        self.encode_with_secrets(request).map(|(bytes, _)| bytes)
    }

    /// The dead-letter layer scrubs the error chain it stores with what redaction collected.
    fn encode_redacted(
        &self,
        request: &Request<B>,
    ) -> Result<(Bytes, Box<dyn steadfast::dead_letter::Scrub>), BoxError> {
        let (bytes, secrets) = self.encode_with_secrets(request)?;
        Ok((bytes, Box::new(secrets)))
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
    fn encode_with_secrets_returns_what_scrubs_the_error_chain() {
        let request =
            Request::post("https://jo:pa55-w0rd@api.example.com/v1?Api%5FKey=sk-9f8e7d6c")
                .header("x-api-key", "sk-9f8e7d6c")
                .header("content-type", "application/json")
                .body(BufferedBody::from(
                    r#"{"messages":[],"password":"pa55-w0rd"}"#,
                ))
                .unwrap();
        let (stored, secrets) = encoder().encode_with_secrets(&request).unwrap();
        let text = String::from_utf8_lossy(&stored);
        for secret in ["sk-9f8e7d6c", "pa55-w0rd", "jo:"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.starts_with("POST https://api.example.com/v1?Api%5FKey=[REDACTED] HTTP/1.1\r\n")
        );
        let chain = [
            "error sending request for url \
             (https://jo:pa55-w0rd@api.example.com/v1?Api%5FKey=sk-9f8e7d6c)",
            "upstream said: invalid key sk-9f8e7d6c",
        ];
        let scrubbed: Vec<String> = chain.iter().map(|line| secrets.scrub(line)).collect();
        assert_eq!(
            scrubbed,
            [
                "error sending request for url \
                 (https://[REDACTED]@api.example.com/v1?Api%5FKey=[REDACTED])",
                "upstream said: invalid key [REDACTED]",
            ]
        );
        // `encode` stores exactly the same bytes.
        assert_eq!(encoder().encode(&request).unwrap(), stored);
    }

    #[test]
    fn a_redacted_body_is_stored_with_its_new_length_and_replays() {
        let body = r#"{"prompt":"hi","api_key":"sk-0123456789"}"#;
        let request = Request::post("http://127.0.0.1/v1")
            .header("content-length", body.len())
            .body(BufferedBody::from(body))
            .unwrap();
        let stored = encoder().encode(&request).unwrap();
        let back = decode_request(&stored).unwrap();
        let redacted = br#"{"prompt":"hi","api_key":"[REDACTED]"}"#;
        assert_eq!(back.body().bytes().as_ref(), redacted);
        assert_eq!(
            back.headers()["content-length"],
            redacted.len().to_string().as_str()
        );
    }

    #[test]
    fn a_replaced_redactor_and_the_opt_out_scrub_accordingly() {
        let request = Request::get("http://h/v1?session=s-0001&key=k-0002")
            .header("authorization", "Bearer kept-0003")
            .body(BufferedBody::from(Bytes::new()))
            .unwrap();
        let only_session = encoder().redactor(Redactor::empty().redact_query_param("session"));
        let (stored, secrets) = only_session.encode_with_secrets(&request).unwrap();
        let text = String::from_utf8_lossy(&stored);
        assert!(text.contains("session=[REDACTED]&key=k-0002"), "{text}");
        assert!(text.contains("Bearer kept-0003"), "{text}");
        assert_eq!(secrets.scrub("s-0001 k-0002"), "[REDACTED] k-0002");

        let (raw, secrets) = encoder()
            .without_redaction()
            .encode_with_secrets(&request)
            .unwrap();
        assert!(String::from_utf8_lossy(&raw).contains("session=s-0001&key=k-0002"));
        assert!(secrets.is_empty());
        assert_eq!(secrets.scrub("?key=k-0002"), "?key=k-0002");
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
