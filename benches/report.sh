#!/usr/bin/env bash
# Runs the criterion suite and writes docs/benchmarks.md from its results, so anyone can
# reproduce the table:   bash benches/report.sh   (about a minute per bench file)
# Extra arguments go to criterion, e.g. `bash benches/report.sh --measurement-time 10`.
set -euo pipefail
cd "$(dirname "$0")/.."

out=docs/benchmarks.md
log=$(mktemp)
trap 'rm -f "$log"' EXIT

rm -rf target/criterion
cargo bench -p steadfast-benches -- --warm-up-time 2 --measurement-time 5 "$@" | tee "$log"

python3 - "$log" "$out" <<'PY'
import json, os, platform, re, subprocess, sys, datetime

log, out = sys.argv[1], sys.argv[2]
root = "target/criterion"
rows = {}
for dirpath, _dirs, files in os.walk(root):
    if dirpath.endswith(os.path.join("", "new")) and "benchmark.json" in files:
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            meta = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            data = json.load(f)
        rows.setdefault(meta["group_id"], {})[meta["function_id"]] = data["median"]["point_estimate"]
# Groups in the order the bench files declare them is not recoverable; sort for stability,
# with each group's rows in a fixed order: bare first, then steadfast, then peers.
def row_order(name):
    return (0 if name == "bare" else 1 if name.startswith("steadfast") else 2, name)
rows = {group: dict(sorted(benches.items(), key=lambda kv: row_order(kv[0]))) for group, benches in sorted(rows.items())}

allocs = {}
for line in open(log):
    m = re.match(r"allocations per (?:call|chunk) \[(\S+)\]: (.*)", line.strip())
    if m:
        for part in m.group(2).split(","):
            name, value = part.strip().rsplit(" ", 1)
            allocs[(m.group(1), name.strip())] = value

paired = {}
for line in open(log):
    m = re.match(r"paired scaling \[(\S+)\]: (.*?) \(two threads", line.strip())
    if m:
        paired[m.group(1)] = m.group(2)

def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
lines = [
    "# Benchmarks",
    "",
    "The cost of each layer on the happy path, measured side by side with the bare service in",
    "the same criterion run (ratios are meaningful even on a noisy machine; absolute figures",
    "are this machine's). Regenerate with `bash benches/report.sh`.",
    "",
    f"- machine: {os.cpu_count()} cores, {cpu()}",
    f"- toolchain: {rustc}",
    f"- date: {datetime.date.today().isoformat()}",
    "- agent: a `service_fn` returning a ready future. Two loops drive it. The `rt_*` groups",
    "  (benches/benches/runtime.rs) run as users do: inside a current-thread tokio runtime,",
    "  `ready().await` then `call(..).await` on every call; the goals below apply to them.",
    "  The other groups poll `poll_ready` and the response future once with a no-op waker and",
    "  no runtime, so their figures are the layers' own code alone. `rt_async_agent` runs the",
    "  goal rows over the agent written with an `async` block, which answers when polled: a",
    "  layer reads the ready future's answer a few instructions after the agent wrote it, and",
    "  waits for those stores; the `async` agent makes its answer in registers (see the analysis).",
    "- time: criterion median; overhead = layer - bare (the bare call compiles down to almost",
    "  nothing, so the overhead column is the one to read; ratios to bare are shown for",
    "  completeness); allocations counted by a counting global allocator over 100,000 calls.",
    "",
]
GOALS = {
    ("circuit_breaker", "steadfast_closed"): "<= 25 ns overhead, 0 allocations",
    ("circuit_breaker", "steadfast_open_rejection"): "<= 50 ns",
    ("retry", "steadfast_retry"): "<= 20 ns overhead, 0 allocations",
    ("fallback_and_degrade", "steadfast_fallback"): "<= 15 ns overhead, 0 allocations",
    ("fallback_and_degrade", "steadfast_degrade"): "<= 15 ns overhead, 0 allocations",
    ("dead_letter", "steadfast_dead_letter"): "<= 15 ns overhead, 0 allocations",
    ("stack", "steadfast_stack"): "<= 150 ns overhead, 0 allocations; >= 3x faster than tower-resilience",
    ("circuit_breaker", "tower_resilience_closed"): "steadfast >= 3x faster",
    ("circuit_breaker", "failsafe_closed"): "steadfast >= 3x faster",
}
# The goals of the runtime-driven loop (issue 16), as overhead over the bare call.
GOALS.update({
    ("rt_breaker", "steadfast_closed"): "<= 12 ns overhead, 0 allocations",
    ("rt_retry", "steadfast_retry"): "<= 10 ns overhead, 0 allocations",
    ("rt_rejection", "steadfast_open_tripped"): "<= 25 ns overhead, 0 allocations",
    ("rt_stack", "steadfast_fallback_retry_breaker"): "<= 35 ns overhead, 0 allocations",
    ("rt_stack", "steadfast_full_stack"): "<= 60 ns overhead, 0 allocations",
})
# The bulkhead (issue 20): no slower than tower's own limit, refusing in under 20 ns.
GOALS.update({
    ("bulkhead", "steadfast_bulkhead"): "no slower than tower_concurrency_limit, 0 allocations",
    ("bulkhead", "steadfast_bulkhead_full"): "< 20 ns, 0 allocations, no timer",
    ("rt_bulkhead", "steadfast_bulkhead"): "no slower than tower_concurrency_limit, 0 allocations",
    ("rt_bulkhead", "steadfast_bulkhead_adaptive"): ">= 3x faster than tower_resilience_bulkhead_adaptive, 0 allocations",
    ("rt_bulkhead", "tower_resilience_bulkhead"): "steadfast >= 3x faster",
    ("rt_bulkhead_full", "steadfast_bulkhead_full"): "< 20 ns overhead, 0 allocations, no timer",
})
# Issue 20: the LLM layers against tower's and tower-resilience's equivalents, same run.
GOALS.update({
    ("rt_rate_limit", "steadfast_rate_limit"): "no slower than tower_rate_limit, 0 allocations",
    ("rt_rate_limit", "steadfast_rate_limit_rpm_tpm"): "no slower than tower_rate_limit, 0 allocations",
    ("rt_rate_limit", "tower_rate_limit"): "steadfast no slower (>= 1.0x)",
    ("rt_hedge", "steadfast_hedge"): ">= 3x faster than tower_resilience_hedge, 0 allocations",
    ("rt_hedge", "steadfast_hedge_percentile"): ">= 3x faster than tower_resilience_hedge, 0 allocations",
    ("rt_hedge", "steadfast_hedge_to_alternative"): ">= 3x faster than tower_resilience_hedge, 0 allocations",
    ("rt_hedge", "tower_resilience_hedge"): "steadfast >= 3x faster",
})
# Fleet sync (issue 14), streaming (issue 21).
GOALS.update({
    ("fleet_sync", "steadfast_closed_fleet_sync"): "within 5 ns of steadfast_closed, 0 allocations",
    ("stream_chunk", "stream_body_deadlines_and_sse_scan"): "<= 20 ns overhead per chunk, 0 allocations",
    ("stream_chunk", "stream_body_deadlines"): "<= 20 ns overhead per chunk, 0 allocations",
})
PEERS = ("tower_resilience_", "failsafe_", "tower_")
# Peers whose steadfast twin does not follow from the name.
TWINS = {
    "tower_concurrency_limit": "steadfast_bulkhead",
    "tower_concurrency_limit_load_shed": "steadfast_bulkhead",
    "tower_load_shed_full": "steadfast_bulkhead_full",
}

def steadfast_twin(bench):
    """For a peer's row, the steadfast row doing the same work."""
    if bench in TWINS:
        return TWINS[bench]
    for prefix in PEERS:
        if bench.startswith(prefix):
            return "steadfast_" + bench[len(prefix):]
    return None
for group, benches in rows.items():
    bare = benches.get("bare")
    lines += [f"## {group}", "", "| row | time | overhead vs bare | ratio to bare | allocations/call | steadfast is faster by | goal |", "|---|---|---|---|---|---|---|"]
    for bench, ns in benches.items():
        over = "-" if bare is None or bench == "bare" else f"{ns - bare:.1f} ns"
        ratio = "-" if bare is None else f"{ns / bare:.1f}x"
        alloc = allocs.get((group, bench), "?")
        goal = GOALS.get((group, bench), "")
        twin = benches.get(steadfast_twin(bench) or "")
        faster = f"{ns / twin:.1f}x" if twin else ""
        lines.append(f"| {bench} | {ns:.2f} ns | {over} | {ratio} | {alloc} | {faster} | {goal} |")
    lines.append("")
    # Two threads each make `iters` calls; the row's time is the slower thread's, per call.
    # Throughput of two threads over one = 2 x one-thread time / two-thread time.
    for prefix in sorted({b.rsplit("_one_thread", 1)[0] for b in benches if b.endswith("_one_thread")}):
        one, two = benches.get(prefix + "_one_thread"), benches.get(prefix + "_two_threads")
        if one and two:
            goal = " (goal for steadfast: >= 1.8x)" if group == "rt_contention" and prefix == "steadfast" else ""
            lines.append(f"- {prefix}: two threads make {2 * one / two:.2f}x the calls per second of one{goal}")
    if group in paired:
        lines.append(f"- measured in 31 pairs close in time (one thread, then two; the median pair's ratio, lowest-highest): {paired[group]}")
    if any(b.endswith("_one_thread") for b in benches):
        lines.append("")
with open(out, "w") as f:
    f.write("\n".join(lines))
PY
{
  cat benches/analysis.md
  echo
  cargo run --release -q -p steadfast-benches --bin scenarios
} >> "$out"
echo "wrote $out"
