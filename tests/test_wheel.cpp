// The timing wheel alone, against a reference model: random arms, cancels and advances,
// including runs that start just before the 32-bit tick counter wraps.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "../callout/src/wheel.h"

using kcont::detail::callout_list;
using kcont::detail::timing_wheel;

namespace {

struct model_entry {
  std::uint32_t due;
  std::uint64_t seq;  // arm order
};

// With `lag`, the clock may run ahead of the wheel (a tickless CPU's wheel is not advanced
// while nothing is due) and every arm first calls catch_up(clock), as the callout layer does.
void run_model(std::uint32_t start, unsigned seed, unsigned steps, std::uint32_t max_delay,
               bool lag = false) {
  std::mt19937 rng(seed);
  std::vector<callout> cs(512);
  std::map<callout*, model_entry> armed;
  timing_wheel w(start);
  std::uint32_t now = start - 1;  // everything up to `now` has been processed
  std::uint32_t clock = now;      // the current tick (== now unless `lag`)
  std::uint64_t seq = 0;
  for (unsigned step = 0; step < steps; ++step) {
    unsigned op = rng() % 10;
    callout* c = &cs[rng() % cs.size()];
    if (op < 5) {  // arm (re-arm if armed)
      if (armed.count(c)) {
        w.remove(c);
        armed.erase(c);
      }
      std::uint32_t delay = 1 + rng() % max_delay;
      if (lag) w.catch_up(clock);
      c->c_time = clock + delay;
      w.insert(c);
      armed[c] = {c->c_time, seq++};
    } else if (op < 7) {  // cancel
      if (armed.count(c)) {
        w.remove(c);
        armed.erase(c);
      }
    } else if (lag && op == 7) {  // time passes; the wheel is not told
      if (clock - now < (1u << 29)) clock += rng() % (max_delay * 2 + 1);
    } else {  // advance, sometimes far
      std::uint32_t by = (rng() % 4 == 0) ? rng() % (max_delay * 2 + 1) : rng() % 8;
      std::uint32_t target = clock + by;
      callout_list fired;
      w.advance(target, fired);
      std::vector<std::pair<model_entry, callout*>> expect;
      for (auto& [p, e] : armed)
        if (static_cast<std::int32_t>(e.due - target) <= 0) expect.push_back({e, p});
      std::sort(expect.begin(), expect.end(), [&](auto& a, auto& b) {
        std::int32_t d = static_cast<std::int32_t>(a.first.due - b.first.due);
        return d != 0 ? d < 0 : a.first.seq < b.first.seq;
      });
      std::vector<callout*> got;
      for (callout& f : fired) got.push_back(&f);
      fired.clear();
      std::vector<callout*> want;
      for (auto& [e, p] : expect) want.push_back(p);
      REQUIRE(got == want);
      for (callout* p : got) armed.erase(p);
      now = clock = target;
      CHECK(w.cur() == now + 1);
    }
    REQUIRE(w.count() == armed.size());
    // next_event never lies late: nothing armed is due before it.
    std::uint32_t next = w.next_event();
    for (auto& [p, e] : armed) REQUIRE(static_cast<std::int32_t>(e.due - next) >= 0);
  }
  for (auto& [p, e] : armed) w.remove(p);
}

}  // namespace

TEST_CASE("wheel: matches the model for near timers") {
  run_model(0, 1, 20000, 300);
}
TEST_CASE("wheel: matches the model across levels") {
  run_model(12345, 2, 20000, 200000);
}
TEST_CASE("wheel: matches the model far out") {
  run_model(7, 3, 5000, 1u << 30);
}
TEST_CASE("wheel: matches the model across the 32-bit wrap") {
  run_model(0xffffffffu - 3000, 4, 20000, 5000);
  run_model(0xffffffffu - 70000, 5, 20000, 200000);
}

TEST_CASE("wheel: catch_up when the clock ran ahead of the wheel matches the model") {
  run_model(0, 6, 20000, 300, true);
  run_model(12345, 7, 20000, 200000, true);
  run_model(0xffffffffu - 70000, 8, 20000, 200000, true);
}

TEST_CASE("wheel: catch_up drops any lag of an empty wheel, even beyond 2^31 ticks") {
  timing_wheel w(0);
  const std::uint32_t now = 3u << 30;  // the wheel slept 3 * 2^30 ticks with nothing armed
  w.catch_up(now);
  CHECK(w.cur() == now);
  callout c{};
  c.c_time = now + 10;
  w.insert(&c);
  callout_list fired;
  w.advance(now + 9, fired);
  CHECK(fired.empty());
  w.advance(now + 10, fired);
  CHECK(&fired.front() == &c);
  fired.clear();
  w.catch_up(now + 10);  // empty and up to date (cur is now + 11): never moves back
  CHECK(w.cur() == now + 11);
}

TEST_CASE("wheel: an empty wheel has no next event; one armed callout is the next event") {
  timing_wheel w(100);
  CHECK(w.next_event() - w.cur() == timing_wheel::kNothing);
  callout c{};
  c.c_time = 150;
  w.insert(&c);
  CHECK(w.next_event() == 150);
  // Far away: the next event is a cascade point, never later than the due time.
  w.remove(&c);
  c.c_time = 100 + 3'600'000;  // an hour at hz=1000
  w.insert(&c);
  std::uint32_t n = w.next_event();
  CHECK(static_cast<std::int32_t>(n - c.c_time) <= 0);
  CHECK(n - 100 >= 65536 * 50);  // sleeps most of the hour in one go (cascade points only)
  w.remove(&c);
}
