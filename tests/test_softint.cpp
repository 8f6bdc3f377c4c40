// softint(9) semantics, one by one (NetBSD softint(9) plus the rules).
#include <doctest/doctest.h>
#include <kcont/runtime.h>
#include <kcont/softint.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <thread>
#include <vector>

#include "test_util.h"

using namespace std::chrono_literals;
using kcont_test::wait_until;

namespace {

void bump(void* a) {
  static_cast<std::atomic<int>*>(a)->fetch_add(1);
}

// A handler that holds its CPU until released, so work can pile up behind it.
struct blocker {
  std::atomic<bool> inside{false};
  std::atomic<bool> release{false};
  static void run(void* a) {
    auto* b = static_cast<blocker*>(a);
    b->inside = true;
    while (!b->release) std::this_thread::yield();
    b->inside = false;
  }
};

// Records the order handlers ran in.
struct order_log {
  std::mutex mu;
  std::vector<int> seen;
  void add(int v) {
    std::lock_guard<std::mutex> lk(mu);
    seen.push_back(v);
  }
  std::vector<int> get() {
    std::lock_guard<std::mutex> lk(mu);
    return seen;
  }
};

struct tagged {
  order_log* log;
  int tag;
  static void run(void* a) {
    auto* t = static_cast<tagged*>(a);
    t->log->add(t->tag);
  }
};

}  // namespace

TEST_CASE("establish refuses unknown levels, unknown flags and a NULL function") {
  kcont::runtime rt(kcont_test::cpus(1));
  errno = 0;
  CHECK(softint_establish_rt(rt, 0x0007, bump, nullptr) == nullptr);
  CHECK(errno == EINVAL);
  errno = 0;
  CHECK(softint_establish_rt(rt, SOFTINT_NET | 0x1000, bump, nullptr) == nullptr);
  CHECK(errno == EINVAL);
  CHECK(softint_establish_rt(rt, SOFTINT_NET, nullptr, nullptr) == nullptr);
  void* ok = softint_establish_rt(rt, SOFTINT_SERIAL | SOFTINT_MPSAFE, bump, nullptr);
  CHECK(ok != nullptr);
  softint_disestablish(ok);
}

TEST_CASE("softint_schedule_cpu runs the handler on that CPU, in interrupt context") {
  kcont::runtime rt(kcont_test::cpus(2));
  struct ctx {
    std::atomic<int> cpu{-1};
    std::atomic<bool> irq{false};
  } x;
  void* si = softint_establish_rt(
      rt, SOFTINT_NET | SOFTINT_MPSAFE,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        p->irq = kcont::in_interrupt_context();
        p->cpu = static_cast<int>(cpu_index(curcpu()));
      },
      &x);
  for (unsigned c : {1u, 0u, 1u}) {
    x.cpu = -1;
    softint_schedule_cpu(si, rt.cpu(c));
    REQUIRE(wait_until([&] { return x.cpu != -1; }));
    CHECK(x.cpu == static_cast<int>(c));
    CHECK(x.irq);
  }
  softint_disestablish(si);
}

TEST_CASE("softint_schedule from a foreign thread runs on the caller's current CPU") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  std::atomic<int> ran{0};
  void* si = softint_establish(SOFTINT_BIO | SOFTINT_MPSAFE, bump, &ran);
  softint_schedule(si);
  REQUIRE(wait_until([&] { return ran == 1; }));
  softint_disestablish(si);
}

TEST_CASE("scheduling an already-pending softint is coalesced into one run") {
  kcont::runtime rt(kcont_test::cpus(1));
  blocker b;
  std::atomic<int> runs{0};
  void* hold = softint_establish_rt(rt, SOFTINT_SERIAL | SOFTINT_MPSAFE, blocker::run, &b);
  void* si = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, bump, &runs);
  softint_schedule_cpu(hold, rt.cpu(0));
  REQUIRE(wait_until([&] { return b.inside.load(); }));
  for (int i = 0; i < 1000; ++i) softint_schedule_cpu(si, rt.cpu(0));
  b.release = true;
  REQUIRE(wait_until([&] { return runs == 1; }));
  std::this_thread::sleep_for(20ms);
  CHECK(runs == 1);
  softint_disestablish(si);
  softint_disestablish(hold);
}

TEST_CASE("pending softints on one CPU run in strict level priority, FIFO within a level") {
  kcont::runtime rt(kcont_test::cpus(1));
  blocker b;
  order_log log;
  void* hold = softint_establish_rt(rt, SOFTINT_HARDINTR | SOFTINT_MPSAFE, blocker::run, &b);
  // tags: level * 10 + order of scheduling within the level
  tagged t[] = {{&log, 41}, {&log, 31}, {&log, 21}, {&log, 11}, {&log, 42}, {&log, 22}, {&log, 12}};
  unsigned flags[] = {SOFTINT_CLOCK, SOFTINT_BIO, SOFTINT_NET,   SOFTINT_SERIAL,
                      SOFTINT_CLOCK, SOFTINT_NET, SOFTINT_SERIAL};
  std::vector<void*> si;
  for (int i = 0; i < 7; ++i)
    si.push_back(softint_establish_rt(rt, flags[i] | SOFTINT_MPSAFE, tagged::run, &t[i]));
  softint_schedule_cpu(hold, rt.cpu(0));
  REQUIRE(wait_until([&] { return b.inside.load(); }));
  for (void* s : si) softint_schedule_cpu(s, rt.cpu(0));  // clock first, serial last
  b.release = true;
  REQUIRE(wait_until([&] { return log.get().size() == 7; }));
  CHECK(log.get() == std::vector<int>{11, 12, 21, 22, 31, 41, 42});
  for (void* s : si) softint_disestablish(s);
  softint_disestablish(hold);
}

TEST_CASE("a higher level scheduled by a running handler runs before lower pending ones") {
  kcont::runtime rt(kcont_test::cpus(1));
  order_log log;
  struct ctx {
    order_log* log;
    void* serial;
    void* clock2;
  } x{&log, nullptr, nullptr};
  tagged ts{&log, 1}, tc{&log, 3};
  x.serial = softint_establish_rt(rt, SOFTINT_SERIAL | SOFTINT_MPSAFE, tagged::run, &ts);
  x.clock2 = softint_establish_rt(rt, SOFTINT_CLOCK | SOFTINT_MPSAFE, tagged::run, &tc);
  void* first = softint_establish_rt(
      rt, SOFTINT_CLOCK | SOFTINT_MPSAFE,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        softint_schedule(p->clock2);  // same level: after us
        softint_schedule(p->serial);  // higher level: before clock2
        p->log->add(0);
      },
      &x);
  softint_schedule_cpu(first, rt.cpu(0));
  REQUIRE(wait_until([&] { return log.get().size() == 3; }));
  CHECK(log.get() == std::vector<int>{0, 1, 3});
  softint_disestablish(first);
  softint_disestablish(x.serial);
  softint_disestablish(x.clock2);
}

TEST_CASE("a softint scheduled while its handler runs runs again afterwards") {
  kcont::runtime rt(kcont_test::cpus(2));
  struct ctx {
    std::atomic<int> runs{0};
    std::atomic<bool> inside{false};
    std::atomic<bool> release{false};
  } x;
  void* si = softint_establish_rt(
      rt, SOFTINT_NET | SOFTINT_MPSAFE,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        if (++p->runs == 1) {
          p->inside = true;
          while (!p->release) std::this_thread::yield();
        }
      },
      &x);
  softint_schedule_cpu(si, rt.cpu(1));
  REQUIRE(wait_until([&] { return x.inside.load(); }));
  softint_schedule_cpu(si, rt.cpu(1));  // lands while the first run is inside the handler
  x.release = true;
  REQUIRE(wait_until([&] { return x.runs == 2; }));
  softint_disestablish(si);
}

TEST_CASE("a handler that re-schedules itself runs once per re-schedule") {
  kcont::runtime rt(kcont_test::cpus(2));
  struct ctx {
    void* self;
    std::atomic<int> runs{0};
  } x;
  x.self = softint_establish_rt(
      rt, SOFTINT_BIO | SOFTINT_MPSAFE,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        if (++p->runs < 100) softint_schedule(p->self);
      },
      &x);
  softint_schedule_cpu(x.self, rt.cpu(0));
  REQUIRE(wait_until([&] { return x.runs == 100; }));
  std::this_thread::sleep_for(10ms);
  CHECK(x.runs == 100);
  softint_disestablish(x.self);
}

TEST_CASE("the same softint may run on two CPUs at once") {
  kcont::runtime rt(kcont_test::cpus(2));
  struct ctx {
    std::atomic<int> inside{0};
    std::atomic<int> max_inside{0};
    std::atomic<int> done{0};
  } x;
  void* si = softint_establish_rt(
      rt, SOFTINT_NET | SOFTINT_MPSAFE,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        int now = ++p->inside;
        int m = p->max_inside;
        while (now > m && !p->max_inside.compare_exchange_weak(m, now)) {
        }
        auto until = std::chrono::steady_clock::now() + 5s;
        while (p->max_inside < 2 && std::chrono::steady_clock::now() < until)
          std::this_thread::yield();
        --p->inside;
        ++p->done;
      },
      &x);
  softint_schedule_cpu(si, rt.cpu(0));
  softint_schedule_cpu(si, rt.cpu(1));
  REQUIRE(wait_until([&] { return x.done == 2; }));
  CHECK(x.max_inside == 2);
  softint_disestablish(si);
}

TEST_CASE("handlers without SOFTINT_MPSAFE run under the kernel lock: never two at once") {
  kcont::runtime rt(kcont_test::cpus(2));
  struct ctx {
    std::atomic<int> inside{0};
    std::atomic<int> overlaps{0};
    std::atomic<int> runs{0};
  } x;
  auto fn = [](void* a) {
    auto* p = static_cast<ctx*>(a);
    if (++p->inside != 1) ++p->overlaps;
    auto until = std::chrono::steady_clock::now() + 2ms;
    while (std::chrono::steady_clock::now() < until) {
    }
    --p->inside;
    ++p->runs;
  };
  void* a = softint_establish_rt(rt, SOFTINT_NET, fn, &x);
  void* b = softint_establish_rt(rt, SOFTINT_NET, fn, &x);
  for (int i = 0; i < 20; ++i) {
    softint_schedule_cpu(a, rt.cpu(0));
    softint_schedule_cpu(b, rt.cpu(1));
    REQUIRE(wait_until([&] { return x.runs == 2 * (i + 1); }));
  }
  CHECK(x.overlaps == 0);
  softint_disestablish(a);
  softint_disestablish(b);
}

TEST_CASE("softint_disestablish waits for a running handler") {
  kcont::runtime rt(kcont_test::cpus(2));
  struct ctx {
    std::atomic<bool> inside{false};
    std::atomic<bool> finished{false};
  } x;
  void* si = softint_establish_rt(
      rt, SOFTINT_NET | SOFTINT_MPSAFE,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        p->inside = true;
        std::this_thread::sleep_for(100ms);
        p->finished = true;
      },
      &x);
  softint_schedule_cpu(si, rt.cpu(1));
  REQUIRE(wait_until([&] { return x.inside.load(); }));
  softint_disestablish(si);
  CHECK(x.finished);
}

TEST_CASE("softint_disestablish discards a pending schedule: it never runs") {
  kcont::runtime rt(kcont_test::cpus(1));
  blocker b;
  std::atomic<int> runs{0};
  void* hold = softint_establish_rt(rt, SOFTINT_SERIAL | SOFTINT_MPSAFE, blocker::run, &b);
  void* si = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, bump, &runs);
  softint_schedule_cpu(hold, rt.cpu(0));
  REQUIRE(wait_until([&] { return b.inside.load(); }));
  softint_schedule_cpu(si, rt.cpu(0));
  std::atomic<bool> returned{false};
  std::thread t([&] {
    softint_disestablish(si);  // waits until the loop has passed the pending instance
    returned = true;
  });
  std::this_thread::sleep_for(30ms);
  CHECK_FALSE(returned);
  b.release = true;
  t.join();
  CHECK(returned);
  std::this_thread::sleep_for(10ms);
  CHECK(runs == 0);
  softint_disestablish(hold);
}

TEST_CASE("a handler may disestablish its own softint; it never runs again") {
  kcont::runtime rt(kcont_test::cpus(2));
  struct ctx {
    void* self;
    std::atomic<int> runs{0};
  } x;
  x.self = softint_establish_rt(
      rt, SOFTINT_NET | SOFTINT_MPSAFE,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        ++p->runs;
        softint_schedule(p->self);      // pending again on this CPU...
        softint_disestablish(p->self);  // ...and discarded; storage freed after we return
      },
      &x);
  softint_schedule_cpu(x.self, rt.cpu(1));
  REQUIRE(wait_until([&] { return x.runs == 1; }));
  std::this_thread::sleep_for(20ms);
  CHECK(x.runs == 1);
}

TEST_CASE("a handler may disestablish another softint pending on its own CPU") {
  kcont::runtime rt(kcont_test::cpus(1));
  std::atomic<int> victim_runs{0};
  struct ctx {
    void* victim;
    std::atomic<bool> done{false};
  } x;
  x.victim = softint_establish_rt(rt, SOFTINT_CLOCK | SOFTINT_MPSAFE, bump, &victim_runs);
  void* killer = softint_establish_rt(
      rt, SOFTINT_SERIAL | SOFTINT_MPSAFE,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        softint_schedule(p->victim);      // pending below us on this CPU
        softint_disestablish(p->victim);  // must not wait for our own loop
        p->done = true;
      },
      &x);
  softint_schedule_cpu(killer, rt.cpu(0));
  REQUIRE(wait_until([&] { return x.done.load(); }));
  std::this_thread::sleep_for(10ms);
  CHECK(victim_runs == 0);
  softint_disestablish(killer);
}

TEST_CASE("disestablish on a stopped runtime removes parked instances") {
  kcont::runtime rt(kcont_test::cpus(2));
  std::atomic<int> runs{0};
  void* si = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, bump, &runs);
  rt.stop();
  softint_schedule_cpu(si, rt.cpu(0));
  softint_schedule_cpu(si, rt.cpu(1));
  CHECK(rt.pending_work() == 2);
  softint_disestablish(si);
  CHECK(rt.pending_work() == 0);
  rt.start();
  std::this_thread::sleep_for(20ms);
  CHECK(runs == 0);
}

TEST_CASE("kcont::softint: RAII, any callable") {
  kcont::runtime rt(kcont_test::cpus(2));
  std::atomic<int> runs{0};
  {
    kcont::softint s(rt, SOFTINT_NET | SOFTINT_MPSAFE, [&] { ++runs; });
    s.schedule(rt.cpu(0));
    REQUIRE(wait_until([&] { return runs == 1; }));
    s.schedule(rt.cpu(1));
    REQUIRE(wait_until([&] { return runs == 2; }));
  }
  CHECK_THROWS_AS(kcont::softint(rt, 0x77, [] {}), std::invalid_argument);
}
