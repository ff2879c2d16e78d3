//! The state machine ([`Core`]) driven by hand and against a reference model, without tokio.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;

use super::config::{BreakerConfig, SlidingWindow};
use super::state::{Admission, BreakerState, Core, TransitionReason, trip_reason};
use super::window::WindowStats;
use crate::classify::Outcome;
use crate::clock::Nanos;

const MS: Nanos = 1_000_000;
const SEC: Nanos = 1_000 * MS;

fn fail() -> Outcome {
    Outcome::transient("boom")
}

fn admit(core: &Core, now: Nanos) -> Option<Admission> {
    core.try_acquire(|| now).0.ok()
}

fn call(core: &Core, outcome: Outcome, now: Nanos) -> Option<Admission> {
    let admission = admit(core, now)?;
    core.on_result(admission, &outcome, false, || now);
    Some(admission)
}

#[test]
fn opens_after_five_consecutive_failures_and_rejects_with_the_time_left() {
    let core = Core::new(BreakerConfig::default());
    for _ in 0..4 {
        call(&core, fail(), 0);
    }
    assert_eq!(core.state(), BreakerState::Closed);
    call(&core, fail(), 0);
    assert_eq!(core.state(), BreakerState::Open);
    assert_eq!(
        core.last_transition_reason(),
        Some(TransitionReason::ConsecutiveFailures)
    );
    let (refused, _) = core.try_acquire(|| 400 * MS);
    let refused = refused.unwrap_err();
    assert_eq!(refused.state, BreakerState::Open);
    assert_eq!(
        refused.probe_at,
        Some(1000 * MS),
        "probes are due 600 ms later"
    );
    assert_eq!(core.counts().rejected, 1);
}

#[test]
fn a_success_resets_the_consecutive_count() {
    let core = Core::new(BreakerConfig::default());
    for _ in 0..4 {
        call(&core, fail(), 0);
    }
    call(&core, Outcome::success(), 0);
    for _ in 0..4 {
        call(&core, fail(), 0);
    }
    assert_eq!(core.state(), BreakerState::Closed);
    assert_eq!(core.consecutive_failures(), 4);
}

#[test]
fn caller_faults_never_count_against_the_agent() {
    let core = Core::new(BreakerConfig::default());
    for _ in 0..100 {
        call(&core, Outcome::caller_fault("bad prompt"), 0);
    }
    assert_eq!(core.state(), BreakerState::Closed);
    assert_eq!(core.window_stats(0).calls, 0);
    assert_eq!(core.counts().caller_faults, 100);
}

#[test]
fn failure_rate_trips_only_once_min_calls_are_seen() {
    let config = BreakerConfig::builder()
        .consecutive_failures(0)
        .window(SlidingWindow::Count(20))
        .min_calls(10)
        .failure_rate_threshold(0.5)
        .build()
        .unwrap();
    let core = Core::new(config);
    // 4 failures in the first 8 calls: 50 %, but under min_calls.
    for i in 0..8 {
        call(
            &core,
            if i % 2 == 0 {
                fail()
            } else {
                Outcome::success()
            },
            0,
        );
    }
    assert_eq!(core.state(), BreakerState::Closed);
    call(&core, Outcome::success(), 0);
    assert_eq!(core.state(), BreakerState::Closed, "4/9 is under 50 %");
    call(&core, fail(), 0);
    assert_eq!(core.state(), BreakerState::Open, "5/10 reaches 50 %");
    assert_eq!(
        core.last_transition_reason(),
        Some(TransitionReason::FailureRate)
    );
}

#[test]
fn slow_call_rate_trips() {
    let config = BreakerConfig::builder()
        .window(SlidingWindow::Count(10))
        .min_calls(5)
        .slow_call_threshold(Duration::from_secs(1))
        .slow_call_rate_threshold(0.6)
        .build()
        .unwrap();
    let core = Core::new(config);
    for slow in [true, false, true, false] {
        let admission = admit(&core, 0).unwrap();
        core.on_result(admission, &Outcome::success(), slow, || 0);
    }
    assert_eq!(core.state(), BreakerState::Closed);
    let admission = admit(&core, 0).unwrap();
    core.on_result(admission, &Outcome::success(), true, || 0);
    assert_eq!(core.state(), BreakerState::Open);
    assert_eq!(
        core.last_transition_reason(),
        Some(TransitionReason::SlowCallRate)
    );
    assert_eq!(core.counts().slow, 3);
}

#[test]
fn open_time_grows_on_each_failed_recovery_and_resets_after_a_clean_close() {
    let core = Core::new(
        BreakerConfig::builder()
            .half_open_probes(1)
            .build()
            .unwrap(),
    );
    let mut now = 0;
    for _ in 0..5 {
        call(&core, fail(), now);
    }
    let mut expected = vec![];
    for trip in 1..=4u32 {
        let open_for = core.open_duration().unwrap();
        expected.push(open_for);
        assert_eq!(
            open_for,
            BreakerConfig::default().open_duration_for_trip(trip)
        );
        now += crate::clock::duration_to_nanos(open_for);
        // The probe fails: open again, longer.
        call(&core, fail(), now).expect("a probe is admitted once the open time elapsed");
        assert_eq!(core.state(), BreakerState::Open);
    }
    assert_eq!(
        expected,
        [1000, 1500, 2250, 3375].map(Duration::from_millis).to_vec()
    );
    now += crate::clock::duration_to_nanos(core.open_duration().unwrap());
    call(&core, Outcome::success(), now).unwrap();
    assert_eq!(core.state(), BreakerState::Closed);
    assert_eq!(core.trips(), 0);
    for _ in 0..5 {
        call(&core, fail(), now);
    }
    assert_eq!(core.open_duration(), Some(Duration::from_secs(1)));
}

#[test]
fn half_open_admits_a_bounded_number_of_probes_and_closes_after_all_succeed() {
    let core = Core::new(BreakerConfig::default());
    for _ in 0..5 {
        call(&core, fail(), 0);
    }
    let probes: Vec<_> = (0..3).map(|_| admit(&core, SEC).unwrap()).collect();
    assert_eq!(core.state(), BreakerState::HalfOpen);
    assert!(matches!(probes[0], Admission::Probe { .. }));
    let refused = core.try_acquire(|| SEC).0.unwrap_err();
    assert_eq!(refused.state, BreakerState::HalfOpen);
    core.on_result(probes[0], &Outcome::success(), false, || SEC);
    // A finished probe frees its slot for another.
    let fourth = admit(&core, SEC).unwrap();
    for probe in [probes[1], probes[2]] {
        core.on_result(probe, &Outcome::success(), false, || SEC);
    }
    assert_eq!(core.state(), BreakerState::Closed);
    // The straggler from the closed half-open period changes nothing.
    core.on_result(fourth, &fail(), false, || SEC);
    assert_eq!(core.state(), BreakerState::Closed);
}

#[test]
fn any_failed_probe_reopens() {
    let core = Core::new(BreakerConfig::default());
    for _ in 0..5 {
        call(&core, fail(), 0);
    }
    let first = admit(&core, SEC).unwrap();
    let second = admit(&core, SEC).unwrap();
    core.on_result(first, &Outcome::success(), false, || SEC);
    core.on_result(second, &Outcome::rate_limited("429"), false, || SEC);
    assert_eq!(core.state(), BreakerState::Open);
    assert_eq!(
        core.last_transition_reason(),
        Some(TransitionReason::ProbeFailed)
    );
}

#[test]
fn a_released_probe_frees_its_slot() {
    let core = Core::new(
        BreakerConfig::builder()
            .half_open_probes(1)
            .build()
            .unwrap(),
    );
    for _ in 0..5 {
        call(&core, fail(), 0);
    }
    let Some(Admission::Probe { generation }) = admit(&core, SEC) else {
        panic!("expected a probe");
    };
    assert!(admit(&core, SEC).is_none());
    core.release_probe(generation);
    assert!(admit(&core, SEC).is_some());
}

/// Issue 17: a caller that read the generation of one half-open period, and takes its slot only
/// after the breaker moved on (reopened, then half-open again), must not take a slot of the new
/// period, and must not wedge it. The old code incremented first and compared after, leaking the
/// slot: with one probe configured, the breaker stayed half-open with no probe ever admitted.
#[test]
fn a_probe_slot_taken_across_a_transition_never_leaks() {
    let core = Core::new(
        BreakerConfig::builder()
            .half_open_probes(1)
            .build()
            .unwrap(),
    );
    for _ in 0..5 {
        call(&core, fail(), 0);
    }
    // Half-open: the stale caller reads this period's generation...
    assert!(
        call(&core, fail(), SEC).is_some(),
        "the probe fails: open again"
    );
    let stale = core.generation();
    assert_eq!(core.state(), BreakerState::Open);
    // ...the breaker goes half-open again (a new period) before it takes a slot.
    let Some(Admission::Probe { generation: fresh }) = admit(&core, 10 * SEC) else {
        panic!("expected a probe of the new period");
    };
    assert_ne!(fresh, stale);
    core.release_probe(fresh);
    assert!(
        core.try_probe_in(stale).is_err(),
        "a stale period's slot is refused"
    );
    assert_eq!(
        core.probes_in_flight(),
        0,
        "and nothing leaked into the new period"
    );
    // A stale release cannot free a slot of the new period either.
    let Some(Admission::Probe { generation }) = admit(&core, 10 * SEC) else {
        panic!("the single slot of the new period is free");
    };
    core.release_probe(stale);
    assert_eq!(core.probes_in_flight(), 1);
    assert!(
        admit(&core, 10 * SEC).is_none(),
        "one probe configured, one taken"
    );
    core.on_result(
        Admission::Probe { generation },
        &Outcome::success(),
        false,
        || 10 * SEC,
    );
    assert_eq!(core.state(), BreakerState::Closed);
}

#[test]
fn local_refusals_are_neither_failures_nor_successes() {
    let core = Core::new(BreakerConfig::default());
    let refused = Outcome::agent_fault("bulkhead full").local();
    for _ in 0..4 {
        call(&core, fail(), 0);
    }
    for _ in 0..100 {
        call(&core, refused, 0);
    }
    assert_eq!(
        core.state(),
        BreakerState::Closed,
        "100 refusals tripped nothing"
    );
    assert_eq!(
        core.consecutive_failures(),
        4,
        "and did not reset the streak"
    );
    assert_eq!(core.window_stats(0).calls, 4, "nor entered the window");
    call(&core, fail(), 0);
    assert_eq!(core.state(), BreakerState::Open);
}

#[test]
fn a_local_refusal_probe_frees_its_slot() {
    let core = Core::new(
        BreakerConfig::builder()
            .half_open_probes(1)
            .build()
            .unwrap(),
    );
    for _ in 0..5 {
        call(&core, fail(), 0);
    }
    call(&core, Outcome::agent_fault("bulkhead full").local(), SEC).unwrap();
    assert_eq!(core.state(), BreakerState::HalfOpen);
    assert_eq!(core.probes_in_flight(), 0);
    assert!(admit(&core, SEC).is_some(), "the next probe is admitted");
}

#[test]
fn a_caller_fault_probe_neither_closes_nor_reopens() {
    let core = Core::new(
        BreakerConfig::builder()
            .half_open_probes(1)
            .build()
            .unwrap(),
    );
    for _ in 0..5 {
        call(&core, fail(), 0);
    }
    call(&core, Outcome::caller_fault("400"), SEC).unwrap();
    assert_eq!(core.state(), BreakerState::HalfOpen);
    assert_eq!(core.probes_in_flight(), 0);
}

#[test]
fn with_a_health_check_only_the_check_moves_open_to_half_open() {
    let core = Core::new(BreakerConfig::default());
    core.set_uses_health_check(true);
    for _ in 0..5 {
        call(&core, fail(), 0);
    }
    let generation = core.generation();
    assert!(
        admit(&core, 10 * SEC).is_none(),
        "open time elapsed, but no check passed"
    );
    core.health_check_failed(generation, 20 * SEC);
    assert_eq!(core.next_probe(), Some(20 * SEC));
    let transition = core.health_check_passed(generation, 20 * SEC).unwrap();
    assert_eq!(transition.to, BreakerState::HalfOpen);
    assert_eq!(transition.reason, TransitionReason::HealthCheckPassed);
    assert!(admit(&core, 20 * SEC).is_some());
    // A check from an older open period is ignored.
    assert!(core.health_check_passed(generation, 21 * SEC).is_none());
}

#[test]
fn manual_controls() {
    let core = Core::new(BreakerConfig::default());
    core.force(BreakerState::ForcedOpen, TransitionReason::ForcedOpen, 0)
        .unwrap();
    let refused = core.try_acquire(|| 1000 * SEC).0.unwrap_err();
    assert_eq!(refused.state, BreakerState::ForcedOpen);
    assert_eq!(refused.probe_at, None);
    core.force(BreakerState::Disabled, TransitionReason::Disabled, 0)
        .unwrap();
    for _ in 0..50 {
        call(&core, fail(), 0).expect("disabled lets everything through");
    }
    assert_eq!(core.state(), BreakerState::Disabled);
    core.force(BreakerState::Closed, TransitionReason::Reset, 0)
        .unwrap();
    assert_eq!(core.state(), BreakerState::Closed);
    assert_eq!(core.consecutive_failures(), 0);
}

#[test]
fn a_remote_open_opens_until_the_given_time_then_probes_as_usual() {
    let core = Core::new(BreakerConfig::default());
    let transition = core.open_until(3 * SEC, SEC).expect("closed -> open");
    assert_eq!(transition.to, BreakerState::Open);
    assert_eq!(transition.reason, TransitionReason::Remote);
    assert_eq!(transition.open_for, Some(Duration::from_secs(2)));
    assert_eq!(core.trips(), 1, "a remote open counts as a trip");
    assert!(
        admit(&core, 3 * SEC - 1).is_none(),
        "refused until the time given"
    );
    assert!(matches!(
        admit(&core, 3 * SEC),
        Some(Admission::Probe { .. })
    ));
    assert_eq!(core.state(), BreakerState::HalfOpen);
}

#[test]
fn a_remote_open_of_an_open_breaker_only_moves_its_probe_time() {
    let core = Core::new(BreakerConfig::default());
    for _ in 0..5 {
        call(&core, fail(), 0);
    }
    let generation = core.generation();
    assert_eq!(core.next_probe(), Some(SEC));
    assert!(core.open_until(5 * SEC, 0).is_none(), "no transition");
    assert_eq!(core.generation(), generation);
    assert_eq!(core.next_probe(), Some(5 * SEC));
    assert!(
        admit(&core, 2 * SEC).is_none(),
        "held past its own open time"
    );
    assert!(core.open_until(3 * SEC, 2 * SEC).is_none());
    assert!(admit(&core, 3 * SEC).is_some(), "and earlier again");
}

#[test]
fn remote_decisions_never_override_an_operator() {
    let core = Core::new(BreakerConfig::default());
    core.force(BreakerState::ForcedOpen, TransitionReason::ForcedOpen, 0);
    assert!(core.open_until(SEC, 0).is_none());
    assert!(core.close_remote(0).is_none());
    assert_eq!(core.state(), BreakerState::ForcedOpen);
    core.force(BreakerState::Disabled, TransitionReason::Disabled, 0);
    assert!(core.open_until(SEC, 0).is_none());
    assert_eq!(core.state(), BreakerState::Disabled);
}

#[test]
fn a_remote_close_closes_open_and_half_open_breakers_only() {
    let core = Core::new(BreakerConfig::default());
    assert!(
        core.close_remote(0).is_none(),
        "closed stays closed, no event"
    );
    core.open_until(SEC, 0);
    let transition = core.close_remote(0).expect("open -> closed");
    assert_eq!(transition.reason, TransitionReason::Remote);
    assert_eq!(core.trips(), 0, "a clean close resets the open-time growth");
    core.open_until(SEC, 0);
    admit(&core, SEC);
    assert_eq!(core.state(), BreakerState::HalfOpen);
    assert!(core.close_remote(SEC).is_some());
    assert_eq!(core.state(), BreakerState::Closed);
}

#[test]
fn trip_rules_in_order() {
    let config = BreakerConfig::builder()
        .slow_call_threshold(Duration::from_secs(1))
        .build()
        .unwrap();
    let stats = |calls, failures, slow| WindowStats {
        calls,
        failures,
        slow,
    };
    assert_eq!(
        trip_reason(&config, 5, stats(5, 5, 0)),
        Some(TransitionReason::ConsecutiveFailures)
    );
    assert_eq!(
        trip_reason(&config, 1, stats(9, 9, 9)),
        None,
        "under min_calls"
    );
    assert_eq!(
        trip_reason(&config, 1, stats(10, 5, 0)),
        Some(TransitionReason::FailureRate)
    );
    assert_eq!(
        trip_reason(&config, 1, stats(10, 4, 8)),
        Some(TransitionReason::SlowCallRate)
    );
    assert_eq!(trip_reason(&config, 1, stats(10, 4, 7)), None);
}

// ---- reference model ----

#[derive(Clone, Copy, Debug)]
enum Op {
    Acquire,
    Complete { pick: usize, outcome: u8 },
    Drop { pick: usize },
    Advance { millis: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Acquire),
        4 => (any::<usize>(), 0u8..3).prop_map(|(pick, outcome)| Op::Complete { pick, outcome }),
        1 => any::<usize>().prop_map(|pick| Op::Drop { pick }),
        2 => (0u64..3_000).prop_map(|millis| Op::Advance { millis }),
    ]
}

/// The breaker as a plain sequential program.
#[derive(Debug)]
struct Model {
    config: BreakerConfig,
    state: BreakerState,
    generation: u64,
    consecutive: u32,
    window: VecDeque<bool>,
    trips: u32,
    open_until: Nanos,
    in_flight: u32,
    successes: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ModelAdmission {
    Normal,
    Probe(u64),
}

impl Model {
    fn new(config: BreakerConfig) -> Self {
        Model {
            config,
            state: BreakerState::Closed,
            generation: 0,
            consecutive: 0,
            window: VecDeque::new(),
            trips: 0,
            open_until: 0,
            in_flight: 0,
            successes: 0,
        }
    }

    fn set(&mut self, state: BreakerState) {
        self.state = state;
        self.generation += 1;
        self.in_flight = 0;
        self.successes = 0;
    }

    fn open(&mut self, now: Nanos) {
        self.trips += 1;
        self.open_until =
            now + crate::clock::duration_to_nanos(self.config.open_duration_for_trip(self.trips));
        self.set(BreakerState::Open);
    }

    fn close(&mut self) {
        self.trips = 0;
        self.consecutive = 0;
        self.window.clear();
        self.set(BreakerState::Closed);
    }

    fn acquire(&mut self, now: Nanos) -> Option<ModelAdmission> {
        if self.state == BreakerState::Open && now >= self.open_until {
            self.set(BreakerState::HalfOpen);
        }
        match self.state {
            BreakerState::Closed => Some(ModelAdmission::Normal),
            BreakerState::HalfOpen if self.in_flight < self.config.half_open_probes => {
                self.in_flight += 1;
                Some(ModelAdmission::Probe(self.generation))
            }
            _ => None,
        }
    }

    fn complete(&mut self, admission: ModelAdmission, outcome: Outcome, now: Nanos) {
        let caller_fault = outcome.kind() == crate::OutcomeKind::CallerFault;
        let failed = outcome.counts_against_agent();
        match admission {
            ModelAdmission::Normal => {
                if caller_fault || self.state != BreakerState::Closed {
                    return;
                }
                self.consecutive = if failed { self.consecutive + 1 } else { 0 };
                if self.window.len() == self.config.window_size() {
                    self.window.pop_front();
                }
                self.window.push_back(failed);
                let failures = self.window.iter().filter(|f| **f).count() as u32;
                let calls = self.window.len() as u32;
                let trips = (self.config.consecutive_failures > 0
                    && self.consecutive >= self.config.consecutive_failures)
                    || (failed
                        && calls >= self.config.min_calls
                        && f64::from(failures) / f64::from(calls)
                            >= self.config.failure_rate_threshold);
                if trips {
                    self.open(now);
                }
            }
            ModelAdmission::Probe(generation) => {
                if caller_fault {
                    self.release(generation);
                    return;
                }
                if self.state != BreakerState::HalfOpen || generation != self.generation {
                    return;
                }
                if failed {
                    self.open(now);
                } else {
                    self.successes += 1;
                    if self.successes >= self.config.success_threshold {
                        self.close();
                    } else {
                        self.in_flight -= 1;
                    }
                }
            }
        }
    }

    fn release(&mut self, generation: u64) {
        if generation == self.generation {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }
}

impl BreakerConfig {
    fn window_size(&self) -> usize {
        match self.window {
            SlidingWindow::Count(size) => size as usize,
            SlidingWindow::Time(_) => unreachable!("the model uses count windows"),
        }
    }
}

fn config_strategy() -> impl Strategy<Value = BreakerConfig> {
    (0u32..6, 1u32..12, 1u32..4, 1u32..5, 0.2f64..1.0).prop_filter_map(
        "valid config",
        |(consecutive, window, probes, successes, rate)| {
            BreakerConfig::builder()
                .consecutive_failures(consecutive)
                .window(SlidingWindow::Count(window))
                .min_calls(window.min(4))
                .half_open_probes(probes)
                .success_threshold(successes)
                .failure_rate_threshold(rate)
                .build()
                .ok()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn core_agrees_with_the_reference_model(config in config_strategy(), ops in prop::collection::vec(op(), 1..200)) {
        let core = Core::new(config.clone());
        let mut model = Model::new(config);
        let mut now: Nanos = 0;
        let mut pending: Vec<(Admission, ModelAdmission)> = Vec::new();
        let mut completed = 0u64;
        for op in ops {
            match op {
                Op::Acquire => {
                    let real = core.try_acquire(|| now).0.ok();
                    let expected = model.acquire(now);
                    prop_assert_eq!(real.is_some(), expected.is_some(), "admission at {} ns", now);
                    if let (Some(real), Some(expected)) = (real, expected) {
                        pending.push((real, expected));
                    }
                }
                Op::Complete { pick, outcome } if !pending.is_empty() => {
                    let (real, expected) = pending.remove(pick % pending.len());
                    let outcome = match outcome {
                        0 => Outcome::success(),
                        1 => Outcome::transient("boom"),
                        _ => Outcome::caller_fault("bad"),
                    };
                    core.on_result(real, &outcome, false, || now);
                    model.complete(expected, outcome, now);
                    completed += 1;
                }
                Op::Drop { pick } if !pending.is_empty() => {
                    let (real, expected) = pending.remove(pick % pending.len());
                    if let Admission::Probe { generation } = real {
                        core.release_probe(generation);
                    }
                    if let ModelAdmission::Probe(generation) = expected {
                        model.release(generation);
                    }
                }
                Op::Advance { millis } => now += millis * MS,
                _ => {}
            }
            prop_assert_eq!(core.state(), model.state);
            prop_assert_eq!(core.consecutive_failures(), model.consecutive);
            prop_assert_eq!(core.window_stats(now).calls as usize, model.window.len());
            prop_assert_eq!(
                core.window_stats(now).failures as usize,
                model.window.iter().filter(|f| **f).count()
            );
            prop_assert_eq!(core.probes_in_flight(), model.in_flight);
            prop_assert_eq!(core.trips(), model.trips);
            prop_assert_eq!(core.counts().completed, completed);
        }
    }
}
