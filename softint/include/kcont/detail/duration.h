// Internal (namespace kcont::detail; not an API): the one rule by which every std::chrono face
// of kcont turns a duration into a count — callout ticks (kcont::callout::schedule,
// kcont::continuation::schedule) or nanoseconds (runtime_config::drain_timeout) — so that no
// duration is ever shortened by arithmetic.
//
// The rule, for a duration d of any representation and period, converted at `per_second`
// units per second with a largest accepted count `limit`:
//   - d <= 0 (zero, negative, -inf) gives 0;
//   - otherwise ceil(d * per_second), computed without overflow (exact 128-bit integer
//     arithmetic for integral representations; for floating ones the rep's own arithmetic,
//     as std::chrono's, where overflow is +inf), saturated at `limit`: seconds::max(),
//     hours(1e9), duration<double>(1e300) and +inf all give `limit`;
//   - NaN gives `limit`: a NaN delay is a bug in the caller, and the longest delay is the only
//     answer that cannot be early.
// Nothing here has undefined behaviour for any input (UBSan runs over it in CI).
#pragma once

#include <chrono>
#include <climits>
#include <cstdint>
#include <type_traits>

namespace kcont::detail {

// The largest tick count a chrono face asks for: INT_MAX, the largest the kernel-style calls
// take (callout_reset's `ticks`, kcont_schedule's `nticks`), about 24.8 days at hz 1000. One
// limit for every face, because the callout layer honours the whole int range exactly (a delay
// beyond its wheel's 2^30-tick range is re-armed, never cut short), so there is no smaller
// limit to hide behind. A longer duration is clamped to it: the only delay kcont cannot give.
inline constexpr int max_ticks = INT_MAX;

template <class Rep, class Period>
constexpr std::int64_t saturating_count(std::chrono::duration<Rep, Period> d,
                                        std::uint64_t per_second, std::int64_t limit) noexcept {
  static_assert(std::is_arithmetic_v<Rep>, "kcont: a duration's rep must be arithmetic");
  using P = typename Period::type;  // reduced; num and den are positive for a chrono period
  static_assert(P::num > 0 && P::den > 0);
  if (limit <= 0) return 0;
  if (per_second == 0) return limit;  // no such rate (a runtime's hz is >= 1): the longest
  const Rep c = d.count();
  if constexpr (std::is_floating_point_v<Rep>) {
    // In the rep's own precision, as std::chrono converts: duration<double>(0.003) is 3 ms
    // (3 ticks at hz 1000), not the 3.0000000000000000624 ms its binary value holds.
    if (c != c) return limit;  // NaN
    if (!(c > 0)) return 0;
    // Never UB: a floating product that is too large becomes +inf, which saturates below.
    const Rep t =
        c * static_cast<Rep>(P::num) * static_cast<Rep>(per_second) / static_cast<Rep>(P::den);
    // static_cast<Rep>(limit) may round up (to 2^31 or 2^63): t below it still fits int64.
    if (!(t < static_cast<Rep>(limit))) return limit;
    auto n = static_cast<std::int64_t>(t);  // 0 <= t < 2^63 (t may underflow to 0)
    if (static_cast<Rep>(n) < t) ++n;
    return n < 1 ? 1 : n < limit ? n : limit;  // d > 0: at least one unit
  } else {
    static_assert(sizeof(Rep) <= sizeof(std::uint64_t), "kcont: integral rep wider than 64 bits");
    __extension__ typedef unsigned __int128 u128;
    if (!(c > Rep{0})) return 0;
    // x < 2^64 * 2^63 and bound < 2^63 * 2^63: both fit 128 bits.
    const u128 x = static_cast<u128>(c) * static_cast<u128>(P::num);
    const u128 bound = static_cast<u128>(limit) * static_cast<u128>(P::den);
    // ceil(x * per_second / den) > limit  <=>  x * per_second > bound  <=>  x > bound / per_second
    if (x > bound / per_second) return limit;
    const u128 scaled = x * per_second;  // <= bound
    return static_cast<std::int64_t>((scaled + static_cast<u128>(P::den - 1)) /
                                     static_cast<u128>(P::den));
  }
}

// Ticks at `hz` for a chrono face: ceil(d * hz), at least 1 (a delay of zero or less is one
// tick, as callout_reset treats ticks <= 0), at most max_ticks.
template <class Rep, class Period>
constexpr int duration_to_ticks(std::chrono::duration<Rep, Period> d, unsigned hz) noexcept {
  const std::int64_t t = saturating_count(d, hz, max_ticks);
  return t < 1 ? 1 : static_cast<int>(t);
}

// Whole nanoseconds, rounded up, in [0, INT64_MAX].
template <class Rep, class Period>
constexpr std::int64_t duration_to_ns(std::chrono::duration<Rep, Period> d) noexcept {
  return saturating_count(d, 1'000'000'000, INT64_MAX);
}

// now_ns + d, saturated at INT64_MAX (a deadline that never comes) instead of wrapping into
// the past; d <= 0 gives now_ns.
template <class Rep, class Period>
constexpr std::int64_t deadline_after(std::int64_t now_ns,
                                      std::chrono::duration<Rep, Period> d) noexcept {
  const std::int64_t ns = duration_to_ns(d);
  return now_ns > 0 && ns > INT64_MAX - now_ns ? INT64_MAX : now_ns + ns;
}

}  // namespace kcont::detail
