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

}  // namespace

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
