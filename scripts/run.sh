#!/usr/bin/env bash
# The main job. Until the NIC simulator lands (net/, issue 6), it builds kcont and runs the
# latency and cost benchmarks, each beside its peers in the same run: softints (vs eventfd,
# Asio post, condvar, libevent), callouts (vs asio::steady_timer, libevent timers), task queues
# and taskctx (vs asio::strand, std::mutex), and kcont continuations.
# Extra arguments go to every benchmark (e.g. --quick). Set KCONT_RUN_JSON=DIR to also write
# each benchmark's figures as JSON there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" \
  --target bench_softint bench_callout bench_task bench_kcont
for b in softint callout task kcont; do
  json=()
  if [ -n "${KCONT_RUN_JSON:-}" ]; then
    mkdir -p "$KCONT_RUN_JSON"
    json=(--json "$KCONT_RUN_JSON/$b.json")
  fi
  echo
  echo "=================== bench_$b ==================="
  ./build/bench/bench_$b "$@" "${json[@]}"
done
