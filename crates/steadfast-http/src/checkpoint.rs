//! Checkpointed HTTP steps (feature `checkpoint`): the step key from the `x-steadfast-step`
//! header, and a codec that stores a buffered `http::Response` (status, headers, body) with
//! its secret headers left out.
//!
//! ```
//! use steadfast::checkpoint::CheckpointCodec;
//! use steadfast_http::BufferedBody;
//! use steadfast_http::checkpoint::{HttpResponseCodec, STEP_HEADER, step_from_header};
//!
//! let request = http::Request::post("http://127.0.0.1/v1/chat")
//!     .header(STEP_HEADER, "essay-1/plan")
//!     .body(BufferedBody::from("{}"))
//!     .unwrap();
//! let key = step_from_header(&request).unwrap();
//! assert_eq!((key.workflow(), key.step()), ("essay-1", "plan"));
//!
//! let response = http::Response::builder()
//!     .status(200)
//!     .header("content-type", "application/json")
//!     .header("set-cookie", "session=abc123")
//!     .body(BufferedBody::from(r#"{"text":"the plan"}"#))
//!     .unwrap();
//! let codec = HttpResponseCodec::new();
//! let stored = codec.encode(&response).unwrap();
//! let back: http::Response<BufferedBody> = codec.decode(&stored).unwrap();
//! assert_eq!(back.status(), 200);
//! assert_eq!(back.body().bytes(), response.body().bytes());
//! assert!(back.headers().get("set-cookie").is_none()); // never stored
//! ```

use http::{HeaderName, HeaderValue, Response, StatusCode};
use steadfast::BoxError;
use steadfast::checkpoint::{CheckpointCodec, InvalidStepKey, StepKey};

use crate::BufferedBody;
use crate::redact::DEFAULT_REDACTED_HEADERS;

/// The request header naming a checkpointed step: `<workflow>/<step>` (split at the last `/`).
pub const STEP_HEADER: &str = "x-steadfast-step";

/// The format version of [`HttpResponseCodec`]'s encoding.
pub const HTTP_RESPONSE_FORMAT: u8 = 1;

/// An `x-steadfast-step` value that names no step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepHeaderError {
    /// Not `<workflow>/<step>`.
    #[error("`{STEP_HEADER}` must be `<workflow>/<step>`, got {0:?}")]
    Shape(String),
    /// Not visible ASCII.
    #[error("`{STEP_HEADER}` is not visible ASCII")]
    NotAscii,
    /// A part is not a valid id.
    #[error(transparent)]
    Key(#[from] InvalidStepKey),
}

/// Parses an `x-steadfast-step` value: `<workflow>/<step>`, split at the last `/`.
pub fn parse_step(value: &HeaderValue) -> Result<StepKey, StepHeaderError> {
    let text = value.to_str().map_err(|_| StepHeaderError::NotAscii)?;
    let (workflow, step) = text
        .rsplit_once('/')
        .ok_or_else(|| StepHeaderError::Shape(text.chars().take(60).collect()))?;
    Ok(StepKey::new(workflow, step)?)
}

/// The key function for `CheckpointLayer` on `http::Request`s: the step named by the
/// `x-steadfast-step` header; a request without it is not checkpointed. A malformed header is
/// logged (`warn`) and the request is not checkpointed either.
pub fn step_from_header<B>(request: &http::Request<B>) -> Option<StepKey> {
    let value = request.headers().get(STEP_HEADER)?;
    match parse_step(value) {
        Ok(key) => Some(key),
        Err(error) => {
            tracing::warn!(%error, "request not checkpointed");
            None
        }
    }
}

/// Stores `http::Response<BufferedBody>` answers: status, headers and body bytes, in a small
/// versioned binary format. Headers that carry secrets (`set-cookie`, `authorization`,
/// `x-api-key`, ... the redactor's defaults, plus [`redact_header`](Self::redact_header)) are
/// left out, so a resumed step's answer has none of them.
#[derive(Clone, Debug)]
pub struct HttpResponseCodec {
    redacted: Vec<String>,
}

impl Default for HttpResponseCodec {
    fn default() -> Self {
        HttpResponseCodec {
            redacted: DEFAULT_REDACTED_HEADERS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
        }
    }
}

impl HttpResponseCodec {
    /// The codec with the default secret headers.
    pub fn new() -> Self {
        HttpResponseCodec::default()
    }

    /// Also leaves out header `name`.
    #[must_use]
    pub fn redact_header(mut self, name: &str) -> Self {
        self.redacted.push(name.to_ascii_lowercase());
        self
    }
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), BoxError> {
    let len = u32::try_from(bytes.len()).map_err(|_| "a header or body over 4 GiB")?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BoxError> {
        if self.0.len() < n {
            return Err("stored HTTP response is truncated".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, BoxError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }

    fn bytes(&mut self) -> Result<&'a [u8], BoxError> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

impl CheckpointCodec<Response<BufferedBody>> for HttpResponseCodec {
    fn encode(&self, response: &Response<BufferedBody>) -> Result<Vec<u8>, BoxError> {
        let body = response.body().bytes();
        let mut out = Vec::with_capacity(16 + body.len());
        out.push(HTTP_RESPONSE_FORMAT);
        out.extend_from_slice(&response.status().as_u16().to_le_bytes());
        let kept: Vec<_> = response
            .headers()
            .iter()
            .filter(|(name, _)| !self.redacted.iter().any(|r| r == name.as_str()))
            .collect();
        out.extend_from_slice(&(kept.len() as u32).to_le_bytes());
        for (name, value) in kept {
            put(&mut out, name.as_str().as_bytes())?;
            put(&mut out, value.as_bytes())?;
        }
        put(&mut out, body)?;
        Ok(out)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Response<BufferedBody>, BoxError> {
        let mut reader = Reader(bytes);
        let version = reader.take(1)?[0];
        if version != HTTP_RESPONSE_FORMAT {
            return Err(format!(
                "stored HTTP response has format {version}, this build reads {HTTP_RESPONSE_FORMAT}"
            )
            .into());
        }
        let status = StatusCode::from_u16(u16::from_le_bytes(reader.take(2)?.try_into()?))?;
        let count = reader.u32()? as usize;
        let mut builder = Response::builder().status(status);
        for _ in 0..count {
            let name = HeaderName::from_bytes(reader.bytes()?)?;
            let value = HeaderValue::from_bytes(reader.bytes()?)?;
            builder = builder.header(name, value);
        }
        let body = BufferedBody::new(bytes::Bytes::copy_from_slice(reader.bytes()?));
        if !reader.0.is_empty() {
            return Err("stored HTTP response has trailing bytes".into());
        }
        Ok(builder.body(body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Any bytes: an error or a response, never a panic (the store may hold anything).
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = HttpResponseCodec::new().decode(&bytes);
        }

        // Any response the codec accepts comes back with the same status, body and the
        // headers that are not secret.
        #[test]
        fn responses_round_trip_without_their_secret_headers(
            status in 200u16..600,
            body in proptest::collection::vec(any::<u8>(), 0..512),
            value in "[a-zA-Z0-9 ]{0,40}",
        ) {
            let response = Response::builder()
                .status(status)
                .header("x-request-id", value.as_str())
                .header("set-cookie", "session=s3cr3t-value")
                .body(BufferedBody::new(body.clone()))
                .unwrap();
            let codec = HttpResponseCodec::new();
            let back = codec.decode(&codec.encode(&response).unwrap()).unwrap();
            prop_assert_eq!(back.status().as_u16(), status);
            prop_assert_eq!(back.body().bytes().as_ref(), body.as_slice());
            prop_assert_eq!(back.headers()["x-request-id"].as_bytes(), value.as_bytes());
            prop_assert!(back.headers().get("set-cookie").is_none());
        }
    }

    #[test]
    fn step_headers_parse_at_the_last_slash_and_refuse_the_rest() {
        let key = parse_step(&HeaderValue::from_static("team/a/plan")).unwrap();
        assert_eq!((key.workflow(), key.step()), ("team/a", "plan"));
        assert!(matches!(
            parse_step(&HeaderValue::from_static("plan")),
            Err(StepHeaderError::Shape(_))
        ));
        assert!(matches!(
            parse_step(&HeaderValue::from_static("wf/")),
            Err(StepHeaderError::Key(_))
        ));
        let request = http::Request::new(());
        assert_eq!(step_from_header(&request), None);
    }

    #[test]
    fn a_truncated_or_foreign_encoding_is_an_error_not_a_panic() {
        let codec = HttpResponseCodec::new();
        let response = Response::builder()
            .status(201)
            .header("x-request-id", "r1")
            .header("authorization", "Bearer sk-secret")
            .body(BufferedBody::from("body"))
            .unwrap();
        let bytes = codec.encode(&response).unwrap();
        assert!(!bytes.windows(9).any(|w| w == b"sk-secret"));
        for cut in 0..bytes.len() {
            assert!(codec.decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let back = codec.decode(&bytes).unwrap();
        assert_eq!(back.status(), 201);
        assert_eq!(back.headers()["x-request-id"], "r1");
        let mut foreign = bytes.clone();
        foreign[0] = 9;
        assert!(codec.decode(&foreign).is_err());
    }
}
