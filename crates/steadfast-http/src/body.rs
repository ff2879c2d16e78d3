//! [`BufferedBody`]: a request body held in memory, so a request can be sent again.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};

use steadfast::BoxError;

/// A complete request body in memory: cheap to clone (a reference-counted [`Bytes`]), so an
/// `http::Request<BufferedBody>` is `Clone` and can go through
/// [`BackoffRetryLayer`](steadfast::retry::BackoffRetryLayer).
///
/// Streaming bodies cannot be retried: once sent, their bytes are gone. Buffer them first with
/// [`BufferedBody::collect`] (bounded by a size limit) or [`buffer_request`]; a body over the
/// limit is a [`BodyTooLarge`] error rather than unbounded memory.
///
/// ```
/// use steadfast_http::BufferedBody;
///
/// let request = http::Request::post("http://127.0.0.1/v1/chat")
///     .body(BufferedBody::from(r#"{"prompt":"hi"}"#))
///     .unwrap();
/// let again = request.clone(); // what a retry sends
/// assert_eq!(again.body().bytes(), request.body().bytes());
/// ```
#[derive(Clone, Default)]
pub struct BufferedBody {
    data: Bytes,
    sent: bool,
}

impl BufferedBody {
    /// A body of `data`.
    pub fn new(data: impl Into<Bytes>) -> Self {
        BufferedBody {
            data: data.into(),
            sent: false,
        }
    }

    /// The bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }

    /// Reads all of `body` into memory, refusing more than `limit` bytes.
    pub async fn collect<B>(body: B, limit: usize) -> Result<Self, BufferError>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(BufferedBody::new(collected.to_bytes())),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                Err(BufferError::TooLarge(BodyTooLarge { limit }))
            }
            Err(error) => Err(BufferError::Read(error)),
        }
    }
}

/// Buffers a request's body (at most `limit` bytes) so the request can be retried.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use http_body_util::Full;
/// use steadfast_http::{buffer_request, BufferError};
///
/// let request = http::Request::new(Full::new(bytes::Bytes::from_static(b"0123456789")));
/// let err = buffer_request(request, 4).await.unwrap_err();
/// assert!(matches!(err, BufferError::TooLarge(_)));
/// assert!(err.to_string().contains("4 bytes"));
/// # }
/// ```
pub async fn buffer_request<B>(
    request: http::Request<B>,
    limit: usize,
) -> Result<http::Request<BufferedBody>, BufferError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let body = BufferedBody::collect(body, limit).await?;
    Ok(http::Request::from_parts(parts, body))
}

/// A body was larger than the buffering limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "request body is over the {limit} bytes allowed for buffering, so it cannot be retried: \
     raise the limit or send it without the retry layer"
)]
pub struct BodyTooLarge {
    /// The limit that was exceeded.
    pub limit: usize,
}

/// Why a body could not be buffered.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// Over the limit.
    #[error(transparent)]
    TooLarge(BodyTooLarge),
    /// Reading the body failed.
    #[error("reading the request body to buffer it failed: {0}")]
    Read(#[source] BoxError),
}

impl From<Bytes> for BufferedBody {
    fn from(data: Bytes) -> Self {
        BufferedBody::new(data)
    }
}

impl From<String> for BufferedBody {
    fn from(data: String) -> Self {
        BufferedBody::new(data)
    }
}

impl From<Vec<u8>> for BufferedBody {
    fn from(data: Vec<u8>) -> Self {
        BufferedBody::new(data)
    }
}

impl From<&'static str> for BufferedBody {
    fn from(data: &'static str) -> Self {
        BufferedBody::new(Bytes::from_static(data.as_bytes()))
    }
}

impl From<&'static [u8]> for BufferedBody {
    fn from(data: &'static [u8]) -> Self {
        BufferedBody::new(Bytes::from_static(data))
    }
}

impl Body for BufferedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.sent || this.data.is_empty() {
            this.sent = true;
            return Poll::Ready(None);
        }
        this.sent = true;
        Poll::Ready(Some(Ok(Frame::data(this.data.clone()))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent || self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if self.is_end_stream() {
            SizeHint::with_exact(0)
        } else {
            SizeHint::with_exact(self.data.len() as u64)
        }
    }
}

impl fmt::Debug for BufferedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferedBody")
            .field("len", &self.data.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[tokio::test]
    async fn a_clone_sends_the_whole_body_again() {
        let body = BufferedBody::from("hello");
        let mut first = body.clone();
        let collected = (&mut first).collect().await.unwrap().to_bytes();
        assert_eq!(collected, "hello");
        assert!(first.is_end_stream());
        let again = body.clone().collect().await.unwrap().to_bytes();
        assert_eq!(again, "hello");
        assert_eq!(body.size_hint().exact(), Some(5));
    }

    #[tokio::test]
    async fn collecting_stops_at_the_limit_with_a_clear_error() {
        let body = Full::new(Bytes::from_static(b"0123456789"));
        let err = BufferedBody::collect(body, 9).await.unwrap_err();
        assert!(
            matches!(err, BufferError::TooLarge(BodyTooLarge { limit: 9 })),
            "{err:?}"
        );
        let body = Full::new(Bytes::from_static(b"0123456789"));
        let ok = BufferedBody::collect(body, 10).await.unwrap();
        assert_eq!(ok.bytes().as_ref(), b"0123456789");
    }
}
