#!/usr/bin/env bash
# Verifies the Promela models in this folder with spin, exhaustively, and checks that each
# deliberately broken variant FAILS. Used by CTest (test_spin_models, label spin).
#
#   models/check_models.sh            run everything (about 30 s on 2 cores)
#   KEEP=1 models/check_models.sh     keep the work directory (pan sources, trails)
#
# For each run: spin -a [defines] model.pml; gcc <pan options> pan.c; ./pan <run options>.
# Pan options used (printed per run):
#   -DSAFETY -DNOCLAIM   safety search: assertions and invalid end states (deadlocks);
#                        NOCLAIM leaves the model's LTL formula out of that run
#   -DCOLLAPSE           state-vector compression (the taskctx space is the largest)
#   -DMEMLIM=2048        give up (and FAIL) beyond 2 GB
#   ./pan -m N           search depth bound; reaching it ("max search depth too small")
#                        makes a correct model FAIL, since the search was then not exhaustive
#   ./pan -a [-f]        acceptance cycles against the model's ltl formula (liveness:
#                        termination), -f with weak fairness
# Exit status: 0 when every correct model passes and every broken/known-issue variant fails;
# 1 otherwise. If spin is not installed the test is SKIPPED (exit 0, message) --
# scripts/deps.sh installs it.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v spin >/dev/null 2>&1; then
  echo "SKIPPED: spin is not installed (apt-get install spin, or scripts/deps.sh); models not checked"
  exit 0
fi
CC="${CC:-cc}"
command -v "$CC" >/dev/null 2>&1 || CC=gcc

work="$(mktemp -d "${TMPDIR:-/tmp}/kcont-spin.XXXXXX")"
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$work"' EXIT; else echo "work directory: $work"; fi

fails=0
total_start=$(date +%s.%N)
printf '%-34s %-8s %12s %12s %8s  %s\n' "run" "expect" "states" "transitions" "time" "result"

# run NAME EXPECT MODEL "SPIN_DEFINES" "PAN_CFLAGS" "PAN_RUN_OPTIONS" [FAIL_PATTERN]
#   EXPECT: pass (no error, exhaustive) or fail (an error whose pan output matches
#   FAIL_PATTERN, i.e. the broken variant fails for the reason it was written for)
run() {
  local name="$1" expect="$2" model="$3" sdefs="$4" cflags="$5" ropts="$6" pattern="${7:-}"
  local d="$work/$name"
  mkdir -p "$d" && cp "$here/$model" "$d/"
  local t0 t1 out states trans secs result
  t0=$(date +%s.%N)
  if ! (cd "$d" && spin $sdefs -a "$model" >spin.log 2>&1); then
    printf '%-34s %-8s %s\n' "$name" "$expect" "FAIL (spin -a failed: see below)"
    cat "$d/spin.log"; fails=$((fails + 1)); return
  fi
  if ! (cd "$d" && $CC -O2 -w $cflags -o pan pan.c >cc.log 2>&1); then
    printf '%-34s %-8s %s\n' "$name" "$expect" "FAIL (pan did not compile)"
    cat "$d/cc.log"; fails=$((fails + 1)); return
  fi
  out="$(cd "$d" && ./pan $ropts 2>&1)"
  t1=$(date +%s.%N)
  echo "$out" >"$d/pan.out"
  states=$(echo "$out" | awk '/states, stored/ {print $1; exit}')
  trans=$(echo "$out" | awk '/transitions \(=/ {print $1; exit}')
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2fs", b - a}')
  local errors
  errors=$(echo "$out" | sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' | head -1)
  local toosmall=0
  echo "$out" | grep -qiE "search depth too small|out of memory|memory limit" && toosmall=1
  if [ "$expect" = pass ]; then
    if [ "$errors" = 0 ] && [ $toosmall = 0 ]; then
      result="PASS"
    else
      result="FAIL"
    fi
  else
    if [ -n "$errors" ] && [ "$errors" != 0 ] && echo "$out" | grep -qE "$pattern"; then
      result="PASS (fails as expected: $(echo "$out" | grep -m1 -E "$pattern" |
               sed -e 's/^pan:[0-9]*: //' -e 's/ (at depth.*//' | cut -c1-70))"
    else
      result="FAIL (expected a failure matching '$pattern')"
    fi
  fi
  printf '%-34s %-8s %12s %12s %8s  %s\n' "$name" "$expect" "${states:-?}" "${trans:-?}" \
    "$secs" "$result"
  echo "    spin $sdefs -a $model; $CC $cflags pan.c; ./pan $ropts"
  if [[ "$result" == FAIL* ]]; then
    fails=$((fails + 1))
    echo "$out" | grep -E "error|violated|invalid|depth too small|acceptance|memory" | head -5 |
      sed 's/^/    | /'
    [ -n "${KEEP:-}" ] && echo "    (trail and pan output in $d)"
  fi
}

SAFE="-DSAFETY -DNOCLAIM -DCOLLAPSE -DMEMLIM=2048"
LIVE="-DCOLLAPSE -DMEMLIM=2048"

# The code has the FIX_BARRIER and FIX_EARLY behaviour since the models found those two bugs
# (workqueue/src/taskctx.cpp taskctx_barrier, kcont/src/kcont.cpp expire): the runs with
# STRICT_BARRIER / CHECK_EARLY check the stronger property against the code, and the same
# property without the fix is kept as a broken variant that must fail.

# (a) taskctx: task_dispatch / taskctx_barrier
run taskctx                       pass taskctx.pml "" "$SAFE" "-m10000"
run taskctx_ltl_all_done          pass taskctx.pml "" "$LIVE" "-a -m10000"
run taskctx_BROKEN                fail taskctx.pml "-DBROKEN" "$SAFE" "-m10000" \
    "assertion violated"
run taskctx_barrier_strict        pass taskctx.pml "-DSTRICT_BARRIER -DFIX_BARRIER" "$SAFE" \
    "-m10000"
run taskctx_BROKEN_barrier_early  fail taskctx.pml "-DSTRICT_BARRIER" "$SAFE" "-m10000" \
    "assertion violated.*donegen"

# (b) callout_halt against a re-arming handler
run callout_halt                  pass callout_halt.pml "" "$SAFE" "-m10000"
run callout_halt_ltl              pass callout_halt.pml "" "$LIVE" "-a -f -m10000"
run callout_halt_BROKEN1_noloop   fail callout_halt.pml "-DBROKEN=1" "$SAFE" "-m10000" \
    "assertion violated"
run callout_halt_BROKEN2_ilock    fail callout_halt.pml "-DBROKEN=2" "$SAFE" "-m10000" \
    "invalid end state"
run callout_halt_BROKEN2_ltl      fail callout_halt.pml "-DBROKEN=2" "$LIVE" "-a -f -m10000" \
    "acceptance cycle"

# (c) the kcont state machine
run kcont_state                   pass kcont_state.pml "" "$SAFE" "-m10000"
run kcont_state_BROKEN1_lock      fail kcont_state.pml "-DBROKEN=1" "$SAFE" "-m10000" \
    "assertion violated"
run kcont_state_BROKEN2_invoking  fail kcont_state.pml "-DBROKEN=2" "$SAFE" "-m10000" \
    "assertion violated"
run kcont_state_never_early       pass kcont_state.pml "-DCHECK_EARLY -DFIX_EARLY" "$SAFE" \
    "-m10000"
run kcont_state_BROKEN3_stale      fail kcont_state.pml "-DCHECK_EARLY" "$SAFE" "-m10000" \
    "assertion violated.*tpend"
# func re-scheduling itself without the lock (the ask, settle, and with NOLOCK run_again)
run kcont_state_nolock            pass kcont_state.pml "-DNOLOCK" "$SAFE" "-m10000"
run kcont_state_nolock_never_early pass kcont_state.pml "-DNOLOCK -DCHECK_EARLY -DFIX_EARLY" \
    "$SAFE" "-m10000"
run kcont_state_BROKEN4_ask_acked fail kcont_state.pml "-DNOLOCK -DBROKEN=4" "$SAFE" "-m10000" \
    "assertion violated owed_q"
run kcont_state_BROKEN5_stop_ask  fail kcont_state.pml "-DBROKEN=5" "$SAFE" "-m10000" \
    "assertion violated.*owed_q"

# (d) the simulated NIC's transmit side: the engine, the doorbell, start transmitting itself
run nic_tx                        pass nic_tx.pml "" "$SAFE" "-m10000"
run nic_tx_more_frames            pass nic_tx.pml "-DN=6 -DK=2" "$SAFE" "-m10000"
run nic_tx_BROKEN1_no_busy        fail nic_tx.pml "-DBROKEN=1" "$SAFE" "-m10000" \
    "assertion violated"
run nic_tx_BROKEN2_bell_late      fail nic_tx.pml "-DBROKEN=2" "$SAFE" "-m10000" \
    "assertion violated.*start_done"

total=$(awk -v a="$total_start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
if [ $fails -eq 0 ]; then
  echo "spin models: all runs as expected (${total}s)"
  exit 0
fi
echo "spin models: $fails run(s) NOT as expected (${total}s)"
exit 1
