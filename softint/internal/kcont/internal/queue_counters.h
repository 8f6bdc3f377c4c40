// The counters behind <kcont/queue_stats.h>, embedded in each queue (the engine's
// queue_instance, a kcont kqueue, a named taskctx), and the runtime's registry of them.
//
// Every field of queue_counters is written under the owning queue's lock (the one its add and
// run paths hold anyway) and read under it by the registry, so counting is plain arithmetic:
// no atomic, no shared line beyond the one the lock already moves. Timing samples one task in
// 64 (wait: the one task whose enqueue was sampled, remembered by address; run: every 64th
// start) on the time-stamp counter, only when `timed`.
#pragma once

#include <kcont/queue_stats.h>
#include <kcont/runtime.h>

#include <boost/intrusive/list_hook.hpp>

#include <cstdint>
#include <mutex>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace kcont::internal {

// The sampling clock: the TSC where it is invariant (constant rate, not stopped in idle states),
// else CLOCK_MONOTONIC in nanoseconds. sample_ns_per_tick() calibrates once (a few ms, on the
// first reader's thread, never on a queue path).
bool sample_clock_is_tsc();
inline std::uint64_t sample_ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  if (sample_clock_is_tsc()) return __rdtsc();
#endif
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}
double sample_ns_per_tick();

struct queue_counters {
  static constexpr std::uint64_t kSampleEvery = 64;  // one task in 64 timed (wait and run)

  // Untimed, the countdowns start where they never reach zero: both kinds of queue run the same
  // instructions per task, and only a timed one ever takes the sampling branches. (A `timed`
  // test on each path cost task_add+run 1.5-2% by itself, sampling one in 1 024; one in 16
  // cost 5.9% with a TSC read at 11 ns on a VM: over the 2% the statistics may cost.)
  explicit queue_counters(bool is_timed)
      : timed(is_timed),
        enqueue_countdown(is_timed ? kSampleEvery : kNever),
        start_countdown(is_timed ? kSampleEvery : kNever) {}

  const bool timed;
  std::uint64_t enqueued = 0, runs = 0, depth = 0, max_depth = 0;
  std::uint64_t enqueue_countdown, start_countdown;  // to the next sampled enqueue / start
  const void* sampled = nullptr;                     // the queued task whose wait is being timed
  std::uint64_t sampled_at = 0;
  std::uint64_t wait[duration_histogram::kBuckets] = {};
  std::uint64_t run[duration_histogram::kBuckets] = {};

  // Lock held: task t was queued.
  void queued(const void* t) noexcept {
    ++enqueued;
    if (++depth > max_depth) max_depth = depth;
    if (--enqueue_countdown == 0) [[unlikely]] {
      if (sampled != nullptr) {  // one wait timed at a time: try again at the next enqueue
        enqueue_countdown = 1;
        return;
      }
      enqueue_countdown = kSampleEvery;
      sampled = t;
      sampled_at = sample_ticks();
    }
  }
  // Lock held: t left the queue without running (task_del, a barrier marker passed).
  void withdrawn(const void* t) noexcept {
    --depth;
    if (t == sampled) [[unlikely]]
      sampled = nullptr;
  }
  // Lock held: t was taken to run. Returns the start time to hand to finished(), or 0 when this
  // run is not timed.
  std::uint64_t started(const void* t) noexcept {
    --depth;
    std::uint64_t now = 0;
    if (t == sampled) [[unlikely]] {  // never, untimed: sampled stays null
      now = sample_ticks();
      wait[duration_histogram::bucket_of(now - sampled_at)]++;
      sampled = nullptr;
    }
    if (--start_countdown != 0) [[likely]]
      return 0;
    start_countdown = kSampleEvery;
    return now != 0 ? now : sample_ticks();
  }
  // Lock held: n tasks were queued and ran at once, never on the list (a kcont func or hop run
  // again by its drain without the lock): counted, not timed.
  void ran_at_once(std::uint64_t n) noexcept {
    enqueued += n;
    runs += n;
  }
  // Lock held: a run ended; `start` is what started() returned.
  void finished(std::uint64_t start) noexcept {
    ++runs;
    if (start != 0) [[unlikely]]
      run[duration_histogram::bucket_of(sample_ticks() - start)]++;
  }

 private:
  static constexpr std::uint64_t kNever = ~std::uint64_t{0};
};

// A queue's entry in its runtime's registry. kind and name must outlive the entry (literals,
// or the name the queue was made with, as the BSDs keep the caller's pointer).
struct queue_stats_node {
  queue_stats_node(const char* k, const char* n, int c, std::mutex& m, const queue_counters& q)
      : kind(k), name(n), cpu(c), mu(m), counters(q) {}
  boost::intrusive::list_member_hook<> link;  // [registry]
  std::uint64_t id = 0;                       // [registry] set when registered
  const char* const kind;
  const char* const name;
  const int cpu;
  std::mutex& mu;                  // the lock `counters` is written under
  const queue_counters& counters;  // [mu]
};

// Whether rt's queues are timed (runtime_config::queue_timing or export_stats).
bool queue_timing(const runtime& rt);
// Registry (any thread, never under a queue's lock: lock order registry -> queue). A node is
// registered until unregistered or its runtime is destroyed; unregister before freeing it.
void register_queue(runtime& rt, queue_stats_node& n);
void unregister_queue(runtime& rt, queue_stats_node& n);
// Calls fn(ctx, n) for each registered queue, oldest first, with the registry's lock and n.mu
// held: fn copies what it needs and returns (no blocking, no allocation it can avoid).
void visit_queues(runtime& rt, void (*fn)(void* ctx, const queue_stats_node& n), void* ctx);

}  // namespace kcont::internal
