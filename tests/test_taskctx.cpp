// taskctx (OpenBSD 2015 diff): direct dispatch, serialisation, no task lost in the
// enter/leave window, copy-before-run, barriers.
#include <doctest/doctest.h>
#include <kcont/taskctx.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "test_util.h"

using namespace std::chrono_literals;
using kcont_test::wait_until;

namespace {

struct record {
  std::atomic<int> runs{0};
  std::atomic<std::thread::id> ran_on{};
  static void run(void* a) {
    auto* r = static_cast<record*>(a);
    r->ran_on = std::this_thread::get_id();
    ++r->runs;
  }
};

// A task that holds the context until released.
struct holder {
  std::atomic<bool> inside{false}, release{false};
  static void run(void* a) {
    auto* h = static_cast<holder*>(a);
    h->inside = true;
    while (!h->release) std::this_thread::yield();
  }
};

}  // namespace

TEST_CASE("initialisers: TASK_INITIALIZER and TASKCTX_INITIALIZER") {
  record r;
  task t = TASK_INITIALIZER(record::run, &r);
  taskctx tc = TASKCTX_INITIALIZER(tc, 0);
  task_dispatch(&tc, &t);
  CHECK(r.runs == 1);
}

TEST_CASE("a free taskctx runs the task at once, in the caller's thread") {
  taskctx tc;
  taskctx_init(&tc, 0);
  record r;
  task t;
  task_set(&t, record::run, &r);
  task_dispatch(&tc, &t);
  CHECK(r.runs == 1);
  CHECK(r.ran_on.load() == std::this_thread::get_id());
  taskctx_barrier(&tc);  // nothing running: returns at once
}

TEST_CASE("a contender queues and returns; the thread inside runs the task before leaving") {
  taskctx tc;
  taskctx_init(&tc, 0);
  holder h;
  task th = TASK_INITIALIZER(holder::run, &h);
  std::thread::id inside_id;
  std::thread inside([&] {
    inside_id = std::this_thread::get_id();
    task_dispatch(&tc, &th);
  });
  REQUIRE(wait_until([&] { return h.inside.load(); }));
  record r;
  task t = TASK_INITIALIZER(record::run, &r);
  task_dispatch(&tc, &t);  // contended: queued, not run here
  task_dispatch(&tc, &t);  // already queued: not queued twice
  CHECK(r.runs == 0);
  h.release = true;
  inside.join();
  CHECK(r.runs == 1);
  CHECK(r.ran_on.load() == inside_id);
}

TEST_CASE("a task may re-dispatch itself; it runs again after it returns") {
  taskctx tc;
  taskctx_init(&tc, 0);
  struct ctx {
    taskctx* tc;
    task t;
    int runs = 0;
    int depth = 0, max_depth = 0;
  } x;
  x.tc = &tc;
  task_set(
      &x.t,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        if (++p->depth > p->max_depth) p->max_depth = p->depth;
        if (++p->runs < 5) task_dispatch(p->tc, &p->t);  // queued: we are inside
        --p->depth;
      },
      &x);
  task_dispatch(&tc, &x.t);
  CHECK(x.runs == 5);
  CHECK(x.max_depth == 1);  // never nested: re-dispatch queues, the runner loops
}

TEST_CASE("a task is copied before it runs: it may free itself") {
  taskctx tc;
  taskctx_init(&tc, 0);
  std::atomic<int> runs{0};
  struct self_freeing {
    task t;
    std::atomic<int>* runs;
  };
  auto* s = new self_freeing;
  s->runs = &runs;
  task_set(
      &s->t,
      [](void* a) {
        auto* p = static_cast<self_freeing*>(a);
        ++*p->runs;
        delete p;  // the runner holds a copy of func/arg, never the task itself
      },
      s);
  task_dispatch(&tc, &s->t);
  CHECK(runs == 1);
}

TEST_CASE("taskctx_barrier waits for the task running in the context") {
  taskctx tc;
  taskctx_init(&tc, 0);
  kcont_test::slow_call s;
  task t = TASK_INITIALIZER(kcont_test::slow_call::task_fn, &s);
  std::thread runner([&] { task_dispatch(&tc, &t); });
  REQUIRE(wait_until([&] { return s.inside.load(); }));
  taskctx_barrier(&tc);
  CHECK(s.finished);
  runner.join();
}

TEST_CASE("taskctx_barrier returns while two threads dispatch nonstop (no polling)") {
  taskctx tc;
  taskctx_init(&tc, 0);
  // Each dispatcher re-dispatches its own task as soon as it has been taken off the queue, and
  // the task dispatches itself again from inside too, so the thread inside always has more
  // work and never leaves the context (a barrier that waits for it to leave never returns).
  std::atomic<bool> stop{false};
  struct spinner {
    std::atomic<long> runs{0};
    taskctx* tc = nullptr;
    task* self = nullptr;
    std::atomic<bool>* stop = nullptr;
    static void run(void* a) {
      auto* s = static_cast<spinner*>(a);
      ++s->runs;
      auto until = std::chrono::steady_clock::now() + 20us;
      while (std::chrono::steady_clock::now() < until) {
      }
      if (!*s->stop) task_dispatch(s->tc, s->self);  // from inside: queued behind
    }
  };
  spinner sp[2];
  task tasks[2] = {TASK_INITIALIZER(spinner::run, &sp[0]), TASK_INITIALIZER(spinner::run, &sp[1])};
  for (int i = 0; i < 2; ++i) {
    sp[i].tc = &tc;
    sp[i].self = &tasks[i];
    sp[i].stop = &stop;
  }
  std::vector<std::thread> dispatchers;
  for (int i = 0; i < 2; ++i)
    dispatchers.emplace_back([&, i] {
      while (!stop) task_dispatch(&tc, &tasks[i]);
    });
  REQUIRE(wait_until([&] { return sp[0].runs > 100 && sp[1].runs > 100; }));
  std::atomic<int> barriers{0};
  std::thread waiter([&] {
    for (int i = 0; i < 20; ++i) {
      taskctx_barrier(&tc);
      ++barriers;
    }
  });
  const bool returned = wait_until([&] { return barriers == 20; }, 20s);
  stop = true;
  for (auto& d : dispatchers) d.join();
  waiter.join();
  CHECK(returned);
  taskctx_barrier(&tc);
  CHECK(tc.tc_serializer.load() == 0);
}

TEST_CASE("taskctx_barrier waits for every task queued before it, and for the runner to leave") {
  taskctx tc;
  taskctx_init(&tc, 0);
  holder h;
  task ht = TASK_INITIALIZER(holder::run, &h);
  std::thread runner([&] { task_dispatch(&tc, &ht); });
  REQUIRE(wait_until([&] { return h.inside.load(); }));
  kcont_test::slow_call queued;
  task qt = TASK_INITIALIZER(kcont_test::slow_call::task_fn, &queued);
  task_dispatch(&tc, &qt);  // queued behind the holder
  std::atomic<bool> returned{false};
  std::thread waiter([&] {
    taskctx_barrier(&tc);
    returned = true;
  });
  std::this_thread::sleep_for(10ms);
  CHECK_FALSE(returned);
  h.release = true;
  waiter.join();
  CHECK(queued.finished);
  CHECK(tc.tc_serializer.load() == 0);  // nothing else dispatched: the runner has left
  runner.join();
}

TEST_CASE("stress: never two runners, no task lost, per-thread order kept") {
  taskctx tc;
  taskctx_init(&tc, 0);
  constexpr int kThreads = 4;
  const int per_thread = 100000;
  struct item {
    task t;
    int thread;
    int seq;
  };
  struct shared {
    std::atomic<int> inside{0};
    std::atomic<int> overlaps{0};
    std::atomic<long> runs{0};
    int last_seq[kThreads];
    int order_violations = 0;  // written only inside the context
  } sh;
  for (int& v : sh.last_seq) v = -1;
  struct arg {
    shared* sh;
    item* it;
  };
  std::vector<std::vector<item>> items;  // tasks are not copyable: build each in place
  for (int th = 0; th < kThreads; ++th) items.emplace_back(per_thread);
  std::vector<std::vector<arg>> args(kThreads, std::vector<arg>(per_thread));
  auto fn = [](void* a) {
    auto* p = static_cast<arg*>(a);
    if (p->sh->inside.fetch_add(1) != 0) ++p->sh->overlaps;
    // Plain (non-atomic) state touched only inside the context: TSan sees any overlap.
    int& last = p->sh->last_seq[p->it->thread];
    if (p->it->seq <= last) ++p->sh->order_violations;
    last = p->it->seq;
    ++p->sh->runs;
    p->sh->inside.fetch_sub(1);
  };
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      for (int i = 0; i < per_thread; ++i) {
        item& it = items[th][i];
        it.thread = th;
        it.seq = i;
        args[th][i] = {&sh, &it};
        task_set(&it.t, fn, &args[th][i]);
        task_dispatch(&tc, &it.t);
      }
    });
  }
  for (auto& t : threads) t.join();
  // Every dispatcher has returned; a task queued but stranded would never run now.
  CHECK(sh.runs == static_cast<long>(kThreads) * per_thread);
  CHECK(sh.overlaps == 0);
  CHECK(sh.order_violations == 0);
  CHECK(tc.tc_serializer.load() == 0);
}
