#!/usr/bin/env bash
# Runs the kcont-nicsim program the way a user would and checks what it says:
# --help, bad options (exit 2 with a message), a counted run on the in-memory wire (every
# frame delivered, in order, JSON written), two NICs back to back, the naive mode's stall
# report, and SIGINT (clean exit 0, summary printed). Usage: check_nicsim.sh PATH/TO/kcont-nicsim
set -u
bin=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0
check() {  # check DESCRIPTION COMMAND...: the command must succeed
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; fail=1; fi
}

"$bin" --help >"$out/help" 2>&1
check "--help exits 0 and explains every option" \
  grep -q -- "--race-delay-us" "$out/help"
for opt in --mode --wire --tx-ring --backend --seconds --frame-size --producers; do
  grep -q -- "$opt" "$out/help" || { echo "FAILED: --help lacks $opt"; fail=1; }
done

"$bin" --tx-ring 100 >"$out/bad" 2>&1
rc=$?
check "a bad option exits 2 with a message" \
  bash -c "[ $rc -eq 2 ] && grep -q 'power of two' '$out/bad'"
"$bin" --frobnicate >"$out/bad2" 2>&1
rc=$?
check "an unknown option exits 2" bash -c "[ $rc -eq 2 ] && grep -q 'unknown option' '$out/bad2'"

"$bin" --wire memory --seconds 2 --drop --quiet >"$out/drop" 2>&1
rc=$?
check "--drop: a blasting stack's drops are counted, the run still ends cleanly" \
  bash -c "[ $rc -eq 0 ] && grep -Eq 'sent, [1-9][0-9]* dropped at a full send queue' '$out/drop'"

"$bin" --wire memory --packets 300000 --quiet --json "$out/run.json" >"$out/run" 2>&1
rc=$?
cat "$out/run"
check "counted run on the in-memory wire exits 0" test $rc -eq 0
check "every frame delivered" grep -q "rx delivered 300000 " "$out/run"
check "in order, no gaps, no stall" \
  grep -q "stalls 0" "$out/run"
check "no reordering" grep -q "out of order 0, gaps 0" "$out/run"
check "JSON written with the pps figures" grep -q '"nicsim.taskctx.sim0.tx_pps"' "$out/run.json"

"$bin" --wire pair --packets 100000 --quiet >"$out/pair" 2>&1
rc=$?
check "two NICs back to back: B receives A's frames" \
  bash -c "[ $rc -eq 0 ] && grep -q 'simB: tx 0 frames.*rx delivered 100000 ' '$out/pair'"

"$bin" --wire memory --mode naive --tx-ring 16 --ifq-len 4 --race-delay-us 200 --stall-ms 20 --seconds 20 \
  --producers 3 --quiet >"$out/naive" 2>&1 &
pid=$!
# Stop it as soon as the detector has spoken (or after 20 s on its own).
for _ in $(seq 1 200); do
  grep -q "stall:" "$out/naive" && break
  sleep 0.1
done
kill -INT $pid 2>/dev/null
wait $pid
rc=$?
check "naive mode: the stall detector reports a stall" grep -q "sim0: stall:" "$out/naive"
check "SIGINT: clean exit 0 with a summary" \
  bash -c "[ $rc -eq 0 ] && grep -q 'kcont-nicsim summary' '$out/naive'"

# With a tap (root, /dev/net/tun): the tap exists while the program runs and is gone after
# Ctrl-C; deleting the link under the program is reported and the program exits cleanly.
tap=kcnsim$$
tap=${tap:0:15}
"$bin" --wire tap --tap-name "$tap" --seconds 60 --quiet >"$out/tap" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  [ -e "/sys/class/net/$tap" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.05
done
if [ -e "/sys/class/net/$tap" ]; then
  kill -INT $pid
  wait $pid
  rc=$?
  check "tap: Ctrl-C exits 0" test $rc -eq 0
  check "tap: the interface is removed on exit" test ! -e "/sys/class/net/$tap"
  if command -v ip >/dev/null; then
    "$bin" --wire tap --tap-name "$tap" --seconds 60 --quiet >"$out/tap2" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do [ -e "/sys/class/net/$tap" ] && break; sleep 0.05; done
    sleep 0.3
    ip link delete "$tap"
    for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
    kill -0 $pid 2>/dev/null && kill -INT $pid
    wait $pid
    rc=$?
    cat "$out/tap2"
    check "tap deleted under the program: reported" grep -q "the wire is gone" "$out/tap2"
    check "tap deleted under the program: clean exit 0" test $rc -eq 0
  else
    echo "skipped: no 'ip' command to delete the link with"
  fi
else
  wait $pid
  echo "skipped: tap checks (no tap device here: $(grep -o 'tap: .*' "$out/tap" | head -1))"
fi

exit $fail
