// Shared helpers for kcont's benchmarks: sample collection, percentiles, the printed table and
// the JSON records ({"name", "value", "unit"}) every benchmark program can write.
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
#include <fstream>
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

struct percentiles {
  double p50 = 0, p99 = 0, p999 = 0, max = 0;
};

inline percentiles summarize(std::vector<double> v) {
  percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(q * v.size()))];
  };
  p.p50 = at(0.50);
  p.p99 = at(0.99);
  p.p999 = at(0.999);
  p.max = v.back();
  return p;
}

struct record {
  std::string name;
  double value;
  std::string unit;
};

// Collects every figure a run prints, for --json.
class report {
 public:
  void add(std::string name, double value, std::string unit) {
    records_.push_back({std::move(name), value, std::move(unit)});
  }
  void add_latency(const std::string& name, const percentiles& p) {
    add(name + ".p50", p.p50, "ns");
    add(name + ".p99", p.p99, "ns");
    add(name + ".p99.9", p.p999, "ns");
  }
  // Writes the records as a JSON array; returns false (and says why) on failure.
  bool write_json(const std::string& path) const {
    std::ofstream out(path);
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      return false;
    }
    out << "[\n";
    for (std::size_t i = 0; i < records_.size(); ++i) {
      const record& r = records_[i];
      out << "  {\"name\": \"" << r.name << "\", \"value\": ";
      if (std::isfinite(r.value))
        out << r.value;
      else
        out << "null";
      out << ", \"unit\": \"" << r.unit << "\"}" << (i + 1 < records_.size() ? "," : "") << "\n";
    }
    out << "]\n";
    return static_cast<bool>(out);
  }
  const std::vector<record>& records() const { return records_; }

 private:
  std::vector<record> records_;
};

// The options every cost benchmark takes: --quick, --json FILE, --help. Returns -1 to go on,
// or the exit code to end with (after --help or a bad option).
struct common_options {
  bool quick = false;
  std::string json;
  std::string backend = "asio";  // the loop backend of the benchmark's main runtime
};
inline int parse_common_options(int argc, char** argv, const char* program, common_options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--json" && i + 1 < argc) {
      o.json = argv[++i];
    } else if (a == "--backend" && i + 1 < argc) {
      o.backend = argv[++i];
      if (o.backend != "asio" && o.backend != "libevent") {
        std::fprintf(stderr, "%s: --backend takes asio or libevent, not %s\n", program,
                     o.backend.c_str());
        return 2;
      }
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: %s [--quick] [--json FILE] [--backend asio|libevent]\n"
          "  --quick    fewer samples and repetitions\n"
          "  --json F   also write every figure as {name, value, unit} records to F\n"
          "  --backend  the loop backend of the main runtime (default asio; where a row is\n"
          "             measured on both backends, both are shown anyway)\n",
          program);
      return 0;
    } else {
      std::fprintf(stderr, "%s: unknown option %s (try --help)\n", program, a.c_str());
      return 2;
    }
  }
  return -1;
}

inline void print_latency_header(const char* title) {
  std::printf("\n%s\n", title);
  std::printf("  %-46s %10s %10s %10s %10s %9s\n", "mechanism", "p50 ns", "p99 ns", "p99.9 ns",
              "max ns", "p50/floor");
}

inline void print_latency_row(const std::string& name, const percentiles& p, double floor_p50) {
  std::printf("  %-46s %10.0f %10.0f %10.0f %10.0f %8.2fx\n", name.c_str(), p.p50, p.p99, p.p999,
              p.max, floor_p50 > 0 ? p.p50 / floor_p50 : 0.0);
}

inline std::string machine_description() {
  std::string cpu = "unknown CPU";
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  return cpu + ", " + std::to_string(std::thread::hardware_concurrency()) + " cores";
}

// Common start of a benchmark program: the sender side on core 0, a second thread started
// once (glibc's mutex skips its atomics until the process has had two threads), a title line
// with the machine.
inline void bench_start(const char* title) {
  pin_this_thread(0);
  std::thread([] {}).join();
  std::printf("%s — %s\n", title, machine_description().c_str());
}

}  // namespace kcont_bench
