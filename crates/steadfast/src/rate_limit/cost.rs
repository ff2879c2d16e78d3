//! How a request's tokens are estimated and an answer's tokens read: [`TokenCost`] and
//! [`TokenUsage`], implemented by closures.

/// Estimates the tokens a request will use, before it is sent. Closures
/// `Fn(&Req) -> u64` implement it.
pub trait TokenCost<Req> {
    /// The estimated tokens of `request` (prompt plus the most the answer may use).
    fn estimate(&self, request: &Req) -> u64;
}

impl<F, Req> TokenCost<Req> for F
where
    F: Fn(&Req) -> u64,
{
    #[inline]
    fn estimate(&self, request: &Req) -> u64 {
        self(request)
    }
}

/// No cost function: every request costs no tokens (only the request quota counts).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCost;

impl<Req> TokenCost<Req> for NoCost {
    #[inline]
    fn estimate(&self, _request: &Req) -> u64 {
        0
    }
}

/// Reads the tokens an answer actually used (`usage.total_tokens` in OpenAI's and Anthropic's
/// answers). Closures `Fn(&Res) -> Option<u64>` implement it.
pub trait TokenUsage<Res> {
    /// The tokens `response` used, if it says.
    fn actual(&self, response: &Res) -> Option<u64>;
}

impl<F, Res> TokenUsage<Res> for F
where
    F: Fn(&Res) -> Option<u64>,
{
    #[inline]
    fn actual(&self, response: &Res) -> Option<u64> {
        self(response)
    }
}

/// No usage reader: estimates stand.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoUsage;

impl<Res> TokenUsage<Res> for NoUsage {
    #[inline]
    fn actual(&self, _response: &Res) -> Option<u64> {
        None
    }
}
