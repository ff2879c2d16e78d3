//! [`ResponseFuture`]: the agent's future, delayed, or an injected result.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::error::BoxError;

pin_project! {
    /// The future of a [`Chaos`](super::Chaos) call.
    pub struct ResponseFuture<F, Res> {
        #[pin]
        kind: Kind<F, Res>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, Res> {
        Inner { #[pin] future: F },
        // Boxed: only injected delays pay for the timer's size, not every call's future.
        Delayed { sleep: Pin<Box<Sleep>>, #[pin] future: F },
        Ready { result: Option<Result<Res, BoxError>> },
    }
}

impl<F, Res> ResponseFuture<F, Res> {
    pub(crate) fn inner(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
        }
    }

    pub(crate) fn delayed(delay: Duration, future: F) -> Self {
        ResponseFuture {
            kind: Kind::Delayed {
                sleep: Box::pin(tokio::time::sleep(delay)),
                future,
            },
        }
    }

    pub(crate) fn ready(result: Result<Res, BoxError>) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                result: Some(result),
            },
        }
    }
}

impl<F, Res, E> Future for ResponseFuture<F, Res>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx).map_err(Into::into),
            KindProj::Delayed { sleep, future } => {
                ready!(sleep.as_mut().poll(cx));
                future.poll(cx).map_err(Into::into)
            }
            KindProj::Ready { result } => Poll::Ready(
                result
                    .take()
                    .expect("a chaos ResponseFuture polled after completion"),
            ),
        }
    }
}

impl<F, Res> fmt::Debug for ResponseFuture<F, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
