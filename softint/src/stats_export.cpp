// The statistics publisher (stats_export.h): the segment's protocol is in <kcont/stats_segment.h>.
// The thread sleeps on the `request` futex; nothing is read or written while nobody asks.
#include "stats_export.h"

#include <kcont/watchdog.h>

#include "runtime_impl.h"

#include <kcont/internal/thread_setup.h>

#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

namespace kcont::detail {

namespace seg = stats_segment;

namespace {

std::int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Shared futexes: the reader is another process.
void futex_wait(std::uint32_t* word, std::uint32_t expected) {
  ::syscall(SYS_futex, word, FUTEX_WAIT, expected, nullptr, nullptr, 0);
}
void futex_wake(std::uint32_t* word) {
  ::syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

template <class T>
void put(T& field, T value) {
  std::atomic_ref<T>(field).store(value, std::memory_order_relaxed);
}
template <class T>
T get(T& field) {
  return std::atomic_ref<T>(field).load(std::memory_order_relaxed);
}

// Removes segments of processes that are gone (a kill -9 leaves its segment behind).
void sweep_stale_segments() {
  DIR* d = ::opendir("/dev/shm");
  if (d == nullptr) return;
  while (dirent* e = ::readdir(d)) {
    long pid = 0;
    int used = 0;
    if (std::sscanf(e->d_name, "kcont.%ld%n", &pid, &used) != 1 || pid <= 0) continue;
    if (e->d_name[used] != '\0' && e->d_name[used] != '.') continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    char path[300];
    std::snprintf(path, sizeof path, "/%s", e->d_name);
    ::shm_unlink(path);
  }
  ::closedir(d);
}

std::atomic<unsigned> g_segments{0};  // exporting runtimes made by this process

// The segment is mapped once with room for this many queue records (address space only): the
// file grows under the mapping as queues are made, so the publisher's pointer never moves.
constexpr std::uint64_t kMaxQueueRecords = 100000;
static_assert(sizeof(seg::queue_record) % 8 == 0);

// Copies a C string into a fixed field, cut to fit, NUL-terminated, the rest zero.
template <std::size_t N>
void put_string(char (&field)[N], const char* from) {
  std::memset(field, 0, N);
  if (from != nullptr) std::memcpy(field, from, ::strnlen(from, N - 1));
}

}  // namespace

class stats_publisher {
 public:
  stats_publisher(runtime& rt, std::string name, int fd, seg::header* h, std::size_t mapped,
                  std::size_t bytes)
      : rt_(rt), name_(std::move(name)), fd_(fd), h_(h), mapped_(mapped), bytes_(bytes) {}
  ~stats_publisher() {
    if (thread_.joinable()) {
      stop_.store(true, std::memory_order_release);
      std::atomic_ref<std::uint32_t>(h_->request).fetch_add(1, std::memory_order_release);
      futex_wake(&h_->request);
      thread_.join();
    }
    ::munmap(h_, mapped_);
    ::close(fd_);
    ::shm_unlink(name_.c_str());
  }
  void start() {
    thread_ = std::thread([this] { run(); });
  }
  std::string path() const { return "/dev/shm" + name_; }

 private:
  seg::cpu_record* cpus() { return reinterpret_cast<seg::cpu_record*>(h_ + 1); }
  seg::pool_record* pools() { return reinterpret_cast<seg::pool_record*>(cpus() + h_->ncpu); }
  seg::queue_record* queue_records() {
    return reinterpret_cast<seg::queue_record*>(pools() + h_->npools);
  }

  // Grows the file to hold `n` queue records (doubling); returns how many it holds.
  std::uint64_t make_room(std::uint64_t n) {
    const std::uint64_t base = seg::segment_bytes(h_->ncpu);
    std::uint64_t room = (bytes_ - base) / sizeof(seg::queue_record);
    if (n <= room) return room;
    const std::uint64_t want =
        std::min(std::max({n, 2 * room, std::uint64_t{64}}), kMaxQueueRecords);
    const std::uint64_t bytes = seg::segment_bytes(h_->ncpu, want);
    if (::ftruncate(fd_, static_cast<off_t>(bytes)) != 0) {
      if (!warned_) {
        std::fprintf(stderr, "kcont: KCONT_STATS: cannot grow /dev/shm%s: %s; %llu queues shown\n",
                     name_.c_str(), std::strerror(errno), static_cast<unsigned long long>(room));
        warned_ = true;
      }
      return room;
    }
    bytes_ = static_cast<std::size_t>(bytes);
    return want;
  }

  void run() {
    internal::name_this_thread("kcont/stats");
    for (;;) {
      const std::uint32_t req =
          std::atomic_ref<std::uint32_t>(h_->request).load(std::memory_order_acquire);
      if (stop_.load(std::memory_order_acquire)) return;
      publish();
      std::atomic_ref<std::uint32_t>(h_->answered).store(req, std::memory_order_release);
      futex_wake(&h_->answered);
      // Sleep until a reader asks again (a request made since `req` was read returns at once).
      futex_wait(&h_->request, req);
    }
  }

  // One snapshot: the machine's figures, then each higher layer's (its hook), all into local
  // records first, then into the segment under the seqlock.
  void publish() {
    const unsigned n = h_->ncpu;
    local_cpus_.assign(n, seg::cpu_record{});
    local_pools_.assign(std::size_t{n} * seg::kPriorities, seg::pool_record{});
    for (unsigned i = 0; i < n; ++i) {
      const cpu_loop_stats s = rt_.cpu_stats(i);
      seg::cpu_record& r = local_cpus_[i];
      r.hard_interrupts = s.hard_interrupts;
      r.softint_serial = s.softint_serial;
      r.softint_net = s.softint_net;
      r.softint_bio = s.softint_bio;
      r.softint_clock = s.softint_clock;
      r.wakeups = s.wakeups;
      r.loop_sleeps = s.loop_sleeps;
      r.timer_wakeups = s.timer_wakeups;
      r.spin_hits = s.spin_hits;
      r.spin_misses = s.spin_misses;
      r.awake_ns = s.awake_ns;
      for (unsigned p = 0; p < seg::kPriorities; ++p) {
        local_pools_[i * seg::kPriorities + p].cpu = i;
        local_pools_[i * seg::kPriorities + p].priority = p;
      }
    }
    for (auto& hook : rt_.impl().stats_hooks)
      if (machine::stats_hook fn = hook.load(std::memory_order_acquire))
        fn(rt_, local_cpus_.data(), local_pools_.data());
    local_queues_.clear();  // its capacity stays: no allocation once the queues are counted
    internal::visit_queues(
        rt_,
        [](void* ctx, const internal::queue_stats_node& q) {
          seg::queue_record& r = static_cast<stats_publisher*>(ctx)->local_queues_.emplace_back();
          put_string(r.kind, q.kind);
          put_string(r.name, q.name);
          const internal::queue_counters& c = q.counters;
          r.cpu = q.cpu;
          r.timed = c.timed ? 1 : 0;
          r.id = q.id;
          r.depth = c.depth;
          r.max_depth = c.max_depth;
          r.enqueued = c.enqueued;
          r.runs = c.runs;
          std::copy(std::begin(c.wait), std::end(c.wait), r.wait);
          std::copy(std::begin(c.run), std::end(c.run), r.run);
        },
        this);
    const std::uint64_t nq =
        std::min<std::uint64_t>(local_queues_.size(), make_room(local_queues_.size()));
    local_queues_.resize(nq);

    std::atomic_ref<std::uint64_t> seq(h_->seq);
    const std::uint64_t s0 = seq.load(std::memory_order_relaxed);
    seq.store(s0 + 1, std::memory_order_relaxed);  // odd: writing
    std::atomic_thread_fence(std::memory_order_release);
    copy_words(local_cpus_.data(), cpus(), n);
    copy_words(local_pools_.data(), pools(), local_pools_.size());
    copy_words(local_queues_.data(), queue_records(), local_queues_.size());
    put(h_->nqueues, std::uint64_t{nq});
    put(h_->segment_bytes, std::uint64_t{bytes_});
    put(h_->taken_ns, monotonic_ns());
    put(h_->snapshots, get(h_->snapshots) + 1);
    put(h_->handler_exceptions, kcont::handler_exceptions());
    put(h_->stuck_handlers, kcont::stuck_handler_watchdog_stats().reported);
    seq.store(s0 + 2, std::memory_order_release);
  }

  // Records are whole 64-bit words (pool records: two 32-bit pairs); copied word by word.
  template <class R>
  static void copy_words(const R* from, R* to, std::size_t count) {
    static_assert(sizeof(R) % 8 == 0);
    const auto* src = reinterpret_cast<const std::uint64_t*>(from);
    auto* dst = reinterpret_cast<std::uint64_t*>(to);
    for (std::size_t i = 0; i < count * sizeof(R) / 8; ++i) put(dst[i], src[i]);
  }

  runtime& rt_;
  const std::string name_;
  const int fd_;
  seg::header* const h_;
  const std::size_t mapped_;  // address space reserved: room for kMaxQueueRecords
  std::size_t bytes_;         // publisher thread only: the file's size now
  bool warned_ = false;       // publisher thread only
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<seg::cpu_record> local_cpus_;      // publisher thread only
  std::vector<seg::pool_record> local_pools_;    // publisher thread only
  std::vector<seg::queue_record> local_queues_;  // publisher thread only
};

stats_publisher* start_stats_publisher(runtime& rt) {
  sweep_stale_segments();
  const unsigned nth = g_segments.fetch_add(1) + 1;
  char buf[64];
  if (nth > 1)
    std::snprintf(buf, sizeof buf, "/kcont.%ld.%u", static_cast<long>(::getpid()), nth);
  else
    std::snprintf(buf, sizeof buf, "/kcont.%ld", static_cast<long>(::getpid()));
  const std::string name = buf;
  const std::size_t bytes = static_cast<std::size_t>(seg::segment_bytes(rt.ncpu()));
  const std::size_t mapped =
      static_cast<std::size_t>(seg::segment_bytes(rt.ncpu(), kMaxQueueRecords));
  int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::fprintf(stderr,
                 "kcont: KCONT_STATS: cannot make /dev/shm%s: %s; statistics not exported\n",
                 name.c_str(), std::strerror(errno));
    return nullptr;
  }
  void* mem = MAP_FAILED;
  if (::ftruncate(fd, static_cast<off_t>(bytes)) == 0)
    mem = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  const int err = errno;
  if (mem == MAP_FAILED) {
    ::close(fd);
    ::shm_unlink(name.c_str());
    std::fprintf(stderr,
                 "kcont: KCONT_STATS: cannot size /dev/shm%s: %s; statistics not exported\n",
                 name.c_str(), std::strerror(err));
    return nullptr;
  }
  auto* h = static_cast<seg::header*>(mem);  // zero-filled by ftruncate
  h->version = seg::kVersion;
  h->header_bytes = sizeof(seg::header);
  h->cpu_record_bytes = sizeof(seg::cpu_record);
  h->pool_record_bytes = sizeof(seg::pool_record);
  h->ncpu = rt.ncpu();
  h->npools = rt.ncpu() * seg::kPriorities;
  h->hz = rt.hz();
  h->backend = rt.config().backend == backend_kind::libevent ? 1 : 0;
  h->pid = ::getpid();
  h->started_ns = monotonic_ns();
  h->queue_record_bytes = sizeof(seg::queue_record);
  h->histogram_buckets = seg::kHistogramBuckets;
  h->segment_bytes = bytes;
  h->fs_per_tick = static_cast<std::uint64_t>(std::llround(internal::sample_ns_per_tick() * 1e6));
  // The magic last: a reader that sees it sees a complete header.
  std::atomic_thread_fence(std::memory_order_release);
  std::memcpy(h->magic, seg::kMagic, sizeof h->magic);
  auto p = std::make_unique<stats_publisher>(rt, name, fd, h, mapped, bytes);
  try {
    p->start();
  } catch (const std::system_error& e) {
    std::fprintf(stderr,
                 "kcont: KCONT_STATS: cannot start the publisher thread (%s); "
                 "statistics not exported\n",
                 e.what());
    return nullptr;  // ~stats_publisher removes the segment
  }
  return p.release();
}

void stop_stats_publisher(stats_publisher* p) {
  delete p;
}

std::string stats_publisher_path(const stats_publisher* p) {
  return p == nullptr ? std::string() : p->path();
}

}  // namespace kcont::detail
