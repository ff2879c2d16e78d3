//! `reqwest::Request` to [`ReplayableRequest`] and back.

use std::fmt;

use bytes::Bytes;
use http::Method;

use crate::body::BufferedBody;

/// A request the layers can send again: an `http::Request` whose body is in memory
/// ([`BufferedBody`], a reference-counted `Bytes`), so cloning it for a retry or an alternative
/// copies no body. What a [`BufferRequest`](crate::BufferRequest) turns a `reqwest::Request`
/// into, and what [`ReqwestAgent`](super::ReqwestAgent) sends with its client.
pub type ReplayableRequest = http::Request<BufferedBody>;

/// A `reqwest::Request` whose body is a stream (`Body::wrap_stream`, a file): once sent, its
/// bytes are gone, so it cannot be retried or handed to an alternative.
///
/// It classifies itself as a caller fault (the request, not the agent, is the problem) that
/// never reached the agent. [`into_request`](Self::into_request) gives the request back, to send
/// it without the retry and fallback layers.
pub struct StreamingBody {
    method: Method,
    target: String,
    // Boxed: errors travel in `Result`s, and a request is a few hundred bytes.
    request: Box<::reqwest::Request>,
}

impl StreamingBody {
    /// The request's method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Where the request was going: scheme, host, port and path, without the query or
    /// credentials (this text may end up in logs).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The request, untouched.
    pub fn into_request(self) -> ::reqwest::Request {
        *self.request
    }
}

impl fmt::Debug for StreamingBody {
    // The request's headers may carry an API key: name only where it was going.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamingBody")
            .field("method", &self.method)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for StreamingBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the body of `{} {}` is a stream, which cannot be sent again after a failure: build it \
             from bytes (`.body(bytes)`, `.json(..)`), or send this request without the retry and \
             fallback layers",
            self.method, self.target
        )
    }
}

impl std::error::Error for StreamingBody {}

impl steadfast::ClassifyError for StreamingBody {
    fn outcome(&self) -> steadfast::Outcome {
        steadfast::Outcome::caller_fault(crate::reason::STREAMING_BODY).unprocessed()
    }
}

/// Why a `reqwest::Request` could not become a [`ReplayableRequest`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// Its body is a stream.
    #[error(transparent)]
    StreamingBody(StreamingBody),
    /// Its URL is not a valid `http::Uri` (over 64 KiB, for one).
    #[error(transparent)]
    Url(::reqwest::Error),
}

impl ReplayError {
    /// As a `BoxError` whose outermost error is the cause itself, so `downcast_ref` and the
    /// classifiers find it at once.
    pub(crate) fn into_cause(self) -> steadfast::BoxError {
        match self {
            ReplayError::StreamingBody(error) => Box::new(error),
            ReplayError::Url(error) => Box::new(error),
        }
    }
}

/// Turns a `reqwest::Request` into a [`ReplayableRequest`], keeping its method, URL, headers,
/// version and extensions (the per-request timeout among them). The body is copied once into a
/// `Bytes`; every retry then shares it.
///
/// ```
/// use steadfast_http::reqwest::replayable;
///
/// let client = reqwest::Client::new();
/// let request = client.post("http://127.0.0.1:9/v1/chat/completions").body("{}").build().unwrap();
/// let replayable = replayable(request).unwrap();
/// let again = replayable.clone(); // what a retry sends
/// assert_eq!(again.body().bytes().as_ref(), b"{}");
/// ```
pub fn replayable(request: ::reqwest::Request) -> Result<ReplayableRequest, ReplayError> {
    if request.body().is_some_and(|body| body.as_bytes().is_none()) {
        return Err(ReplayError::StreamingBody(StreamingBody {
            method: request.method().clone(),
            target: target(request.url()),
            request: Box::new(request),
        }));
    }
    let request = http::Request::<::reqwest::Body>::try_from(request).map_err(ReplayError::Url)?;
    let (parts, body) = request.into_parts();
    let bytes = body
        .as_bytes()
        .map(Bytes::copy_from_slice)
        .unwrap_or_default();
    Ok(http::Request::from_parts(parts, BufferedBody::new(bytes)))
}

/// A [`ReplayableRequest`] as a `reqwest::Request`, for one attempt. Fails (a builder error, a
/// caller fault) when the URI is not absolute: put a [`Rebase`](crate::Rebase) in front of a
/// client that is given path-only URIs.
pub(crate) fn to_reqwest(
    request: ReplayableRequest,
) -> Result<::reqwest::Request, ::reqwest::Error> {
    let (parts, body) = request.into_parts();
    let bytes = body.bytes().clone();
    let bodiless = bytes.is_empty() && matches!(parts.method, Method::GET | Method::HEAD);
    let mut request = ::reqwest::Request::try_from(http::Request::from_parts(parts, bytes))?;
    if bodiless {
        // A GET that never had a body must not go out with an empty one (`content-length: 0`).
        *request.body_mut() = None;
    }
    Ok(request)
}

/// `scheme://host:port/path` of `url`: what an error may say of a request without leaking a
/// key in its query or userinfo.
pub(crate) fn target(url: &::reqwest::Url) -> String {
    let mut target = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        target.push(':');
        target.push_str(&port.to_string());
    }
    target.push_str(url.path());
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_extensions_and_timeout_survive_the_round_trip() {
        let client = ::reqwest::Client::new();
        let request = client
            .post("https://user:pw@api.example.com/v1/chat?key=sk-1")
            .header("x-api-key", "k")
            .timeout(std::time::Duration::from_secs(7))
            .body("prompt")
            .build()
            .unwrap();
        let replayable = replayable(request).unwrap();
        assert_eq!(replayable.method(), Method::POST);
        assert_eq!(replayable.headers()["x-api-key"], "k");
        assert_eq!(replayable.body().bytes().as_ref(), b"prompt");
        let back = to_reqwest(replayable.clone()).unwrap();
        // reqwest's builder moved the userinfo into an `authorization: Basic` header.
        assert_eq!(
            back.url().as_str(),
            "https://api.example.com/v1/chat?key=sk-1"
        );
        assert!(
            back.headers()["authorization"]
                .as_bytes()
                .starts_with(b"Basic ")
        );
        assert_eq!(back.timeout(), Some(&std::time::Duration::from_secs(7)));
        assert_eq!(back.body().and_then(|b| b.as_bytes()), Some(&b"prompt"[..]));
    }

    #[test]
    fn a_get_without_a_body_goes_out_without_one() {
        let request = ::reqwest::Client::new()
            .get("http://127.0.0.1:1/v1/models")
            .build()
            .unwrap();
        let back = to_reqwest(replayable(request).unwrap()).unwrap();
        assert!(back.body().is_none());
    }

    #[test]
    fn the_target_of_an_error_carries_no_query_or_credentials() {
        let url =
            ::reqwest::Url::parse("https://user:pw@api.example.com:8443/v1/chat?key=sk-1").unwrap();
        assert_eq!(target(&url), "https://api.example.com:8443/v1/chat");
    }
}
