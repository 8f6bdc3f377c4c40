// Per-queue statistics (issue 21): every taskq, workqueue(9) (one record per CPU of a
// WQ_PERCPU queue), kcont queue and the worker engine's hand-off queue of a runtime, and each
// taskctx a kcont::taskctx_stats observes (<kcont/taskctx.h>).
//
// Counts (depth, enqueued, runs) are always kept: a few plain increments under the lock the
// queue path holds anyway. Wait (queued -> started) and run (started -> returned) times are
// sampled, one task in 64, on the CPU's time-stamp counter, only while the runtime times its
// queues (runtime_config::queue_timing, on with export_stats / KCONT_STATS=1); otherwise the
// histograms stay empty.
#pragma once

#include <kcont/runtime.h>
#include <kcont/stats_segment.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace kcont {

// Durations in buckets a quarter of a power of two wide (a bucket's bounds are within 25 % of
// each other), counted in ticks of the sampling clock and read out in nanoseconds.
struct duration_histogram {
  static constexpr unsigned kBuckets = stats_segment::kHistogramBuckets;  // 160: to 2^40 ticks
  std::array<std::uint64_t, kBuckets> counts{};
  double ns_per_tick = 1.0;  // of the sampling clock (calibrated once per process)

  std::uint64_t samples() const;
  // The upper bound of the bucket holding the p-th fraction of the samples (p in [0, 1]);
  // 0 without samples.
  std::chrono::nanoseconds percentile(double p) const;

  // Bucket of a duration in ticks (longer than the last: the last), and a bucket's bounds
  // [low, high) in ticks.
  static constexpr unsigned bucket_of(std::uint64_t ticks) {
    return stats_segment::histogram_bucket(ticks);
  }
  static constexpr std::uint64_t bucket_low(unsigned b) {
    return stats_segment::histogram_bucket_low(b);
  }
  static constexpr std::uint64_t bucket_high(unsigned b) {
    return stats_segment::histogram_bucket_high(b);
  }
};

struct queue_stats {
  std::string kind;             // "taskq", "workqueue", "kcont", "taskctx", "handoff"
  std::string name;             // the name it was made with ("" if none)
  int cpu = -1;                 // the CPU whose workers serve it; -1: whoever adds work / any
  std::uint64_t id = 0;         // its number in the runtime (1, 2, ...: the order queues were made)
  std::uint64_t depth = 0;      // tasks queued now
  std::uint64_t max_depth = 0;  // the most ever queued at once
  std::uint64_t enqueued = 0;   // tasks queued so far
  std::uint64_t runs = 0;       // tasks run to their end (or their exception) so far
  bool timed = false;           // whether wait and run are sampled (see above)
  duration_histogram wait, run;
};

// Every queue of rt that exists now, in the order they were made. Any thread; takes each
// queue's lock in turn, briefly (never all at once: the runtime goes on).
std::vector<queue_stats> queues(runtime& rt);

}  // namespace kcont
