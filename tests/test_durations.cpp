// Never early, for every duration (issue 16, item 6). On the manual clock (time moves only when
// the test says so) and at hz 1000 unless a case says otherwise: every deadline is checked to
// the tick, including ones beyond the wheel's 2^30-tick range, without waiting for them.
#include <doctest/doctest.h>
#include <kcont/callout.h>
#include <kcont/kcont.h>
#include <kcont/runtime.h>
#include <kcont/softint.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <limits>
#include <ratio>
#include <thread>

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

// Expects the handler behind `r` to run exactly once, on tick t0 + n (t0: the tick it was armed
// at, which must be now): the clock is moved to one tick, just short of and just past the
// wheel's range (when n is beyond it) and to n - 1 with nothing run and `pending()` true; then
// to n, where it must have run, on that tick; then further, where it must not run again.
template <class Pending>
void expect_fires_at(kcont::runtime& rt, const recorder& r, std::uint32_t t0, std::int64_t n,
                     Pending pending) {
  REQUIRE(getticks() == t0);
  const int before = r.runs;
  std::int64_t elapsed = 0;
  for (std::int64_t k : {std::int64_t{1}, kWheelRange - 1, kWheelRange + 5, n - 1}) {
    if (k <= elapsed || k >= n) continue;
    advance_ticks(rt, k - elapsed);
    elapsed = k;
    INFO("after ", k, " of ", n, " ticks");
    CHECK(r.runs == before);
    CHECK(pending());
  }
  advance_ticks(rt, n - elapsed);
  CHECK(r.runs == before + 1);
  CHECK(r.at == static_cast<std::uint32_t>(t0 + n));
  advance_ticks(rt, 1000);
  CHECK(r.runs == before + 1);
}

// A manual-clock runtime with both chrono faces: kcont::callout and kcont::continuation.
struct faces {
  kcont::runtime rt{manual(1)};
  kcont::runtime_scope scope{rt};
  recorder r;
  kcont::callout co{rt, [this] { r.hit(); }};
  kcont::continuation kc{rt, wq_softnet, [this] { r.hit(); }};

  // Each face, scheduled with d, runs exactly once, n ticks later.
  template <class Rep, class Period>
  void expect(std::chrono::duration<Rep, Period> d, std::int64_t n) {
    {
      INFO("kcont::callout");
      const std::uint32_t t0 = getticks();
      co.schedule(d);
      expect_fires_at(rt, r, t0, n, [&] { return co.pending(); });
    }
    {
      INFO("kcont::continuation");
      const std::uint32_t t0 = getticks();
      REQUIRE(kc.schedule(d) == 0);
      expect_fires_at(rt, r, t0, n, [&] { return kc.pending(); });
    }
  }
};

}  // namespace

// ---- the chrono faces: any duration, saturated, never early ----------------------------------

TEST_CASE_FIXTURE(faces, "schedule(seconds::max()) is the longest delay: INT_MAX ticks") {
  expect(std::chrono::seconds::max(), INT_MAX);
}

TEST_CASE_FIXTURE(faces, "schedule(hours::max()) and schedule(hours(10^9)) are INT_MAX ticks") {
  expect(std::chrono::hours::max(), INT_MAX);
  expect(std::chrono::hours(1'000'000'000), INT_MAX);
}

TEST_CASE_FIXTURE(faces, "schedule(duration<double>(1e300)) is INT_MAX ticks") {
  expect(std::chrono::duration<double>(1e300), INT_MAX);
  expect(std::chrono::duration<long double, std::kilo>(1e4000L), INT_MAX);
}

TEST_CASE_FIXTURE(faces, "schedule(+inf) is INT_MAX ticks") {
  expect(std::chrono::duration<double>(std::numeric_limits<double>::infinity()), INT_MAX);
  expect(std::chrono::duration<float, std::milli>(std::numeric_limits<float>::infinity()), INT_MAX);
}

TEST_CASE_FIXTURE(faces, "schedule(NaN) is INT_MAX ticks: the answer that is never early") {
  expect(std::chrono::duration<double>(std::numeric_limits<double>::quiet_NaN()), INT_MAX);
}

TEST_CASE_FIXTURE(faces, "an unsigned rep beyond INT64_MAX nanoseconds is INT_MAX ticks") {
  expect(std::chrono::duration<unsigned long long>(ULLONG_MAX), INT_MAX);
}

TEST_CASE_FIXTURE(faces, "exactly INT_MAX ticks fires on that tick; one millisecond more clamps") {
  expect(std::chrono::milliseconds(INT_MAX), INT_MAX);  // hz 1000: a tick is 1 ms
  expect(std::chrono::milliseconds(std::int64_t{INT_MAX} + 1), INT_MAX);
  expect(std::chrono::duration<double, std::milli>(INT_MAX - 0.5), INT_MAX);
}

TEST_CASE_FIXTURE(faces, "zero, negative and tiny durations are one tick") {
  expect(std::chrono::nanoseconds(1), 1);
  expect(std::chrono::nanoseconds(0), 1);
  expect(std::chrono::seconds(-5), 1);
  expect(std::chrono::seconds::min(), 1);
  expect(std::chrono::duration<double>(-std::numeric_limits<double>::infinity()), 1);
  expect(std::chrono::duration<double>(1e-300), 1);
}

TEST_CASE_FIXTURE(faces, "durations are rounded up to whole ticks at any period") {
  expect(std::chrono::microseconds(2500), 3);
  expect(std::chrono::milliseconds(5), 5);
  expect(std::chrono::duration<int, std::ratio<1, 3>>(1), 334);  // 333.3 ms
  expect(std::chrono::duration<double, std::milli>(2.25), 3);
  expect(std::chrono::duration<short, std::ratio<60>>(1), 60'000);
}

#if __has_include(<kcont/detail/duration.h>)
#include <kcont/detail/duration.h>

// Issue 18, item 2: a chrono delay is rounded once, to the first tick boundary at or after the
// call time + the delay (the old faces rounded the delay up to whole ticks and then to a
// boundary: from mid-tick, 1.2 ticks fired 3 boundaries later instead of 2).
TEST_CASE_FIXTURE(faces, "a chrono deadline mid-tick is rounded once: first boundary at or after") {
  const std::int64_t tick_ns = 1'000'000'000 / rt.hz();
  auto check_face = [&](const char* face, auto schedule, auto pending) {
    INFO(face);
    rt.advance_clock(std::chrono::nanoseconds(tick_ns / 2));  // mid-tick
    settle(rt);
    const std::uint32_t t0 = getticks();
    const int before = r.runs;
    schedule(std::chrono::nanoseconds(tick_ns * 12 / 10));    // due at t0 + 1.7 ticks
    rt.advance_clock(std::chrono::nanoseconds(tick_ns / 2));  // boundary t0 + 1: not yet due
    settle(rt);
    CHECK(r.runs == before);
    CHECK(pending());
    rt.advance_clock(std::chrono::nanoseconds(tick_ns / 2));  // t0 + 1.5: still not due
    settle(rt);
    CHECK(r.runs == before);
    rt.advance_clock(std::chrono::nanoseconds(tick_ns / 2));  // boundary t0 + 2: due
    settle(rt);
    CHECK(r.runs == before + 1);
    CHECK(r.at == t0 + 2);
  };
  check_face(
      "kcont::callout", [&](auto d) { co.schedule(d); }, [&] { return co.pending(); });
  check_face(
      "kcont::continuation", [&](auto d) { REQUIRE(kc.schedule(d) == 0); },
      [&] { return kc.pending(); });
  // A deadline exactly on a boundary fires on that boundary: 1.5 ticks from mid-tick.
  rt.advance_clock(std::chrono::nanoseconds(tick_ns / 2));
  settle(rt);
  const std::uint32_t t0 = getticks();
  const int before = r.runs;
  co.schedule(std::chrono::nanoseconds(tick_ns * 3 / 2));
  advance_ticks(rt, 1);  // t0 + 1.5
  CHECK(r.runs == before);
  rt.advance_clock(std::chrono::nanoseconds(tick_ns / 2));  // boundary t0 + 2 = the deadline
  settle(rt);
  CHECK(r.runs == before + 1);
  CHECK(r.at == t0 + 2);
}

TEST_CASE("detail::duration_to_ticks / duration_to_ns / deadline_after: the one rule") {
  using namespace std::chrono;
  using kcont::detail::deadline_after;
  using kcont::detail::duration_to_ns;
  using kcont::detail::duration_to_ticks;
  static_assert(duration_to_ticks(seconds::max(), 1000) == INT_MAX);  // usable at compile time
  static_assert(duration_to_ticks(milliseconds(3), 1000) == 3);
  CHECK(duration_to_ticks(nanoseconds(1), 100000) == 1);
  CHECK(duration_to_ticks(microseconds(1001), 1000) == 2);
  CHECK(duration_to_ticks(seconds(1), 3) == 3);
  CHECK(duration_to_ticks(milliseconds(334), 3) == 2);  // 1.002 ticks
  CHECK(duration_to_ticks(duration<long long, std::exa>(LLONG_MAX), 1) == INT_MAX);
  CHECK(duration_to_ticks(duration<signed char, std::atto>(1), 100000) == 1);
  CHECK(duration_to_ticks(seconds(INT_MAX), 1) == INT_MAX);
  CHECK(duration_to_ticks(seconds(std::int64_t{INT_MAX} + 1), 1) == INT_MAX);
  CHECK(duration_to_ticks(duration<double>(0.003), 1000) == 3);
  CHECK(duration_to_ticks(duration<float>(-0.0f), 1000) == 1);
  CHECK(duration_to_ns(hours::max()) == INT64_MAX);
  CHECK(duration_to_ns(nanoseconds::max()) == INT64_MAX);
  CHECK(duration_to_ns(duration<double>(1.5e-9)) == 2);
  CHECK(duration_to_ns(duration<float, std::atto>(1e-30f)) == 1);  // underflows, still > 0
  CHECK(duration_to_ns(duration<double>(std::numeric_limits<double>::quiet_NaN())) == INT64_MAX);
  CHECK(duration_to_ns(milliseconds(-1)) == 0);
  CHECK(duration_to_ns(duration<unsigned long long, std::nano>(ULLONG_MAX)) == INT64_MAX);
  CHECK(deadline_after(100, seconds(1)) == 1'000'000'100);
  CHECK(deadline_after(INT64_MAX - 5, seconds(1)) == INT64_MAX);
  CHECK(deadline_after(100, milliseconds::max()) == INT64_MAX);
  CHECK(deadline_after(100, seconds(-1)) == 100);
}
#endif

// ---- callout_reset beyond the wheel's range ------------------------------------------------

TEST_CASE("callout_reset(INT_MAX) stays pending past 2^30 ticks and fires on its tick, once") {
  kcont::runtime rt(manual(1));
  kcont::runtime_scope scope(rt);
  recorder r;
  callout c;
  callout_init(&c, CALLOUT_MPSAFE);
  const std::uint32_t t0 = getticks();
  callout_reset(&c, INT_MAX, recorder::callout_fn, &r);
  expect_fires_at(rt, r, t0, INT_MAX, [&] {
    return callout_pending(&c) && !callout_expired(&c) && callout_active(&c);
  });
  CHECK(callout_expired(&c));
  CHECK_FALSE(callout_pending(&c));
  callout_halt(&c, nullptr);
  callout_destroy(&c);
}

TEST_CASE("callout_schedule: delays around and beyond 2^30 ticks are never early") {
  kcont::runtime rt(manual(1));
  kcont::runtime_scope scope(rt);
  recorder r;
  callout c;
  callout_init(&c, CALLOUT_MPSAFE);
  callout_setfunc(&c, recorder::callout_fn, &r);
  for (std::int64_t n : {kWheelRange - 1, kWheelRange, kWheelRange + 1, 2 * kWheelRange - 3,
                         2 * kWheelRange - 2, 2 * kWheelRange - 1}) {
    INFO("ticks ", n);
    const std::uint32_t t0 = getticks();
    callout_schedule(&c, static_cast<int>(n));
    expect_fires_at(rt, r, t0, n, [&] { return callout_pending(&c); });
  }
  callout_halt(&c, nullptr);
  callout_destroy(&c);
}

TEST_CASE("a far callout between segments: stop cancels it, reset moves it, bind keeps its tick") {
  kcont::runtime rt(manual(2));
  kcont::runtime_scope scope(rt);
  recorder r;
  callout c;
  callout_init(&c, CALLOUT_MPSAFE);
  callout_bind(&c, rt.cpu(0));

  SUBCASE("callout_stop returns false (it had not expired) and it never runs") {
    callout_reset(&c, INT_MAX, recorder::callout_fn, &r);
    advance_ticks(rt, kWheelRange + 5);
    CHECK(callout_pending(&c));
    CHECK_FALSE(callout_stop(&c));
    CHECK_FALSE(callout_pending(&c));
    CHECK_FALSE(callout_active(&c));
    advance_ticks(rt, INT_MAX);
    CHECK(r.runs == 0);
  }
  SUBCASE("callout_reset to a near tick fires there, once, and not at the far one") {
    callout_reset(&c, INT_MAX, recorder::callout_fn, &r);
    advance_ticks(rt, kWheelRange + 5);
    const std::uint32_t t1 = getticks();
    callout_reset(&c, 7, recorder::callout_fn, &r);
    expect_fires_at(rt, r, t1, 7, [&] { return callout_pending(&c); });
    advance_ticks(rt, INT_MAX);
    CHECK(r.runs == 1);
  }
  SUBCASE("callout_bind to another CPU keeps the due tick; it runs there") {
    const std::uint32_t t0 = getticks();
    callout_reset(&c, INT_MAX, recorder::callout_fn, &r);
    advance_ticks(rt, kWheelRange + 5);
    callout_bind(&c, rt.cpu(1));
    CHECK(callout_pending(&c));
    advance_ticks(rt, INT_MAX - 1 - (kWheelRange + 5));
    CHECK(r.runs == 0);
    advance_ticks(rt, 1);
    CHECK(r.runs == 1);
    CHECK(r.at == t0 + INT_MAX);
  }
  callout_halt(&c, nullptr);
  callout_destroy(&c);
}

TEST_CASE("callouts due in the same tick run in arm order, far ones included") {
  kcont::runtime rt(manual(1));
  kcont::runtime_scope scope(rt);
  std::atomic<int> seq{0};
  struct slot {
    std::atomic<int>* seq;
    std::atomic<int> order{-1};
    static void fn(void* a) {
      auto* s = static_cast<slot*>(a);
      s->order = (*s->seq)++;
    }
  } a{&seq}, b{&seq}, c{&seq};
  callout ca, cb, cc;
  for (callout* x : {&ca, &cb, &cc}) callout_init(x, CALLOUT_MPSAFE);
  const std::uint32_t t0 = getticks();
  callout_reset(&ca, INT_MAX, slot::fn, &a);  // due t0 + INT_MAX
  advance_ticks(rt, 1);
  callout_reset(&cb, INT_MAX - 1, slot::fn, &b);  // the same tick
  advance_ticks(rt, INT_MAX - 1 - 5);
  callout_reset(&cc, 5, slot::fn, &c);  // the same tick again
  advance_ticks(rt, 4);
  CHECK(seq == 0);
  advance_ticks(rt, 1);
  CHECK(getticks() == t0 + INT_MAX);
  CHECK(seq == 3);
  CHECK(a.order == 0);
  CHECK(b.order == 1);
  CHECK(c.order == 2);
  for (callout* x : {&ca, &cb, &cc}) {
    callout_halt(x, nullptr);
    callout_destroy(x);
  }
}

TEST_CASE("beyond 2^30 ticks at hz 100000, across the 32-bit tick wrap") {
  kcont::runtime rt(manual(1, 100000, 0xffffffffu - 1000));
  kcont::runtime_scope scope(rt);
  recorder r;
  callout c;
  callout_init(&c, CALLOUT_MPSAFE);
  const std::uint32_t t0 = getticks();
  CHECK(t0 == 0xffffffffu - 1000);
  callout_reset(&c, INT_MAX, recorder::callout_fn, &r);
  expect_fires_at(rt, r, t0, INT_MAX, [&] { return callout_pending(&c); });
  callout_halt(&c, nullptr);
  callout_destroy(&c);
}

TEST_CASE("callout_reset with ticks <= 0 fires after exactly one tick (NetBSD: counts as 1)") {
  kcont::runtime rt(manual(1));
  kcont::runtime_scope scope(rt);
  recorder r;
  callout c;
  callout_init(&c, CALLOUT_MPSAFE);
  for (int n : {0, -1, -5, INT_MIN}) {
    INFO("ticks ", n);
    const std::uint32_t t0 = getticks();
    callout_reset(&c, n, recorder::callout_fn, &r);
    settle(rt);
    expect_fires_at(rt, r, t0, 1, [&] { return callout_pending(&c); });
  }
  callout_halt(&c, nullptr);
  callout_destroy(&c);
}

// ---- kcont_schedule inherits it ------------------------------------------------------------

TEST_CASE("kcont_schedule(INT_MAX) stays pending past 2^30 ticks and runs on its tick, once") {
  kcont::runtime rt(manual(1));
  kcont::runtime_scope scope(rt);
  recorder r;
  kcont_t* kc = kcont_create(wq_softnet, nullptr, recorder::kcont_fn, &r, 0);
  REQUIRE(kc != nullptr);
  const std::uint32_t t0 = getticks();
  REQUIRE(kcont_schedule(kc, nullptr, INT_MAX) == 0);
  expect_fires_at(rt, r, t0, INT_MAX,
                  [&] { return kcont_pending(kc) && !kcont_expired(kc) && !kcont_invoking(kc); });
  CHECK(kcont_expired(kc));
  CHECK_FALSE(kcont_pending(kc));
  kcont_destroy(kc);
}

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

// ---- runtime durations -----------------------------------------------------------------------

TEST_CASE("runtime_config::drain_timeout = milliseconds::max() drains everything") {
  // It overflowed in the nanosecond conversion and wrapped into the past: stop() gave up at
  // once with work still queued.
  kcont::runtime_config cfg = kcont_test::cpus(1);
  cfg.drain_timeout = std::chrono::milliseconds::max();
  kcont::runtime rt(cfg);
  struct chain {
    void* si = nullptr;
    std::atomic<int> runs{0};
    static void fn(void* a) {
      auto* c = static_cast<chain*>(a);
      std::this_thread::sleep_for(1ms);
      if (++c->runs < 50) softint_schedule(c->si);  // more work, found by the drain
    }
  } ch;
  ch.si = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, chain::fn, &ch);
  REQUIRE(ch.si != nullptr);
  softint_schedule_cpu(ch.si, rt.cpu(0));
  const kcont::stop_report rep = rt.stop();
  CHECK(rep.drained);
  CHECK(ch.runs == 50);
  CHECK(rep.left_pending == 0);
  rt.start();
  softint_disestablish(ch.si);
}
