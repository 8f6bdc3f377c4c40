// Stress: exactly-once accounting for callouts under concurrent reset/stop from several
// threads. Every arm ends as exactly one handler run or one cancellation:
//   resets == runs + cancelled
// A stop "cancelled" the last arm when the callout was PENDING just before and callout_stop
// says it had not EXPIRED (the user lock, which the handler takes too, keeps the two reads and
// the handler's count consistent).
#include <books.h>
#include <doctest/doctest.h>
#include <kcont/callout.h>
#include <kcont/mutex.h>
#include <kcont/runtime.h>

#include <atomic>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "test_util.h"

namespace {

struct alignas(64) timer {
  callout c;
  kmutex_t lock;
  std::uint64_t resets = 0, runs = 0, cancelled = 0;  // guarded by lock
  static void fire(void* a) {
    auto* t = static_cast<timer*>(a);
    mutex_enter(&t->lock);
    ++t->runs;
    mutex_exit(&t->lock);
  }
};

// Stops t's last arm, counting it as cancelled if it never fired. t->lock held.
void stop_counted(timer* t) {
  bool was_pending = callout_pending(&t->c);
  bool expired = callout_stop(&t->c);
  if (was_pending && !expired) ++t->cancelled;
}

}  // namespace

TEST_CASE("stress: resets, stops and runs balance exactly") {
  kcont::runtime_config cfg = kcont::runtime_config::from_env();
  cfg.ncpu = 2;
  kcont::runtime rt(cfg);
  kcont::runtime_scope scope(rt);
  const unsigned ntimers = 256;
  std::vector<timer> timers(ntimers);
  for (auto& t : timers) {
    mutex_init(&t.lock, MUTEX_DEFAULT, IPL_NONE);
    callout_init(&t.c, CALLOUT_MPSAFE);
    callout_setfunc(&t.c, timer::fire, &t);
  }
  const unsigned ops =
      200000 *
      (std::getenv("KCONT_STRESS_SCALE") ? std::atoi(std::getenv("KCONT_STRESS_SCALE")) : 100) /
      100;
  std::vector<std::thread> threads;
  for (unsigned th = 0; th < 3; ++th) {
    threads.emplace_back([&, th] {
      kcont::runtime_scope s(rt);
      std::minstd_rand rng(th + 1);
      for (unsigned i = 0; i < ops / 3; ++i) {
        timer* t = &timers[rng() % ntimers];
        mutex_enter(&t->lock);
        if (rng() % 3 != 0) {
          stop_counted(t);  // a reset replaces the last arm: account for it first
          callout_schedule(&t->c, static_cast<int>(rng() % 3));
          ++t->resets;
        } else {
          stop_counted(t);
        }
        mutex_exit(&t->lock);
        // Let time pass now and then, so that arms come due and fire amid the resets.
        if (rng() % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
      }
    });
  }
  for (auto& th : threads) th.join();
  torture::books books{"callout"};
  unsigned index = 0;
  for (auto& t : timers) {
    mutex_enter(&t.lock);
    stop_counted(&t);
    mutex_exit(&t.lock);
    callout_halt(&t.c, nullptr);  // wait for a handler still running
    mutex_enter(&t.lock);
    books.add_object(index++, t.resets, t.runs, t.cancelled, "resets");
    mutex_exit(&t.lock);
    callout_destroy(&t.c);
  }
  MESSAGE(books.summary());
  CHECK_MESSAGE(books.balanced(), books.summary());
  CHECK(books.ran > 0);
  CHECK(books.cancelled > 0);
}
