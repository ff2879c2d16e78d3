#!/usr/bin/env bash
# The long chaos soak: 1,000,000 calls (or $1) through the full stack over mock agents on
# 127.0.0.1, release build, concurrency 64. Loopback only; stops by itself (the test fails if it
# runs past 60 s + 2 ms per call; `timeout` below is the outer guard). Prints the figures.
#
#   bash scripts/soak.sh            # 1,000,000 calls, seed 7
#   bash scripts/soak.sh 300000 42  # 300,000 calls, seed 42
set -euo pipefail
cd "$(dirname "$0")/.."

calls="${1:-1000000}"
seed="${2:-7}"
case "$calls$seed" in
  *[!0-9]*) echo "usage: $0 [calls] [seed] (whole numbers)" >&2; exit 2 ;;
esac
# Outer bound: the build, plus the test's own limit, plus a margin.
limit=$(( 900 + 60 + calls * 2 / 1000 + 60 ))

STEADFAST_SOAK_CALLS="$calls" STEADFAST_SOAK_SEED="$seed" timeout "$limit" \
  cargo test --release -p steadfast-cli --test soak -- --nocapture
