#!/usr/bin/env bash
# The main job. Until the NIC simulator lands (net/), this builds kcont and runs the latency
# benchmark: softint schedule->run against an eventfd floor, Asio post and a condvar queue.
# Extra arguments go to the benchmark (e.g. --quick, --json out.json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" --target bench_softint
exec ./build/bench/bench_softint "$@"
