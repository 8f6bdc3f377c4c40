// kcont: the proposal's functions and states, EBUSY/ENOENT, the timer path, stop of an
// expired-but-not-run continuation, lock-associated ordering without head-of-line blocking,
// halt and destroy, acquired queues.
#include <doctest/doctest.h>
#include <kcont/kcont.h>
#include <kcont/softint.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

using namespace std::chrono_literals;
using kcont_test::wait_until;

namespace {

struct probe {
  std::atomic<int> runs{0};
  std::atomic<int> cpu{-1};
  std::atomic<bool> invoking_inside{false};
  std::atomic<kcont_t*> kc_seen{nullptr};
  static void run(void* a, kcont_t* kc) {
    auto* p = static_cast<probe*>(a);
    p->invoking_inside = kcont_invoking(kc);
    p->kc_seen = kc;
    p->cpu = static_cast<int>(cpu_index(curcpu()));
    ++p->runs;
  }
};

}  // namespace

TEST_CASE("kcont_schedule(kc, ci, 0) runs func(arg, kc) at once on that CPU, INVOKING inside") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  for (kcont_wq_t* wq : {wq_softnet, wq_softclock, wq_prihigh, wq_prilow}) {
    probe p;
    kcont_t* kc = kcont_create(wq, nullptr, probe::run, &p, 0);
    REQUIRE(kc != nullptr);
    CHECK(kcont_schedule(kc, rt.cpu(1), 0) == 0);
    REQUIRE(wait_until([&] { return p.runs == 1; }));
    CHECK(p.cpu == (wq == wq_prihigh || wq == wq_prilow ? p.cpu.load() : 1));
    CHECK(p.invoking_inside);
    CHECK(p.kc_seen == kc);
    REQUIRE(wait_until([&] { return !kcont_invoking(kc); }));  // cleared when func returned
    kcont_destroy(kc);
  }
}

TEST_CASE("kcont_create refuses flags != 0 and a NULL function") {
  kcont::runtime rt(kcont_test::cpus(1));
  kcont::runtime_scope scope(rt);
  CHECK(kcont_create(wq_softnet, nullptr, probe::run, nullptr, 1) == nullptr);
  CHECK(kcont_create(wq_softnet, nullptr, nullptr, nullptr, 0) == nullptr);
}

TEST_CASE("EBUSY while INVOKING; a schedule from inside its own func is allowed") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  struct ctx {
    std::atomic<bool> inside{false}, release{false};
    std::atomic<int> runs{0};
    std::atomic<int> self_rc{-1};
  } x;
  kcont_t kc;
  REQUIRE(kcont_init(
              &kc, wq_prihigh, nullptr,
              [](void* a, kcont_t* k) {
                auto* p = static_cast<ctx*>(a);
                if (++p->runs == 1) {
                  p->inside = true;
                  while (!p->release) std::this_thread::sleep_for(100us);
                  p->self_rc = kcont_schedule(k, nullptr, 0);  // from its own func: runs again
                }
              },
              &x, 0) == 0);
  CHECK(kcont_schedule(&kc, rt.cpu(0), 0) == 0);
  REQUIRE(wait_until([&] { return x.inside.load(); }));
  CHECK(kcont_invoking(&kc));
  CHECK(kcont_schedule(&kc, nullptr, 0) == EBUSY);
  CHECK(kcont_schedule(&kc, nullptr, 5) == EBUSY);
  x.release = true;
  REQUIRE(wait_until([&] { return x.runs == 2; }));
  CHECK(x.self_rc == 0);
  kcont_destroy(&kc);
}

TEST_CASE("ENOENT: a CPU on a queue without per-CPU queues; acquire/release") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  kcont_wq_t* single = kcont_workqueue_acquire(PRI_MEDHIGH, 0);
  kcont_wq_t* again = kcont_workqueue_acquire(PRI_MEDHIGH, 0);
  kcont_wq_t* percpu = kcont_workqueue_acquire(PRI_MEDHIGH, WQ_PERCPU);
  REQUIRE(single != nullptr);
  CHECK(single == again);  // same criteria, same queue
  CHECK(percpu != single);
  probe p, q;
  kcont_t* a = kcont_create(single, nullptr, probe::run, &p, 0);
  kcont_t* b = kcont_create(percpu, nullptr, probe::run, &q, 0);
  CHECK(kcont_schedule(a, rt.cpu(1), 0) == ENOENT);
  CHECK(kcont_schedule(a, nullptr, 0) == 0);
  CHECK(kcont_schedule(b, rt.cpu(1), 0) == 0);
  REQUIRE(wait_until([&] { return p.runs == 1 && q.runs == 1; }));
  kcont_destroy(a);
  kcont_destroy(b);
  CHECK(kcont_workqueue_release(again) == 0);
  CHECK(kcont_workqueue_release(single) == 0);
  CHECK(kcont_workqueue_release(percpu) == 0);
  CHECK(kcont_workqueue_release(wq_softnet) == EINVAL);
}

TEST_CASE("timer path: PENDING, then EXPIRED|INVOKING without PENDING; stop returns EXPIRED") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  struct ctx {
    std::atomic<int> runs{0};
    std::atomic<bool> pending_inside{true}, expired_inside{false}, invoking_inside{false};
  } x;
  kcont_t* kc = kcont_create(
      wq_softnet, nullptr,
      [](void* a, kcont_t* k) {
        auto* p = static_cast<ctx*>(a);
        p->pending_inside = kcont_pending(k);
        p->expired_inside = kcont_expired(k);
        p->invoking_inside = kcont_invoking(k);
        ++p->runs;
      },
      &x, 0);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(kcont_schedule(kc, rt.cpu(0), 20) == 0);
  CHECK(kcont_pending(kc));
  CHECK(kcont_active(kc));
  CHECK_FALSE(kcont_expired(kc));
  REQUIRE(wait_until([&] { return x.runs == 1; }));
  CHECK(std::chrono::steady_clock::now() - t0 >= 20ms);
  CHECK_FALSE(x.pending_inside);
  CHECK(x.expired_inside);
  CHECK(x.invoking_inside);
  CHECK(kcont_expired(kc));
  CHECK(kcont_stop(kc));  // it was EXPIRED
  CHECK_FALSE(kcont_active(kc));
  CHECK(kcont_schedule(kc, nullptr, 1000) == 0);  // stop before expiry: never runs
  CHECK_FALSE(kcont_stop(kc));
  std::this_thread::sleep_for(30ms);
  CHECK(x.runs == 1);
  kcont_destroy(kc);
}

TEST_CASE("an expired continuation that has not run yet can still be stopped") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  kmutex_t lock;
  mutex_init(&lock, MUTEX_DEFAULT, IPL_NONE);
  probe p;
  kcont_t* kc = kcont_create(wq_prihigh, &lock, probe::run, &p, 0);
  mutex_enter(&lock);  // held here: the expired continuation cannot start
  CHECK(kcont_schedule(kc, rt.cpu(1), 1) == 0);
  REQUIRE(wait_until([&] { return kcont_expired(kc); }));
  CHECK(kcont_invoking(kc));
  CHECK(kcont_stop(kc));  // the asio#878 window: expired, not run, cancelled
  CHECK_FALSE(kcont_invoking(kc));
  mutex_exit(&lock);
  std::this_thread::sleep_for(30ms);
  CHECK(p.runs == 0);
  kcont_destroy(kc);
}

TEST_CASE("lock-associated ordering: per-lock order exact, other locks run while one is held") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  for (kcont_wq_t* wq : {wq_prihigh, wq_softnet}) {
    kmutex_t locks[3];
    for (auto& l : locks) mutex_init(&l, MUTEX_DEFAULT, IPL_NONE);
    struct item {
      int group, seq;
      std::mutex* mu;
      std::vector<std::pair<int, int>>* log;
      kmutex_t* lock;
    };
    std::mutex mu;
    std::vector<std::pair<int, int>> log;
    const int per_group = 200;
    std::vector<item> items;
    items.reserve(3 * per_group);
    std::vector<kcont_t> kcs(3 * per_group);
    mutex_enter(&locks[0]);  // an outside thread (us) holds group 0's lock
    for (int i = 0; i < per_group; ++i) {
      for (int g = 0; g < 3; ++g) {
        items.push_back({g, i, &mu, &log, &locks[g]});
        kcont_t* kc = &kcs[items.size() - 1];
        REQUIRE(kcont_init(
                    kc, wq, &locks[g],
                    [](void* a, kcont_t*) {
                      auto* it = static_cast<item*>(a);
                      if (!mutex_owned(it->lock)) std::abort();  // func runs holding its lock
                      std::lock_guard<std::mutex> lk(*it->mu);
                      it->log->push_back({it->group, it->seq});
                    },
                    &items.back(), 0) == 0);
        REQUIRE(kcont_schedule(kc, rt.cpu(1), 0) == 0);
      }
    }
    // Groups 1 and 2 finish while group 0's lock is held: no head-of-line blocking.
    REQUIRE(wait_until([&] {
      std::lock_guard<std::mutex> lk(mu);
      return log.size() == 2 * per_group;
    }));
    mutex_exit(&locks[0]);
    REQUIRE(wait_until([&] {
      std::lock_guard<std::mutex> lk(mu);
      return log.size() == 3 * per_group;
    }));
    int next[3] = {0, 0, 0};
    bool in_order = true;
    for (auto [g, seq] : log) in_order = in_order && seq == next[g]++;
    CHECK(in_order);
    for (int i = 0; i < 2 * per_group; ++i) CHECK(log[i].first != 0);
    for (auto& kc : kcs) kcont_destroy(&kc);
  }
}

TEST_CASE("kcont_halt waits for a running func; destroy from inside func is safe") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  struct ctx {
    std::atomic<bool> inside{false}, finished{false};
  } x;
  kcont_t* kc = kcont_create(
      wq_primedlow, nullptr,
      [](void* a, kcont_t*) {
        auto* p = static_cast<ctx*>(a);
        p->inside = true;
        std::this_thread::sleep_for(50ms);
        p->finished = true;
      },
      &x, 0);
  kcont_schedule(kc, rt.cpu(0), 0);
  REQUIRE(wait_until([&] { return x.inside.load(); }));
  kcont_halt(kc);
  CHECK(x.finished);
  kcont_destroy(kc);

  std::atomic<int> runs{0};
  kcont_t* self = kcont_create(
      wq_softbio, nullptr,
      [](void* a, kcont_t* k) {
        ++*static_cast<std::atomic<int>*>(a);
        kcont_schedule(k, nullptr, 0);  // pending again...
        kcont_destroy(k);               // ...and destroyed: freed after we return, never run again
      },
      &runs, 0);
  kcont_schedule(self, rt.cpu(1), 0);
  REQUIRE(wait_until([&] { return runs == 1; }));
  std::this_thread::sleep_for(20ms);
  CHECK(runs == 1);
}

TEST_CASE("kcont::continuation: any callable, chrono delays never early, destructor halts") {
  kcont::runtime rt(kcont_test::cpus(2));
  std::atomic<int> runs{0};
  std::atomic<std::int64_t> fired{0};
  {
    kcont::continuation c(rt, wq_softnet, [&] {
      fired = std::chrono::steady_clock::now().time_since_epoch().count();
      ++runs;
    });
    CHECK(c.schedule(rt.cpu(1)) == 0);
    REQUIRE(wait_until([&] { return runs == 1; }));
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(wait_until([&] { return !c.invoking(); }));
    CHECK(c.schedule(std::chrono::microseconds(2500)) == 0);  // 3 ticks
    CHECK(c.pending());
    REQUIRE(wait_until([&] { return runs == 2; }));
    CHECK(std::chrono::steady_clock::duration(fired.load()) - t0.time_since_epoch() >=
          std::chrono::microseconds(2500));
    CHECK(c.expired());
    CHECK(c.stop());
  }
  std::atomic<bool> inside{false}, finished{false};
  {
    kcont::continuation c(rt, wq_prihigh, [&] {
      inside = true;
      std::this_thread::sleep_for(50ms);
      finished = true;
    });
    c.schedule(rt.cpu(0));
    REQUIRE(wait_until([&] { return inside.load(); }));
  }  // destroy waits for the running call
  CHECK(finished);
}

TEST_CASE("state transitions of the proposal, one by one") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  kmutex_t gate;  // held by the test: a runnable continuation stays queued (not running)
  mutex_init(&gate, MUTEX_DEFAULT, IPL_NONE);
  probe p;
  kcont_t kc;
  REQUIRE(kcont_init(&kc, wq_prihigh, &gate, probe::run, &p, 0) == 0);
  struct flags {
    bool pending, expired, invoking;
  };
  auto now = [&] { return flags{kcont_pending(&kc), kcont_expired(&kc), kcont_invoking(&kc)}; };
  auto is = [&](flags f, bool pd, bool ex, bool inv) {
    return f.pending == pd && f.expired == ex && f.invoking == inv;
  };
  mutex_enter(&gate);
  CHECK(is(now(), false, false, false));           // initialised: no state
  CHECK(kcont_schedule(&kc, rt.cpu(0), 50) == 0);  // schedule(n>0): PENDING
  CHECK(is(now(), true, false, false));
  CHECK(kcont_schedule(&kc, rt.cpu(0), 0) == 0);  // schedule(0): INVOKING, not PENDING
  CHECK(is(now(), false, false, true));
  CHECK(kcont_schedule(&kc, rt.cpu(0), 0) == EBUSY);  // while INVOKING: EBUSY
  CHECK(kcont_ack(&kc));                              // ack clears INVOKING...
  CHECK(is(now(), false, false, false));
  CHECK_FALSE(kcont_ack(&kc));                    // ...and says whether it was set
  CHECK_FALSE(kcont_stop(&kc));                   // stop: queued run cancelled
  CHECK(kcont_schedule(&kc, rt.cpu(0), 1) == 0);  // timer expires while gated:
  REQUIRE(wait_until([&] { return kcont_expired(&kc); }));
  CHECK(is(now(), false, true, true));  // EXPIRED|INVOKING, PENDING cleared
  CHECK(kcont_active(&kc));
  CHECK(kcont_schedule(&kc, rt.cpu(0), 5) == EBUSY);
  mutex_exit(&gate);  // now it runs
  REQUIRE(wait_until([&] { return p.runs == 1; }));
  REQUIRE(wait_until([&] { return !kcont_invoking(&kc); }));  // cleared when func returned
  CHECK(is(now(), false, true, false));                       // EXPIRED stays until stop/schedule
  CHECK(kcont_schedule(&kc, rt.cpu(0), 100) == 0);            // schedule clears EXPIRED
  CHECK(is(now(), true, false, false));
  CHECK_FALSE(kcont_stop(&kc));  // stop of PENDING: not EXPIRED
  CHECK(is(now(), false, false, false));
  CHECK_FALSE(kcont_active(&kc));
  CHECK(kcont_getmutex(&kc) == &gate);
  mutex_enter(&gate);
  CHECK(kcont_setmutex(&kc, nullptr) == &gate);  // set while holding the current lock
  mutex_exit(&gate);
  CHECK(kcont_getmutex(&kc) == nullptr);
  kcont_destroy(&kc);
}

TEST_CASE("on one CPU, pending continuations of higher-priority soft queues run first") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  struct hold {
    std::atomic<bool> inside{false}, release{false};
  } h;
  void* blocker = softint_establish_rt(
      rt, SOFTINT_HARDINTR | SOFTINT_MPSAFE,
      [](void* a) {
        auto* p = static_cast<hold*>(a);
        p->inside = true;
        while (!p->release) std::this_thread::yield();
      },
      &h);
  std::mutex mu;
  std::vector<int> order;
  struct item {
    int rank;
    std::mutex* mu;
    std::vector<int>* order;
  };
  item items[4] = {{3, &mu, &order}, {2, &mu, &order}, {1, &mu, &order}, {0, &mu, &order}};
  kcont_wq_t* wqs[4] = {wq_softclock, wq_softbio, wq_softnet, wq_softserial};  // lowest first
  kcont_t kcs[4];
  softint_schedule_cpu(blocker, rt.cpu(1));
  REQUIRE(wait_until([&] { return h.inside.load(); }));
  for (int i = 0; i < 4; ++i) {
    REQUIRE(kcont_init(
                &kcs[i], wqs[i], nullptr,
                [](void* a, kcont_t*) {
                  auto* it = static_cast<item*>(a);
                  std::lock_guard<std::mutex> lk(*it->mu);
                  it->order->push_back(it->rank);
                },
                &items[i], 0) == 0);
    REQUIRE(kcont_schedule(&kcs[i], rt.cpu(1), 0) == 0);
  }
  h.release = true;
  REQUIRE(wait_until([&] {
    std::lock_guard<std::mutex> lk(mu);
    return order.size() == 4;
  }));
  CHECK(order == std::vector<int>{0, 1, 2, 3});  // serial, net, bio, clock
  for (auto& kc : kcs) kcont_destroy(&kc);
  softint_disestablish(blocker);
}

TEST_CASE("on one CPU, pending continuations of higher-priority thread queues start first") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  kcont_wq_t* wqs[4] = {wq_prihigh, wq_primedhigh, wq_primedlow, wq_prilow};
  // A blocker per level keeps each level's queue busy on CPU 1 while the work piles up.
  struct gate {
    std::atomic<int> inside{0};
    std::atomic<bool> release{false};
  } g;
  // The blockers spin (yield is not a kcont blocking point), so each keeps its level's worker
  // and nothing starts until every item is queued. They start lowest level first: a running
  // continuation is never preempted, and a higher level does not wait for a lower one. (They
  // used to kpause, and a sleeping continuation lets its level's other work and lower levels
  // run: an item of level 1 could start while the test thread, descheduled under load, had
  // not yet queued the last of level 0.)
  auto block = [](void* a, kcont_t*) {
    auto* p = static_cast<gate*>(a);
    ++p->inside;
    while (!p->release) std::this_thread::yield();
  };
  struct release_on_exit {
    gate& g;
    ~release_on_exit() { g.release = true; }
  } guard{g};
  kcont_t blockers[4];
  for (int l = 3; l >= 0; --l) {
    REQUIRE(kcont_init(&blockers[l], wqs[l], nullptr, block, &g, 0) == 0);
    REQUIRE(kcont_schedule(&blockers[l], rt.cpu(1), 0) == 0);
    REQUIRE(wait_until([&] { return g.inside.load() == 4 - l; }));
  }

  std::mutex mu;
  std::vector<int> order;
  struct item {
    int level;
    std::mutex* mu;
    std::vector<int>* order;
  };
  constexpr int per_level = 3;
  std::vector<item> items;
  items.reserve(4 * per_level);
  std::vector<kcont_t> kcs(4 * per_level);
  for (int l = 3; l >= 0; --l) {  // lowest level first
    for (int k = 0; k < per_level; ++k) {
      items.push_back({l, &mu, &order});
      kcont_t* kc = &kcs[items.size() - 1];
      REQUIRE(kcont_init(
                  kc, wqs[l], nullptr,
                  [](void* a, kcont_t*) {
                    auto* it = static_cast<item*>(a);
                    std::lock_guard<std::mutex> lk(*it->mu);
                    it->order->push_back(it->level);
                  },
                  &items.back(), 0) == 0);
      REQUIRE(kcont_schedule(kc, rt.cpu(1), 0) == 0);
    }
  }
  g.release = true;
  REQUIRE(wait_until([&] {
    std::lock_guard<std::mutex> lk(mu);
    return order.size() == 4 * per_level;
  }));
  // Every continuation starts only once none of a higher level is waiting on that CPU.
  std::vector<int> expected;
  for (int l = 0; l < 4; ++l) expected.insert(expected.end(), per_level, l);
  std::string got;
  for (int l : order) got += std::to_string(l);
  INFO("start order by level: ", got);
  CHECK(order == expected);
  for (auto& kc : kcs) kcont_destroy(&kc);
  for (auto& kc : blockers) kcont_destroy(&kc);
}

// Found by kcont-torture: a level whose only runnable work was stopped while it stood aside
// kept its "ready" flag, and every lower level on that CPU stood aside behind it forever.
TEST_CASE("stopping the only runnable continuation of a waiting level does not starve lower ones") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  // A busy (not sleeping) continuation on wq_prihigh holds the lower levels of CPU 1 back.
  std::atomic<bool> inside{false}, release{false};
  struct busy_arg {
    std::atomic<bool>* inside;
    std::atomic<bool>* release;
  } ba{&inside, &release};
  kcont_t high;
  REQUIRE(kcont_init(
              &high, wq_prihigh, nullptr,
              [](void* a, kcont_t*) {
                auto* b = static_cast<busy_arg*>(a);
                *b->inside = true;
                while (!*b->release) std::this_thread::yield();
              },
              &ba, 0) == 0);
  REQUIRE(kcont_schedule(&high, rt.cpu(1), 0) == 0);
  REQUIRE(wait_until([&] { return inside.load(); }));
  // wq_primedlow gets work, its drain stands aside; then the work is stopped.
  probe mid;
  kcont_t* m = kcont_create(wq_primedlow, nullptr, probe::run, &mid, 0);
  REQUIRE(kcont_schedule(m, rt.cpu(1), 0) == 0);
  std::this_thread::sleep_for(50ms);  // time for its drain to look and stand aside
  CHECK_FALSE(kcont_stop(m));
  release = true;  // wq_prihigh falls
  // Work on the lowest level must run now.
  probe low;
  kcont_t* l = kcont_create(wq_prilow, nullptr, probe::run, &low, 0);
  REQUIRE(kcont_schedule(l, rt.cpu(1), 0) == 0);
  CHECK(wait_until([&] { return low.runs.load() == 1; }, 5000ms));
  CHECK(mid.runs == 0);
  kcont_destroy(l);
  kcont_destroy(m);
  kcont_destroy(&high);
}

TEST_CASE("destroying a queued continuation from another thread cancels it") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  kmutex_t gate;
  mutex_init(&gate, MUTEX_DEFAULT, IPL_NONE);
  probe p;
  kcont_t* kc = kcont_create(wq_prihigh, &gate, probe::run, &p, 0);
  mutex_enter(&gate);
  CHECK(kcont_schedule(kc, rt.cpu(0), 0) == 0);  // queued, cannot start
  kcont_destroy(kc);
  mutex_exit(&gate);
  std::this_thread::sleep_for(20ms);
  CHECK(p.runs == 0);
}

// A func re-scheduling itself at once asks without the queue's lock when its state allows
// (kcont/src/state.cpp, "Re-scheduling from its own func"); whatever it calls next sees what
// the locked path would give. Soft and thread queues.
TEST_CASE("re-scheduling from its own func: every call after it sees it queued") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  for (kcont_wq_t* wq : {wq_softnet, wq_prihigh}) {
    const std::string kind = wq == wq_softnet ? "soft" : "thread";
    CAPTURE(kind);
    struct ctx {
      int step = 0;  // what run 1 does
      std::atomic<int> runs{0};
      int first = -1, second = -1;
      bool invoking = false, pending = true, expired = true, stopped_expired = true, acked = false,
           invoking_after_ack = true;
      std::atomic<bool> first_done{false};  // run 1 made every call (the halt must come after)
    };
    auto run = [](void* a, kcont_t* k) {
      auto* x = static_cast<ctx*>(a);
      if (++x->runs != 1) return;
      x->first = kcont_schedule(k, nullptr, 0);
      x->second = kcont_schedule(k, nullptr, 0);  // already queued
      x->invoking = kcont_invoking(k);
      x->pending = kcont_pending(k);
      x->expired = kcont_expired(k);
      if (x->step == 1) x->stopped_expired = kcont_stop(k);  // cancels the queued run
      if (x->step == 2) {
        x->acked = kcont_ack(k);  // the queued run stays
        x->invoking_after_ack = kcont_invoking(k);
      }
      x->first_done.store(true);
      if (x->step == 3) throw std::runtime_error("thrown after re-scheduling itself");
    };
    for (int step = 0; step < 4; ++step) {
      CAPTURE(step);
      ctx x;
      x.step = step;
      kcont_t kc;
      REQUIRE(kcont_init(&kc, wq, nullptr, run, &x, 0) == 0);
      REQUIRE(kcont_schedule(&kc, rt.cpu(1), 0) == 0);
      // Not just "run 1 began": a halt during run 1 would cancel the ask between its two calls.
      REQUIRE(
          wait_until([&] { return x.first_done.load() && x.runs.load() >= (step == 1 ? 1 : 2); }));
      kcont_halt(&kc);
      std::this_thread::sleep_for(5ms);
      CHECK(x.runs.load() == (step == 1 ? 1 : 2));  // the ask ran once, unless stopped
      CHECK(x.first == 0);
      CHECK(x.second == EBUSY);
      CHECK(x.invoking);
      CHECK(!x.pending);
      CHECK(!x.expired);
      if (step == 1) CHECK(!x.stopped_expired);
      if (step == 2) {
        CHECK(x.acked);
        CHECK(!x.invoking_after_ack);
      }
      CHECK(!kcont_invoking(&kc));
      kcont_destroy(&kc);
    }
  }
}

TEST_CASE(
    "re-scheduling from a func that a timer started: EXPIRED clears as the locked path does") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  struct ctx {
    std::atomic<int> runs{0};
    bool expired_before = false, expired_after = true;
    int rc = -1;
  } x;
  kcont_t kc;
  REQUIRE(kcont_init(
              &kc, wq_softnet, nullptr,
              [](void* a, kcont_t* k) {
                auto* p = static_cast<ctx*>(a);
                if (++p->runs != 1) return;
                p->expired_before = kcont_expired(k);
                p->rc = kcont_schedule(k, nullptr, 0);
                p->expired_after = kcont_expired(k);
              },
              &x, 0) == 0);
  REQUIRE(kcont_schedule(&kc, rt.cpu(1), 1) == 0);
  REQUIRE(wait_until([&] { return x.runs.load() == 2; }));
  CHECK(x.expired_before);
  CHECK(x.rc == 0);
  CHECK(!x.expired_after);
  kcont_destroy(&kc);
}

// A hop queued from inside a hop of the same soft queue with nothing else queued runs as soon
// as that hop returns, without the queue's lock (drain.cpp run_hop, q.stashed_hop). Each runs
// once, in order; continuations queued meanwhile still take their turn; a hop withdrawn before
// it ran (kcont_hop_done(h, false)) never runs.
TEST_CASE("hops queued from a hop of their own queue: each once, in order; withdrawn never run") {
  using kcont::detail::kcont_hop;
  using kcont::detail::kcont_hop_done;
  using kcont::detail::kcont_hop_schedule;
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  constexpr int kHops = 600;
  struct chain {
    kcont::runtime* rt = nullptr;
    std::vector<kcont_hop> hops = std::vector<kcont_hop>(kHops);
    std::vector<int> order;
    kcont_hop never;
    std::atomic<int> never_ran{0}, cont_runs{0};
    int withdrew = 0, cont_scheduled = 0;
    kcont_t cont;
    std::atomic<bool> done{false};
  } c;
  c.rt = &rt;
  c.never.fn = [](void* a) { static_cast<chain*>(a)->never_ran++; };
  c.never.arg = &c;
  REQUIRE(kcont_init(
              &c.cont, wq_softnet, nullptr,
              [](void* a, kcont_t*) { static_cast<chain*>(a)->cont_runs++; }, &c, 0) == 0);
  struct step {
    static void run(void* a) {
      auto* x = static_cast<chain*>(a);
      const int i = static_cast<int>(x->order.size());
      x->order.push_back(i);
      kcont_hop_done(&x->hops[i], true);
      if (i % 100 == 10) {  // queued, then taken back before this hop returns
        if (kcont_hop_schedule(&x->never, *x->rt, wq_softnet, x->rt->cpu(1)) != 0) std::abort();
        if (kcont_hop_done(&x->never, false)) x->withdrew++;
      }
      if (i % 50 == 25 && kcont_schedule(&x->cont, x->rt->cpu(1), 0) == 0) x->cont_scheduled++;
      if (i + 1 == kHops) {
        x->done = true;
        return;
      }
      x->hops[i + 1].fn = &step::run;
      x->hops[i + 1].arg = x;
      if (kcont_hop_schedule(&x->hops[i + 1], *x->rt, wq_softnet, x->rt->cpu(1)) != 0) std::abort();
    }
  };
  c.hops[0].fn = &step::run;
  c.hops[0].arg = &c;
  REQUIRE(kcont_hop_schedule(&c.hops[0], rt, wq_softnet, rt.cpu(1)) == 0);
  REQUIRE(wait_until([&] { return c.done.load(); }));
  REQUIRE(wait_until([&] { return c.cont_runs.load() == c.cont_scheduled; }));
  std::this_thread::sleep_for(5ms);
  REQUIRE(c.order.size() == static_cast<std::size_t>(kHops));
  for (int i = 0; i < kHops; ++i) CHECK(c.order[static_cast<std::size_t>(i)] == i);
  CHECK(c.withdrew == kHops / 100);
  CHECK(c.never_ran == 0);
  CHECK(c.cont_runs == c.cont_scheduled);
  CHECK(c.cont_scheduled == kHops / 50);
  kcont_destroy(&c.cont);
}
