// task(9) task queues on the pooled worker engine: return values, FIFO, concurrency, barriers,
// destroy drains, system queues, faults (thread creation failing, a task throwing), idle exit.
#include <books.h>
#include <doctest/doctest.h>
#include <kcont/runtime.h>
#include <kcont/task.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "../workqueue/src/engine.h"
#include "test_util.h"

using namespace std::chrono_literals;
using kcont_test::require_or_exit;
using kcont_test::wait_until;

namespace {

struct blocker {
  std::atomic<int> inside{0};
  std::atomic<bool> release{false};
  static void run(void* a) {
    auto* b = static_cast<blocker*>(a);
    ++b->inside;
    while (!b->release) std::this_thread::sleep_for(100us);
    --b->inside;
  }
};

struct counter {
  std::atomic<int> runs{0};
  static void run(void* a) { ++static_cast<counter*>(a)->runs; }
};

struct order_log {
  std::mutex mu;
  std::vector<int> seen;
};
struct logged {
  order_log* log;
  int tag;
  static void run(void* a) {
    auto* l = static_cast<logged*>(a);
    std::lock_guard<std::mutex> lk(l->log->mu);
    l->log->seen.push_back(l->tag);
  }
};

}  // namespace

TEST_CASE("task_add/task_del return 1/0 as the man page says; a deleted task never runs") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("t", 1, 0, TASKQ_MPSAFE);
  REQUIRE(tq != nullptr);
  blocker b;
  task tb = TASK_INITIALIZER(blocker::run, &b);
  counter c;
  task t;
  task_set(&t, counter::run, &c);
  CHECK(task_add(tq, &tb) == 1);
  REQUIRE(wait_until([&] { return b.inside == 1; }));
  CHECK(task_add(tq, &t) == 1);
  CHECK(task_pending(&t));
  CHECK(task_add(tq, &t) == 0);  // already queued
  CHECK(task_del(tq, &t) == 1);
  CHECK_FALSE(task_pending(&t));
  CHECK(task_del(tq, &t) == 0);   // not queued
  CHECK(task_del(tq, &tb) == 0);  // running, not queued
  b.release = true;
  taskq_barrier(tq);
  std::this_thread::sleep_for(20ms);
  CHECK(c.runs == 0);
  CHECK(task_add(tq, &t) == 1);
  REQUIRE(wait_until([&] { return c.runs == 1; }));
  taskq_destroy(tq);
}

TEST_CASE("taskq_create refuses nthreads 0 and unknown flags") {
  kcont::runtime rt(kcont_test::cpus(1));
  kcont::runtime_scope scope(rt);
  CHECK(taskq_create("z", 0, 0) == nullptr);
  CHECK(taskq_create("f", 1, 0, 0x80) == nullptr);
}

TEST_CASE("a single-threaded taskq runs tasks one at a time, in the order added") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("fifo", 1, 0, TASKQ_MPSAFE);
  order_log log;
  std::vector<logged> items(1000);
  std::vector<task> tasks(1000);
  for (int i = 0; i < 1000; ++i) {
    items[i] = {&log, i};
    task_set(&tasks[i], logged::run, &items[i]);
    task_add(tq, &tasks[i]);
  }
  taskq_destroy(tq);  // waits until every queued task ran
  std::vector<int> want(1000);
  for (int i = 0; i < 1000; ++i) want[i] = i;
  CHECK(log.seen == want);
}

TEST_CASE("a taskq with nthreads 2 runs two tasks at once, and never three") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("two", 2, 0, TASKQ_MPSAFE);
  blocker b;
  task t1 = TASK_INITIALIZER(blocker::run, &b), t2 = TASK_INITIALIZER(blocker::run, &b),
       t3 = TASK_INITIALIZER(blocker::run, &b);
  task_add(tq, &t1);
  task_add(tq, &t2);
  task_add(tq, &t3);
  REQUIRE(wait_until([&] { return b.inside == 2; }));
  std::this_thread::sleep_for(30ms);
  CHECK(b.inside == 2);
  b.release = true;
  taskq_destroy(tq);
  CHECK(b.inside == 0);
}

TEST_CASE(
    "taskq_barrier waits for the running task; from a task of the queue it does not deadlock") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("bar", 1, 0, TASKQ_MPSAFE);
  kcont_test::slow_call s;
  task t = TASK_INITIALIZER(kcont_test::slow_call::task_fn, &s);
  task_add(tq, &t);
  REQUIRE(wait_until([&] { return s.inside.load(); }));
  taskq_barrier(tq);
  CHECK(s.finished);

  struct self_barrier {
    taskq* tq;
    std::atomic<bool> done{false};
    static void run(void* a) {
      auto* p = static_cast<self_barrier*>(a);
      taskq_barrier(p->tq);  // counts itself as parked
      p->done = true;
    }
  } sb{tq};
  task t2 = TASK_INITIALIZER(self_barrier::run, &sb);
  task_add(tq, &t2);
  REQUIRE(wait_until([&] { return sb.done.load(); }));
  taskq_destroy(tq);
}

namespace {

// Runs taskq_barrier(tq) on a thread of its own; done() tells whether it has returned.
struct barrier_thread {
  std::atomic<bool> returned{false};
  std::thread th;
  explicit barrier_thread(taskq* tq)
      : th([this, tq] {
          taskq_barrier(tq);
          returned = true;
        }) {}
  ~barrier_thread() { th.join(); }
};

}  // namespace

TEST_CASE("taskq_barrier waits for the tasks queued before it, not only the running ones") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  for (unsigned nthreads : {1u, 2u, 3u}) {
    CAPTURE(nthreads);
    taskq* tq = taskq_create("barq", nthreads, 0, TASKQ_MPSAFE);
    // Every slot busy, then two slow tasks queued behind them.
    std::vector<blocker> blockers(nthreads);
    std::unique_ptr<task[]> holds(new task[nthreads]);
    for (unsigned i = 0; i < nthreads; ++i) {
      task_set(&holds[i], blocker::run, &blockers[i]);
      task_add(tq, &holds[i]);
    }
    REQUIRE(wait_until([&] {
      for (auto& b : blockers)
        if (b.inside != 1) return false;
      return true;
    }));
    kcont_test::slow_call queued[2];
    task qt[2] = {TASK_INITIALIZER(kcont_test::slow_call::task_fn, &queued[0]),
                  TASK_INITIALIZER(kcont_test::slow_call::task_fn, &queued[1])};
    task_add(tq, &qt[0]);
    task_add(tq, &qt[1]);
    {
      barrier_thread bar(tq);
      std::this_thread::sleep_for(20ms);
      CHECK_FALSE(bar.returned);  // the blockers still run
      for (auto& b : blockers) b.release = true;
      require_or_exit(wait_until([&] { return bar.returned.load(); }), "taskq_barrier returned");
      CHECK(queued[0].finished);  // queued before the barrier: run and finished
      CHECK(queued[1].finished);
    }
    // A task added after the barrier is not waited for.
    blocker late;
    task lt = TASK_INITIALIZER(blocker::run, &late);
    task_add(tq, &lt);
    REQUIRE(wait_until([&] { return late.inside == 1; }));
    {
      barrier_thread bar(tq);
      std::this_thread::sleep_for(10ms);
      CHECK_FALSE(bar.returned);  // it runs now: waited for
      late.release = true;
    }
    taskq_destroy(tq);
  }
}

TEST_CASE("two tasks of one taskq calling taskq_barrier at once do not deadlock") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  for (unsigned nthreads : {2u, 3u}) {
    CAPTURE(nthreads);
    taskq* tq = taskq_create("twobar", nthreads, 0, TASKQ_MPSAFE);
    struct both {
      taskq* tq;
      std::atomic<int> arrived{0}, returned{0};
      static void run(void* a) {
        auto* p = static_cast<both*>(a);
        ++p->arrived;
        while (p->arrived < 2) std::this_thread::yield();  // both inside, then both barrier
        taskq_barrier(p->tq);
        ++p->returned;
      }
    } b{tq};
    task t1 = TASK_INITIALIZER(both::run, &b);
    task t2 = TASK_INITIALIZER(both::run, &b);
    task_add(tq, &t1);
    task_add(tq, &t2);
    kcont_test::slow_call behind;  // queued behind the two: a third slot may run it meanwhile
    task bt = TASK_INITIALIZER(kcont_test::slow_call::task_fn, &behind);
    task_add(tq, &bt);
    require_or_exit(wait_until([&] { return b.returned == 2; }), "both barriers returned");
    taskq_barrier(tq);
    CHECK(behind.finished);
    taskq_destroy(tq);
  }
}

TEST_CASE("taskq_barrier from a task of a 2-thread taskq waits for what the other slot runs") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("selfbar2", 2, 0, TASKQ_MPSAFE);
  struct caller {
    taskq* tq;
    kcont_test::slow_call* earlier;
    std::atomic<bool> returned{false}, saw_finished{false};
    static void run(void* a) {
      auto* p = static_cast<caller*>(a);
      while (!p->earlier->inside) std::this_thread::yield();
      taskq_barrier(p->tq);
      p->saw_finished = p->earlier->finished.load();
      p->returned = true;
    }
  };
  kcont_test::slow_call s;
  task st = TASK_INITIALIZER(kcont_test::slow_call::task_fn, &s);
  caller c{tq, &s};
  task ct = TASK_INITIALIZER(caller::run, &c);
  task_add(tq, &st);
  task_add(tq, &ct);
  require_or_exit(wait_until([&] { return c.returned.load(); }), "self barrier returned");
  CHECK(c.saw_finished);
  taskq_destroy(tq);
}

TEST_CASE("taskq_del_barrier removes a queued task, or waits for it to finish running") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("delbar", 1, 0, TASKQ_MPSAFE);
  kcont_test::slow_call s;
  task t = TASK_INITIALIZER(kcont_test::slow_call::task_fn, &s);
  counter c;
  task queued = TASK_INITIALIZER(counter::run, &c);
  task_add(tq, &t);
  REQUIRE(wait_until([&] { return s.inside.load(); }));
  task_add(tq, &queued);
  taskq_del_barrier(tq, &queued);  // was queued: removed, no wait for it
  CHECK_FALSE(task_pending(&queued));
  taskq_del_barrier(tq, &t);  // running: waits
  CHECK(s.finished);
  taskq_destroy(tq);
  CHECK(c.runs == 0);
}

TEST_CASE("taskq_destroy with work queued drains it: nothing is dropped") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("drain", 1, 0, TASKQ_MPSAFE);
  blocker b;
  task tb = TASK_INITIALIZER(blocker::run, &b);
  task_add(tq, &tb);
  REQUIRE(wait_until([&] { return b.inside == 1; }));
  counter c;
  std::vector<task> ts(100);
  for (auto& t : ts) {
    task_set(&t, counter::run, &c);
    task_add(tq, &t);
  }
  std::thread releaser([&] {
    std::this_thread::sleep_for(30ms);
    b.release = true;
  });
  taskq_destroy(tq);
  CHECK(c.runs == 100);
  releaser.join();
}

TEST_CASE("systq holds the kernel lock and keeps order; systqmp does not take it") {
  order_log log;
  std::vector<logged> items(50);
  std::vector<task> tasks(50);
  for (int i = 0; i < 50; ++i) {
    items[i] = {&log, i};
    task_set(&tasks[i], logged::run, &items[i]);
    CHECK(task_add(systq, &tasks[i]) == 1);
  }
  taskq_barrier(systq);
  REQUIRE(wait_until([&] {
    std::lock_guard<std::mutex> lk(log.mu);
    return log.seen.size() == 50;
  }));
  std::vector<int> want(50);
  for (int i = 0; i < 50; ++i) want[i] = i;
  CHECK(log.seen == want);

  struct lock_probe {
    std::atomic<int> held_elsewhere{-1};
    std::atomic<bool> got{false};
    std::thread helper;  // joined by the test: it may outlive the task
    static void run(void* a) {
      auto* p = static_cast<lock_probe*>(a);
      p->helper = std::thread([p] {
        kernel_lock();  // blocks while the task holds the kernel lock
        p->got = true;
        kernel_unlock();
      });
      std::this_thread::sleep_for(20ms);
      p->held_elsewhere = p->got ? 0 : 1;
    }
  };
  lock_probe on_systq, on_mp;
  task a = TASK_INITIALIZER(lock_probe::run, &on_systq),
       b = TASK_INITIALIZER(lock_probe::run, &on_mp);
  task_add(systq, &a);  // one after the other: the kernel lock is one for the process
  REQUIRE(wait_until([&] { return on_systq.held_elsewhere != -1; }));
  taskq_barrier(systq);
  on_systq.helper.join();
  task_add(systqmp, &b);
  REQUIRE(wait_until([&] { return on_mp.held_elsewhere != -1; }));
  taskq_barrier(systqmp);
  on_mp.helper.join();
  CHECK(on_systq.held_elsewhere == 1);
  CHECK(on_mp.held_elsewhere == 0);
}

TEST_CASE("fault: worker creation fails; the work is held and runs once creation succeeds") {
  kcont::runtime rt(kcont_test::cpus(1));
  kcont::runtime_scope scope(rt);
  auto& eng = kcont::detail::engine_of(rt);
  eng.fail_next_creations = 5;
  taskq* tq = taskq_create("fail", 1, 0, TASKQ_MPSAFE);
  counter c;
  std::vector<task> ts(10);
  for (auto& t : ts) {
    task_set(&t, counter::run, &c);
    task_add(tq, &t);  // never blocks, never creates a thread itself
  }
  REQUIRE(wait_until([&] { return c.runs == 10; }));
  CHECK(eng.stats().thread_create_failures >= 5);
  taskq_destroy(tq);
}

TEST_CASE("fault: a task that throws is reported and abandoned; the queue goes on") {
  kcont::runtime rt(kcont_test::cpus(1));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("throw", 1, 0, TASKQ_MPSAFE);
  task bad =
      TASK_INITIALIZER([](void*) { throw std::runtime_error("task failed on purpose"); }, nullptr);
  counter c;
  task good = TASK_INITIALIZER(counter::run, &c);
  task_add(tq, &bad);
  task_add(tq, &good);
  REQUIRE(wait_until([&] { return c.runs == 1; }));
  taskq_destroy(tq);
}

TEST_CASE("idle workers exit after the idle timeout, except the last of each pool") {
  kcont::runtime rt(kcont_test::cpus(1));
  kcont::runtime_scope scope(rt);
  auto& eng = kcont::detail::engine_of(rt);
  eng.idle_timeout = 50ms;
  taskq* tq = taskq_create("wide", 4, 0, TASKQ_MPSAFE);
  blocker b;
  std::vector<task> ts(4);
  for (auto& t : ts) {
    task_set(&t, blocker::run, &b);
    task_add(tq, &t);
  }
  REQUIRE(wait_until([&] { return b.inside == 4; }));
  CHECK(eng.stats().workers_now >= 4);
  b.release = true;
  taskq_barrier(tq);
  REQUIRE(wait_until([&] { return eng.stats().workers_now == 1; }, 5s));
  CHECK(eng.stats().idle_now == 1);
  taskq_destroy(tq);
}

TEST_CASE("stress: every add runs exactly once or is deleted, under 4 adding threads") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("stress", 3, 0, TASKQ_MPSAFE);
  constexpr int kThreads = 4, kTasks = 64;
  const int rounds = 20000;
  struct slot {
    task t;
    std::atomic<long> runs{0};
    long adds = 0, dels = 0;  // task_add == 1 / task_del == 1, by the slot's own thread
  };
  std::vector<std::vector<slot>> slots;
  for (int i = 0; i < kThreads; ++i) slots.emplace_back(kTasks);
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      kcont::runtime_scope s(rt);
      for (auto& sl : slots[th])
        task_set(
            &sl.t, [](void* a) { ++static_cast<slot*>(a)->runs; }, &sl);
      unsigned x = th + 1;
      for (int i = 0; i < rounds; ++i) {
        x = x * 1103515245 + 12345;
        slot& sl = slots[th][(x >> 8) % kTasks];
        if ((x >> 20) % 16 == 0)
          sl.dels += task_del(tq, &sl.t);
        else
          sl.adds += task_add(tq, &sl.t);
        // Let the workers run amid the adds (2 cores, 4 adders: they would starve).
        if (i % 128 == 0) std::this_thread::sleep_for(200us);
      }
    });
  }
  for (auto& t : threads) t.join();
  taskq_destroy(tq);
  torture::books books{"task(9)"};
  unsigned index = 0;
  for (auto& v : slots)
    for (auto& sl : v) books.add_object(index++, sl.adds, sl.runs, sl.dels, "added", "deleted");
  MESSAGE(books.summary());
  CHECK_MESSAGE(books.balanced(), books.summary());
}

// Spin-then-park for workers (issue 18, item 5): a worker that just served its instance polls
// for runtime_config::spin_before_sleep before it waits on its condition variable, so a task
// added within the window is handed over without a futex wake. Off by default.
TEST_CASE("spin_before_sleep: a worker polling after its last task takes the next one") {
  auto run = [](std::chrono::microseconds spin, std::uint64_t& hits) {
    kcont::runtime_config cfg = kcont_test::cpus(1);
    cfg.spin_before_sleep = spin;
    kcont::runtime rt(cfg);
    kcont::runtime_scope scope(rt);
    taskq* tq = taskq_create("spin", 1, 0, TASKQ_MPSAFE);
    REQUIRE(tq != nullptr);
    std::atomic<int> runs{0};
    task t;
    task_set(
        &t, [](void* a) { ++*static_cast<std::atomic<int>*>(a); }, &runs);
    auto& eng = kcont::detail::engine_of(rt);
    const std::uint64_t before = eng.stats().spin_hits;
    constexpr int kRounds = 200;
    for (int i = 0; i < kRounds; ++i) {
      REQUIRE(task_add(tq, &t) == 1);
      REQUIRE(wait_until([&] { return runs.load() == i + 1; }));
      const auto gap_end = std::chrono::steady_clock::now() + 200us;
      while (std::chrono::steady_clock::now() < gap_end) {
      }
    }
    hits = eng.stats().spin_hits - before;
    CHECK(runs.load() == kRounds);
    taskq_destroy(tq);
  };
  std::uint64_t hits = 0;
  run(std::chrono::microseconds(10000), hits);
  MESSAGE("spin 10 ms: " << hits << " hand-overs to a polling worker in 200 rounds");
  CHECK(hits >= 150);
  run(std::chrono::microseconds(0), hits);
  CHECK(hits == 0);
}
