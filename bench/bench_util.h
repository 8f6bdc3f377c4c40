// Shared helpers for kcont-bench: time, pinning, percentiles, and the report every figure goes
// into (printed tables come from the areas; --json writes the report as {name, value, unit}
// records, with the spread over repetitions where a figure has one).
#pragma once

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace kcont_bench {

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Busy-waits `ns` (sleeping would add the measuring thread's own wake-up to the next sample).
inline void spin_for(std::int64_t ns) {
  const std::int64_t until = now_ns() + ns;
  while (now_ns() < until) {
  }
}

inline void pin_this_thread(unsigned core) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core % std::max(1u, std::thread::hardware_concurrency()), &set);
  ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
}

// Threads inherit their creator's affinity: while a benchmark starts threads that should run
// anywhere (a NIC's DMA engine, producers, a load generator), this thread may run on every core
// (the CPU loops pin themselves). pin_this_thread(0) afterwards.
inline void unpin_this_thread() {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (unsigned c = 0; c < std::max(1u, std::thread::hardware_concurrency()); ++c) CPU_SET(c, &set);
  ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
}

struct percentiles {
  double p50 = 0, p99 = 0, p999 = 0, max = 0;
};

inline double quantile_sorted(const std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

inline percentiles summarize(std::vector<double> v) {
  percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  p.p50 = quantile_sorted(v, 0.50);
  p.p99 = quantile_sorted(v, 0.99);
  p.p999 = quantile_sorted(v, 0.999);
  p.max = v.back();
  return p;
}

inline double median_of(std::vector<double> v) {
  return summarize(std::move(v)).p50;
}

// A figure measured over repetitions: the value is the median; min and max give its spread.
struct spread {
  double value = 0, min = 0, max = 0;
  int reps = 0;
};

inline spread spread_of(const std::vector<double>& reps) {
  spread s;
  if (reps.empty()) return s;
  s.value = median_of(reps);
  s.min = *std::min_element(reps.begin(), reps.end());
  s.max = *std::max_element(reps.begin(), reps.end());
  s.reps = static_cast<int>(reps.size());
  return s;
}

// Latency samples in run order, cut into `blocks` consecutive blocks: each block's percentile
// is one "repetition", so a latency figure gets a spread like a cost figure does.
struct latency_summary {
  percentiles all;
  spread p50, p99, p999;
};

inline latency_summary summarize_blocks(const std::vector<double>& samples, int blocks = 5) {
  latency_summary s;
  s.all = summarize(samples);
  std::vector<double> b50, b99, b999;
  const std::size_t n = samples.size() / static_cast<std::size_t>(blocks);
  for (int b = 0; n > 0 && b < blocks; ++b) {
    std::vector<double> part(samples.begin() + static_cast<std::ptrdiff_t>(b * n),
                             samples.begin() + static_cast<std::ptrdiff_t>((b + 1) * n));
    percentiles p = summarize(std::move(part));
    b50.push_back(p.p50);
    b99.push_back(p.p99);
    b999.push_back(p.p999);
  }
  s.p50 = spread_of(b50);
  s.p99 = spread_of(b99);
  s.p999 = spread_of(b999);
  // The value is the whole run's percentile; the blocks only give the spread around it.
  s.p50.value = s.all.p50;
  s.p99.value = s.all.p99;
  s.p999.value = s.all.p999;
  return s;
}

struct record {
  std::string name;
  double value = 0;
  std::string unit;
  bool has_spread = false;
  double min = 0, max = 0;
  int reps = 0;
};

// Collects every figure a run prints, for --json and compare.
class report {
 public:
  void add(const std::string& name, double value, const std::string& unit) {
    record r;
    r.name = name;
    r.value = value;
    r.unit = unit;
    records_.push_back(std::move(r));
  }
  void add(const std::string& name, const spread& s, const std::string& unit) {
    record r;
    r.name = name;
    r.value = s.value;
    r.unit = unit;
    r.has_spread = s.reps > 1;
    r.min = std::min(s.min, s.value);
    r.max = std::max(s.max, s.value);
    r.reps = s.reps;
    records_.push_back(std::move(r));
  }
  void add_latency(const std::string& name, const latency_summary& s) {
    add(name + ".p50", s.p50, "ns");
    add(name + ".p99", s.p99, "ns");
    add(name + ".p99.9", s.p999, "ns");
  }
  const std::vector<record>& records() const { return records_; }

 private:
  std::vector<record> records_;
};

inline std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

inline std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace kcont_bench
