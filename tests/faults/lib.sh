# Shared by the check_*.sh scripts of tests/faults (sourced, not run): run a program with bad
# input and require what issue 16 (item 8) asks: exit status 2 and exactly one line on stderr
# that matches a pattern (the option or variable refused and the range it takes). Never a
# crash, a hang (each run has a time limit) or a run.
#
# Outside sanitizer builds each run also gets a 4 GiB address-space limit, so that a program
# that would try to allocate far too much (as the code before the fix did) fails instead of
# eating the machine's memory. ASan needs a huge address space, so its builds go without.
fail=0
cases=0
limit_seconds=${FAULTS_TIMEOUT:-15}

run_limited() {  # run_limited OUT ERR COMMAND...: sets $rc
  local out=$1 err=$2
  shift 2
  (
    [ -z "${KCONT_SANITIZE:-}" ] && ulimit -v 4194304
    exec timeout "$limit_seconds" "$@"
  ) >"$out" 2>"$err"
  rc=$?
}

# refused PATTERN COMMAND...: exit 2, one line on stderr matching PATTERN (grep -E).
refused() {
  local pattern=$1
  shift
  cases=$((cases + 1))
  run_limited "$scratch/out" "$scratch/err" "$@"
  local lines
  lines=$(wc -l <"$scratch/err")
  local why=""
  if [ "$rc" -ne 2 ]; then
    why="exit status $rc, not 2"
    [ "$rc" -eq 124 ] && why="$why (timed out after ${limit_seconds} s: it ran)"
    [ "$rc" -gt 128 ] && why="$why (killed by signal $((rc - 128)))"
  elif [ "$lines" -ne 1 ]; then
    why="$lines lines on stderr, not one"
  elif ! grep -Eq -- "$pattern" "$scratch/err"; then
    why="the message does not match /$pattern/"
  fi
  if [ -z "$why" ]; then
    echo "ok: $* -> $(cat "$scratch/err")"
  else
    echo "FAILED: $*: $why"
    sed 's/^/    stderr: /' "$scratch/err" | head -5
    fail=1
  fi
}

# accepted COMMAND...: a control case, exit 0.
accepted() {
  cases=$((cases + 1))
  run_limited "$scratch/out" "$scratch/err" "$@"
  if [ "$rc" -eq 0 ]; then
    echo "ok (accepted): $*"
  else
    echo "FAILED: $*: exit status $rc, not 0"
    sed 's/^/    stderr: /' "$scratch/err" | head -5
    fail=1
  fi
}

finish() {
  if [ "$fail" -eq 0 ]; then
    echo "all $cases cases passed"
  else
    echo "SOME OF $cases CASES FAILED"
  fi
  exit "$fail"
}
