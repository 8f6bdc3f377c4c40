// The stuck-handler watchdog (<kcont/watchdog.h>): the registry of handler slots, the
// "kcont/watchdog" thread that samples them, and its reports. The running side and the
// protocol between the two are in <kcont/internal/handler_watch.h>.
//
// Everything here lives in a singleton that is never destroyed: handlers may run (and the
// watchdog sample) during static destruction, after main has returned.
#include "cpu.h"

#include <kcont/internal/handler_watch.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/internal/thread_setup.h>
#include <kcont/watchdog.h>

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace kcont::machine {

std::atomic<bool> g_watch_on{false};
std::atomic<int> g_watch_parked{0};

}  // namespace kcont::machine

namespace kcont::detail {
cpu_info* this_thread_cpu() noexcept;  // current.cpp
}  // namespace kcont::detail

namespace kcont {
namespace {

using machine::handler_slot;

constexpr std::int64_t kMinThreshold = 1'000'000;                    // 1 ms
constexpr std::int64_t kMaxThreshold = 24LL * 3600 * 1'000'000'000;  // 24 h
constexpr std::int64_t kMinPeriod = 1'000'000;                       // 1 ms

// Locks used to protect the fields of watchdog_state:
//   [a] atomic
//   [r] mu (the registry: slots are linked and unlinked under it, and sampled under it)
//   [W] the watchdog thread only
struct watchdog_state {
  // Held by the watchdog while it hands reports to the reporter; set_stuck_handler_reporter
  // takes it so that, once it returns, the previous reporter is not running. Order: deliver_mu
  // -> mu.
  std::mutex deliver_mu;
  std::mutex mu;
  handler_slot* slots = nullptr;              // [r]
  bool thread_started = false;                // [r]
  stuck_handler_reporter reporter = nullptr;  // [r]
  void* reporter_arg = nullptr;               // [r]
  std::atomic<std::int64_t> threshold_ns{0};  // [a] 0: off
  std::atomic<std::uint32_t> generation{0};   // [a] futex: bumped when the settings change
  std::atomic<std::uint64_t> reported{0}, samples{0}, parks{0};  // [a]
  std::atomic<bool> can_park{false};                             // [a] set once by the thread
};

watchdog_state& state() {
  static watchdog_state* s = new watchdog_state;  // never destroyed (see the top)
  return *s;
}

long futex(void* word, int op, std::uint32_t val, const timespec* timeout) {
  return ::syscall(SYS_futex, word, op, val, timeout, nullptr, 0);
}

// A full memory barrier on every running thread of this process (see handler_watch.h).
bool membarrier_everywhere() {
  return ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
}

// --- the slots ------------------------------------------------------------------------------

thread_local bool tl_is_watchdog = false;  // the watchdog's own thread (it may set a reporter)
thread_local handler_slot* tl_slot = nullptr;
thread_local bool tl_slot_gone = false;  // this thread's slot was unregistered at its exit

void unregister(handler_slot* s) {
  watchdog_state& w = state();
  std::lock_guard<std::mutex> lk(w.mu);
  for (handler_slot** p = &w.slots; *p != nullptr; p = &(*p)->next) {
    if (*p == s) {
      *p = s->next;
      break;
    }
  }
  delete s;
}

struct slot_owner {
  handler_slot* slot = nullptr;
  ~slot_owner() {
    if (slot == nullptr) return;
    tl_slot = nullptr;
    tl_slot_gone = true;  // a handler run later by this thread's destructors goes unwatched
    unregister(slot);
  }
};
thread_local slot_owner tl_owner;

// --- reports --------------------------------------------------------------------------------

void copy_name(char* to, std::size_t size, const char* from) {
  std::snprintf(to, size, "%s", from != nullptr && *from != '\0' ? from : "-");
}

void write_report(const stuck_handler_report& r) {
  const double s = std::chrono::duration<double>(r.running_for).count();
  char cpu[16] = "-";
  if (r.cpu >= 0) std::snprintf(cpu, sizeof cpu, "%d", r.cpu);
  // One write per line, so that reports from several sources do not interleave.
  if (!r.returned)
    std::fprintf(stderr,
                 "kcont: a %s has been running for %.3f s (queue %s, function %s, cpu %s, "
                 "thread %s)\n",
                 r.kind, s, r.queue, r.function, cpu, r.thread);
  else
    std::fprintf(stderr,
                 "kcont: the %s reported stuck returned after %.3f s (queue %s, function %s, "
                 "cpu %s, thread %s)\n",
                 r.kind, s, r.queue, r.function, cpu, r.thread);
}

stuck_handler_report describe(const handler_slot& s, const char* kind, const char* queue,
                              const void* fn, std::int64_t ns, bool returned) {
  stuck_handler_report r{};
  r.kind = kind != nullptr ? kind : "handler";
  copy_name(r.queue, sizeof r.queue, queue);
  machine::describe_function(fn, r.function, sizeof r.function);
  // The thread is alive: it could only leave through unregister(), which waits for mu.
  if (::pthread_getname_np(s.thread, r.thread, sizeof r.thread) != 0) copy_name(r.thread, 16, "?");
  r.cpu = s.cpu;
  r.running_for = std::chrono::nanoseconds(ns);
  r.returned = returned;
  return r;
}

// --- the watchdog thread --------------------------------------------------------------------

// Looks at every slot once (under mu); reports go to `out`. Returns whether a handler runs or
// has run since the last sample.
bool sample(watchdog_state& w, std::int64_t now, std::int64_t threshold,
            std::vector<stuck_handler_report>& out) {
  bool busy = false;
  for (handler_slot* s = w.slots; s != nullptr; s = s->next) {
    const unsigned depth = s->depth.load(std::memory_order_acquire);
    const std::uint64_t seq = s->seq.load(std::memory_order_acquire);
    const char* kind = s->kind.load(std::memory_order_relaxed);
    const char* queue = s->queue.load(std::memory_order_relaxed);
    const void* fn = s->fn.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    const bool steady = s->seq.load(std::memory_order_relaxed) == seq;
    if (s->reported_seq != 0 && seq != s->reported_seq) {  // the stuck one has returned
      out.push_back(describe(*s, s->reported_kind, s->reported_queue, s->reported_fn,
                             now - s->reported_since, true));
      s->reported_seq = 0;
    }
    if (depth == 0) {
      if (seq != s->seen_seq) busy = true;  // ran handlers since the last sample
      s->seen_seq = seq;
      continue;
    }
    busy = true;
    if (!steady) continue;
    if (seq != s->seen_seq) {
      s->seen_seq = seq;
      s->seen_since = now;
      continue;
    }
    if (s->reported_seq == seq || now - s->seen_since < threshold) continue;
    s->reported_seq = seq;
    s->reported_since = s->seen_since;
    s->reported_kind = kind;
    s->reported_queue = queue;
    s->reported_fn = fn;
    out.push_back(describe(*s, kind, queue, fn, now - s->seen_since, false));
    w.reported.fetch_add(1, std::memory_order_relaxed);
  }
  return busy;
}

bool any_running(watchdog_state& w) {
  std::lock_guard<std::mutex> lk(w.mu);
  for (handler_slot* s = w.slots; s != nullptr; s = s->next)
    if (s->depth.load(std::memory_order_relaxed) != 0) return true;
  return false;
}

// Woken by watch_unpark (a handler started, or the settings changed): it clears the word.
void park() {
  while (machine::g_watch_parked.load(std::memory_order_seq_cst) != 0)
    futex(&machine::g_watch_parked, FUTEX_WAIT_PRIVATE, 1, nullptr);
}

void watchdog_main() {
  internal::name_this_thread("kcont/watchdog");
  tl_is_watchdog = true;
  watchdog_state& w = state();
  w.can_park.store(::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0);
  std::vector<stuck_handler_report> reports;
  for (;;) {
    const std::uint32_t gen = w.generation.load(std::memory_order_seq_cst);
    const std::int64_t threshold = w.threshold_ns.load(std::memory_order_seq_cst);
    if (threshold == 0) {  // off: handlers do not look at g_watch_parked; settings wake us
      futex(&w.generation, FUTEX_WAIT_PRIVATE, gen, nullptr);
      continue;
    }
    bool busy;
    {
      std::lock_guard<std::mutex> deliver(w.deliver_mu);
      stuck_handler_reporter reporter;
      void* reporter_arg;
      {
        std::lock_guard<std::mutex> lk(w.mu);
        busy = sample(w, detail::now_ns(), threshold, reports);
        reporter = w.reporter;
        reporter_arg = w.reporter_arg;
      }
      // Without mu: the reporter may call into the watchdog's settings.
      for (const stuck_handler_report& r : reports) {
        if (reporter != nullptr)
          reporter(r, reporter_arg);
        else
          write_report(r);
      }
    }
    w.samples.fetch_add(1, std::memory_order_relaxed);
    reports.clear();
    // Parks only after a whole period in which no handler ran: work that comes in bursts
    // (a request now and then) keeps the watchdog on its timed samples, so its handlers never
    // pay a wake-up and it never pays a membarrier per handler.
    if (!busy && w.can_park.load(std::memory_order_relaxed)) {
      machine::g_watch_parked.store(1, std::memory_order_seq_cst);
      if (membarrier_everywhere() && !any_running(w) &&
          w.generation.load(std::memory_order_seq_cst) == gen) {
        w.parks.fetch_add(1, std::memory_order_relaxed);
        park();
      }
      machine::g_watch_parked.store(0, std::memory_order_seq_cst);
      continue;
    }
    const std::int64_t period = std::max(threshold / 4, kMinPeriod);
    const timespec ts{static_cast<time_t>(period / 1'000'000'000),
                      static_cast<long>(period % 1'000'000'000)};
    futex(&w.generation, FUTEX_WAIT_PRIVATE, gen, &ts);
  }
}

void wake_watchdog(watchdog_state& w) {
  w.generation.fetch_add(1, std::memory_order_seq_cst);
  futex(&w.generation, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
  machine::watch_unpark();
}

}  // namespace

namespace machine {

handler_slot* this_thread_handler_slot() noexcept {
  if (tl_slot != nullptr || tl_slot_gone) return tl_slot;
  auto* s = new (std::nothrow) handler_slot;
  if (s == nullptr) return nullptr;
  s->thread = ::pthread_self();
  const cpu_info* ci = detail::this_thread_cpu();
  s->cpu = ci != nullptr ? static_cast<int>(ci->index) : internal::this_thread_cpu_note();
  {
    watchdog_state& w = state();
    std::lock_guard<std::mutex> lk(w.mu);
    s->next = w.slots;
    w.slots = s;
  }
  tl_owner.slot = s;
  tl_slot = s;
  return s;
}

void watch_unpark() noexcept {
  int expected = 1;
  if (g_watch_parked.compare_exchange_strong(expected, 0, std::memory_order_seq_cst))
    futex(&g_watch_parked, FUTEX_WAKE_PRIVATE, 1, nullptr);
}

}  // namespace machine

void set_stuck_handler_watchdog(std::chrono::nanoseconds threshold) {
  const std::int64_t ns = threshold.count();
  if (ns != 0 && (ns < kMinThreshold || ns > kMaxThreshold))
    throw std::invalid_argument(
        "kcont: the stuck-handler watchdog's threshold must be 0 (off) or 1 ms .. 24 h, got " +
        std::to_string(ns) + " ns");
  watchdog_state& w = state();
  {
    std::lock_guard<std::mutex> lk(w.mu);
    if (ns != 0 && !w.thread_started) {
      std::thread(watchdog_main).detach();  // throws std::system_error; the watchdog stays off
      w.thread_started = true;
    }
    w.threshold_ns.store(ns, std::memory_order_seq_cst);
  }
  machine::g_watch_on.store(ns != 0, std::memory_order_seq_cst);
  wake_watchdog(w);
}

std::chrono::nanoseconds stuck_handler_watchdog() {
  return std::chrono::nanoseconds(state().threshold_ns.load());
}

void set_stuck_handler_reporter(stuck_handler_reporter fn, void* arg) {
  watchdog_state& w = state();
  std::unique_lock<std::mutex> deliver(w.deliver_mu, std::defer_lock);
  if (!tl_is_watchdog) deliver.lock();  // wait out a delivery to the previous reporter
  std::lock_guard<std::mutex> lk(w.mu);
  w.reporter = fn;
  w.reporter_arg = arg;
}

stuck_handler_watchdog_figures stuck_handler_watchdog_stats() {
  watchdog_state& w = state();
  stuck_handler_watchdog_figures f;
  f.reported = w.reported.load();
  f.samples = w.samples.load();
  f.parks = w.parks.load();
  f.can_park = w.can_park.load();
  return f;
}

}  // namespace kcont
