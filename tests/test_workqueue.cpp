// workqueue(9) on the pooled engine: create errors, per-CPU placement, order, wait, destroy.
#include <doctest/doctest.h>
#include <kcont/runtime.h>
#include <kcont/workqueue.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

using namespace std::chrono_literals;
using kcont_test::wait_until;

namespace {

struct item {
  work wk;
  int tag = 0;
  std::atomic<int> runs{0};
  std::string thread_name;
};

struct sink {
  std::mutex mu;
  std::vector<int> order;
  static void run(work* wk, void* arg) {
    auto* it = reinterpret_cast<item*>(wk);  // wk is the first member of item
    auto* s = static_cast<sink*>(arg);
    char name[16] = {};
    pthread_getname_np(pthread_self(), name, sizeof name);
    std::lock_guard<std::mutex> lk(s->mu);
    it->thread_name = name;
    s->order.push_back(it->tag);
    ++it->runs;
  }
};

}  // namespace

TEST_CASE("workqueue_create refuses NULL func, bad pri and unknown flags") {
  kcont::runtime rt(kcont_test::cpus(1));
  kcont::runtime_scope scope(rt);
  workqueue* wq = nullptr;
  CHECK(workqueue_create(&wq, "x", nullptr, nullptr, PRI_NONE, 0, 0) == EINVAL);
  CHECK(workqueue_create(&wq, "x", sink::run, nullptr, 7, 0, 0) == EINVAL);
  CHECK(workqueue_create(&wq, "x", sink::run, nullptr, PRI_HIGH, 0, 0x1000) == EINVAL);
  CHECK(workqueue_create(&wq, "x", sink::run, nullptr, PRI_HIGH, 0, WQ_MPSAFE) == 0);
  workqueue_destroy(wq);
}

TEST_CASE("WQ_PERCPU: work enqueued for a CPU runs on a worker of that CPU") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  sink s;
  workqueue* wq = nullptr;
  REQUIRE(workqueue_create(&wq, "pc", sink::run, &s, PRI_MEDHIGH, 0, WQ_MPSAFE | WQ_PERCPU) == 0);
  item a, b;
  workqueue_enqueue(wq, &a.wk, rt.cpu(1));
  workqueue_enqueue(wq, &b.wk, rt.cpu(0));
  workqueue_wait(wq, &a.wk);
  workqueue_wait(wq, &b.wk);
  CHECK(a.runs == 1);
  CHECK(b.runs == 1);
  CHECK(a.thread_name.rfind("kcont/w1", 0) == 0);  // worker of CPU 1's pool
  CHECK(b.thread_name.rfind("kcont/w0", 0) == 0);
  workqueue_destroy(wq);
}

TEST_CASE("a queue runs its items one at a time, in the order enqueued; destroy drains") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  sink s;
  workqueue* wq = nullptr;
  REQUIRE(workqueue_create(&wq, "fifo", sink::run, &s, PRI_LOW, 0, WQ_MPSAFE) == 0);
  std::vector<item> items(500);
  for (int i = 0; i < 500; ++i) {
    items[i].tag = i;
    workqueue_enqueue(wq, &items[i].wk, nullptr);
  }
  workqueue_destroy(wq);  // waits until all 500 ran
  std::vector<int> want(500);
  for (int i = 0; i < 500; ++i) want[i] = i;
  CHECK(s.order == want);
}

TEST_CASE("workqueue_wait waits for a running item, and returns at once for an idle one") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  struct slow {
    work wk;
    std::atomic<bool> inside{false}, finished{false};
  } x;
  workqueue* wq = nullptr;
  REQUIRE(workqueue_create(
              &wq, "wait",
              [](work* wk, void*) {
                auto* p = reinterpret_cast<slow*>(wk);
                p->inside = true;
                std::this_thread::sleep_for(50ms);
                p->finished = true;
              },
              nullptr, PRI_MEDLOW, 0, WQ_MPSAFE | WQ_PERCPU) == 0);
  workqueue_wait(wq, &x.wk);  // never enqueued: returns
  workqueue_enqueue(wq, &x.wk, rt.cpu(0));
  REQUIRE(wait_until([&] { return x.inside.load(); }));
  workqueue_wait(wq, &x.wk);
  CHECK(x.finished);
  workqueue_destroy(wq);
}

TEST_CASE("an item may re-enqueue itself once it has started") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  struct again {
    work wk;
    workqueue* wq;
    std::atomic<int> runs{0};
  } x;
  workqueue* wq = nullptr;
  REQUIRE(workqueue_create(
              &wq, "again",
              [](work* wk, void*) {
                auto* p = reinterpret_cast<again*>(wk);
                if (++p->runs < 10) workqueue_enqueue(p->wq, &p->wk, nullptr);
              },
              nullptr, PRI_HIGH, 0, WQ_MPSAFE) == 0);
  x.wq = wq;
  workqueue_enqueue(wq, &x.wk, nullptr);
  REQUIRE(wait_until([&] { return x.runs == 10; }));
  workqueue_destroy(wq);
  CHECK(x.runs == 10);
}

namespace {
struct sleeper {
  work wk;
  int tag = 0;
  struct shared* sh = nullptr;
};
struct shared {
  std::atomic<int> inside{0}, max_inside{0}, done{0};
  std::mutex mu;
  std::vector<int> starts;
  bool use_kpause = true;
};
void sleepy(work* wk, void*) {
  auto* s = reinterpret_cast<sleeper*>(wk);
  shared& sh = *s->sh;
  {
    std::lock_guard<std::mutex> lk(sh.mu);
    sh.starts.push_back(s->tag);
  }
  int now = ++sh.inside;
  int m = sh.max_inside;
  while (now > m && !sh.max_inside.compare_exchange_weak(m, now)) {
  }
  if (sh.use_kpause)
    kpause("test", false, 50, nullptr);  // 50 ticks = 50 ms: a blocking point
  else
    std::this_thread::sleep_for(50ms);  // not a kcont blocking point
  --sh.inside;
  ++sh.done;
}

int run_sleepers(kcont::runtime& rt, int flags, bool use_kpause, std::vector<int>& starts) {
  shared sh;
  sh.use_kpause = use_kpause;
  workqueue* wq = nullptr;
  REQUIRE(workqueue_create(&wq, "sleepy", sleepy, nullptr, PRI_MEDHIGH, 0, flags) == 0);
  std::vector<sleeper> items(6);
  for (int i = 0; i < 6; ++i) {
    items[i].tag = i;
    items[i].sh = &sh;
    workqueue_enqueue(wq, &items[i].wk, rt.cpu(0));
  }
  workqueue_destroy(wq);
  CHECK(sh.done == 6);
  starts = sh.starts;
  return sh.max_inside;
}
}  // namespace

TEST_CASE("WQ_ELASTIC: while an item sleeps in kpause, the next items start on other workers") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  std::vector<int> starts;
  const std::vector<int> in_order = {0, 1, 2, 3, 4, 5};
  CHECK(run_sleepers(rt, WQ_MPSAFE | WQ_PERCPU | WQ_ELASTIC, true, starts) >= 2);
  CHECK(starts == in_order);  // items still start in the order enqueued
  CHECK(run_sleepers(rt, WQ_MPSAFE | WQ_PERCPU, true, starts) == 1);  // fixed: one at a time
  CHECK(starts == in_order);
  // A raw sleep is found by the blocking watch (test_blocking_watch.cpp tells more)...
  CHECK(run_sleepers(rt, WQ_MPSAFE | WQ_PERCPU | WQ_ELASTIC, false, starts) >= 2);
  CHECK(starts == in_order);
}

TEST_CASE("WQ_ELASTIC with the blocking watch off: a sleep kcont cannot see keeps the queue") {
  kcont::runtime_config c = kcont_test::cpus(2);
  c.blocking_threshold = std::chrono::microseconds(0);
  kcont::runtime rt(c);
  kcont::runtime_scope scope(rt);
  std::vector<int> starts;
  CHECK(run_sleepers(rt, WQ_MPSAFE | WQ_PERCPU | WQ_ELASTIC, true, starts) >= 2);  // declared
  CHECK(run_sleepers(rt, WQ_MPSAFE | WQ_PERCPU | WQ_ELASTIC, false, starts) == 1);
}

TEST_CASE("kpause refuses an unbounded pause and releases its mutex while sleeping") {
  kcont::runtime rt(kcont_test::cpus(1));
  kcont::runtime_scope scope(rt);
  CHECK(kpause("x", false, 0, nullptr) == EINVAL);
  kmutex_t m;
  mutex_init(&m, MUTEX_DEFAULT, IPL_NONE);
  mutex_enter(&m);
  std::atomic<bool> got{false};
  std::thread t([&] {
    std::this_thread::sleep_for(5ms);
    mutex_enter(&m);  // possible only while kpause has released it
    got = true;
    mutex_exit(&m);
  });
  CHECK(kpause("x", false, 300, &m) == EWOULDBLOCK);
  CHECK(got);  // the other thread took the mutex while kpause slept
  CHECK(mutex_owned(&m));
  mutex_exit(&m);
  t.join();
}
