// kcont-bench compare OLD.json NEW.json: each figure's old and new value and their ratio, and a
// flag on the ones that moved beyond the noise their repetitions measured.
//
// The rule (also in --help's notes and BENCH_README_NOTES.md):
//   - a figure with a spread (min..max over its repetitions, or over 5 blocks of a latency
//     run) is flagged "!" when the two runs' ranges do not overlap (with one range only: the
//     other value lies outside it) and the medians differ by more than 5%;
//   - a count (allocations, early callouts, stalls) is flagged "!" when it becomes zero or
//     stops being zero (other count changes, such as restarts, are shown and not judged);
//   - a size in bytes is flagged "!" on any change;
//   - any other figure without a spread (ratios, single measurements) is flagged "?" when it
//     moved by more than 25%, a fixed tolerance because no noise was measured for it.
// Flags never change the exit status: 0 when both files were read, 2 otherwise.
#include <cmath>
#include <cstdio>

#include "json_read.h"
#include "kcont_bench.h"

namespace kcont_bench {

namespace {

// +1: higher is better, -1: lower is better, 0: neither.
int direction(const std::string& unit) {
  if (unit == "ns" || unit == "ns/op") return -1;
  if (unit == "Mpps" || unit == "items/s" || unit == "runs/s") return 1;
  return 0;
}

const char* judge(const json::figure& o, const json::figure& n) {
  if (!std::isfinite(o.value) || !std::isfinite(n.value)) return o.value == n.value ? "" : "?";
  const double rel = o.value != 0 ? std::fabs(n.value / o.value - 1) : (n.value != 0 ? 1e9 : 0);
  if (o.unit == "count") return (o.value == 0) != (n.value == 0) ? "!" : "";
  if (o.unit == "bytes") return o.value != n.value ? "!" : "";
  if (o.has_spread || n.has_spread) {
    bool apart;
    if (o.has_spread && n.has_spread)
      apart = n.min > o.max || n.max < o.min;
    else if (o.has_spread)
      apart = n.value > o.max || n.value < o.min;
    else
      apart = o.value > n.max || o.value < n.min;
    return apart && rel > 0.05 ? "!" : "";
  }
  return rel > 0.25 ? "?" : "";
}

std::string machine_summary(const json::value& m) {
  std::string s;
  for (const char* k : {"cpu", "mode", "backend", "date", "git_commit"}) {
    const json::value* v = m.get(k);
    if (v && v->kind == json::value::string_v && !v->str.empty())
      s += (s.empty() ? "" : ", ") + v->str;
  }
  return s.empty() ? "(no machine object)" : s;
}

}  // namespace

int compare_main(const std::string& old_path, const std::string& new_path) {
  json::bench_file o, n;
  std::string err;
  if (!json::load(old_path, o, err) || !json::load(new_path, n, err)) {
    std::fprintf(stderr, "kcont-bench compare: %s\n", err.c_str());
    return 2;
  }
  std::printf("old: %s — %s\nnew: %s — %s\n", old_path.c_str(), machine_summary(o.machine).c_str(),
              new_path.c_str(), machine_summary(n.machine).c_str());
  std::printf(
      "flags: ! moved beyond the noise of its repetitions (ranges apart and > 5%%), or a\n"
      "count became / stopped being zero; ? no spread known and moved > 25%%\n\n");
  std::printf("  %-62s %12s %12s %8s %-2s %s\n", "figure", "old", "new", "new/old", "", "");
  int flagged = 0, compared = 0;
  for (const auto& name : n.order) {
    auto it = o.figures.find(name);
    if (it == o.figures.end()) continue;
    const json::figure& of = it->second;
    const json::figure& nf = n.figures[name];
    ++compared;
    const char* flag = judge(of, nf);
    if (*flag) ++flagged;
    const double ratio = of.value != 0 ? nf.value / of.value : NAN;
    std::string note;
    const int dir = direction(nf.unit);
    if (*flag && dir != 0 && std::isfinite(ratio))
      note = (ratio - 1) * dir > 0 ? "better" : "worse";
    std::printf("  %-62s %12.4g %12.4g %7.3fx %-2s %s %s\n", name.c_str(), of.value, nf.value,
                ratio, flag, nf.unit.c_str(), note.c_str());
  }
  int only_old = 0, only_new = 0;
  for (const auto& name : o.order)
    if (!n.figures.count(name)) {
      if (only_old++ == 0) std::printf("\nonly in old:\n");
      std::printf("  %s\n", name.c_str());
    }
  for (const auto& name : n.order)
    if (!o.figures.count(name)) {
      if (only_new++ == 0) std::printf("\nonly in new:\n");
      std::printf("  %s\n", name.c_str());
    }
  std::printf("\n%d figures compared, %d flagged, %d only in old, %d only in new\n", compared,
              flagged, only_old, only_new);
  return 0;
}

}  // namespace kcont_bench
