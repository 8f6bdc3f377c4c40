#!/usr/bin/env bash
# Installs what kcont needs to build, test and benchmark, from Debian packages, if missing
# (spin: the model checker that tests/ runs on models/, test_spin_models; gnuplot-nox renders
# kcont-bench --plots; mandoc lints the manual pages; iproute2 makes kcont-nicsim --serve's
# network namespace and iputils-ping is the stock ping it answers).
# Idempotent; quiet when everything is there. Used by scripts/run.sh and scripts/test.sh.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in cmake ninja-build g++ pkg-config libboost-dev doctest-dev libevent-dev mandoc python3 spin \
  gnuplot-nox iproute2 iputils-ping; do
  have_pkg "$pkg" || need+=("$pkg")
done
# clang and its runtime libraries: the libFuzzer build of the differential fuzzer.
for pkg in clang libclang-rt-14-dev; do
  have_pkg "$pkg" || need+=("$pkg")
done
# Sanitizer runtimes ship with GCC on Debian 12; name them in case a slim image lacks them.
for pkg in libasan8 libtsan2 libubsan1; do
  have_pkg "$pkg" || need+=("$pkg")
done

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

echo "kcont: installing missing packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "kcont: need root (or sudo) to install: ${need[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null
