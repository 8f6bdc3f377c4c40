// callout(9) semantics, one by one (NetBSD callout(9) plus the races).
#include <doctest/doctest.h>
#include <kcont/callout.h>
#include <kcont/mutex.h>
#include <kcont/runtime.h>
#include <kcont/softint.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "test_util.h"

using namespace std::chrono_literals;
using kcont_test::wait_until;

namespace {

struct probe {
  callout* c = nullptr;
  std::atomic<int> runs{0};
  std::atomic<int> cpu{-1};
  std::atomic<bool> pending_inside{true}, expired_inside{false}, invoking_inside{false};
  std::atomic<std::int64_t> fired_at{0};
  static void run(void* a) {
    auto* p = static_cast<probe*>(a);
    p->pending_inside = callout_pending(p->c);
    p->expired_inside = callout_expired(p->c);
    p->invoking_inside = callout_invoking(p->c);
    p->cpu = static_cast<int>(cpu_index(curcpu()));
    p->fired_at = std::chrono::steady_clock::now().time_since_epoch().count();
    ++p->runs;
  }
};

// Two CPUs, current on this thread, and one initialised callout with a probe as its argument.
struct one_callout {
  kcont::runtime rt{kcont_test::cpus(2)};
  kcont::runtime_scope scope{rt};
  callout c;
  probe p;
  one_callout() {
    callout_init(&c, CALLOUT_MPSAFE);
    p.c = &c;
  }
};

// Runs fn on a CPU of the current runtime (from a softint handler) and waits for it.
template <class F>
void on_cpu(kcont::runtime& rt, unsigned cpu, F fn) {
  struct ctx {
    F* fn;
    std::atomic<bool> done{false};
  } x{&fn};
  void* si = softint_establish_rt(
      rt, SOFTINT_NET | SOFTINT_MPSAFE,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        (*p->fn)();
        p->done = true;
      },
      &x);
  softint_schedule_cpu(si, rt.cpu(cpu));
  REQUIRE(wait_until([&] { return x.done.load(); }));
  softint_disestablish(si);
}

}  // namespace

TEST_CASE("sizeof(struct callout) fits a cache line") {
  CHECK(sizeof(callout) <= 64);
}

TEST_CASE_FIXTURE(one_callout, "a reset callout fires once, never early, with NetBSD's states") {
  CHECK_FALSE(callout_pending(&c));
  CHECK_FALSE(callout_active(&c));
  auto t0 = std::chrono::steady_clock::now();
  callout_reset(&c, 20, probe::run, &p);
  CHECK(callout_pending(&c));
  CHECK(callout_active(&c));
  CHECK_FALSE(callout_expired(&c));
  REQUIRE(wait_until([&] { return p.runs == 1; }));
  auto elapsed = std::chrono::steady_clock::duration(p.fired_at.load()) - t0.time_since_epoch();
  CHECK(elapsed >= 20ms);  // never early
  CHECK_FALSE(p.pending_inside);
  CHECK(p.expired_inside);
  CHECK(p.invoking_inside);
  CHECK(callout_expired(&c));
  CHECK(callout_invoking(&c));
  CHECK(callout_active(&c));
  callout_ack(&c);
  CHECK_FALSE(callout_invoking(&c));
  std::this_thread::sleep_for(30ms);
  CHECK(p.runs == 1);
  CHECK(callout_stop(&c));  // it had expired
  CHECK_FALSE(callout_expired(&c));
  CHECK_FALSE(callout_active(&c));
  CHECK_FALSE(callout_stop(&c));
  callout_destroy(&c);
}

TEST_CASE_FIXTURE(one_callout, "callout_stop of a pending callout cancels it and returns false") {
  callout_reset(&c, 30, probe::run, &p);
  CHECK_FALSE(callout_stop(&c));
  CHECK_FALSE(callout_pending(&c));
  std::this_thread::sleep_for(60ms);
  CHECK(p.runs == 0);
  callout_destroy(&c);
}

TEST_CASE_FIXTURE(one_callout, "callout_reset of a pending callout moves its time; it fires once") {
  callout_setfunc(&c, probe::run, &p);
  callout_schedule(&c, 10000);
  auto t0 = std::chrono::steady_clock::now();
  callout_schedule(&c, 5);
  REQUIRE(wait_until([&] { return p.runs == 1; }));
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  std::this_thread::sleep_for(20ms);
  CHECK(p.runs == 1);
  callout_destroy(&c);
}

TEST_CASE("ticks <= 0 count as one tick; mstohz rounds up; hztoms") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  CHECK(mstohz(1) == 1);
  CHECK(mstohz(0) == 0);
  CHECK(hztoms(250) == 250);
  callout c;
  callout_init(&c, CALLOUT_MPSAFE);
  probe p;
  p.c = &c;
  callout_reset(&c, -5, probe::run, &p);
  REQUIRE(wait_until([&] { return p.runs == 1; }));
  std::uint32_t t1 = getticks();
  std::this_thread::sleep_for(20ms);
  CHECK(static_cast<std::int32_t>(getticks() - t1) >= 19);
  callout_destroy(&c);
}

TEST_CASE("a callout re-armed inside its handler fires again") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  struct ctx {
    callout c;
    std::atomic<int> runs{0};
  } x;
  callout_init(&x.c, CALLOUT_MPSAFE);
  callout_reset(
      &x.c, 1,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        if (++p->runs < 10) callout_schedule(&p->c, 1);
      },
      &x);
  REQUIRE(wait_until([&] { return x.runs == 10; }));
  std::this_thread::sleep_for(20ms);
  CHECK(x.runs == 10);
  CHECK_FALSE(callout_pending(&x.c));
  callout_destroy(&x.c);
}

TEST_CASE("callouts due in the same tick run in the order they were armed") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  struct rec {
    std::mutex mu;
    std::vector<int> order;
  } r;
  struct item {
    rec* r;
    int tag;
  };
  std::vector<item> items;
  for (int i = 0; i < 50; ++i) items.push_back({&r, i});
  std::vector<callout> cs(50);
  on_cpu(rt, 1, [&] {  // all on CPU 1, armed in one go
    for (int i = 0; i < 50; ++i) {
      callout_init(&cs[i], CALLOUT_MPSAFE);
      callout_reset(
          &cs[i], 30,
          [](void* a) {
            auto* it = static_cast<item*>(a);
            std::lock_guard<std::mutex> lk(it->r->mu);
            it->r->order.push_back(it->tag);
          },
          &items[i]);
    }
  });
  REQUIRE(wait_until([&] {
    std::lock_guard<std::mutex> lk(r.mu);
    return r.order.size() == 50;
  }));
  std::vector<int> want;
  for (int i = 0; i < 50; ++i) want.push_back(i);
  CHECK(r.order == want);
  for (auto& c : cs) callout_destroy(&c);
}

TEST_CASE_FIXTURE(
    one_callout,
    "migration: an unbound idle callout moves to the CPU that resets it; bind pins it") {
  on_cpu(rt, 1, [&] { callout_reset(&c, 1, probe::run, &p); });
  REQUIRE(wait_until([&] { return p.runs == 1; }));
  CHECK(p.cpu == 1);
  on_cpu(rt, 0, [&] { callout_reset(&c, 1, probe::run, &p); });
  REQUIRE(wait_until([&] { return p.runs == 2; }));
  CHECK(p.cpu == 0);
  callout_bind(&c, rt.cpu(1));
  on_cpu(rt, 0, [&] { callout_reset(&c, 1, probe::run, &p); });
  REQUIRE(wait_until([&] { return p.runs == 3; }));
  CHECK(p.cpu == 1);
  // Binding a pending callout moves it with its due time.
  on_cpu(rt, 1, [&] { callout_reset(&c, 30, probe::run, &p); });
  callout_bind(&c, rt.cpu(0));
  REQUIRE(wait_until([&] { return p.runs == 4; }));
  CHECK(p.cpu == 0);
  callout_destroy(&c);
}

TEST_CASE("callout_halt waits for a running handler") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  struct ctx {
    std::atomic<bool> inside{false}, finished{false};
  } x;
  callout c;
  callout_init(&c, CALLOUT_MPSAFE);
  callout_reset(
      &c, 1,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        p->inside = true;
        std::this_thread::sleep_for(100ms);
        p->finished = true;
      },
      &x);
  REQUIRE(wait_until([&] { return x.inside.load(); }));
  CHECK(callout_halt(&c, nullptr));  // it had expired
  CHECK(x.finished);
  callout_destroy(&c);  // destroy after halt
}

TEST_CASE("callout_halt against a handler that re-arms itself: nothing runs after it returns") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  for (int round = 0; round < 20; ++round) {
    struct ctx {
      callout c;
      std::atomic<int> runs{0};
      std::atomic<bool> halted{false};
      std::atomic<int> after_halt{0};
    } x;
    callout_init(&x.c, CALLOUT_MPSAFE);
    callout_reset(
        &x.c, 1,
        [](void* a) {
          auto* p = static_cast<ctx*>(a);
          if (p->halted) ++p->after_halt;
          ++p->runs;
          std::this_thread::sleep_for(std::chrono::microseconds(300));
          callout_schedule(&p->c, 1);
        },
        &x);
    REQUIRE(wait_until([&] { return x.runs >= 3; }));
    kmutex_t m;
    mutex_init(&m, MUTEX_DEFAULT, IPL_NONE);
    mutex_enter(&m);
    callout_halt(&x.c, &m);
    CHECK(mutex_owned(&m));  // re-taken after the wait
    mutex_exit(&m);
    x.halted = true;
    CHECK_FALSE(callout_pending(&x.c));
    std::this_thread::sleep_for(5ms);
    CHECK(x.after_halt == 0);
    callout_destroy(&x.c);
  }
}

TEST_CASE("callout_halt and callout_stop from several threads at once") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  struct ctx {
    callout c;
    std::atomic<int> runs{0};
    std::atomic<bool> stop_rearming{false};
  } x;
  callout_init(&x.c, CALLOUT_MPSAFE);
  callout_reset(
      &x.c, 1,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        ++p->runs;
        if (!p->stop_rearming) callout_schedule(&p->c, 1);
      },
      &x);
  REQUIRE(wait_until([&] { return x.runs >= 2; }));
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&, i] {
      for (int k = 0; k < 200; ++k) {
        if (i % 2)
          callout_halt(&x.c, nullptr);
        else
          callout_stop(&x.c);
        if (k % 10 == 0) callout_schedule(&x.c, 1);
      }
    });
  for (auto& t : ts) t.join();
  x.stop_rearming = true;
  callout_halt(&x.c, nullptr);
  int runs = x.runs;
  std::this_thread::sleep_for(10ms);
  CHECK(x.runs == runs);
  CHECK_FALSE(callout_pending(&x.c));
  callout_destroy(&x.c);
}

TEST_CASE("reset from a foreign thread while the handler runs: it fires again afterwards") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  struct ctx {
    std::atomic<int> runs{0};
    std::atomic<bool> inside{false}, release{false};
  } x;
  callout c;
  callout_init(&c, CALLOUT_MPSAFE);
  callout_reset(
      &c, 1,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        if (++p->runs == 1) {
          p->inside = true;
          while (!p->release) std::this_thread::yield();
        }
      },
      &x);
  REQUIRE(wait_until([&] { return x.inside.load(); }));
  callout_schedule(&c, 1);  // while running: stays on its CPU, pending again
  CHECK(callout_pending(&c));
  x.release = true;
  REQUIRE(wait_until([&] { return x.runs == 2; }));
  callout_halt(&c, nullptr);
  callout_destroy(&c);
}

TEST_CASE("halt and destroy from inside the callout's own handler are safe") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  struct ctx {
    callout* c;
    std::atomic<int> runs{0};
    std::atomic<bool> done{false};
  } x;
  x.c = new callout;
  callout_init(x.c, CALLOUT_MPSAFE);
  callout_reset(
      x.c, 1,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        ++p->runs;
        callout_schedule(p->c, 1);
        callout_halt(p->c, nullptr);  // from its own handler: stops, does not wait for itself
        callout_destroy(p->c);
        delete p->c;  // the dispatcher never touches it again
        p->done = true;
      },
      &x);
  REQUIRE(wait_until([&] { return x.done.load(); }));
  std::this_thread::sleep_for(10ms);
  CHECK(x.runs == 1);
}

TEST_CASE("callouts fire across the 32-bit tick wrap") {
  kcont::runtime_config c = kcont_test::cpus(2);
  c.initial_ticks = 0xffffffffu - 40;
  kcont::runtime rt(c);
  kcont::runtime_scope scope(rt);
  std::vector<callout> cs(20);
  std::vector<probe> ps(20);
  for (int i = 0; i < 20; ++i) {
    callout_init(&cs[i], CALLOUT_MPSAFE);
    ps[i].c = &cs[i];
    callout_reset(&cs[i], 5 + i * 5, probe::run, &ps[i]);
  }
  REQUIRE(wait_until([&] {
    for (auto& p : ps)
      if (p.runs != 1) return false;
    return true;
  }));
  CHECK(static_cast<std::int32_t>(getticks() - (0xffffffffu - 40)) >= 100);
  CHECK(getticks() < 1000);  // wrapped
  for (auto& cc : cs) callout_destroy(&cc);
}

TEST_CASE("tickless: 10^4 callouts due in an hour cause no wake-ups") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  std::vector<callout> cs(10000);
  probe p;
  for (auto& c : cs) {
    callout_init(&c, CALLOUT_MPSAFE);
    callout_reset(&c, 3600 * 1000, probe::run, &p);
  }
  std::this_thread::sleep_for(50ms);
  auto before = rt.stats();
  std::this_thread::sleep_for(1s);
  auto after = rt.stats();
  MESSAGE("wake-ups in 1 s with 10^4 callouts pending an hour out: "
          << (after.timer_wakeups - before.timer_wakeups) << " timer, "
          << (after.loop_sleeps - before.loop_sleeps) << " sleeps");
  CHECK(after.timer_wakeups - before.timer_wakeups <= 1);
  CHECK(after.loop_sleeps - before.loop_sleeps <= 2);
  CHECK(p.runs == 0);
  for (auto& c : cs) {
    callout_stop(&c);
    callout_destroy(&c);
  }
}

TEST_CASE("handlers without CALLOUT_MPSAFE run under the kernel lock") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  callout c;
  callout_init(&c, 0);
  struct ctx {
    std::atomic<bool> inside{false}, release{false};
  } x;
  callout_reset(
      &c, 1,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        p->inside = true;
        while (!p->release) std::this_thread::yield();
      },
      &x);
  REQUIRE(wait_until([&] { return x.inside.load(); }));
  std::atomic<bool> got{false};
  std::thread t([&] {
    kernel_lock();
    got = true;
    kernel_unlock();
  });
  std::this_thread::sleep_for(20ms);
  CHECK_FALSE(got);
  x.release = true;
  t.join();
  CHECK(got);
  callout_halt(&c, nullptr);
  callout_destroy(&c);
}

TEST_CASE("kcont::callout: chrono durations rounded up, never early; destructor halts") {
  kcont::runtime rt(kcont_test::cpus(2));
  std::atomic<int> runs{0};
  std::atomic<std::int64_t> fired{0};
  {
    kcont::callout t(rt, [&] {
      fired = std::chrono::steady_clock::now().time_since_epoch().count();
      ++runs;
    });
    auto t0 = std::chrono::steady_clock::now();
    t.schedule(std::chrono::microseconds(2500));  // 2.5 ms -> 3 ticks at hz 1000
    CHECK(t.pending());
    REQUIRE(wait_until([&] { return runs == 1; }));
    CHECK(std::chrono::steady_clock::duration(fired.load()) - t0.time_since_epoch() >=
          std::chrono::microseconds(2500));
    CHECK(t.expired());
    CHECK(t.invoking());
    t.ack();
    CHECK_FALSE(t.invoking());
    t.schedule(std::chrono::hours(1));
    CHECK(t.pending());
    CHECK_FALSE(t.stop());
    CHECK_FALSE(t.active());
    t.bind(rt.cpu(1));
    t.schedule_ticks(1);
    REQUIRE(wait_until([&] { return runs == 2; }));
  }
  std::atomic<bool> inside{false}, finished{false};
  {
    kcont::callout t(rt, [&] {
      inside = true;
      std::this_thread::sleep_for(50ms);
      finished = true;
    });
    t.schedule(1ms);
    REQUIRE(wait_until([&] { return inside.load(); }));
  }  // the destructor waits for the running handler
  CHECK(finished);
}
