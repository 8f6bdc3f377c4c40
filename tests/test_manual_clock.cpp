// The manual test clock: a runtime whose time moves only when advance_clock() says so, so that
// callouts and kcont timers fire at exactly the tick a test (or the fuzzer) chooses.
#include <doctest/doctest.h>
#include <kcont/callout.h>
#include <kcont/kcont.h>

#include <atomic>
#include <stdexcept>

#include "test_util.h"

using namespace std::chrono_literals;

namespace {

kcont::runtime_config manual(unsigned ncpu) {
  kcont::runtime_config c = kcont_test::cpus(ncpu);
  c.manual_clock = true;
  c.hz = 1000;
  return c;
}

bool settle(kcont::runtime& rt) {
  return kcont_test::wait_until([&] { return rt.quiescent(); });
}

}  // namespace

TEST_CASE("manual clock: time stands still until advanced; callouts fire on the exact tick") {
  kcont::runtime rt(manual(2));
  kcont::runtime_scope scope(rt);
  const std::uint32_t t0 = getticks();
  std::this_thread::sleep_for(20ms);  // real time passes...
  CHECK(getticks() == t0);            // ...the runtime's does not
  std::atomic<int> fired{0};
  callout c;
  callout_init(&c, CALLOUT_MPSAFE);
  callout_reset(
      &c, 5, [](void* a) { ++*static_cast<std::atomic<int>*>(a); }, &fired);
  REQUIRE(settle(rt));
  rt.advance_clock(4ms);  // four ticks: not yet
  REQUIRE(settle(rt));
  CHECK(fired == 0);
  CHECK(callout_pending(&c));
  CHECK(getticks() == t0 + 4);
  rt.advance_clock(1ms);  // the fifth
  REQUIRE(kcont_test::wait_until([&] { return fired.load() == 1; }));
  REQUIRE(settle(rt));
  CHECK_FALSE(callout_pending(&c));
  CHECK(callout_expired(&c));
  rt.advance_clock(1s);
  REQUIRE(settle(rt));
  CHECK(fired == 1);
  callout_destroy(&c);
}

TEST_CASE("manual clock: a kcont timer expires on its tick; misuse is refused") {
  kcont::runtime rt(manual(1));
  kcont::runtime_scope scope(rt);
  std::atomic<int> runs{0};
  kcont_t* kc = kcont_create(
      wq_softnet, nullptr, [](void* a, kcont_t*) { ++*static_cast<std::atomic<int>*>(a); }, &runs,
      0);
  REQUIRE(kcont_schedule(kc, nullptr, 3) == 0);
  rt.advance_clock(2ms);
  REQUIRE(settle(rt));
  CHECK(kcont_pending(kc));
  CHECK(runs == 0);
  rt.advance_clock(1ms);
  REQUIRE(kcont_test::wait_until([&] { return runs.load() == 1; }));
  REQUIRE(settle(rt));
  CHECK(kcont_expired(kc));
  CHECK_FALSE(kcont_invoking(kc));
  kcont_destroy(kc);
  CHECK_THROWS_AS(rt.advance_clock(-1ms), std::invalid_argument);
  kcont::runtime real(kcont_test::cpus(1));
  CHECK_THROWS_AS(real.advance_clock(1ms), std::logic_error);
}
