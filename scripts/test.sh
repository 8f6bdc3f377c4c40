#!/usr/bin/env bash
# The whole test suite, in three builds: plain (RelWithDebInfo), ThreadSanitizer, and
# AddressSanitizer+UBSan (both Debug, so debug-build checks such as lockdebug are on); then the
# differential fuzzer under libFuzzer for KCONT_FUZZ_SECONDS (default 60) and the IPv4 stack's
# input fuzzer for KCONT_FUZZ_INET_SECONDS (default 30). Installs dependencies first.
# Usage: bash scripts/test.sh [plain|tsan|asan|fuzz ...] (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

configs=("$@")
[ ${#configs[@]} -eq 0 ] && configs=(plain tsan asan fuzz)
jobs=$(nproc 2>/dev/null || echo 2)
status=0
summary=()

# run_libfuzzer TARGET CORPUS SECONDS ARTIFACT_PREFIX DETECT_LEAKS: a bounded libFuzzer run of
# $dir/fuzz/TARGET on a scratch copy of CORPUS (new units stay out of the source tree); its
# status is the fuzzer's.
run_libfuzzer() {
  local work rc=0
  work=$(mktemp -d)
  ASAN_OPTIONS="detect_leaks=$5:abort_on_error=1" "$dir/fuzz/$1" -max_total_time="$3" \
    -timeout=30 -print_final_stats=1 -artifact_prefix="$4" "$work" "$2" 2>&1 | tail -6 || rc=$?
  rm -rf "$work"
  return $rc
}

for cfg in "${configs[@]}"; do
  if [ "$cfg" = fuzz ]; then
    # The differential fuzzer under libFuzzer (clang, ASan+UBSan), for a bounded time, on a
    # scratch copy of the seed corpus. (Every other build runs its standalone driver in ctest.)
    dir=build-test-fuzz
    echo "=== kcont: fuzz build ($dir, clang + libFuzzer) ==="
    start=$(date +%s)
    CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja -DKCONT_WERROR=ON \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKCONT_FUZZ=ON -DKCONT_SANITIZE=address \
      -DKCONT_BUILD_BENCH=OFF -DKCONT_BUILD_EXAMPLES=OFF >/dev/null
    cmake --build "$dir" -j "$jobs" --target fuzz_kcont_libfuzzer fuzz_inet_libfuzzer
    if run_libfuzzer fuzz_kcont_libfuzzer fuzz/corpus "${KCONT_FUZZ_SECONDS:-60}" "$dir/" 0; then
      summary+=("fuzz: no divergence in ${KCONT_FUZZ_SECONDS:-60}s ($(( $(date +%s) - start ))s in all)")
    else
      summary+=("fuzz: FAILED (the input is in $dir/crash-*; add it to fuzz/corpus)")
      status=1
    fi
    # The IPv4 stack's input path (fuzz/fuzz_inet.cpp), from its own seed corpus.
    start=$(date +%s)
    if run_libfuzzer fuzz_inet_libfuzzer fuzz/corpus_inet "${KCONT_FUZZ_INET_SECONDS:-30}" \
        "$dir/inet-" 1; then
      summary+=("fuzz_inet: every frame passed in ${KCONT_FUZZ_INET_SECONDS:-30}s ($(( $(date +%s) - start ))s in all)")
    else
      summary+=("fuzz_inet: FAILED (the input is in $dir/inet-crash-*; add it to fuzz/corpus_inet)")
      status=1
    fi
    continue
  fi
  case "$cfg" in
    plain) args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
    tsan) args=(-DCMAKE_BUILD_TYPE=Debug -DKCONT_SANITIZE=thread -DKCONT_BUILD_BENCH=OFF) ;;
    asan) args=(-DCMAKE_BUILD_TYPE=Debug -DKCONT_SANITIZE=address -DKCONT_BUILD_BENCH=OFF) ;;
    *) echo "unknown configuration '$cfg' (plain, tsan, asan, fuzz)" >&2; exit 2 ;;
  esac
  dir="build-test-$cfg"
  echo "=== kcont: $cfg build ($dir) ==="
  start=$(date +%s)
  cmake -S . -B "$dir" -G Ninja -DKCONT_WERROR=ON "${args[@]}" >/dev/null
  cmake --build "$dir" -j "$jobs"
  # halt_on_error: a sanitizer report fails the test that triggered it.
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  if (cd "$dir" && ctest --output-on-failure -j "$jobs"); then
    summary+=("$cfg: passed in $(( $(date +%s) - start ))s")
  else
    summary+=("$cfg: FAILED")
    status=1
  fi
done

echo "=== kcont test summary ==="
printf '  %s\n' "${summary[@]}"
exit $status
