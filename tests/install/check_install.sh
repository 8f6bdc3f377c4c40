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

# Manual pages: every page of man/ in share/man/manN, and the MLINKS made from the .Nm lines
# resolve to their page (callout_halt.3 -> callout.3, kpause.3 -> workqueue.3).
mandir="$prefix/share/man"
for page in "$src"/man/*.[1-9]; do
  f=$(basename "$page")
  [ -f "$mandir/man${f##*.}/$f" ] || { echo "missing installed manual page man${f##*.}/$f"; exit 1; }
done
for link in man3/callout_halt.3:callout.3 man3/kpause.3:workqueue.3 man3/mutex_enter.3:kmutex.3 \
            man3/TASK_INITIALIZER.3:task_add.3; do
  l=$mandir/${link%%:*} want=${link##*:}
  [ -L "$l" ] || { echo "manual page link $l is missing or not a symlink"; exit 1; }
  [ -f "$l" ] && [ "$(basename "$(readlink -f "$l")")" = "$want" ] ||
    { echo "manual page link $l does not resolve to $want"; exit 1; }
done
echo "manual pages and links installed: $(find "$mandir" -name '*.[1-9]' | wc -l) entries"

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
