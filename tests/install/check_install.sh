#!/usr/bin/env bash
# Installs the build tree into a scratch prefix, then builds and runs a consumer against it
# twice: with find_package(kcont CONFIG) and with pkg-config.
# Usage: check_install.sh BUILD_DIR SOURCE_DIR SCRATCH_DIR
set -euo pipefail
build=$1 src=$2 scratch=$3
rm -rf "$scratch"
mkdir -p "$scratch"
prefix="$scratch/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
for h in runtime.h softint.h percpu.h; do
  [ -f "$prefix/include/kcont/$h" ] || { echo "missing installed header kcont/$h"; exit 1; }
done

echo "--- find_package(kcont CONFIG)"
cmake -S "$src/tests/install" -B "$scratch/cmake-consumer" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$scratch/cmake-consumer" >/dev/null
"$scratch/cmake-consumer/consumer"

echo "--- pkg-config kcont"
pcdir=$(dirname "$(find "$prefix" -name kcont.pc | head -n 1)")
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs kcont)
# shellcheck disable=SC2086
c++ -O1 "$src/tests/install/consumer.cpp" -o "$scratch/pc-consumer" $flags
"$scratch/pc-consumer"
echo "install check passed"
