#!/usr/bin/env bash
# The main job: the NIC simulator demo, then the latency summary.
#
# 1. kcont-nicsim (net/): a simulated NIC whose driver is written the way OpenBSD's myx(4) is
#    after the 2015 taskctx diff. Without arguments: --serve, the NIC's IPv4 stack answering
#    stock ping and a UDP echo load in a network namespace of its own through a tap (10 s with
#    kcont in taskctx mode, then 10 s with the floor responder, and the ratios), or, where no
#    tap or namespace can be made, on the in-memory wire against a built-in peer, saying why.
#    Arguments go to kcont-nicsim instead (add --serve for that run; without it, the simulator's
#    own frames: try --mode naive --race-delay-us 200 --ifq-len 4 --tx-ring 16 to watch the
#    oactive race stall the interface and the detector catch it; --help lists all).
# 2. The latency summary: kcont-bench (bench/), every area beside its peers in the same run
#    (softints vs eventfd, Asio post, condvar, libevent; callouts vs asio::steady_timer and
#    libevent timers; task queues, taskctx and workqueues vs asio::strand, std::mutex and
#    condvar queues; kcont continuations; the simulated NIC by start mode), in quick mode.
#    KCONT_RUN_FULL=1 runs it at full length; KCONT_RUN_JSON=DIR also writes its figures as
#    JSON to DIR/kcont-bench.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" \
  --target kcont-nicsim kcont-bench

echo "=================== kcont-nicsim ==================="
if [ $# -eq 0 ]; then
  ./build/net/kcont-nicsim --serve
else
  ./build/net/kcont-nicsim "$@"
fi

quick=(--quick)
[ "${KCONT_RUN_FULL:-0}" = 1 ] && quick=()
json=()
if [ -n "${KCONT_RUN_JSON:-}" ]; then
  mkdir -p "$KCONT_RUN_JSON"
  json=(--json "$KCONT_RUN_JSON/kcont-bench.json")
fi
echo
echo "=================== latency summary: kcont-bench ==================="
./build/bench/kcont-bench "${quick[@]}" "${json[@]}"
