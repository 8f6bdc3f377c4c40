#!/usr/bin/env bash
# kcont-torture refuses bad options and KCONT_* values: exit 2 and one line naming the option
# and its range. Before issue 16, --seconds 1e10|inf gave a false PASS after 0.1 s and
# --ops nan ran 2^63 operations. Usage: check_torture.sh PATH/TO/kcont-torture
set -u
bin=$1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
. "$(dirname "$0")/lib.sh"

for v in 1e10 inf nan -1 0 "" 5s 0x10 " 1" 1e-400 infinity; do
  refused '^kcont-torture: --seconds .*\(0, 604800\]' "$bin" --seconds "$v"
done
for v in nan inf 1e30 1e13 -5 0 1.5 10abc "" 0x10 " 10" +10; do
  refused '^kcont-torture: --ops .*1\.\.1000000000000' "$bin" --ops "$v"
done
for v in -1 1.5 18446744073709551616 abc "" 1e3 nan; do
  refused '^kcont-torture: --seed .*0\.\.18446744073709551615' "$bin" --ops 1000 --seed "$v"
done
for v in 0 257 nan -1 "" 4x 2.5 99999999999999999999; do
  refused '^kcont-torture: --threads .*1\.\.256' "$bin" --ops 1000 --threads "$v"
done
for v in 0 65 nan -1 "" 2.5 1e1; do
  refused '^kcont-torture: --ncpu .*1\.\.64' "$bin" --ops 1000 --ncpu "$v"
done
refused '^kcont-torture: --ops \(no value\).*1\.\.1000000000000' "$bin" --ops
refused '^kcont-torture: --seconds \(no value\)' "$bin" --seconds
refused '^kcont-torture: --backend .*asio' "$bin" --ops 1000 --backend boost

# The environment: the runtime's variables torture does not set itself.
for v in 4294968296 0 abc 1e3 -1 ""1000x; do
  refused "^kcont-torture: .*KCONT_HZ=$v.*1\.\.100000" env KCONT_HZ="$v" "$bin" --ops 1000 --seed 1
done
refused '^kcont-torture: .*KCONT_PIN=2.*0\.\.1' env KCONT_PIN=2 "$bin" --ops 1000 --seed 1
refused '^kcont-torture: .*KCONT_INITIAL_TICKS=4294967296.*0\.\.4294967295' \
  env KCONT_INITIAL_TICKS=4294967296 "$bin" --ops 1000 --seed 1

# Controls: the ranges' own values still run.
accepted "$bin" --ops 1000 --seed 18446744073709551615 --threads 1 --ncpu 1
accepted "$bin" --ops 1e3 --seed 0 --threads 2 --ncpu 2
accepted "$bin" --seconds 0.2 --seed 1 --ops 1000
accepted env KCONT_HZ=100000 KCONT_PIN=0 KCONT_INITIAL_TICKS=4294967295 "$bin" --ops 1000 --seed 1
finish
