#!/usr/bin/env bash
# The whole test suite, in three builds: plain (RelWithDebInfo), ThreadSanitizer, and
# AddressSanitizer+UBSan (both Debug, so debug-build checks are on). Installs dependencies
# first. Usage: bash scripts/test.sh [plain|tsan|asan ...]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

configs=("$@")
[ ${#configs[@]} -eq 0 ] && configs=(plain tsan asan)
jobs=$(nproc 2>/dev/null || echo 2)
status=0
summary=()

for cfg in "${configs[@]}"; do
  case "$cfg" in
    plain) args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
    tsan) args=(-DCMAKE_BUILD_TYPE=Debug -DKCONT_SANITIZE=thread -DKCONT_BUILD_BENCH=OFF) ;;
    asan) args=(-DCMAKE_BUILD_TYPE=Debug -DKCONT_SANITIZE=address -DKCONT_BUILD_BENCH=OFF) ;;
    *) echo "unknown configuration '$cfg' (plain, tsan, asan)" >&2; exit 2 ;;
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
