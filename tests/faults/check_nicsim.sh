#!/usr/bin/env bash
# kcont-nicsim refuses bad options and KCONT_* values: exit 2 and one line naming the option
# and its range. Every numeric option gets nan, inf, negative, overflowing, fractional and
# garbage values; --intr-cpu must be a CPU of the runtime (--ncpu, else KCONT_NCPU); ring and
# queue sizes whose packet buffers would need gigabytes are refused with the limit. Before
# issue 16, --intr-cpu beyond ncpu was silently wrapped and --ifq-len 1048576 tried to
# allocate some 9 GB. Usage: check_nicsim.sh PATH/TO/kcont-nicsim
set -u
bin=$1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
. "$(dirname "$0")/lib.sh"

# A short run on the in-memory wire, should a bad value be taken.
run=("$bin" --wire memory --packets 1000 --quiet)
garbage=(nan inf -inf -1 "" 12abc 1e3 2.5 99999999999999999999999 " 16" +16 0x10)

for opt in --tx-ring --rx-ring; do
  for v in "${garbage[@]}" 0 2 100 131072; do
    refused "^kcont-nicsim: $opt needs a power of two .*4\.\.65536" "${run[@]}" "$opt" "$v"
  done
done
check_range() {  # check_range OPTION LO HI OUT-OF-RANGE...
  local opt=$1 lo=$2 hi=$3
  shift 3
  for v in "${garbage[@]}" "$@"; do
    refused "^kcont-nicsim: '$opt' needs .*$lo\.\.$hi" "${run[@]}" "$opt" "$v"
  done
}
check_range --ifq-len 1 65536 0 65537 1048576
check_range --dma-pps 0 1000000000 1000000001
check_range --intr-cpu 0 1023 1024 4294967296
check_range --race-delay-us 0 1000000 1000001
check_range --stall-ms 1 600000 0 600001
check_range --producers 1 64 0 65
check_range --frame-size 64 1518 63 1519
check_range --ncpu 1 1024 0 1025
# --serve's load (issue 17)
check_range --ping-count 0 10000000 10000001
check_range --ping-interval-us 100 1000000 0 99 1000001
check_range --udp-window 1 4096 0 4097
check_range --udp-size 8 1472 0 7 1473
check_range --udp-pps 0 10000000 10000001
check_range --udp-count 0 1000000000 1000000001
check_range --push-pps 0 100000 100001
for v in "" nope KCONT Floor; do
  refused "^kcont-nicsim: --responder takes kcont, floor or both, not '$v'" \
    "${run[@]}" --serve --responder "$v"
done
for v in "${garbage[@]}" 0 1000000000001 18446744073709551616; do
  refused "^kcont-nicsim: '--packets' needs .*1\.\.1000000000000" \
    "$bin" --wire memory --quiet --packets "$v"
done
for v in nan inf -1 0 "" 5s " 5" 0x10 1e10 86401 1e-400; do
  refused '^kcont-nicsim: --seconds needs .*\(0, 86400\]' \
    "$bin" --wire memory --quiet --seconds "$v"
done
refused "^kcont-nicsim: '--ncpu' needs .*1\.\.1024" "${run[@]}" --ncpu

# --intr-cpu is checked against the runtime's CPUs, from --ncpu or KCONT_NCPU.
refused "^kcont-nicsim: '--intr-cpu' needs a CPU of the runtime, 0\.\.1 " \
  "${run[@]}" --ncpu 2 --intr-cpu 2
refused "^kcont-nicsim: '--intr-cpu' needs a CPU of the runtime, 0\.\.1 " \
  env KCONT_NCPU=2 "${run[@]}" --intr-cpu 5
refused "^kcont-nicsim: '--intr-cpu' needs a CPU of the runtime, 0\.\.0 " \
  env KCONT_NCPU=4 "${run[@]}" --ncpu 1 --intr-cpu 1

# Packet buffers: 4 x (tx ring + rx ring + send queue) per NIC must fit in 1024 MiB.
refused '^kcont-nicsim: --tx-ring 65536, --rx-ring 65536 and --ifq-len 65536 need .* MiB.*limit is 1024 MiB' \
  "${run[@]}" --tx-ring 65536 --rx-ring 65536 --ifq-len 65536
refused '^kcont-nicsim: --tx-ring 65536, --rx-ring 32768 and --ifq-len 256 need .*limit is 1024 MiB' \
  "$bin" --wire pair --packets 1000 --quiet --tx-ring 65536 --rx-ring 32768

# The environment.
refused '^kcont-nicsim: .*KCONT_NCPU=4294967297.*0\.\.1024' env KCONT_NCPU=4294967297 "${run[@]}"
refused '^kcont-nicsim: .*KCONT_HZ=4294968296.*1\.\.100000' env KCONT_HZ=4294968296 "${run[@]}"
refused '^kcont-nicsim: .*KCONT_HZ=fast.*1\.\.100000' env KCONT_HZ=fast "${run[@]}"
refused '^kcont-nicsim: .*KCONT_PIN=yes.*0\.\.1' env KCONT_PIN=yes "${run[@]}"
refused '^kcont-nicsim: .*KCONT_INITIAL_TICKS=-1.*0\.\.4294967295' \
  env KCONT_INITIAL_TICKS=-1 "${run[@]}"
refused '^kcont-nicsim: .*KCONT_BACKEND=boost.*asio or libevent' env KCONT_BACKEND=boost "${run[@]}"

# Controls: the limits themselves still run.
accepted "${run[@]}" --ncpu 2 --intr-cpu 1
accepted env KCONT_NCPU=2 "${run[@]}" --intr-cpu 1
accepted "${run[@]}" --tx-ring 4 --rx-ring 4 --ifq-len 1 --producers 1 --frame-size 1518
accepted "${run[@]}" --tx-ring 1024 --rx-ring 1024 --ifq-len 4096
finish
