#!/usr/bin/env python3
"""What the promised work of the hot path costs, measured by taking it out.

Builds `hotpath` (benches/src/bin/hotpath.rs) once as the code stands and once per ablation, each
with one piece of documented work removed, and reports the instructions each row executes per
call (callgrind: the difference between a run of 300,000 calls and one of 100,000, so start-up
cancels out) and, with --time, the wall-clock time per call (the minimum of alternated runs).
benches/analysis.md reads the results ("What the promised work costs").

The ablations are experiments, never code to keep: some are unsound across threads (`count`,
`lookup`) and are measured only on the single-thread rows. Each one is a list of exact text
replacements that must each match once; when the code has moved on, the script stops and names
the replacement that no longer applies.

    python3 benches/experiments/ablate.py                      # every ablation, every row
    python3 benches/experiments/ablate.py --time 7 count all   # and time them, 7 alternations
    python3 benches/experiments/ablate.py lookup --rows stack5 stack3

Needs valgrind (Debian: `apt-get install valgrind`). Works in a git worktree of HEAD under
target/ablate (the checkout you run it from is not touched) with a target directory of its
own, so the first build takes a few minutes and the others about one.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(ROOT, "target", "ablate")
TREE = os.path.join(WORK, "tree")
SRC = os.path.join(TREE, "crates", "steadfast", "src")

# name -> (what it takes out, [(file under crates/steadfast/src, old text, new text)])
ABLATIONS = {
    "count": (
        "the locked subtraction of each call's return (`sync::counted`): a plain load and store",
        [
            (
                "sync/counted.rs",
                "    if count.balance.fetch_sub(shares, Ordering::Release) != shares {\n"
                "        return;\n    }",
                "    let before = count.balance.load(Ordering::Relaxed);\n"
                "    count.balance.store(before - shares, Ordering::Relaxed);\n"
                "    if before != shares {\n        return;\n    }",
            )
        ],
    ),
    "counters": (
        "the per-thread status counters (breaker's completed calls, the primary's answers): "
        "lookup, increment and the sampling that reads their value",
        [
            (
                "sync.rs",
                "        let cell = this_thread(&self.cells);\n"
                "        let before = cell.load(Relaxed);\n"
                "        cell.store(before + 1, Relaxed);\n        before",
                "        1",
            )
        ],
    ),
    "lookup": (
        "only the per-thread lookups of those counters and of the budget's deposits "
        "(one cell for every thread: what a perfect per-thread cache would leave; the counters "
        "still sum it, the budget does not read the deposits counted there, which the success "
        "rows never ask it to)",
        [
            (
                "sync.rs",
                "    cells: ThreadLocal<CachePadded<AtomicU64>>,\n}\n\nimpl PerThreadCounter {",
                "    cells: ThreadLocal<CachePadded<AtomicU64>>,\n"
                "    own: CachePadded<AtomicU64>,\n}\n\nimpl PerThreadCounter {",
            ),
            (
                "sync.rs",
                "        let cell = this_thread(&self.cells);\n"
                "        let before = cell.load(Relaxed);",
                "        let cell = &self.own;\n        let before = cell.load(Relaxed);",
            ),
            (
                "sync.rs",
                "        self.cells.iter().map(|cell| cell.load(Relaxed)).sum()",
                "        self.own.load(Relaxed)\n"
                "            + self.cells.iter().map(|cell| cell.load(Relaxed)).sum::<u64>()",
            ),
            (
                "retry/budget.rs",
                "    deposits: ThreadLocal<CachePadded<[AtomicU64; BUCKETS]>>,",
                "    deposits: ThreadLocal<CachePadded<[AtomicU64; BUCKETS]>>,\n"
                "    own: CachePadded<[AtomicU64; BUCKETS]>,",
            ),
            (
                "retry/budget.rs",
                "                deposits: ThreadLocal::new(),",
                "                deposits: ThreadLocal::new(),\n"
                "                own: CachePadded::default(),",
            ),
            (
                "retry/budget.rs",
                "&crate::sync::this_thread(&self.deposits)[",
                "&self.own[",
            ),
        ],
    ),
    "deposit": (
        "the retry budget's deposit of each first attempt",
        [
            (
                "retry/budget.rs",
                "    pub fn deposit(&self) {\n",
                "    pub fn deposit(&self) {\n        if std::hint::black_box(true) {\n"
                "            return;\n        }\n",
            )
        ],
    ),
    "spare": (
        "the copy of the request retry keeps to send again",
        [
            (
                "retry/service.rs",
                "let spare = (shared.config.max_retries > 0).then(|| request.clone());",
                "let spare: Option<Req> = None;",
            )
        ],
    ),
    "box": (
        "the allocation of a refusal's `CircuitOpen` (the caller gets a zero-sized error "
        "instead, which a `Box` does not allocate)",
        [
            (
                "circuit_breaker/future.rs",
                "                error: Some(Box::new(error)),",
                "                error: {\n                    drop(error);\n"
                "                    Some(Box::new(std::fmt::Error))\n                },",
            )
        ],
    ),
}
ABLATIONS["all"] = (
    "count, counters, deposit and spare together",
    ABLATIONS["count"][1] + ABLATIONS["counters"][1] + ABLATIONS["deposit"][1]
    + ABLATIONS["spare"][1],
)
ROWS = ["bare", "breaker", "retry", "stack3", "stack5", "rejection"]


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, **kwargs)


def worktree():
    os.makedirs(WORK, exist_ok=True)
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    if os.path.isdir(TREE):
        # Forced: a run stopped half-way leaves an ablation applied.
        run(["git", "-C", TREE, "checkout", "-q", "-f", "--detach", head])
    else:
        run(["git", "-C", ROOT, "worktree", "add", "-q", "--detach", TREE, head])
    return head


def apply(name):
    run(["git", "-C", TREE, "checkout", "-q", "--", "crates"])
    for path, old, new in ([] if name == "base" else ABLATIONS[name][1]):
        full = os.path.join(SRC, path)
        with open(full) as f:
            text = f.read()
        found = text.count(old)
        if found != 1:
            sys.exit(f"ablation {name!r}: the text to replace in {path} is found {found} times, "
                     f"not once (the code moved on; update ABLATIONS):\n{old}")
        with open(full, "w") as f:
            f.write(text.replace(old, new))


def build(name):
    apply(name)
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(WORK, "target"))
    run(["cargo", "build", "-q", "--profile", "bench", "-p", "steadfast-benches", "--bin",
         "hotpath"], cwd=TREE, env=env)
    binary = os.path.join(WORK, f"hotpath-{name}")
    shutil.copy(os.path.join(WORK, "target", "release", "hotpath"), binary)
    run(["git", "-C", TREE, "checkout", "-q", "--", "crates"])
    return binary


def instructions(binary, row):
    def collected(calls):
        done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                               binary, row, str(calls)], capture_output=True, text=True)
        out = done.stderr
        if done.returncode != 0:
            sys.exit(f"{os.path.basename(binary)} {row} {calls} failed (is {row!r} a row of "
                     f"benches/src/bin/hotpath.rs?):\n{out[-2000:]}")
        for line in out.splitlines():
            if "Collected :" in line:
                return int(line.split(":")[1])
        sys.exit(f"no instruction count from callgrind for {binary} {row}:\n{out}")
    return (collected(300_000) - collected(100_000)) / 200_000


def seconds(binary, row, calls):
    start = time.perf_counter()
    run([binary, row, str(calls)], stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ablations", nargs="*", help=", ".join(ABLATIONS))
    parser.add_argument("--rows", nargs="+", default=ROWS, help="hotpath rows")
    parser.add_argument("--time", type=int, default=0, metavar="N",
                        help="also time each row, N alternated runs of 10 million calls each")
    args = parser.parse_args()
    names = args.ablations or list(ABLATIONS)
    unknown = [name for name in names if name not in ABLATIONS]
    if unknown:
        parser.error(f"unknown ablation(s) {unknown}; known: {', '.join(ABLATIONS)}")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    head = worktree()
    binaries = {name: build(name) for name in ["base", *names]}
    print(f"commit {head[:12]}; instructions per call (callgrind)"
          + (f"; time per call in ns, minimum of {args.time} alternated runs" if args.time else ""))
    print()
    print("| row | as it stands | " + " | ".join(f"without {name}" for name in names) + " |")
    print("|---|" + "---|" * (len(names) + 1))
    for row in args.rows:
        base = instructions(binaries["base"], row)
        cells = [f"{base:.1f}"]
        for name in names:
            ir = instructions(binaries[name], row)
            cells.append(f"{ir:.1f} ({ir - base:+.1f})")
        if args.time:
            calls = 10_000_000
            times = {name: [] for name in ["base", *names]}
            for _ in range(args.time):
                for name in times:
                    times[name].append(seconds(binaries[name], row, calls) / calls * 1e9)
            base_ns = min(times["base"])
            cells[0] += f", {base_ns:.1f} ns"
            for i, name in enumerate(names, start=1):
                ns = min(times[name])
                cells[i] += f", {ns:.1f} ns ({ns - base_ns:+.1f}; median {statistics.median(times[name]):.1f})"
        print(f"| {row} | " + " | ".join(cells) + " |")
    print()
    for name in names:
        print(f"- without {name}: {ABLATIONS[name][0]}")


if __name__ == "__main__":
    main()
