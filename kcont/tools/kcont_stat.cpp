// kcont-stat: live statistics of a running kcont process (one that set KCONT_STATS=1 or
// runtime_config::export_stats), read from its shared-memory segment (<kcont/stats_segment.h>).
// See kcont-stat(1).
#include <kcont/stats_segment.h>

#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

namespace seg = kcont::stats_segment;

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

const char* const kPrio[seg::kPriorities] = {"high", "medhigh", "medlow", "low"};

std::int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

template <class T>
T get(const T& field) {
  return std::atomic_ref<T>(const_cast<T&>(field)).load(std::memory_order_relaxed);
}

struct snapshot {
  std::int64_t taken_ns = 0;
  std::uint64_t number = 0;
  std::uint64_t exceptions = 0, stuck = 0;  // process-wide (0 from a writer without them)
  std::vector<seg::cpu_record> cpus;
  std::vector<seg::pool_record> pools;
  std::vector<seg::queue_record> queues;
  double ns_per_tick = 1;
};

class segment {
 public:
  // Opens and checks it; on failure `why` says what is wrong and ok() is false.
  segment(long pid, unsigned runtime_no, std::string& why) {
    char name[64];
    if (runtime_no > 1)
      std::snprintf(name, sizeof name, "/kcont.%ld.%u", pid, runtime_no);
    else
      std::snprintf(name, sizeof name, "/kcont.%ld", pid);
    path_ = std::string("/dev/shm") + name;
    const int fd = ::shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
      const bool alive = ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
      why = alive ? "process " + std::to_string(pid) + " exports no kcont statistics (/dev/shm" +
                        name +
                        " is missing): start it with KCONT_STATS=1, or set "
                        "runtime_config::export_stats"
                  : "no process " + std::to_string(pid);
      return;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(seg::header))) {
      ::close(fd);
      why = std::string("/dev/shm") + name + " is too short to be a kcont statistics segment";
      return;
    }
    bytes_ = static_cast<std::size_t>(st.st_size);
    void* m = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (m == MAP_FAILED) {
      why = std::string("cannot map /dev/shm") + name + ": " + std::strerror(errno);
      ::close(fd);
      return;
    }
    fd_ = fd;  // kept: the segment grows as the process makes queues (remap())
    h_ = static_cast<seg::header*>(m);
    if (std::memcmp(h_->magic, seg::kMagic, sizeof h_->magic) != 0) {
      why = std::string("/dev/shm") + name + " is not a kcont statistics segment (bad magic)";
    } else if (h_->version != seg::kVersion) {
      why = std::string("/dev/shm") + name + " has layout version " + std::to_string(h_->version) +
            "; this kcont-stat reads version " + std::to_string(seg::kVersion) +
            " (use the kcont-stat of the same kcont)";
    } else if (h_->header_bytes < sizeof(seg::header) ||
               h_->cpu_record_bytes < sizeof(seg::cpu_record) ||
               h_->pool_record_bytes < sizeof(seg::pool_record) ||
               h_->queue_record_bytes < sizeof(seg::queue_record) ||
               h_->histogram_buckets != seg::kHistogramBuckets || h_->ncpu == 0 ||
               h_->ncpu > 1024 || h_->npools != h_->ncpu * seg::kPriorities ||
               bytes_ < h_->header_bytes + std::uint64_t{h_->ncpu} * h_->cpu_record_bytes +
                            std::uint64_t{h_->npools} * h_->pool_record_bytes) {
      why = std::string("/dev/shm") + name + " has an inconsistent header";
    } else {
      return;  // ok
    }
    ::munmap(m, bytes_);
    ::close(fd_);
    fd_ = -1;
    h_ = nullptr;
  }
  ~segment() {
    if (h_ != nullptr) ::munmap(h_, bytes_);
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return h_ != nullptr; }
  const seg::header& head() const { return *h_; }

  // Asks the publisher for a fresh snapshot and reads it. False: no answer within 2 s.
  bool read(snapshot& out) {
    std::atomic_ref<std::uint32_t> req(h_->request), ans(h_->answered);
    const std::uint32_t mine = req.fetch_add(1, std::memory_order_acq_rel) + 1;
    ::syscall(SYS_futex, &h_->request, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
    const std::int64_t give_up = monotonic_ns() + 2'000'000'000;
    for (;;) {
      const std::uint32_t a = ans.load(std::memory_order_acquire);
      if (static_cast<std::int32_t>(a - mine) >= 0) break;
      if (monotonic_ns() > give_up) return false;
      timespec wait{0, 100'000'000};
      ::syscall(SYS_futex, &h_->answered, FUTEX_WAIT, a, &wait, nullptr, 0);
    }
    for (int tries = 0; tries < 1000; ++tries) {
      std::atomic_ref<std::uint64_t> seq(h_->seq);
      const std::uint64_t s1 = seq.load(std::memory_order_acquire);
      if (s1 & 1) continue;
      // The publisher grew the segment for more queues: map all of it, then read again.
      const std::uint64_t size = get(h_->segment_bytes);
      if (size > bytes_) {
        std::atomic_thread_fence(std::memory_order_acquire);
        if (seq.load(std::memory_order_relaxed) != s1) continue;
        if (!remap(size)) return false;
        continue;
      }
      const auto* base = reinterpret_cast<const unsigned char*>(h_);
      out.cpus.assign(h_->ncpu, seg::cpu_record{});
      out.pools.assign(h_->npools, seg::pool_record{});
      for (unsigned i = 0; i < h_->ncpu; ++i)
        copy_words(base + h_->header_bytes + std::size_t{i} * h_->cpu_record_bytes, &out.cpus[i]);
      const std::size_t pools_at = h_->header_bytes + std::size_t{h_->ncpu} * h_->cpu_record_bytes;
      for (unsigned i = 0; i < h_->npools; ++i)
        copy_words(base + pools_at + std::size_t{i} * h_->pool_record_bytes, &out.pools[i]);
      const std::size_t queues_at = pools_at + std::size_t{h_->npools} * h_->pool_record_bytes;
      const std::uint64_t room = (bytes_ - queues_at) / h_->queue_record_bytes;
      out.queues.resize(std::min(get(h_->nqueues), room));
      for (std::size_t i = 0; i < out.queues.size(); ++i)
        copy_words(base + queues_at + i * h_->queue_record_bytes, &out.queues[i]);
      out.ns_per_tick = static_cast<double>(get(h_->fs_per_tick)) / 1e6;
      out.taken_ns = get(h_->taken_ns);
      out.number = get(h_->snapshots);
      if (h_->header_bytes >= offsetof(seg::header, stuck_handlers) + sizeof(std::uint64_t)) {
        out.exceptions = get(h_->handler_exceptions);
        out.stuck = get(h_->stuck_handlers);
      }
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq.load(std::memory_order_relaxed) == s1) return true;
    }
    return false;
  }

 private:
  template <class R>
  static void copy_words(const unsigned char* from, R* to) {
    const auto* src = reinterpret_cast<const std::uint64_t*>(from);
    auto* dst = reinterpret_cast<std::uint64_t*>(to);
    for (std::size_t i = 0; i < sizeof(R) / 8; ++i) dst[i] = get(src[i]);
  }
  bool remap(std::uint64_t size) {
    void* m = ::mmap(nullptr, static_cast<std::size_t>(size), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_POPULATE, fd_, 0);
    if (m == MAP_FAILED) {
      std::fprintf(stderr, "kcont-stat: cannot map %s again (%llu bytes): %s\n", path_.c_str(),
                   static_cast<unsigned long long>(size), std::strerror(errno));
      return false;
    }
    ::munmap(h_, bytes_);
    h_ = static_cast<seg::header*>(m);
    bytes_ = static_cast<std::size_t>(size);
    return true;
  }
  std::string path_;
  int fd_ = -1;
  seg::header* h_ = nullptr;
  std::size_t bytes_ = 0;
};

struct options {
  long pid = 0;
  unsigned runtime_no = 1;
  bool once = false, json = false;
  double interval = 1.0;
  std::uint64_t count = 0;  // 0: until Ctrl-C
  std::uint64_t top = 10;   // queues shown in the text view
};

void usage(std::FILE* f) {
  std::fprintf(f,
               "usage: kcont-stat [--once] [--json] [--interval SECONDS] [--count N] "
               "[--runtime N] [--queues N] PID\n"
               "  Live statistics of a kcont process started with KCONT_STATS=1: per CPU (time\n"
               "  awake, interrupts, softints, wake-ups, callouts), per worker pool, and the\n"
               "  queues whose sampled wait p99 is longest.\n"
               "  --once           one snapshot of the totals, then exit\n"
               "  --json           one JSON object per snapshot (with --once: totals)\n"
               "  --interval S     seconds between live lines, 0.1..3600 (default 1)\n"
               "  --count N        stop after N live snapshots, 1..10^9 (default: until Ctrl-C)\n"
               "  --runtime N      the process's Nth exporting runtime, 1..1000 (default 1)\n"
               "  --queues N       queues shown, 0..100000 (default 10; --json lists all)\n");
}

bool parse_uint(const char* s, std::uint64_t lo, std::uint64_t hi, std::uint64_t& out) {
  if (s == nullptr || *s < '0' || *s > '9') return false;
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi) return false;
  out = v;
  return true;
}

// -1: go on; else the exit code.
int parse(int argc, char** argv, options& o) {
  bool have_pid = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* val = i + 1 < argc ? argv[i + 1] : nullptr;
    std::uint64_t n = 0;
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else if (a == "--once") {
      o.once = true;
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--interval") {
      char* end = nullptr;
      errno = 0;
      const double d = val != nullptr ? std::strtod(val, &end) : NAN;
      if (val == nullptr || errno != 0 || end == val || *end != '\0' || !(d >= 0.1 && d <= 3600)) {
        std::fprintf(stderr, "kcont-stat: --interval takes seconds in 0.1..3600, not '%s'\n",
                     val != nullptr ? val : "");
        return 2;
      }
      o.interval = d;
      ++i;
    } else if (a == "--count") {
      if (!parse_uint(val, 1, 1'000'000'000, n)) {
        std::fprintf(stderr,
                     "kcont-stat: --count takes a whole number in 1..1000000000, not '%s'\n",
                     val != nullptr ? val : "");
        return 2;
      }
      o.count = n;
      ++i;
    } else if (a == "--runtime") {
      if (!parse_uint(val, 1, 1000, n)) {
        std::fprintf(stderr, "kcont-stat: --runtime takes a whole number in 1..1000, not '%s'\n",
                     val != nullptr ? val : "");
        return 2;
      }
      o.runtime_no = static_cast<unsigned>(n);
      ++i;
    } else if (a == "--queues") {
      if (!parse_uint(val, 0, 100000, n)) {
        std::fprintf(stderr, "kcont-stat: --queues takes a whole number in 0..100000, not '%s'\n",
                     val != nullptr ? val : "");
        return 2;
      }
      o.top = n;
      ++i;
    } else if (!a.empty() && a[0] != '-' && !have_pid) {
      if (!parse_uint(a.c_str(), 1, 4194304, n)) {
        std::fprintf(stderr, "kcont-stat: PID must be a process id in 1..4194304, not '%s'\n",
                     a.c_str());
        return 2;
      }
      o.pid = static_cast<long>(n);
      have_pid = true;
    } else {
      std::fprintf(stderr, "kcont-stat: unknown argument '%s'\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }
  if (!have_pid) {
    std::fprintf(stderr, "kcont-stat: which process? (a PID)\n");
    usage(stderr);
    return 2;
  }
  return -1;
}

std::uint64_t softints(const seg::cpu_record& c) {
  return c.softint_serial + c.softint_net + c.softint_bio + c.softint_clock;
}

// A queue's figures over an interval (or since it was made): counts and the histograms' part
// that grew meanwhile.
struct queue_view {
  const seg::queue_record* q;
  double enqueued = 0, runs = 0;  // per second (totals without an interval)
  std::uint64_t wait_samples = 0, run_samples = 0;
  double wait_p50 = 0, wait_p99 = 0, run_p50 = 0, run_p99 = 0;  // ns
};

// The upper bound, in ns, of the bucket holding the p-th fraction of the samples in h.
double percentile_ns(const std::uint64_t* h, std::uint64_t n, double p, double ns_per_tick) {
  if (n == 0) return 0;
  const unsigned b = seg::histogram_percentile_bucket(h, n, p);
  return static_cast<double>(seg::histogram_bucket_high(b)) * ns_per_tick;
}

std::vector<queue_view> queue_views(const snapshot& s, const snapshot* prev, double per) {
  std::vector<queue_view> out;
  // Records come in the order their queues were made (ids increasing): one walk matches them.
  std::size_t at = 0;
  for (const seg::queue_record& q : s.queues) {
    const seg::queue_record* was = nullptr;
    if (prev != nullptr) {
      while (at < prev->queues.size() && prev->queues[at].id < q.id) ++at;
      if (at < prev->queues.size() && prev->queues[at].id == q.id) was = &prev->queues[at];
    }
    queue_view v{&q};
    std::uint64_t wait[seg::kHistogramBuckets], run[seg::kHistogramBuckets];
    for (unsigned b = 0; b < seg::kHistogramBuckets; ++b) {
      wait[b] = q.wait[b] - (was != nullptr && was->wait[b] <= q.wait[b] ? was->wait[b] : 0);
      run[b] = q.run[b] - (was != nullptr && was->run[b] <= q.run[b] ? was->run[b] : 0);
      v.wait_samples += wait[b];
      v.run_samples += run[b];
    }
    v.enqueued = static_cast<double>(q.enqueued - (was != nullptr ? was->enqueued : 0)) / per;
    v.runs = static_cast<double>(q.runs - (was != nullptr ? was->runs : 0)) / per;
    v.wait_p50 = percentile_ns(wait, v.wait_samples, 0.50, s.ns_per_tick);
    v.wait_p99 = percentile_ns(wait, v.wait_samples, 0.99, s.ns_per_tick);
    v.run_p50 = percentile_ns(run, v.run_samples, 0.50, s.ns_per_tick);
    v.run_p99 = percentile_ns(run, v.run_samples, 0.99, s.ns_per_tick);
    out.push_back(v);
  }
  // Longest wait p99 first; then the busiest.
  std::stable_sort(out.begin(), out.end(), [](const queue_view& a, const queue_view& b) {
    if (a.wait_p99 != b.wait_p99) return a.wait_p99 > b.wait_p99;
    return a.runs > b.runs;
  });
  return out;
}

// A queue's name as a JSON string's contents.
std::string json_escaped(const char* text, std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < max && text[i] != '\0'; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string duration_text(double ns, std::uint64_t samples) {
  char buf[32];
  if (samples == 0)
    std::snprintf(buf, sizeof buf, "-");
  else if (ns < 1e3)
    std::snprintf(buf, sizeof buf, "%.0fns", ns);
  else if (ns < 1e6)
    std::snprintf(buf, sizeof buf, "%.1fus", ns / 1e3);
  else if (ns < 1e9)
    std::snprintf(buf, sizeof buf, "%.1fms", ns / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.2fs", ns / 1e9);
  return buf;
}

void print_json(const options& o, const seg::header& h, const snapshot& s) {
  std::printf("{\"pid\":%ld,\"ncpu\":%u,\"hz\":%u,\"snapshot\":%" PRIu64 ",\"taken_ns\":%" PRId64
              ",\"handler_exceptions\":%" PRIu64 ",\"stuck_handlers\":%" PRIu64 ",\"cpus\":[",
              o.pid, h.ncpu, h.hz, s.number, s.taken_ns, s.exceptions, s.stuck);
  for (std::size_t i = 0; i < s.cpus.size(); ++i) {
    const seg::cpu_record& c = s.cpus[i];
    std::printf("%s{\"cpu\":%zu,\"awake_ns\":%" PRIu64 ",\"hard_interrupts\":%" PRIu64
                ",\"softint_serial\":%" PRIu64 ",\"softint_net\":%" PRIu64
                ",\"softint_bio\":%" PRIu64 ",\"softint_clock\":%" PRIu64 ",\"wakeups\":%" PRIu64
                ",\"loop_sleeps\":%" PRIu64 ",\"timer_wakeups\":%" PRIu64 ",\"spin_hits\":%" PRIu64
                ",\"spin_misses\":%" PRIu64 ",\"callouts_pending\":%" PRIu64
                ",\"callouts_armed\":%" PRIu64 ",\"callouts_fired\":%" PRIu64
                ",\"callouts_cancelled\":%" PRIu64 "}",
                i == 0 ? "" : ",", i, c.awake_ns, c.hard_interrupts, c.softint_serial,
                c.softint_net, c.softint_bio, c.softint_clock, c.wakeups, c.loop_sleeps,
                c.timer_wakeups, c.spin_hits, c.spin_misses, c.callouts_pending, c.callouts_armed,
                c.callouts_fired, c.callouts_cancelled);
  }
  std::printf("],\"pools\":[");
  bool first = true;
  for (const seg::pool_record& p : s.pools) {
    if (p.workers == 0 && p.created == 0 && p.waiting == 0) continue;
    std::printf(
        "%s{\"cpu\":%u,\"priority\":\"%s\",\"workers\":%u,\"idle\":%u,\"blocked\":%u,\"waiting\":%"
        "u,"
        "\"created\":%" PRIu64 ",\"exited\":%" PRIu64 "}",
        first ? "" : ",", p.cpu, kPrio[p.priority % seg::kPriorities], p.workers, p.idle, p.blocked,
        p.waiting, p.created, p.exited);
    first = false;
  }
  std::printf("],\"queues\":[");
  first = true;
  for (const queue_view& v : queue_views(s, nullptr, 1)) {
    const seg::queue_record& q = *v.q;
    std::printf("%s{\"id\":%" PRIu64
                ",\"kind\":\"%s\",\"name\":\"%s\",\"cpu\":%d,\"depth\":%" PRIu64
                ",\"max_depth\":%" PRIu64 ",\"enqueued\":%" PRIu64 ",\"runs\":%" PRIu64
                ",\"timed\":%s,\"wait_samples\":%" PRIu64
                ",\"wait_p50_ns\":%.0f,\"wait_p99_ns\":%.0f,\"run_samples\":%" PRIu64
                ",\"run_p50_ns\":%.0f,\"run_p99_ns\":%.0f}",
                first ? "" : ",", q.id, json_escaped(q.kind, sizeof q.kind).c_str(),
                json_escaped(q.name, sizeof q.name).c_str(), q.cpu, q.depth, q.max_depth,
                q.enqueued, q.runs, q.timed != 0 ? "true" : "false", v.wait_samples, v.wait_p50,
                v.wait_p99, v.run_samples, v.run_p50, v.run_p99);
    first = false;
  }
  std::printf("]}\n");
  std::fflush(stdout);
}

// Totals (prev == nullptr) or rates per second since prev; CPUs sorted by time awake.
void print_text(const options& o, const seg::header& h, const snapshot& s, const snapshot* prev) {
  const double dt = prev != nullptr ? static_cast<double>(s.taken_ns - prev->taken_ns) / 1e9 : 0;
  const double up = static_cast<double>(s.taken_ns - h.started_ns) / 1e9;
  std::printf("kcont-stat: pid %ld, %u CPUs, hz %u, %s loop, exporting for %.1f s%s\n", o.pid,
              h.ncpu, h.hz, h.backend == 1 ? "libevent" : "asio", up,
              prev != nullptr ? " (rates per second)" : " (totals)");
  std::printf("  handler exceptions %" PRIu64 ", stuck handlers reported %" PRIu64 "\n",
              s.exceptions, s.stuck);
  std::vector<std::size_t> order(s.cpus.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto delta = [&](std::size_t i, std::uint64_t seg::cpu_record::*f) {
    const std::uint64_t now = s.cpus[i].*f, then = prev != nullptr ? prev->cpus[i].*f : 0;
    return now >= then ? now - then : 0;
  };
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return delta(a, &seg::cpu_record::awake_ns) > delta(b, &seg::cpu_record::awake_ns);
  });
  const double div = prev != nullptr && dt > 0 ? dt : 1;
  std::printf("  %4s %7s %10s %10s %10s %10s %10s %10s %10s %10s\n", "cpu",
              prev != nullptr ? "awake%" : "awake s", "hardintr", "softint", "net", "clock",
              "wakeups", "co.pend", "co.fired", "co.cancel");
  for (std::size_t i : order) {
    const double awake = static_cast<double>(delta(i, &seg::cpu_record::awake_ns));
    const std::uint64_t soft_now = softints(s.cpus[i]);
    const std::uint64_t soft_then = prev != nullptr ? softints(prev->cpus[i]) : 0;
    std::printf("  %4zu %7.1f %10.0f %10.0f %10.0f %10.0f %10.0f %10" PRIu64 " %10.0f %10.0f\n", i,
                prev != nullptr ? 100 * awake / 1e9 / div : awake / 1e9,
                static_cast<double>(delta(i, &seg::cpu_record::hard_interrupts)) / div,
                static_cast<double>(soft_now >= soft_then ? soft_now - soft_then : 0) / div,
                static_cast<double>(delta(i, &seg::cpu_record::softint_net)) / div,
                static_cast<double>(delta(i, &seg::cpu_record::softint_clock)) / div,
                static_cast<double>(delta(i, &seg::cpu_record::wakeups)) / div,
                s.cpus[i].callouts_pending,
                static_cast<double>(delta(i, &seg::cpu_record::callouts_fired)) / div,
                static_cast<double>(delta(i, &seg::cpu_record::callouts_cancelled)) / div);
  }
  bool header = false;
  for (const seg::pool_record& p : s.pools) {
    if (p.workers == 0 && p.created == 0 && p.waiting == 0) continue;
    if (!header) {
      std::printf("  worker pools: %4s %8s %7s %5s %5s %7s %7s %8s %8s\n", "cpu", "priority",
                  "workers", "busy", "idle", "blocked", "waiting", "created", "exited");
      header = true;
    }
    std::printf("                %4u %8s %7u %5u %5u %7u %7u %8" PRIu64 " %8" PRIu64 "\n", p.cpu,
                kPrio[p.priority % seg::kPriorities], p.workers,
                p.workers >= p.idle ? p.workers - p.idle : 0, p.idle, p.blocked, p.waiting,
                p.created, p.exited);
  }
  if (!header) std::printf("  worker pools: none started yet\n");
  const std::vector<queue_view> qv = queue_views(s, prev, div);
  if (o.top > 0 && !qv.empty()) {
    std::printf("  queues: %zu, by wait p99%s%s\n", qv.size(),
                prev != nullptr ? " over the interval" : " since made",
                qv.size() > o.top ? (", top " + std::to_string(o.top)).c_str() : "");
    std::printf("  %-9s %-24s %4s %6s %7s %10s %10s %9s %9s %9s %9s\n", "kind", "name", "cpu",
                "depth", "maxdep", prev != nullptr ? "enq/s" : "enqueued",
                prev != nullptr ? "runs/s" : "runs", "wait p50", "wait p99", "run p50", "run p99");
    for (std::size_t i = 0; i < qv.size() && i < o.top; ++i) {
      const queue_view& v = qv[i];
      const seg::queue_record& q = *v.q;
      const std::string cpu = q.cpu < 0 ? "any" : std::to_string(q.cpu);
      std::printf("  %-9.16s %-24.48s %4s %6" PRIu64 " %7" PRIu64
                  " %10.0f %10.0f %9s %9s %9s %9s\n",
                  q.kind, q.name, cpu.c_str(), q.depth, q.max_depth, v.enqueued, v.runs,
                  duration_text(v.wait_p50, v.wait_samples).c_str(),
                  duration_text(v.wait_p99, v.wait_samples).c_str(),
                  duration_text(v.run_p50, v.run_samples).c_str(),
                  duration_text(v.run_p99, v.run_samples).c_str());
    }
    if (!qv.empty() && qv[0].q->timed == 0)
      std::printf("  (wait and run times not sampled: the runtime does not time its queues)\n");
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  if (int rc = parse(argc, argv, o); rc >= 0) return rc;
  std::string why;
  segment sg(o.pid, o.runtime_no, why);
  if (!sg.ok()) {
    std::fprintf(stderr, "kcont-stat: %s\n", why.c_str());
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  snapshot prev, cur;
  if (!sg.read(prev)) {
    std::fprintf(stderr,
                 "kcont-stat: process %ld did not answer within 2 s (stopped, or its runtime "
                 "is gone)\n",
                 o.pid);
    return 1;
  }
  if (o.once) {
    if (o.json)
      print_json(o, sg.head(), prev);
    else
      print_text(o, sg.head(), prev, nullptr);
    return 0;
  }
  for (std::uint64_t n = 0; (o.count == 0 || n < o.count) && g_stop == 0; ++n) {
    const auto until = monotonic_ns() + static_cast<std::int64_t>(o.interval * 1e9);
    while (g_stop == 0 && monotonic_ns() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (g_stop != 0) break;
    if (!sg.read(cur)) {
      std::fprintf(stderr, "kcont-stat: process %ld stopped answering\n", o.pid);
      return 1;
    }
    if (o.json)
      print_json(o, sg.head(), cur);
    else
      print_text(o, sg.head(), cur, &prev);
    prev = cur;
  }
  return 0;
}
