// kcont-bench-check FILE EXPECTED [--libevent]: the smoke test's checker. Every figure named in
// EXPECTED (one a line; '#' comments; a line "libevent NAME" only counts with --libevent) must
// be in FILE (a kcont-bench --json file) with a finite value, and a figure with a spread must
// have min <= max. Prints what is missing; exit 0 when all is there, 1 otherwise, 2 on a bad
// file. Speed is never judged here.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "json_read.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: kcont-bench-check FILE EXPECTED [--libevent]\n");
    return 2;
  }
  const bool libevent = argc > 3 && std::strcmp(argv[3], "--libevent") == 0;
  kcont_bench::json::bench_file f;
  std::string err;
  if (!kcont_bench::json::load(argv[1], f, err)) {
    std::fprintf(stderr, "kcont-bench-check: %s\n", err.c_str());
    return 2;
  }
  std::ifstream in(argv[2]);
  if (!in) {
    std::fprintf(stderr, "kcont-bench-check: cannot open %s\n", argv[2]);
    return 2;
  }
  int expected = 0, bad = 0;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("libevent ", 0) == 0) {
      if (!libevent) continue;
      line = line.substr(9);
    }
    ++expected;
    auto it = f.figures.find(line);
    if (it == f.figures.end()) {
      std::printf("missing: %s\n", line.c_str());
      ++bad;
    } else if (!std::isfinite(it->second.value)) {
      std::printf("not finite: %s\n", line.c_str());
      ++bad;
    } else if (it->second.has_spread && !(it->second.min <= it->second.max)) {
      std::printf("bad spread: %s\n", line.c_str());
      ++bad;
    }
  }
  for (const char* key : {"cpu", "cores", "kernel", "compiler", "build_type", "date"})
    if (!f.machine.get(key)) {
      std::printf("machine object lacks %s\n", key);
      ++bad;
    }
  std::printf("kcont-bench-check: %d expected figures, %zu in the file, %d problems\n", expected,
              f.figures.size(), bad);
  return bad == 0 ? 0 : 1;
}
