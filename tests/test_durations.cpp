// Never early, for every duration (issue 16, item 6). On the manual clock (time moves only when
// the test says so) and at hz 1000 unless a case says otherwise: every deadline is checked to
// the tick, including ones beyond the wheel's 2^30-tick range, without waiting for them.
#include <doctest/doctest.h>
#include <kcont/callout.h>
#include <kcont/kcont.h>
#include <kcont/runtime.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>

#include "test_util.h"

using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kWheelRange = std::int64_t{1} << 30;  // the old clamp, in ticks

kcont::runtime_config manual(unsigned ncpu, unsigned hz = 1000, std::uint32_t initial = 0) {
  kcont::runtime_config c = kcont_test::cpus(ncpu);
  c.manual_clock = true;
  c.hz = hz;
  c.initial_ticks = initial;
  return c;
}

// Waits until every CPU is asleep with nothing due: whatever the clock made due has run.
void settle(kcont::runtime& rt) {
  REQUIRE(kcont_test::wait_until([&] { return rt.quiescent(); }));
}

// Moves the manual clock `n` ticks forward (in steps the wheel takes in one go) and settles.
void advance_ticks(kcont::runtime& rt, std::int64_t n) {
  const std::int64_t ns_per_tick = 1'000'000'000 / rt.hz();
  while (n > 0) {
    const std::int64_t step = n < kWheelRange ? n : kWheelRange;
    rt.advance_clock(std::chrono::nanoseconds(step * ns_per_tick));
    settle(rt);
    n -= step;
  }
}

// Counts runs of a callout (or continuation) handler and the tick each ran at.
struct recorder {
  std::atomic<int> runs{0};
  std::atomic<std::uint32_t> at{0};
  void hit() {
    at = getticks();
    ++runs;
  }
  static void callout_fn(void* self) { static_cast<recorder*>(self)->hit(); }
  static void kcont_fn(void* self, kcont_t*) { static_cast<recorder*>(self)->hit(); }
};

}  // namespace

// ---- the wheel of an idle CPU ----------------------------------------------------------------

TEST_CASE("a callout armed after a CPU slept 2^31 ticks fires on its tick, not never") {
  // A tickless CPU with nothing armed never advances its wheel; the arm measured its delay
  // from the stale wheel position, wrapped past 2^31, and the callout was lost.
  kcont::runtime rt(manual(1));
  kcont::runtime_scope scope(rt);
  recorder r;
  callout c;
  callout_init(&c, CALLOUT_MPSAFE);  // the wheel starts now
  callout_reset(&c, 1, recorder::callout_fn, &r);
  advance_ticks(rt, 1);
  REQUIRE(r.runs == 1);
  advance_ticks(rt, (std::int64_t{1} << 31) + 5);  // idle: nothing armed
  const std::uint32_t t0 = getticks();
  callout_reset(&c, 10, recorder::callout_fn, &r);
  advance_ticks(rt, 9);
  CHECK(r.runs == 1);
  CHECK(callout_pending(&c));
  advance_ticks(rt, 1);
  CHECK(r.runs == 2);
  CHECK(r.at == t0 + 10);
  callout_halt(&c, nullptr);
  callout_destroy(&c);
}
