//! [`HttpClassifier`] for `reqwest::Response`s: the same rules, the same memo, the same
//! `llm()` switch as for `http::Response`s.

use steadfast::{BoxError, Classify, Outcome};

use crate::classify::{HttpClassifier, Idempotency, classify_error, classify_http_response};

use super::peek::peeked;

/// `reqwest::Request` in, `reqwest::Response` out: a stack straight over a `reqwest::Client`
/// (a breaker and a timeout: a `reqwest::Request` is not `Clone`, so retry and fallback need a
/// [`BufferRequest`](crate::BufferRequest) first) or a reqwest-middleware chain.
impl Classify<::reqwest::Request, ::reqwest::Response> for HttpClassifier {
    type Memo = Idempotency;

    #[inline]
    fn note(&self, request: &::reqwest::Request) -> Idempotency {
        self.idempotency(request.method(), request.headers())
    }

    #[inline]
    fn classify(
        &self,
        _memo: &Idempotency,
        result: Result<&::reqwest::Response, &BoxError>,
    ) -> Outcome {
        classify_reqwest(result)
    }

    fn is_idempotent(&self, memo: &Idempotency) -> bool {
        memo.is_idempotent()
    }
}

/// A `reqwest::Request` in, an `http::Response` out: what a stack over a `reqwest::Client`
/// answers once its responses are turned into `http::Response<reqwest::Body>`, as a
/// [`StreamGuard`](crate::stream::StreamGuard) over reqwest needs (see docs/streaming.md).
impl<B: 'static> Classify<::reqwest::Request, http::Response<B>> for HttpClassifier {
    type Memo = Idempotency;

    #[inline]
    fn note(&self, request: &::reqwest::Request) -> Idempotency {
        self.idempotency(request.method(), request.headers())
    }

    #[inline]
    fn classify(
        &self,
        _memo: &Idempotency,
        result: Result<&http::Response<B>, &BoxError>,
    ) -> Outcome {
        crate::classify::classify_response_result(result)
    }

    fn is_idempotent(&self, memo: &Idempotency) -> bool {
        memo.is_idempotent()
    }
}

/// A [`ReplayableRequest`](super::ReplayableRequest) (or any `http::Request`) in, a
/// `reqwest::Response` out: what [`ReqwestAgent`](super::ReqwestAgent) serves under retry and
/// fallback.
impl<B> Classify<http::Request<B>, ::reqwest::Response> for HttpClassifier {
    type Memo = Idempotency;

    #[inline]
    fn note(&self, request: &http::Request<B>) -> Idempotency {
        self.idempotency(request.method(), request.headers())
    }

    #[inline]
    fn classify(
        &self,
        _memo: &Idempotency,
        result: Result<&::reqwest::Response, &BoxError>,
    ) -> Outcome {
        classify_reqwest(result)
    }

    fn is_idempotent(&self, memo: &Idempotency) -> bool {
        memo.is_idempotent()
    }
}

/// A success by its status alone; an error status by its status, headers and the body
/// [`ReqwestAgent`](super::ReqwestAgent) read for it (headers only when nothing was read: a
/// response from a plain `reqwest::Client`); an error as [`classify_error`] says.
#[inline]
fn classify_reqwest(result: Result<&::reqwest::Response, &BoxError>) -> Outcome {
    match result {
        Ok(response) => {
            let status = response.status();
            if status.is_success() || status.is_informational() || status.is_redirection() {
                return Outcome::success();
            }
            classify_http_response(status, response.headers(), peeked(response))
        }
        Err(error) => classify_error(error.as_ref()),
    }
}
