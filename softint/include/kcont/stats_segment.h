// The layout of a runtime's exported statistics (runtime_config::export_stats, KCONT_STATS=1):
// a POSIX shared-memory segment /dev/shm/kcont.<pid> (a process's second exporting runtime:
// kcont.<pid>.2, and so on), read by kcont-stat(1) or any program that includes this header.
//
// Protocol. Nothing is written while nobody reads: the publisher thread sleeps on a futex in
// `request`. A reader increments `request` and wakes it (FUTEX_WAKE, not private: the reader
// is another process); the publisher takes a snapshot, writes it under the seqlock `seq` (odd
// while it writes), then sets `answered` to the request it served and wakes readers waiting on
// it. A reader copies the records and retries while `seq` was odd or changed meanwhile. Every
// field is read and written as a whole aligned word (std::atomic_ref, relaxed) inside the
// seqlock's acquire/release pair.
//
// Versioning: a reader checks magic and version and refuses others; sizes are recorded so that
// fields added at the end of a record keep the version (readers use the sizes they know).
//
// Version 2 adds the queue records (<kcont/queue_stats.h>), after the pools. Their number
// varies: the publisher grows the segment when they outgrow it (never shrinks it) and records
// its size in `segment_bytes` under the seqlock; a reader that finds it larger than what it
// mapped maps the segment again and retries.
#pragma once

#include <bit>
#include <cstdint>

namespace kcont::stats_segment {

inline constexpr char kMagic[8] = {'K', 'C', 'S', 'T', 'A', 'T', 'S', '\0'};
inline constexpr std::uint32_t kVersion = 2;
inline constexpr unsigned kPriorities = 4;          // worker pools per CPU
inline constexpr unsigned kHistogramBuckets = 160;  // kcont::duration_histogram::kBuckets

struct header {
  char magic[8];
  std::uint32_t version;
  std::uint32_t header_bytes;       // sizeof(header)
  std::uint32_t cpu_record_bytes;   // sizeof(cpu_record)
  std::uint32_t pool_record_bytes;  // sizeof(pool_record)
  std::uint32_t ncpu;               // cpu_record entries, right after the header
  std::uint32_t npools;             // pool_record entries, after the CPUs (ncpu * 4)
  std::uint32_t hz;
  std::uint32_t backend;  // 0 asio, 1 libevent
  std::int64_t pid;
  std::int64_t started_ns;  // CLOCK_MONOTONIC when the segment was made
  std::uint32_t request;    // futex: bumped by readers
  std::uint32_t answered;   // futex: the request last served
  std::uint64_t seq;        // seqlock over everything below and the records
  std::int64_t taken_ns;    // CLOCK_MONOTONIC of the snapshot
  std::uint64_t snapshots;  // snapshots published so far
  // Process-wide, at the snapshot (read them only if header_bytes covers them):
  std::uint64_t handler_exceptions;  // kcont::handler_exceptions()
  std::uint64_t stuck_handlers;      // reported by the stuck-handler watchdog (<kcont/watchdog.h>)
  // Version 2: the queue records.
  std::uint32_t queue_record_bytes;  // sizeof(queue_record)
  std::uint32_t histogram_buckets;   // kHistogramBuckets
  std::uint64_t nqueues;             // [seq] queue records in this snapshot
  std::uint64_t segment_bytes;       // [seq] the segment's size now (it only grows)
  std::uint64_t fs_per_tick;         // femtoseconds per tick of the histograms' clock
};

struct cpu_record {
  std::uint64_t hard_interrupts;
  std::uint64_t softint_serial, softint_net, softint_bio, softint_clock;
  std::uint64_t wakeups, loop_sleeps, timer_wakeups, spin_hits, spin_misses;
  std::uint64_t awake_ns;
  std::uint64_t callouts_pending, callouts_armed, callouts_fired, callouts_cancelled;
};

struct pool_record {
  std::uint32_t cpu, priority, workers, idle, waiting, blocked;
  std::uint64_t created, exited;
};

// The histograms' buckets (kcont::duration_histogram): four per power of two of ticks; the
// last bucket also holds everything longer.
constexpr unsigned histogram_bucket(std::uint64_t ticks) {
  if (ticks < 4) return static_cast<unsigned>(ticks);
  const unsigned msb = static_cast<unsigned>(std::bit_width(ticks)) - 1;  // >= 2
  const unsigned b = (msb - 1) * 4 + (static_cast<unsigned>(ticks >> (msb - 2)) & 3);
  return b < kHistogramBuckets ? b : kHistogramBuckets - 1;
}
constexpr std::uint64_t histogram_bucket_low(unsigned b) {
  return b < 4 ? b : std::uint64_t{4 + b % 4} << (b / 4 - 1);
}
constexpr std::uint64_t histogram_bucket_high(unsigned b) {
  return b < 4 ? b + 1 : histogram_bucket_low(b) + (std::uint64_t{1} << (b / 4 - 1));
}

// The bucket holding the p-th fraction (0..1) of `samples` counted in counts[kHistogramBuckets]:
// the first by which ceil(p * samples) of them (at least one) are counted.
constexpr unsigned histogram_percentile_bucket(const std::uint64_t* counts, std::uint64_t samples,
                                               double p) {
  const double want_d = (p < 0 ? 0 : p > 1 ? 1 : p) * static_cast<double>(samples);
  std::uint64_t want = static_cast<std::uint64_t>(want_d);
  if (static_cast<double>(want) < want_d) ++want;  // ceil
  if (want == 0) want = 1;
  std::uint64_t seen = 0;
  unsigned b = 0;
  for (; b + 1 < kHistogramBuckets; ++b) {
    seen += counts[b];
    if (seen >= want) break;
  }
  return b;
}

// One queue (kcont::queue_stats): counts, and histograms of sampled wait and run times in
// ticks (bucket bounds: kcont::duration_histogram; fs_per_tick in the header converts).
struct queue_record {
  char kind[16];  // NUL-terminated, cut to fit
  char name[48];  // NUL-terminated, cut to fit
  std::int32_t cpu;
  std::uint32_t timed;
  std::uint64_t id;  // the queue's number in its runtime, unique while the runtime lives
  std::uint64_t depth, max_depth, enqueued, runs;
  std::uint64_t wait[kHistogramBuckets];
  std::uint64_t run[kHistogramBuckets];
};

// Bytes of a segment of `ncpu` CPUs with room for `queues` queue records.
constexpr std::uint64_t segment_bytes(std::uint32_t ncpu, std::uint64_t queues = 0) {
  return sizeof(header) + std::uint64_t{ncpu} * sizeof(cpu_record) +
         std::uint64_t{ncpu} * kPriorities * sizeof(pool_record) + queues * sizeof(queue_record);
}

}  // namespace kcont::stats_segment
