#include <kcont/histogram.h>

#include <bit>
#include <cmath>

namespace kcont::net {

unsigned latency_histogram::bucket_of(std::uint64_t v) noexcept {
  constexpr std::uint64_t linear = std::uint64_t{1} << (sub_bits + 1);  // 64: exact below
  if (v < linear) return static_cast<unsigned>(v);
  const unsigned msb = 63u - static_cast<unsigned>(std::countl_zero(v));  // >= sub_bits + 1
  const unsigned shift = msb - sub_bits;
  const unsigned sub = static_cast<unsigned>(v >> shift) & ((1u << sub_bits) - 1);
  const unsigned b = ((shift + 1) << sub_bits) + sub;
  return b < nbuckets ? b : nbuckets - 1;
}

std::uint64_t latency_histogram::upper_bound_of(unsigned b) noexcept {
  constexpr unsigned linear = 1u << (sub_bits + 1);
  if (b < linear) return b;
  const unsigned shift = (b >> sub_bits) - 1;
  const std::uint64_t sub = b & ((1u << sub_bits) - 1);
  const std::uint64_t base = (std::uint64_t{1} << sub_bits) | sub;  // top bits of the value
  return ((base + 1) << shift) - 1;
}

latency_histogram::snapshot latency_histogram::take() const {
  snapshot s;
  for (unsigned i = 0; i < nbuckets; ++i) s.counts[i] = counts_[i].load(std::memory_order_relaxed);
  return s;
}

std::uint64_t latency_histogram::snapshot::total() const {
  std::uint64_t t = 0;
  for (auto c : counts) t += c;
  return t;
}

std::uint64_t latency_histogram::snapshot::percentile(double q) const {
  const std::uint64_t n = total();
  if (n == 0) return 0;
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(n)));
  if (rank == 0) rank = 1;
  std::uint64_t seen = 0;
  for (unsigned i = 0; i < nbuckets; ++i) {
    seen += counts[i];
    if (seen >= rank) return upper_bound_of(i);
  }
  return upper_bound_of(nbuckets - 1);
}

std::vector<latency_histogram::snapshot::cdf_point> latency_histogram::snapshot::cdf() const {
  std::vector<cdf_point> out;
  const std::uint64_t n = total();
  std::uint64_t seen = 0;
  for (unsigned i = 0; i < nbuckets && seen < n; ++i) {
    if (counts[i] == 0) continue;
    seen += counts[i];
    out.push_back({upper_bound_of(i), static_cast<double>(seen) / static_cast<double>(n)});
  }
  return out;
}

latency_histogram::snapshot latency_histogram::snapshot::operator-(const snapshot& e) const {
  snapshot d;
  for (unsigned i = 0; i < nbuckets; ++i) d.counts[i] = counts[i] - e.counts[i];
  return d;
}

}  // namespace kcont::net
