#!/usr/bin/env bash
# Runs the kcont-nicsim program the way a user would and checks what it says:
# --help, bad options (exit 2 with a message), a counted run on the in-memory wire (every
# frame delivered, in order, JSON written), two NICs back to back, the naive mode's stall
# report, and SIGINT (clean exit 0, summary printed); a tap only ever inside the program's
# own namespace (exit 2 for --wire tap where none can be made); --serve (issue 17): the in-memory
# fallback with its reason, and where a namespace and a tap can be made, stock ping answered
# through one, and the namespace gone after a normal exit, Ctrl-C and kill -9 (the reaper),
# and a stale one swept at startup. Usage: check_nicsim.sh PATH/TO/kcont-nicsim
set -u
bin=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0
check() {  # check DESCRIPTION COMMAND...: the command must succeed
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; fail=1; return 1; fi
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

# A tap is only ever made inside the program's own namespace, kcont-nicsim-PID; where none can
# be made, --wire tap exits 2 saying why and --wire auto falls back to the in-memory wire.
ns_gone() {  # ns_gone PID: no /run/netns/kcont-nicsim-PID within 3 s
  for _ in $(seq 1 60); do
    [ -e "/run/netns/kcont-nicsim-$1" ] || return 0
    sleep 0.05
  done
  return 1
}
wait_ns() {  # wait_ns PID: until the program's namespace exists (or it ended)
  for _ in $(seq 1 200); do
    [ -e "/run/netns/kcont-nicsim-$1" ] && return 0
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
KCONT_NO_NETNS=1 "$bin" --wire tap --seconds 1 --quiet >"$out/nons" 2>&1
rc=$?
check "--wire tap without a namespace: exit 2 with the reason" \
  bash -c "[ $rc -eq 2 ] && grep -q -- '--wire tap: KCONT_NO_NETNS is set' '$out/nons'"
KCONT_NO_NETNS=1 "$bin" --seconds 0.5 --quiet >"$out/nons2" 2>&1
rc=$?
check "--wire auto without a namespace: the in-memory wire, saying why" \
  bash -c "[ $rc -eq 0 ] && grep -q 'no tap in a namespace of our own (KCONT_NO_NETNS' '$out/nons2'"

# With a tap (root, /dev/net/tun, iproute2): the tap exists in the program's namespace (never
# in the host's) while it runs, and both are gone after Ctrl-C; deleting the link under the
# program is reported and the program exits cleanly.
tap=kcnsim$$
tap=${tap:0:15}
tap_in_ns() {  # tap_in_ns PID: the tap is an interface of kcont-nicsim-PID
  ip -n "kcont-nicsim-$1" link show dev "$tap" >/dev/null 2>&1
}
wait_tap() {  # wait_tap PID FILE: until the program says it uses the tap (or it ended)
  for _ in $(seq 1 200); do
    grep -q "using tap device" "$2" && return 0
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
"$bin" --wire tap --tap-name "$tap" --seconds 60 --quiet >"$out/tap" 2>&1 &
pid=$!
if command -v ip >/dev/null && wait_tap $pid "$out/tap"; then
  check "tap: says which namespace it is in" \
    grep -q "using tap device $tap in namespace kcont-nicsim-$pid " "$out/tap"
  check "tap: an interface of that namespace" tap_in_ns $pid
  check "tap: not an interface of the host's default namespace" test ! -e "/sys/class/net/$tap"
  kill -INT $pid
  wait $pid
  rc=$?
  check "tap: Ctrl-C exits 0" test $rc -eq 0
  check "tap: the namespace, and the tap in it, are removed on exit" ns_gone $pid
  "$bin" --wire tap --tap-name "$tap" --seconds 60 --quiet >"$out/tap2" 2>&1 &
  pid=$!
  if wait_tap $pid "$out/tap2"; then
    sleep 0.3
    ip -n "kcont-nicsim-$pid" link delete "$tap"
    for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
    kill -0 $pid 2>/dev/null && kill -INT $pid
    wait $pid
    rc=$?
    cat "$out/tap2"
    check "tap deleted under the program: reported" grep -q "the wire is gone" "$out/tap2"
    check "tap deleted under the program: clean exit 0" test $rc -eq 0
    check "tap deleted under the program: the namespace is gone" ns_gone $pid
  else
    echo "FAILED: the second --wire tap run made no tap"; fail=1; wait $pid
  fi
else
  wait $pid
  echo "skipped: tap checks (no tap in a namespace here: $(grep -o 'tap: .*' "$out/tap" | head -1))"
fi

# --serve without a namespace (forced): the in-memory wire, the built-in peer, the reason said.
KCONT_NO_NETNS=1 "$bin" --serve --seconds 1 --ping-count 300 --ping-interval-us 200 --quiet \
  >"$out/mem" 2>&1
rc=$?
cat "$out/mem"
check "--serve, no namespace: exit 0" test $rc -eq 0
check "--serve, no namespace: says why it fell back" \
  grep -q "KCONT_NO_NETNS is set.*in-memory wire with a built-in peer" "$out/mem"
check "--serve in memory: 300 pings answered, none lost" \
  grep -q "ping: 300 transmitted, 300 received, 0 lost" "$out/mem"
check "--serve in memory: no UDP echo lost or corrupt" grep -q "lost 0, late 0, duplicate 0, corrupt 0" "$out/mem"
"$bin" --serve --responder nope >"$out/bad3" 2>&1
rc=$?
check "--serve: a bad --responder exits 2" \
  bash -c "[ $rc -eq 2 ] && grep -q 'responder takes kcont, floor or both' '$out/bad3'"

# --serve with a namespace of its own (root, /dev/net/tun, iproute2).
"$bin" --serve --wire tap --responder kcont --seconds 1 --ping-count 1000 --ping-interval-us 200 \
  --quiet >"$out/serve" 2>&1 &
pid=$!
wait $pid
rc=$?
cat "$out/serve"
if grep -q -- "--wire tap:" "$out/serve"; then
  echo "skipped: --serve through a namespace ($(grep -o -- '--wire tap: .*' "$out/serve"))"
else
  check "--serve: exit 0" test $rc -eq 0
  if command -v ping >/dev/null; then
    check "--serve: 1000 pings of stock ping answered, none lost" \
      grep -q "ping: 1000 transmitted, 1000 received, 0 lost" "$out/serve"
  else
    echo "skipped: stock ping (no ping here)"
  fi
  check "--serve: UDP echoes byte-exact, none lost" \
    grep -q "answered .*lost 0, late 0, duplicate 0, corrupt 0" "$out/serve"
  check "--serve: the namespace is gone after a normal exit" ns_gone $pid

  # The oactive race under real traffic (issue 17, item 4): the knob open, a TX ring of 16, a
  # send queue of 4, DMA held to 100 000 frames/s (the race needs a full ring), the stack
  # sending 20 000 datagrams/s of its own off the interrupt CPU. The naive mode stalls and the
  # detector says so (stop at its first report, at most 20 s); taskctx, the same load and
  # knob, never does. The detector's default threshold (200 ms): a naive stall lasts until it
  # is reported, while a loaded machine could hold a taskctx restart back for 20 ms.
  race="--serve --wire tap --responder kcont --race-delay-us 500 --tx-ring 16 --ifq-len 4 \
    --dma-pps 100000 --push-pps 20000 --ping-count 0"
  # shellcheck disable=SC2086
  "$bin" $race --mode naive --seconds 20 --quiet >"$out/race" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    grep -q "stall:" "$out/race" && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  kill -INT $pid 2>/dev/null
  wait $pid
  rc=$?
  check "--serve, naive mode, race knob: the stall detector reports a stall" \
    grep -q "kcont-nicsim: .*: stall: .* packets queued, oactive set, TX ring empty" "$out/race" ||
    cat "$out/race"
  check "--serve, naive mode, race knob: clean exit 0, stalls counted in the summary" \
    bash -c "[ $rc -eq 0 ] && grep -Eq 'stalls [1-9]' '$out/race'" || cat "$out/race"
  # shellcheck disable=SC2086
  "$bin" $race --mode taskctx --seconds 3 --quiet >"$out/race2" 2>&1
  rc=$?
  check "--serve, taskctx mode, race knob: exit 0, no stall" \
    bash -c "[ $rc -eq 0 ] && grep -q 'stalls 0;' '$out/race2' && ! grep -q 'stall:' '$out/race2'" ||
    cat "$out/race2"

  "$bin" --serve --seconds 60 --quiet >"$out/int" 2>&1 &
  pid=$!
  if wait_ns $pid; then
    sleep 0.5
    kill -INT $pid
    wait $pid
    rc=$?
    check "--serve, Ctrl-C: exit 0 with a summary" \
      bash -c "[ $rc -eq 0 ] && grep -q 'kcont-nicsim --serve summary' '$out/int'"
    check "--serve, Ctrl-C: the namespace is gone" ns_gone $pid
  else
    echo "FAILED: --serve made no namespace"; fail=1; wait $pid
  fi

  "$bin" --serve --seconds 60 --quiet >"$out/kill" 2>&1 &
  pid=$!
  if wait_ns $pid; then
    sleep 0.5
    kill -KILL $pid
    wait $pid 2>/dev/null
    check "--serve, kill -9: the reaper removes the namespace" ns_gone $pid
    check "--serve, kill -9: its ping dies with it" \
      bash -c "sleep 0.2; ! pgrep -f '[p]ing -n -i .* 10.77.0.2' >/dev/null"
  else
    echo "FAILED: --serve made no namespace"; fail=1; wait $pid
  fi

  # Stale namespaces: a program's and a test's, named after a pid that is no longer alive.
  sh -c 'exit 0' &
  dead=$!
  wait $dead
  if ip netns add "kcont-nicsim-$dead" 2>/dev/null && ip netns add "kcont-test-$dead" 2>/dev/null
  then
    "$bin" --serve --responder floor --seconds 0.5 --ping-count 10 --quiet >"$out/sweep" 2>&1
    check "--serve: a stale namespace is swept at startup" \
      grep -q "removed stale namespace kcont-nicsim-$dead " "$out/sweep"
    check "--serve: ... and is gone" test ! -e "/run/netns/kcont-nicsim-$dead"
    check "--serve: a stale test namespace is swept too" \
      bash -c "grep -q 'removed stale namespace kcont-test-$dead ' '$out/sweep' &&
               [ ! -e /run/netns/kcont-test-$dead ]"
  else
    echo "skipped: the stale-namespace sweep (ip netns add failed)"
  fi
  ip netns delete "kcont-nicsim-$dead" 2>/dev/null
  ip netns delete "kcont-test-$dead" 2>/dev/null
fi

exit $fail
