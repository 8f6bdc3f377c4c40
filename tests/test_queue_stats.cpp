// Issue 21: per-queue statistics (<kcont/queue_stats.h>): every taskq, workqueue(9) CPU queue
// and kcont queue of a runtime, counted exactly against known workloads; sampled wait and run
// times only while the runtime times its queues.
#include "test_util.h"

#include <doctest/doctest.h>
#include <kcont/kcont.h>
#include <kcont/queue_stats.h>
#include <kcont/runtime.h>
#include <kcont/task.h>
#include <kcont/taskctx.h>
#include <kcont/workqueue.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using kcont_test::cpus;
using kcont_test::wait_until;
using namespace std::chrono_literals;

namespace {

std::vector<kcont::queue_stats> named(kcont::runtime& rt, const std::string& kind,
                                      const std::string& name) {
  std::vector<kcont::queue_stats> out;
  for (auto& q : kcont::queues(rt))
    if (q.kind == kind && q.name == name) out.push_back(q);
  return out;
}

kcont::queue_stats one(kcont::runtime& rt, const std::string& kind, const std::string& name) {
  auto v = named(rt, kind, name);
  REQUIRE(v.size() == 1);
  return v[0];
}

// A gate a task waits at until the test opens it.
struct gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false, entered = false;
  void wait() {
    std::unique_lock<std::mutex> lk(mu);
    entered = true;
    cv.notify_all();
    cv.wait(lk, [&] { return open; });
  }
  void wait_entered() {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return entered; });
  }
  void release() {
    std::lock_guard<std::mutex> lk(mu);
    open = true;
    cv.notify_all();
  }
};

// A thread inside tc, held at a gate by its task, so that other dispatches queue behind it.
struct held_inside {
  explicit held_inside(taskctx& tc) {
    task_set(
        &holder, [](void* a) { static_cast<gate*>(a)->wait(); }, &g);
    inside = std::thread([this, &tc] { task_dispatch(&tc, &holder); });
    g.wait_entered();
  }
  void release() {
    g.release();
    inside.join();
  }
  gate g;
  task holder;
  std::thread inside;
};

}  // namespace

TEST_CASE("duration_histogram: buckets tile the ticks, a quarter of a power of two wide") {
  using h = kcont::duration_histogram;
  CHECK(h::bucket_of(0) == 0);
  CHECK(h::bucket_of(3) == 3);
  unsigned last = 0;
  for (std::uint64_t t = 0; t < (1u << 20); t = t < 64 ? t + 1 : t + t / 7) {
    const unsigned b = h::bucket_of(t);
    CHECK(b >= last);  // monotonic
    last = b;
    CHECK(h::bucket_low(b) <= t);
    CHECK(t < h::bucket_high(b));
    if (b >= 4) CHECK(h::bucket_high(b) - h::bucket_low(b) <= h::bucket_low(b) / 4);
  }
  for (unsigned b = 0; b + 1 < h::kBuckets; ++b) CHECK(h::bucket_high(b) == h::bucket_low(b + 1));
  CHECK(h::bucket_of(~std::uint64_t{0}) == h::kBuckets - 1);  // the longest land in the last

  h x;
  CHECK(x.samples() == 0);
  CHECK(x.percentile(0.99).count() == 0);
  x.counts[h::bucket_of(100)] = 98;
  x.counts[h::bucket_of(5000)] = 2;
  CHECK(x.samples() == 100);
  CHECK(x.percentile(0.5).count() == static_cast<long>(h::bucket_high(h::bucket_of(100))));
  CHECK(x.percentile(0.98).count() == static_cast<long>(h::bucket_high(h::bucket_of(100))));
  CHECK(x.percentile(0.99).count() == static_cast<long>(h::bucket_high(h::bucket_of(5000))));
  x.ns_per_tick = 0.5;
  CHECK(x.percentile(1.0).count() == static_cast<long>(h::bucket_high(h::bucket_of(5000)) / 2));
}

TEST_CASE("taskq: enqueued, runs, depth and max depth exact, task_del withdraws") {
  kcont::runtime rt(cpus(2));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("qs-taskq", 1, 0, TASKQ_MPSAFE);
  REQUIRE(tq != nullptr);
  kcont::queue_stats s = one(rt, "taskq", "qs-taskq");
  CHECK(s.enqueued == 0);
  CHECK(s.runs == 0);
  CHECK(s.cpu == -1);
  CHECK_FALSE(s.timed);

  gate g;
  task blocker;
  task_set(
      &blocker, [](void* a) { static_cast<gate*>(a)->wait(); }, &g);
  std::atomic<int> ran{0};
  std::vector<task> tasks(10);
  for (auto& t : tasks)
    task_set(
        &t, [](void* a) { static_cast<std::atomic<int>*>(a)->fetch_add(1); }, &ran);
  REQUIRE(task_add(tq, &blocker) == 1);
  g.wait_entered();  // the one thread is inside the blocker: the rest queue up
  for (auto& t : tasks) REQUIRE(task_add(tq, &t) == 1);
  CHECK(task_add(tq, &tasks[0]) == 0);  // already queued: not counted again
  s = one(rt, "taskq", "qs-taskq");
  CHECK(s.enqueued == 11);
  CHECK(s.depth == 10);
  CHECK(s.max_depth == 10);
  CHECK(s.runs == 0);
  REQUIRE(task_del(tq, &tasks[3]) == 1);
  s = one(rt, "taskq", "qs-taskq");
  CHECK(s.depth == 9);
  CHECK(s.enqueued == 11);
  g.release();
  taskq_barrier(tq);
  CHECK(ran.load() == 9);
  s = one(rt, "taskq", "qs-taskq");
  CHECK(s.runs == 10);  // the blocker and nine
  CHECK(s.depth == 0);
  CHECK(s.max_depth == 10);
  // No samples while the runtime does not time its queues.
  CHECK(s.wait.samples() == 0);
  CHECK(s.run.samples() == 0);
  taskq_destroy(tq);
  CHECK(named(rt, "taskq", "qs-taskq").empty());  // gone with its taskq
}

TEST_CASE("workqueue(9) WQ_PERCPU: one record per CPU, each counting its own CPU's items") {
  kcont::runtime rt(cpus(2));
  kcont::runtime_scope scope(rt);
  std::atomic<int> ran{0};
  workqueue* wq = nullptr;
  REQUIRE(workqueue_create(
              &wq, "qs-wq", [](work*, void* a) { static_cast<std::atomic<int>*>(a)->fetch_add(1); },
              &ran, PRI_NONE, 0, WQ_MPSAFE | WQ_PERCPU) == 0);
  std::vector<work> items(30);
  for (int i = 0; i < 30; ++i) workqueue_enqueue(wq, &items[i], rt.cpu(i < 10 ? 0 : 1));
  workqueue_wait(wq, &items[29]);
  REQUIRE(wait_until([&] { return ran.load() == 30; }));
  auto v = named(rt, "workqueue", "qs-wq");
  REQUIRE(v.size() == 2);
  std::uint64_t enq[2] = {};
  for (auto& q : v) {
    REQUIRE((q.cpu == 0 || q.cpu == 1));
    enq[q.cpu] = q.enqueued;
  }
  CHECK(enq[0] == 10);
  CHECK(enq[1] == 20);
  // A run is counted once its item returned; the last one may still be on its way out.
  REQUIRE(wait_until([&] {
    std::uint64_t n = 0;
    for (auto& q : named(rt, "workqueue", "qs-wq")) n += q.runs;
    return n == 30;
  }));
  workqueue_destroy(wq);
  CHECK(named(rt, "workqueue", "qs-wq").empty());
}

TEST_CASE("kcont queues: the predefined ones by name and CPU; continuations and hops counted") {
  kcont::runtime rt(cpus(2));
  kcont::runtime_scope scope(rt);
  std::atomic<int> ran{0};
  kcont_t* kc = kcont_create(
      wq_softnet, nullptr,
      [](void* a, kcont_t*) { static_cast<std::atomic<int>*>(a)->fetch_add(1); }, &ran, 0);
  REQUIRE(kc != nullptr);
  const auto before = named(rt, "kcont", "wq_softnet");
  REQUIRE(before.size() == 2);  // one per CPU
  for (int i = 0; i < 25; ++i) {
    REQUIRE(kcont_schedule(kc, rt.cpu(1), 0) == 0);
    REQUIRE(wait_until([&] { return ran.load() == i + 1; }));
  }
  kcont_halt(kc);
  std::uint64_t runs1 = 0, enq1 = 0, enq0 = 0;
  REQUIRE(wait_until([&] {
    for (auto& q : named(rt, "kcont", "wq_softnet")) {
      if (q.cpu == 1) runs1 = q.runs, enq1 = q.enqueued;
      if (q.cpu == 0) enq0 = q.enqueued;
    }
    return runs1 == 25;
  }));
  CHECK(enq1 == 25);
  CHECK(enq0 == 0);
  kcont_destroy(kc);

  // A thread queue appears once used, by its name; a hop counts as one of its tasks.
  std::atomic<int> hopped{0};
  kcont::detail::kcont_hop h;
  h.fn = [](void* a) { static_cast<std::atomic<int>*>(a)->fetch_add(1); };
  h.arg = &hopped;
  REQUIRE(kcont::detail::kcont_hop_schedule(&h, rt, wq_prihigh, rt.cpu(0)) == 0);
  REQUIRE(wait_until([&] { return hopped.load() == 1; }));
  kcont::detail::kcont_hop_done(&h, true);
  REQUIRE(wait_until([&] {
    for (auto& q : named(rt, "kcont", "wq_prihigh"))
      if (q.cpu == 0 && q.runs == 1 && q.enqueued == 1) return true;
    return false;
  }));
  // Its drains run on a workqueue(9) of the same name.
  CHECK(named(rt, "workqueue", "wq_prihigh").size() == 2);
}

TEST_CASE("queue_timing: one task in 64 timed; run times no shorter than the tasks took") {
  kcont::runtime_config cfg = cpus(2);
  cfg.queue_timing = true;
  kcont::runtime rt(cfg);
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("qs-timed", 1, 0, TASKQ_MPSAFE);
  REQUIRE(tq != nullptr);
  task t;
  task_set(
      &t, [](void*) { std::this_thread::sleep_for(200us); }, nullptr);
  for (int i = 0; i < 256; ++i) {
    REQUIRE(task_add(tq, &t) == 1);
    taskq_barrier(tq);
  }
  const kcont::queue_stats s = one(rt, "taskq", "qs-timed");
  CHECK(s.timed);
  CHECK(s.runs == 256);
  CHECK(s.run.samples() == 4);   // every 64th start
  CHECK(s.wait.samples() == 4);  // every 64th enqueue (each ran before the next was added)
  CHECK(s.run.percentile(0.0) >= 200us);
  CHECK(s.run.percentile(1.0) < 10s);
  CHECK(s.wait.percentile(1.0) < 10s);
  taskq_destroy(tq);
}

TEST_CASE("queues() while queues come and go on other threads: consistent, never torn") {
  kcont::runtime rt(cpus(2));
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    kcont::runtime_scope scope(rt);
    std::atomic<int> ran{0};
    while (!stop.load()) {
      taskq* tq = taskq_create("qs-churn", 2, 0, TASKQ_MPSAFE);
      REQUIRE(tq != nullptr);
      task ts[8];
      for (auto& t : ts) {
        task_set(
            &t, [](void* a) { static_cast<std::atomic<int>*>(a)->fetch_add(1); }, &ran);
        task_add(tq, &t);
      }
      taskq_destroy(tq);
    }
  });
  int seen = 0;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (seen < 200 && std::chrono::steady_clock::now() < until) {
    for (auto& q : kcont::queues(rt)) {
      if (q.name != "qs-churn") continue;
      ++seen;
      CHECK(q.enqueued <= 8);
      CHECK(q.runs + q.depth <= q.enqueued);
      CHECK(q.max_depth <= 8);
    }
  }
  stop = true;
  churn.join();
  CHECK(seen >= 200);
}

TEST_CASE("taskctx_stats: direct and queued dispatches, withdrawals and barriers counted") {
  kcont::runtime rt(cpus(2));
  taskctx tc = TASKCTX_INITIALIZER(tc, 0);
  std::atomic<int> ran{0};
  auto bump = [](void* a) { static_cast<std::atomic<int>*>(a)->fetch_add(1); };
  task quick;
  task_set(&quick, bump, &ran);
  task_dispatch(&tc, &quick);  // before any observer: not counted
  CHECK(named(rt, "taskctx", "qs-ctx").empty());
  {
    kcont::taskctx_stats obs(rt, &tc, "qs-ctx");
    for (int i = 0; i < 20; ++i) task_dispatch(&tc, &quick);  // the context is free: run at once
    kcont::queue_stats s = one(rt, "taskctx", "qs-ctx");
    CHECK(s.enqueued == 20);
    CHECK(s.runs == 20);
    CHECK(s.depth == 0);
    CHECK(s.max_depth == 1);

    // A thread inside (held at a gate): the others' tasks queue behind it.
    held_inside held(tc);
    std::vector<task> queued(5);
    for (auto& t : queued) {
      task_set(&t, bump, &ran);
      task_dispatch(&tc, &t);  // queued, returns at once
    }
    s = one(rt, "taskctx", "qs-ctx");
    CHECK(s.enqueued == 26);
    CHECK(s.depth == 5);
    CHECK(s.runs == 20);
    CHECK(kcont::detail::taskctx_withdraw(&tc, &queued[2]));
    std::thread barrier([&] { taskctx_barrier(&tc); });  // its marker is not a task
    REQUIRE(wait_until([&] {
      std::lock_guard<std::mutex> lk(tc.tc_mtx);
      return tc.tc_worklist.size() == 5;  // 4 tasks + the marker
    }));
    s = one(rt, "taskctx", "qs-ctx");
    CHECK(s.depth == 4);
    held.release();
    barrier.join();
    s = one(rt, "taskctx", "qs-ctx");
    CHECK(s.runs == 25);  // 20 + the holder + 4
    CHECK(s.depth == 0);
    CHECK(s.max_depth == 5);
    CHECK(ran.load() == 1 + 20 + 4);
  }
  CHECK(named(rt, "taskctx", "qs-ctx").empty());  // gone with its observer
  task_dispatch(&tc, &quick);                     // unobserved again: still runs
  CHECK(ran.load() == 26);
  CHECK(tc.tc_stats.load() == nullptr);
}

TEST_CASE("taskctx_stats: an observer attached while tasks wait counts them in its depth") {
  kcont::runtime_config cfg = cpus(2);
  cfg.queue_timing = true;
  kcont::runtime rt(cfg);
  taskctx tc = TASKCTX_INITIALIZER(tc, 0);
  held_inside held(tc);
  std::atomic<int> ran{0};
  std::vector<task> queued(3);
  for (auto& t : queued) {
    task_set(
        &t, [](void* a) { static_cast<std::atomic<int>*>(a)->fetch_add(1); }, &ran);
    task_dispatch(&tc, &t);
  }
  kcont::taskctx_stats obs(rt, &tc, "qs-late");
  kcont::queue_stats s = one(rt, "taskctx", "qs-late");
  CHECK(s.depth == 3);
  CHECK(s.enqueued == 0);
  CHECK(s.timed);
  held.release();
  s = one(rt, "taskctx", "qs-late");
  CHECK(s.depth == 0);
  CHECK(s.runs == 3);  // the holder started before the observer: not counted
  // Timed: every 64th start sampled.
  task quick;
  task_set(
      &quick, [](void* a) { static_cast<std::atomic<int>*>(a)->fetch_add(1); }, &ran);
  for (int i = 0; i < 125; ++i) task_dispatch(&tc, &quick);
  s = one(rt, "taskctx", "qs-late");
  CHECK(s.runs == 128);
  CHECK(s.run.samples() == 2);
}
