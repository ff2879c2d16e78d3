//! Allocation counting for the zero-allocation tests. Including this module
//! (`#[path = "support/alloc.rs"] mod support;`) installs the counting global allocator in that
//! test binary.
//!
//! The allocator counts every thread of the process. A success path that allocates does so on
//! every call, thousands of times in each run; an allocation by another thread of the test
//! harness (seen on a loaded machine) lands in one run at most. So the work runs three times
//! and the fewest allocations count: exact for the code under test, deaf to the harness.

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

pub(crate) use stats_alloc::Stats;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const RUNS: usize = 3;

fn fewest(changes: impl Iterator<Item = Stats>) -> Stats {
    changes
        .min_by_key(|change| {
            (
                change.allocations,
                change.reallocations,
                change.bytes_allocated,
            )
        })
        .expect("at least one run")
}

/// What `work` allocates, in the run (of three) that allocated least.
#[allow(dead_code)] // each test binary uses one of the two
pub(crate) fn allocations_during(mut work: impl FnMut()) -> Stats {
    fewest((0..RUNS).map(|_| {
        let region = Region::new(GLOBAL);
        work();
        region.change()
    }))
}

/// [`allocations_during`] for async work.
#[allow(dead_code)] // each test binary uses one of the two
pub(crate) async fn allocations_during_async(mut work: impl AsyncFnMut()) -> Stats {
    let mut changes = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let region = Region::new(GLOBAL);
        work().await;
        changes.push(region.change());
    }
    fewest(changes.into_iter())
}
