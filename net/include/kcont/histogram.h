// A latency histogram that any thread may record into without locks or allocation.
//
// Log-linear buckets (as HdrHistogram): values below 64 ns are exact; above, each power of two
// is split into 32 buckets, so a percentile is within about 3% of the true value. Counts are
// relaxed atomics; take() copies them into a snapshot, and the difference of two snapshots is
// the histogram of the interval between them (the live stats use that).
//
// Locks used to protect the fields below:
//   [a] atomic, relaxed (record() from any thread; take() reads each count on its own, so a
//       snapshot taken during recording is not one instant's)
//   [V] a value: a snapshot belongs to whoever holds it, and is not shared
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace kcont::net {

class latency_histogram {
 public:
  static constexpr unsigned sub_bits = 5;  // 32 buckets per power of two
  static constexpr unsigned nbuckets = (64 - sub_bits) << sub_bits;

  struct snapshot {
    std::array<std::uint64_t, nbuckets> counts{};  // [V]
    std::uint64_t total() const;
    // The value at quantile q (0..1), as the upper bound of its bucket; 0 when empty.
    std::uint64_t percentile(double q) const;
    snapshot operator-(const snapshot& earlier) const;
    // The cumulative distribution: one point per non-empty bucket, in increasing order, its
    // upper bound and the fraction of the values at or below it (the last point's is 1).
    // Empty when the snapshot is. percentile(q) is the first point whose fraction >= q.
    struct cdf_point {
      std::uint64_t ns;
      double fraction;
    };
    std::vector<cdf_point> cdf() const;
  };

  void record(std::uint64_t ns) noexcept {
    counts_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
  }
  snapshot take() const;

  static unsigned bucket_of(std::uint64_t v) noexcept;
  static std::uint64_t upper_bound_of(unsigned bucket) noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, nbuckets> counts_{};  // [a]
};

}  // namespace kcont::net
