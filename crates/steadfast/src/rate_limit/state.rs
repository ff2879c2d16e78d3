//! The limiter's arithmetic: GCRA (the generic cell rate algorithm, as in ATM networks and
//! `governor`) over atomics, with reservations so a waiting call keeps its place, and a pause
//! an agent's `Retry-After` imposes. Pure: every function takes "now" as nanoseconds, so it is
//! unit-tested without tokio.
//!
//! One quota is one atomic: the *theoretical arrival time* (TAT), the instant at which the
//! quota would be back to full if nothing more were spent. Spending `n` units moves it
//! `n x (window / limit)` forward from `max(TAT, now)`; a spend is admitted at once while the TAT
//! stays within `burst` of now, and otherwise after exactly the time that brings it back
//! within. This is a token bucket of capacity `burst`, refilled continuously at `limit` per
//! window, kept in one word: admission is one load and one compare-and-swap, no lock and no
//! allocation.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::Nanos;

/// Why a spend was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Admitting it would take this long: more than the caller may wait.
    Wait(Nanos),
    /// It costs more than a whole burst: it can never be admitted.
    TooLarge,
}

/// One quota (requests or tokens per window).
#[derive(Debug)]
pub(crate) struct Gcra {
    tat: AtomicU64,
    /// The window, in nanoseconds (numerator of the per-unit interval).
    window: u128,
    limit: u128,
    /// The time one unit takes to refill, rounded up (the request quota's whole cost).
    unit_interval: Nanos,
    /// The same in 2^-32 ns, rounded up: a spend of `n` units is one multiplication and a
    /// shift, not a 128-bit division (which cost more than the rest of the call together).
    unit_interval_q32: u128,
    /// How far ahead of now the TAT may be for a spend to pass at once.
    capacity: Nanos,
    /// The most units one spend may cost.
    max_units: u64,
}

impl Gcra {
    /// `limit` units per `window`, of which a share `burst` (in `(0, 1]`) may go at once.
    pub(crate) fn new(limit: u64, window: Nanos, burst: f64) -> Self {
        let max_units = ((limit as f64 * burst) as u64).clamp(1, limit);
        let (window, limit) = (u128::from(window), u128::from(limit.max(1)));
        let mut gcra = Gcra {
            tat: AtomicU64::new(0),
            window,
            limit,
            unit_interval: u64::try_from(window.div_ceil(limit)).unwrap_or(u64::MAX),
            unit_interval_q32: (window << 32).div_ceil(limit),
            capacity: 0,
            max_units,
        };
        gcra.capacity = gcra.interval(max_units);
        gcra
    }

    /// The time `units` take to refill, rounded up so the limiter never admits more than its
    /// limit (by under a nanosecond per call).
    #[inline]
    pub(crate) fn interval(&self, units: u64) -> Nanos {
        if units == 1 {
            return self.unit_interval;
        }
        let q32 = u128::from(units).saturating_mul(self.unit_interval_q32);
        u64::try_from(q32.saturating_add((1 << 32) - 1) >> 32).unwrap_or(u64::MAX)
    }

    /// Reserves `units` at `now`, for a caller that may wait up to `max_wait`: the wait before
    /// the spend may go (0: at once), or why not. A refused spend reserves nothing.
    #[inline]
    pub(crate) fn reserve(
        &self,
        now: Nanos,
        units: u64,
        max_wait: Nanos,
    ) -> Result<Nanos, Refusal> {
        if units > self.max_units {
            return Err(Refusal::TooLarge);
        }
        let cost = self.interval(units);
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let next = tat.max(now).saturating_add(cost);
            let wait = (next - now).saturating_sub(self.capacity);
            if wait > max_wait {
                return Err(Refusal::Wait(wait));
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(wait),
                Err(actual) => tat = actual,
            }
        }
    }

    /// Gives back `units` reserved but not sent (or over-estimated). A spend the quota already
    /// forgot (its TAT fell behind now since) cannot be given back twice: the TAT never goes
    /// below `now`.
    pub(crate) fn refund(&self, now: Nanos, units: u64) {
        let cost = self.interval(units);
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                (tat > now).then(|| tat.saturating_sub(cost).max(now))
            });
    }

    /// Charges `units` more than were reserved (an answer used more tokens than estimated),
    /// without admission: the quota goes into debt and later calls wait for it.
    pub(crate) fn charge(&self, now: Nanos, units: u64) {
        let cost = self.interval(units);
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(tat.max(now).saturating_add(cost))
            });
    }

    /// Empties the quota until `until` (the agent said it is out of quota until then): from
    /// `until`, it refills from nothing.
    pub(crate) fn drain_until(&self, until: Nanos) {
        self.tat
            .fetch_max(until.saturating_add(self.capacity), Ordering::AcqRel);
    }

    /// Units that could be spent at once at `now`.
    pub(crate) fn available(&self, now: Nanos) -> u64 {
        let tat = self.tat.load(Ordering::Acquire).max(now);
        let free = self.capacity.saturating_sub(tat - now);
        let units = u128::from(free) * self.limit / self.window.max(1);
        u64::try_from(units).unwrap_or(u64::MAX).min(self.max_units)
    }

    #[cfg(test)]
    pub(crate) fn max_units(&self) -> u64 {
        self.max_units
    }
}

/// Which quota refused a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
    /// The agent answered rate-limited and asked for a pause that is not over.
    Paused,
}

impl Limit {
    /// `requests`, `tokens` or `paused`: for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Limit::Requests => "requests",
            Limit::Tokens => "tokens",
            Limit::Paused => "paused",
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Both quotas and the pause of one agent.
#[derive(Debug)]
pub(crate) struct Limits {
    pub(crate) requests: Option<Gcra>,
    pub(crate) tokens: Option<Gcra>,
    /// Until when the agent asked not to be called (0: no pause).
    paused_until: AtomicU64,
}

/// A call's admission: how long to wait, or which quota refused it and what it would wait.
pub(crate) type Admission = Result<Nanos, (Limit, Refusal)>;

impl Limits {
    pub(crate) fn new(requests: Option<Gcra>, tokens: Option<Gcra>) -> Self {
        Limits {
            requests,
            tokens,
            paused_until: AtomicU64::new(0),
        }
    }

    /// The end of the pause if one is running at `now`.
    #[inline]
    pub(crate) fn paused_at(&self, now: Nanos) -> Option<Nanos> {
        let until = self.paused_until.load(Ordering::Acquire);
        (until > now).then_some(until)
    }

    /// Pauses until `until` (a later pause already set wins), and empties both quotas until
    /// then, so the calls released when it ends come at the quota's pace, not all at once.
    pub(crate) fn pause_until(&self, until: Nanos) {
        self.paused_until.fetch_max(until, Ordering::AcqRel);
        for quota in [&self.requests, &self.tokens].into_iter().flatten() {
            quota.drain_until(until);
        }
    }

    /// Reserves one request and `tokens` tokens at `now` for a caller that may wait `max_wait`.
    /// Both quotas or neither: a refusal by the second gives back what the first reserved.
    #[inline]
    pub(crate) fn admit(&self, now: Nanos, tokens: u64, max_wait: Nanos) -> Admission {
        let request_wait = match &self.requests {
            Some(requests) => requests
                .reserve(now, 1, max_wait)
                .map_err(|refusal| (Limit::Requests, refusal))?,
            None => 0,
        };
        let token_wait = match &self.tokens {
            Some(quota) => match quota.reserve(now, tokens, max_wait) {
                Ok(wait) => wait,
                Err(refusal) => {
                    if let Some(requests) = &self.requests {
                        requests.refund(now, 1);
                    }
                    return Err((Limit::Tokens, refusal));
                }
            },
            None => 0,
        };
        Ok(request_wait.max(token_wait))
    }

    /// Gives back a reservation that was never sent.
    pub(crate) fn refund(&self, now: Nanos, tokens: u64) {
        if let Some(requests) = &self.requests {
            requests.refund(now, 1);
        }
        if let Some(quota) = &self.tokens {
            quota.refund(now, tokens);
        }
    }

    /// Corrects the tokens of a call from `estimated` to `actual` (the answer's usage).
    pub(crate) fn correct(&self, now: Nanos, estimated: u64, actual: u64) {
        let Some(quota) = &self.tokens else { return };
        match actual.cmp(&estimated) {
            std::cmp::Ordering::Greater => quota.charge(now, actual - estimated),
            std::cmp::Ordering::Less => quota.refund(now, estimated - actual),
            std::cmp::Ordering::Equal => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Nanos = 1_000_000_000;
    const MINUTE: Nanos = 60 * SECOND;

    #[test]
    fn a_full_quota_admits_its_burst_at_once_then_one_unit_per_interval() {
        let quota = Gcra::new(60, MINUTE, 1.0);
        for _ in 0..60 {
            assert_eq!(quota.reserve(0, 1, 0), Ok(0));
        }
        assert_eq!(quota.reserve(0, 1, 0), Err(Refusal::Wait(SECOND)));
        assert_eq!(quota.reserve(SECOND, 1, 0), Ok(0));
        assert_eq!(quota.reserve(SECOND, 1, 0), Err(Refusal::Wait(SECOND)));
    }

    #[test]
    fn a_reservation_keeps_its_place_in_line() {
        let quota = Gcra::new(60, MINUTE, 1.0 / 60.0); // one at a time
        assert_eq!(quota.reserve(0, 1, 10 * SECOND), Ok(0));
        assert_eq!(quota.reserve(0, 1, 10 * SECOND), Ok(SECOND));
        assert_eq!(quota.reserve(0, 1, 10 * SECOND), Ok(2 * SECOND));
        assert_eq!(
            quota.reserve(0, 1, SECOND),
            Err(Refusal::Wait(3 * SECOND)),
            "refused: a wait over the caller's bound"
        );
        assert_eq!(
            quota.reserve(0, 1, 10 * SECOND),
            Ok(3 * SECOND),
            "the refusal reserved nothing"
        );
    }

    #[test]
    fn a_spend_larger_than_the_burst_is_refused_outright() {
        let quota = Gcra::new(1_000, MINUTE, 0.5);
        assert_eq!(quota.max_units(), 500);
        assert_eq!(quota.reserve(0, 501, u64::MAX), Err(Refusal::TooLarge));
        assert_eq!(quota.reserve(0, 500, 0), Ok(0));
    }

    #[test]
    fn refunds_and_charges_move_the_quota_both_ways() {
        let quota = Gcra::new(600, MINUTE, 1.0);
        assert_eq!(quota.reserve(0, 600, 0), Ok(0));
        assert_eq!(quota.available(0), 0);
        quota.refund(0, 100);
        assert_eq!(quota.available(0), 100);
        quota.charge(0, 300);
        assert_eq!(
            quota.reserve(0, 1, 0),
            Err(Refusal::Wait(20 * SECOND + 100_000_000))
        );
    }

    #[test]
    fn a_refusal_by_the_token_quota_gives_the_request_back() {
        let limits = Limits::new(
            Some(Gcra::new(10, MINUTE, 1.0)),
            Some(Gcra::new(100, MINUTE, 1.0)),
        );
        assert_eq!(limits.admit(0, 100, 0), Ok(0));
        assert_eq!(
            limits.admit(0, 50, 0),
            Err((Limit::Tokens, Refusal::Wait(30 * SECOND)))
        );
        assert_eq!(limits.requests.as_ref().unwrap().available(0), 9);
    }

    #[test]
    fn a_pause_empties_the_quotas_until_it_ends() {
        let limits = Limits::new(Some(Gcra::new(60, MINUTE, 1.0)), None);
        limits.pause_until(20 * SECOND);
        assert_eq!(limits.paused_at(0), Some(20 * SECOND));
        assert_eq!(limits.paused_at(20 * SECOND), None);
        assert_eq!(
            limits.admit(20 * SECOND, 0, 0),
            Err((Limit::Requests, Refusal::Wait(SECOND)))
        );
        assert_eq!(limits.admit(21 * SECOND, 0, 0), Ok(0));
        limits.pause_until(5 * SECOND);
        assert_eq!(
            limits.paused_at(0),
            Some(20 * SECOND),
            "a shorter pause does not shorten it"
        );
    }

    #[test]
    fn intervals_round_up_so_the_limit_is_never_exceeded() {
        let quota = Gcra::new(7, MINUTE, 1.0);
        assert_eq!(quota.interval(1), MINUTE.div_ceil(7));
        assert!(quota.interval(7) >= MINUTE);
        let huge = Gcra::new(u64::MAX, MINUTE, 1.0);
        assert_eq!(huge.interval(1), 1);
        assert_eq!(huge.reserve(0, u64::MAX, 0), Ok(0));
    }
}
