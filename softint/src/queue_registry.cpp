// The runtime's registry of queues and their statistics (<kcont/queue_stats.h>,
// kcont/internal/queue_counters.h), the sampling clock, and the duration histogram's buckets.
#include "runtime_impl.h"

#include <kcont/internal/queue_counters.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace kcont {

std::uint64_t duration_histogram::samples() const {
  std::uint64_t n = 0;
  for (std::uint64_t c : counts) n += c;
  return n;
}

std::chrono::nanoseconds duration_histogram::percentile(double p) const {
  const std::uint64_t n = samples();
  if (n == 0) return std::chrono::nanoseconds(0);
  const unsigned b = stats_segment::histogram_percentile_bucket(counts.data(), n, p);
  return std::chrono::nanoseconds(
      static_cast<std::int64_t>(std::llround(static_cast<double>(bucket_high(b)) * ns_per_tick)));
}

}  // namespace kcont

namespace kcont::internal {

namespace {
bool invariant_tsc() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0x80000000u, &a, &b, &c, &d) == 0 || a < 0x80000007u) return false;
  if (__get_cpuid(0x80000007u, &a, &b, &c, &d) == 0) return false;
  return (d & (1u << 8)) != 0;
#else
  return false;
#endif
}

std::int64_t monotonic_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
}  // namespace

bool sample_clock_is_tsc() {
  static const bool tsc = invariant_tsc();
  return tsc;
}

double sample_ns_per_tick() {
  static const double ratio = [] {
    if (!sample_clock_is_tsc()) return 1.0;
    // Ticks against CLOCK_MONOTONIC over 5 ms: within 0.1 % on a quiet thread, plenty for
    // buckets a quarter of a power of two wide.
    const std::uint64_t t0 = sample_ticks();
    const std::int64_t n0 = monotonic_ns();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const std::uint64_t t1 = sample_ticks();
    const std::int64_t n1 = monotonic_ns();
    return t1 > t0 ? static_cast<double>(n1 - n0) / static_cast<double>(t1 - t0) : 1.0;
  }();
  return ratio;
}

bool queue_timing(const runtime& rt) {
  return rt.impl().queue_timing;
}

void register_queue(runtime& rt, queue_stats_node& n) {
  detail::runtime_impl& r = rt.impl();
  std::lock_guard<std::mutex> lk(r.queues_mu);
  n.id = ++r.queues_made;
  r.queues.push_back(n);
}

void visit_queues(runtime& rt, void (*fn)(void* ctx, const queue_stats_node& n), void* ctx) {
  detail::runtime_impl& r = rt.impl();
  std::lock_guard<std::mutex> lk(r.queues_mu);
  for (const queue_stats_node& n : r.queues) {
    std::lock_guard<std::mutex> ql(n.mu);
    fn(ctx, n);
  }
}

void unregister_queue(runtime& rt, queue_stats_node& n) {
  detail::runtime_impl& r = rt.impl();
  std::lock_guard<std::mutex> lk(r.queues_mu);
  r.queues.erase(r.queues.iterator_to(n));
}

}  // namespace kcont::internal

namespace kcont {

std::vector<queue_stats> queues(runtime& rt) {
  struct collect {
    std::vector<queue_stats> out;
    double ns_per_tick = internal::sample_ns_per_tick();
  } all;
  internal::visit_queues(
      rt,
      [](void* ctx, const internal::queue_stats_node& n) {
        auto& a = *static_cast<collect*>(ctx);
        queue_stats& s = a.out.emplace_back();
        s.kind = n.kind;
        s.name = n.name != nullptr ? n.name : "";
        s.cpu = n.cpu;
        s.id = n.id;
        s.timed = n.counters.timed;
        s.wait.ns_per_tick = s.run.ns_per_tick = a.ns_per_tick;
        const internal::queue_counters& c = n.counters;
        s.depth = c.depth;
        s.max_depth = c.max_depth;
        s.enqueued = c.enqueued;
        s.runs = c.runs;
        std::copy(std::begin(c.wait), std::end(c.wait), s.wait.counts.begin());
        std::copy(std::begin(c.run), std::end(c.run), s.run.counts.begin());
      },
      &all);
  return std::move(all.out);
}

}  // namespace kcont
