// kcont-bench-check FILE EXPECTED [--libevent] [--prefix P]: the smoke test's checker. Every
// figure named in EXPECTED (one a line; '#' comments) must be in FILE (a kcont-bench --json
// file) with a finite value, and a figure with a spread must have min <= max. A line
// "libevent NAME" only counts with --libevent; "tap NAME" and "memory NAME" only when the
// file's machine object says the net area's UDP echo rows went through that wire (net_wire);
// with --prefix, only the names that start with P count (a run of some areas only). Prints
// what is missing; exit 0 when all is there, 1 otherwise, 2 on a bad file or usage. Speed is
// never judged here.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "json_read.h"

int main(int argc, char** argv) {
  bool libevent = false, usage = argc < 3;
  std::string prefix;
  for (int i = 3; i < argc && !usage; ++i) {
    if (std::strcmp(argv[i], "--libevent") == 0)
      libevent = true;
    else if (std::strcmp(argv[i], "--prefix") == 0 && i + 1 < argc)
      prefix = argv[++i];
    else
      usage = true;
  }
  if (usage) {
    std::fprintf(stderr, "usage: kcont-bench-check FILE EXPECTED [--libevent] [--prefix P]\n");
    return 2;
  }
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
  const kcont_bench::json::value* wire = f.machine.get("net_wire");
  const std::string net_wire =
      wire != nullptr && wire->kind == kcont_bench::json::value::string_v ? wire->str : "";
  int expected = 0, bad = 0;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    // "CONDITION NAME": counted only when the condition holds.
    if (const auto space = line.find(' '); space != std::string::npos) {
      const std::string cond = line.substr(0, space);
      if (cond != "libevent" && cond != "tap" && cond != "memory") {
        std::printf("unknown condition: %s\n", line.c_str());
        ++bad;
        continue;
      }
      if (cond == "libevent" ? !libevent : net_wire != cond) continue;
      line = line.substr(space + 1);
    }
    if (line.rfind(prefix, 0) != 0) continue;
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
