//! Reading the start of an error answer's body so the classifier can see it.
//!
//! A `reqwest::Response`'s body is a stream that the classifier cannot read (it gets
//! `&Response`, and reading consumes). For an error status, [`peek_error_body`] reads the body
//! up to a bound, keeps what it read in the response's extensions ([`PeekedBody`]) and rebuilds
//! the response so the caller still reads the whole body: from memory when it fitted, else the
//! frames read followed by the rest of the stream. Successes are returned untouched, so the
//! success path reads nothing and allocates nothing.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::reqwest::ResponseBuilderExt as _;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

/// The first bytes of an error answer's body, as [`peek_error_body`] read them.
#[derive(Clone, Debug)]
pub(crate) struct PeekedBody(pub(crate) Bytes);

/// The bytes [`peek_error_body`] kept of `response`'s body, if it read any.
pub(crate) fn peeked(response: &::reqwest::Response) -> Option<&[u8]> {
    response
        .extensions()
        .get::<PeekedBody>()
        .map(|peeked| peeked.0.as_ref())
}

/// Reads at most about `limit` bytes of an error answer's body (whole frames: the last may go
/// past it), keeps them as a [`PeekedBody`] extension, and gives back a response whose body is
/// still complete. Successes, redirects and `limit == 0` return `response` as it was.
pub(crate) async fn peek_error_body(
    response: ::reqwest::Response,
    limit: usize,
) -> ::reqwest::Response {
    let status = response.status();
    if limit == 0 || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let url = response.url().clone();
    let (mut parts, mut body) = http::Response::<::reqwest::Body>::from(response).into_parts();
    let mut frames = VecDeque::new();
    let mut read = 0;
    let mut ended = false;
    let mut failure = None;
    while read < limit {
        match body.frame().await {
            None => {
                ended = true;
                break;
            }
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    read += data.len();
                }
                frames.push_back(frame);
            }
            Some(Err(error)) => {
                failure = Some(error);
                break;
            }
        }
    }
    let peeked = concat(frames.iter().filter_map(Frame::data_ref));
    let only_data = frames.iter().all(Frame::is_data);
    let body = if ended && failure.is_none() && only_data {
        ::reqwest::Body::from(peeked.clone())
    } else {
        // Over the bound, a trailer, or a read error: hand back exactly what the server sent,
        // in order, error included.
        ::reqwest::Body::wrap(Prefixed {
            frames,
            failure,
            rest: (!ended).then_some(body),
        })
    };
    // `From<reqwest::Response> for http::Response` drops the URL; put it back the one public
    // way, so `response.url()` still names where the answer came from.
    if let Ok(with_url) = http::Response::builder().url(url).body(()) {
        parts.extensions.extend(with_url.into_parts().0.extensions);
    }
    parts.extensions.insert(PeekedBody(peeked));
    ::reqwest::Response::from(http::Response::from_parts(parts, body))
}

fn concat<'a>(chunks: impl Iterator<Item = &'a Bytes>) -> Bytes {
    let chunks: Vec<&Bytes> = chunks.collect();
    match chunks.as_slice() {
        [] => Bytes::new(),
        [one] => (*one).clone(),
        many => {
            let mut joined = BytesMut::with_capacity(many.iter().map(|chunk| chunk.len()).sum());
            for chunk in many {
                joined.extend_from_slice(chunk);
            }
            joined.freeze()
        }
    }
}

/// The frames already read, then a read error if there was one, then the rest of the body.
struct Prefixed {
    frames: VecDeque<Frame<Bytes>>,
    failure: Option<::reqwest::Error>,
    rest: Option<::reqwest::Body>,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = ::reqwest::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ::reqwest::Error>>> {
        // Every field is `Unpin` (reqwest's body boxes its stream).
        let this = self.get_mut();
        if let Some(frame) = this.frames.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(error) = this.failure.take() {
            this.rest = None;
            return Poll::Ready(Some(Err(error)));
        }
        match this.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
            && self.failure.is_none()
            && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .frames
            .iter()
            .filter_map(Frame::data_ref)
            .map(|data| data.len() as u64)
            .sum();
        let Some(rest) = self.rest.as_ref() else {
            return SizeHint::with_exact(buffered);
        };
        let rest = rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(buffered.saturating_add(rest.lower()));
        if let Some(upper) = rest.upper() {
            hint.set_upper(buffered.saturating_add(upper));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: ::reqwest::Body) -> ::reqwest::Response {
        let response = http::Response::builder()
            .status(status)
            .url(::reqwest::Url::parse("http://agent.test/v1/chat").unwrap())
            .body(body)
            .unwrap();
        ::reqwest::Response::from(response)
    }

    /// A body that arrives in `chunks`, one frame each: a stream, as the network gives it.
    fn chunked(chunks: &[&'static str]) -> ::reqwest::Body {
        struct Chunks(VecDeque<Bytes>);
        impl Body for Chunks {
            type Data = Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                self: Pin<&mut Self>,
                _cx: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
                Poll::Ready(
                    self.get_mut()
                        .0
                        .pop_front()
                        .map(|chunk| Ok(Frame::data(chunk))),
                )
            }
        }
        let chunks = chunks
            .iter()
            .map(|chunk| Bytes::from_static(chunk.as_bytes()));
        ::reqwest::Body::wrap(Chunks(chunks.collect()))
    }

    #[tokio::test]
    async fn a_success_is_returned_untouched_and_unread() {
        let answer = peek_error_body(response(200, chunked(&["ok"])), 1024).await;
        assert!(peeked(&answer).is_none());
        assert_eq!(answer.text().await.unwrap(), "ok");
    }

    #[tokio::test]
    async fn a_small_error_body_is_kept_for_the_classifier_and_still_readable() {
        let answer = peek_error_body(response(400, chunked(&["{\"error\":", "1}"])), 1024).await;
        assert_eq!(peeked(&answer), Some(&b"{\"error\":1}"[..]));
        assert_eq!(answer.url().as_str(), "http://agent.test/v1/chat");
        assert_eq!(answer.content_length(), Some(11));
        assert_eq!(answer.text().await.unwrap(), "{\"error\":1}");
    }

    #[tokio::test]
    async fn a_body_over_the_bound_is_peeked_in_part_and_read_whole() {
        let answer = peek_error_body(response(503, chunked(&["abc", "def", "ghi"])), 4).await;
        assert_eq!(
            peeked(&answer),
            Some(&b"abcdef"[..]),
            "whole frames, up to the bound"
        );
        assert_eq!(answer.text().await.unwrap(), "abcdefghi");
    }

    #[tokio::test]
    async fn a_zero_limit_reads_nothing() {
        let answer = peek_error_body(response(500, chunked(&["boom"])), 0).await;
        assert!(peeked(&answer).is_none());
        assert_eq!(answer.text().await.unwrap(), "boom");
    }
}
