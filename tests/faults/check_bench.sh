#!/usr/bin/env bash
# kcont-bench compare refuses files that are not kcont-bench --json output: exit 2 and one
# line naming the file and what is wrong, never a crash; kcont-bench refuses a bad KCONT_*
# variable likewise. Before issue 16, 100000 '[' crashed
# it (SIGSEGV: the parser recursed once per level) and 1e999, nan or 0x10 were taken as
# values. Usage: check_bench.sh PATH/TO/kcont-bench
set -u
bin=$1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
. "$(dirname "$0")/lib.sh"
d=$scratch

printf '{"records": [{"name": "a.p50", "value": 120, "unit": "ns", "min": 110, "max": 130}]}\n' \
  >"$d/good.json"
head -c 100000 /dev/zero | tr '\0' '[' >"$d/deep_array.json"
for _ in $(seq 1 100000); do printf '{"a":'; done >"$d/deep_object.json"
{ printf '{"records": '; head -c 300 /dev/zero | tr '\0' '['; } >"$d/deep_300.json"
printf '{"records": [{"name": "a.p50", "value": 12' >"$d/truncated.json"
printf '{"records": [{"name": "a.p5' >"$d/truncated_string.json"
printf '{"records": [{"name": "a.p50", "value": 1e999}]}' >"$d/huge.json"
printf '{"records": [{"name": "a.p50", "value": -1e400}]}' >"$d/huge_negative.json"
printf '{"records": [{"name": "a.p50", "value": 1%s}]}' "$(head -c 400 /dev/zero | tr '\0' '0')" \
  >"$d/huge_digits.json"
printf '{"records": [{"name": "a.p50", "value": nan}]}' >"$d/nan.json"
printf '{"records": [{"name": "a.p50", "value": inf}]}' >"$d/inf.json"
printf '{"records": [{"name": "a.p50", "value": 0x10}]}' >"$d/hex.json"
printf '{"records": [{"name": "a.p50", "value": 1.}]}' >"$d/bad_fraction.json"
printf '{"records": [{"name": "\\uZZZZ", "value": 1}]}' >"$d/bad_escape.json"
printf 'this is not JSON\n' >"$d/text.json"
: >"$d/empty.json"
printf '\n  \n' >"$d/blank.json"
printf '[1, 2, 3]' >"$d/not_bench.json"
printf '{"records": [{"name": "a.p50"}]}' >"$d/no_value.json"
printf '{"records": []} trailing' >"$d/trailing.json"
printf '\x00\x01\xff\xfe\x7f binary' >"$d/binary.json"

refused 'deep_array\.json: .*too deeply nested' "$bin" compare "$d/good.json" "$d/deep_array.json"
refused 'deep_object\.json: .*too deeply nested' "$bin" compare "$d/deep_object.json" "$d/good.json"
refused 'deep_300\.json: .*too deeply nested' "$bin" compare "$d/good.json" "$d/deep_300.json"
for f in huge huge_negative huge_digits; do
  refused "$f\\.json: .*number out of range" "$bin" compare "$d/good.json" "$d/$f.json"
done
for f in truncated truncated_string nan inf hex bad_fraction bad_escape text empty blank \
  trailing binary; do
  refused "^kcont-bench compare: .*$f\\.json: not JSON" "$bin" compare "$d/good.json" "$d/$f.json"
done
refused 'not_bench\.json: not a kcont-bench file' "$bin" compare "$d/good.json" "$d/not_bench.json"
refused 'no_value\.json: a record without a name or a numeric value' \
  "$bin" compare "$d/good.json" "$d/no_value.json"
refused 'missing\.json: cannot open' "$bin" compare "$d/good.json" "$d/missing.json"

# A bad KCONT_* variable: refused before any area runs.
refused '^kcont-bench: .*KCONT_HZ=4294968296.*1\.\.100000' \
  env KCONT_HZ=4294968296 "$bin" --quick --only softint --samples 100
refused '^kcont-bench: .*KCONT_NCPU=-1.*0\.\.1024' \
  env KCONT_NCPU=-1 "$bin" --quick --only softint --samples 100

# Controls: a good pair compares, and nesting within the limit parses.
accepted "$bin" compare "$d/good.json" "$d/good.json"
{ printf '{"records": [{"name": "a.p50", "value": 120, "unit": "ns", "x": '
  head -c 200 /dev/zero | tr '\0' '['; head -c 200 /dev/zero | tr '\0' ']'; printf '}]}'; } \
  >"$d/nested_200.json"
accepted "$bin" compare "$d/good.json" "$d/nested_200.json"
finish
