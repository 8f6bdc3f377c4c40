// kcont's core at its edges: a lock release wakes the continuations waiting for it (no
// polling, no wake-ups while idle), exact order with many contended locks, bounded drains
// (a self-rescheduling continuation lets interrupts and stop() through), a sleeping func does
// not hold back its level, acquired queues live while continuations are bound to them.
#include <doctest/doctest.h>
#include <kcont/kcont.h>
#include <kcont/softint.h>
#include <kcont/workqueue.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "test_util.h"

using namespace std::chrono_literals;
using kcont_test::require_or_exit;
using kcont_test::wait_until;

namespace {

void bump(void* p, kcont_t*) {
  ++*static_cast<std::atomic<int>*>(p);
}

}  // namespace

TEST_CASE("a continuation waiting for its lock runs on release; meanwhile the CPU sleeps") {
  kcont::runtime rt(kcont_test::cpus(1));
  kcont::runtime_scope scope(rt);
  for (kcont_wq_t* wq : {wq_softnet, wq_prihigh}) {
    kmutex_t lock;
    mutex_init(&lock, MUTEX_DEFAULT, IPL_NONE);
    std::atomic<int> runs{0};
    kcont_t* kc = kcont_create(wq, &lock, bump, &runs, 0);
    REQUIRE(kc != nullptr);
    mutex_enter(&lock);
    REQUIRE(kcont_schedule(kc, rt.cpu(0), 0) == 0);
    std::this_thread::sleep_for(50ms);  // the drain has found the lock held
    const auto before = rt.stats();
    std::this_thread::sleep_for(500ms);
    const auto after = rt.stats();
    CHECK(runs == 0);
    // No retry: the CPU loop is not woken while the lock stays held.
    CHECK(after.wakeups == before.wakeups);
    CHECK(after.timer_wakeups == before.timer_wakeups);
    mutex_exit(&lock);  // the release kicks the queue
    REQUIRE(wait_until([&] { return runs == 1; }));
    kcont_destroy(kc);
    mutex_destroy(&lock);
  }
}

TEST_CASE("order is exact with 64 contended locks while another thread takes them at random") {
  constexpr int kLocks = 64, kPerLock = 40;
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  for (kcont_wq_t* wq : {wq_softnet, wq_primedhigh}) {
    CAPTURE(wq == wq_softnet ? "wq_softnet" : "wq_primedhigh");
    struct group {
      kmutex_t lock;
      int next = 0;  // [lock] the index the next run must have
      int violations = 0;
    };
    std::vector<group> groups(kLocks);
    for (auto& g : groups) mutex_init(&g.lock, MUTEX_DEFAULT, IPL_NONE);
    struct item {
      group* g;
      int index;
      kcont_t* kc;
    };
    std::vector<item> items;
    items.reserve(kLocks * kPerLock);
    std::atomic<int> ran{0};
    struct ctx {
      item* it;
      std::atomic<int>* ran;
    };
    std::vector<ctx> ctxs(kLocks * kPerLock);
    for (int i = 0; i < kPerLock; ++i)
      for (int l = 0; l < kLocks; ++l) items.push_back({&groups[l], i, nullptr});
    for (std::size_t k = 0; k < items.size(); ++k) {
      ctxs[k] = {&items[k], &ran};
      items[k].kc = kcont_create(
          wq, &items[k].g->lock,
          [](void* p, kcont_t*) {
            auto* c = static_cast<ctx*>(p);
            group& g = *c->it->g;  // runs holding g.lock
            if (c->it->index != g.next) ++g.violations;
            g.next = c->it->index + 1;
            ++*c->ran;
          },
          &ctxs[k], 0);
      REQUIRE(items[k].kc != nullptr);
    }
    // Hold every lock, queue everything (interleaved across groups), then let a chaos thread
    // release and retake them at random while the drains run.
    // Two holder threads take half the locks each (TSan's deadlock detector tracks at most 64
    // locks held by one thread), and give them back one by one when told.
    std::atomic<int> holding{0};
    std::atomic<bool> give_back{false};
    std::vector<std::thread> holders;
    for (int h = 0; h < 2; ++h)
      holders.emplace_back([&, h] {
        for (int l = h; l < kLocks; l += 2) mutex_enter(&groups[l].lock);
        ++holding;
        while (!give_back) std::this_thread::sleep_for(100us);
        for (int l = kLocks - 2 + h; l >= 0; l -= 2) {
          mutex_exit(&groups[l].lock);
          std::this_thread::sleep_for(100us);
        }
      });
    REQUIRE(wait_until([&] { return holding == 2; }));
    for (auto& it : items) REQUIRE(kcont_schedule(it.kc, rt.cpu(0), 0) == 0);
    std::atomic<bool> stop{false};
    std::thread chaos([&] {
      std::mt19937 rng(7);
      while (!stop) {
        group& g = groups[rng() % kLocks];
        if (mutex_tryenter(&g.lock)) {
          std::this_thread::sleep_for(std::chrono::microseconds(rng() % 50));
          mutex_exit(&g.lock);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 20));
      }
    });
    give_back = true;
    for (auto& h : holders) h.join();
    require_or_exit(wait_until([&] { return ran == kLocks * kPerLock; }), "every item ran");
    stop = true;
    chaos.join();
    int violations = 0;
    for (auto& g : groups) {
      mutex_enter(&g.lock);
      violations += g.violations;
      CHECK(g.next == kPerLock);
      mutex_exit(&g.lock);
    }
    CHECK(violations == 0);
    for (auto& it : items) kcont_destroy(it.kc);
    for (auto& g : groups) mutex_destroy(&g.lock);
  }
}

TEST_CASE(
    "a soft continuation rescheduling itself lets interrupts, higher levels and stop through") {
  kcont::runtime_config c = kcont_test::cpus(1);
  c.drain_timeout = 300ms;
  kcont::runtime rt(c);
  kcont::runtime_scope scope(rt);
  struct spinner {
    std::atomic<long> runs{0};
    std::atomic<bool> quit{false};
    static void run(void* p, kcont_t* kc) {
      auto* s = static_cast<spinner*>(p);
      ++s->runs;
      if (!s->quit) kcont_schedule(kc, nullptr, 0);  // again, at once, from its own func
    }
  } s;
  kcont_t* kc = kcont_create(wq_softbio, nullptr, spinner::run, &s, 0);
  REQUIRE(kc != nullptr);
  REQUIRE(kcont_schedule(kc, rt.cpu(0), 0) == 0);
  REQUIRE(wait_until([&] { return s.runs > 1000; }));
  std::atomic<int> hard{0}, serial{0};
  kcont::softint hi(rt, SOFTINT_HARDINTR | SOFTINT_MPSAFE, [&] { ++hard; });
  kcont::softint se(rt, SOFTINT_SERIAL | SOFTINT_MPSAFE, [&] { ++serial; });
  hi.schedule(rt.cpu(0));
  se.schedule(rt.cpu(0));
  require_or_exit(wait_until([&] { return hard == 1 && serial == 1; }, 10s),
                  "interrupt and SERIAL softint ran");
  std::atomic<bool> stopped{false};
  kcont::stop_report report;
  std::thread stopper([&] {
    report = rt.stop();
    stopped = true;
  });
  require_or_exit(wait_until([&] { return stopped.load(); }, 20s), "stop() returned");
  stopper.join();
  CHECK_FALSE(report.drained);  // it never went quiet, and stop() said so
  s.quit = true;
  rt.start();
  REQUIRE(wait_until([&] { return !kcont_invoking(kc); }));
  kcont_destroy(kc);
}

TEST_CASE(
    "a func sleeping on a thread queue does not hold back its level; its lock's group waits") {
  kcont::runtime rt(kcont_test::cpus(1));
  kcont::runtime_scope scope(rt);
  kmutex_t lock;
  mutex_init(&lock, MUTEX_DEFAULT, IPL_NONE);
  struct sleeper {
    std::atomic<bool> inside{false}, done{false};
    static void run(void* p, kcont_t*) {
      auto* s = static_cast<sleeper*>(p);
      s->inside = true;
      kpause("sleep", false, 300, nullptr);  // 300 ms at hz 1000: a blocking point
      s->done = true;
    }
  } slow;
  struct after {
    sleeper* s;
    std::atomic<bool> ran{false}, ran_while_sleeping{false};
    static void run(void* p, kcont_t*) {
      auto* a = static_cast<after*>(p);
      a->ran_while_sleeping = !a->s->done;
      a->ran = true;
    }
  } free_one{&slow}, same_lock{&slow};
  kcont_t* k_sleep = kcont_create(wq_prihigh, &lock, sleeper::run, &slow, 0);
  kcont_t* k_free = kcont_create(wq_prihigh, nullptr, after::run, &free_one, 0);
  kcont_t* k_same = kcont_create(wq_prihigh, &lock, after::run, &same_lock, 0);
  REQUIRE(kcont_schedule(k_sleep, rt.cpu(0), 0) == 0);
  REQUIRE(wait_until([&] { return slow.inside.load(); }));
  REQUIRE(kcont_schedule(k_same, rt.cpu(0), 0) == 0);
  REQUIRE(kcont_schedule(k_free, rt.cpu(0), 0) == 0);
  REQUIRE(wait_until([&] { return free_one.ran && same_lock.ran; }));
  CHECK(free_one.ran_while_sleeping);         // another drain ran it while the first slept
  CHECK_FALSE(same_lock.ran_while_sleeping);  // its lock's group kept its order
  kcont_destroy(k_sleep);
  kcont_destroy(k_free);
  kcont_destroy(k_same);
  mutex_destroy(&lock);
}

TEST_CASE("kcont_workqueue_release while continuations are bound: the queue lives until they go") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  kcont_wq_t* wq = kcont_workqueue_acquire(PRI_LOW, WQ_PERCPU);
  REQUIRE(wq != nullptr);
  std::atomic<int> runs{0};
  kcont_t* kc = kcont_create(wq, nullptr, bump, &runs, 0);
  REQUIRE(kc != nullptr);
  CHECK(kcont_workqueue_release(wq) == 0);  // the continuation still holds it
  REQUIRE(kcont_schedule(kc, rt.cpu(1), 0) == 0);
  REQUIRE(wait_until([&] { return runs == 1; }));
  REQUIRE(wait_until([&] { return !kcont_invoking(kc); }));
  kcont_destroy(kc);  // the last reference: the queue goes now

  // The last reference dropped from inside the queue's own drain (destroy from own func).
  wq = kcont_workqueue_acquire(PRI_LOW, 0);
  REQUIRE(wq != nullptr);
  struct self_destroy {
    std::atomic<bool> done{false};
    static void run(void* p, kcont_t* k) {
      kcont_destroy(k);
      static_cast<self_destroy*>(p)->done = true;
    }
  } sd;
  kc = kcont_create(wq, nullptr, self_destroy::run, &sd, 0);
  REQUIRE(kc != nullptr);
  CHECK(kcont_workqueue_release(wq) == 0);
  REQUIRE(kcont_schedule(kc, nullptr, 0) == 0);
  REQUIRE(wait_until([&] { return sd.done.load(); }));
  // A new acquisition makes a fresh queue that works.
  kcont_wq_t* again = kcont_workqueue_acquire(PRI_LOW, 0);
  REQUIRE(again != nullptr);
  kc = kcont_create(again, nullptr, bump, &runs, 0);
  REQUIRE(kcont_schedule(kc, nullptr, 0) == 0);
  REQUIRE(wait_until([&] { return runs == 2; }));
  REQUIRE(wait_until([&] { return !kcont_invoking(kc); }));
  kcont_destroy(kc);
  CHECK(kcont_workqueue_release(again) == 0);
}

TEST_CASE("kcont_setfunc without a lock may change arg only (the same func is accepted)") {
  kcont::runtime rt(kcont_test::cpus(1));
  kcont::runtime_scope scope(rt);
  std::atomic<int> a{0}, b{0};
  kcont_t* kc = kcont_create(wq_softnet, nullptr, bump, &a, 0);
  kcont_setfunc(kc, bump, &b);  // same func, new arg: allowed
  REQUIRE(kcont_schedule(kc, rt.cpu(0), 0) == 0);
  REQUIRE(wait_until([&] { return b == 1; }));
  CHECK(a == 0);
  REQUIRE(wait_until([&] { return !kcont_invoking(kc); }));
  kcont_destroy(kc);
}
