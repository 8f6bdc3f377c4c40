// Worker threads belong to their runtime: kernel-style calls made from a task, a work item or
// a thread-queue kcont func act on the runtime running it (runtime::current(), curcpu(),
// kpause's tick length, task_add's CPU), and never start the default runtime.
#include <doctest/doctest.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/kcont.h>
#include <kcont/runtime.h>
#include <kcont/task.h>
#include <kcont/workqueue.h>

#include <atomic>
#include <chrono>

#include "test_util.h"

using kcont_test::wait_until;

namespace {

// What a piece of work saw of its runtime.
struct observation {
  std::atomic<bool> done{false};
  kcont::runtime* current = nullptr;
  kcont::runtime* cpu_runtime = nullptr;
  unsigned hz = 0;
  std::chrono::nanoseconds kpause_took{0};

  void observe() {
    current = &kcont::runtime::current();
    cpu_runtime = &kcont::machine::runtime_of(curcpu());
    hz = kcont::runtime::current().hz();
    auto t0 = std::chrono::steady_clock::now();
    kpause("bind", false, 5, nullptr);  // 5 ticks of *this* runtime: 50 ms at hz 100
    kpause_took = std::chrono::steady_clock::now() - t0;
    done = true;
  }
};

kcont::runtime_config hz100() {
  kcont::runtime_config c = kcont_test::cpus(2);
  c.hz = 100;
  return c;
}

void check(const observation& o, kcont::runtime& rt) {
  CHECK(o.current == &rt);
  CHECK(o.cpu_runtime == &rt);
  CHECK(o.hz == 100);
  CHECK(o.kpause_took >= std::chrono::milliseconds(50));  // never early: at least 5 of its ticks
}

}  // namespace

TEST_CASE("a taskq task acts on its own runtime") {
  kcont::runtime rt(hz100());
  taskq* tq;
  {
    kcont::runtime_scope scope(rt);
    tq = taskq_create("bound", 1, 0, TASKQ_MPSAFE);
  }
  observation o;
  task t = TASK_INITIALIZER([](void* p) { static_cast<observation*>(p)->observe(); }, &o);
  task_add(tq, &t);  // from a thread with no scope: the task still runs on rt's workers
  REQUIRE(wait_until([&] { return o.done.load(); }));
  check(o, rt);
  taskq_destroy(tq);
}

TEST_CASE("a workqueue item acts on its own runtime") {
  kcont::runtime rt(hz100());
  kcont::runtime_scope scope(rt);
  observation o;
  workqueue* wq = nullptr;
  REQUIRE(workqueue_create(
              &wq, "bound", [](work*, void* p) { static_cast<observation*>(p)->observe(); }, &o,
              PRI_NONE, IPL_NONE, WQ_MPSAFE | WQ_PERCPU) == 0);
  work wk;
  workqueue_enqueue(wq, &wk, rt.cpu(1));
  workqueue_wait(wq, &wk);
  REQUIRE(o.done);
  check(o, rt);
  workqueue_destroy(wq);
}

TEST_CASE("a thread-queue kcont func acts on its own runtime, and so does the task it adds") {
  kcont::runtime rt(hz100());
  observation o, from_task;
  taskq* tq;
  {
    kcont::runtime_scope scope(rt);
    tq = taskq_create("bound2", 1, 0, TASKQ_MPSAFE);
  }
  struct chain {
    observation* o;
    observation* from_task;
    taskq* tq;
    task t;
  } c{&o, &from_task, tq, TASK_INITIALIZER(nullptr, nullptr)};
  task_set(
      &c.t, [](void* p) { static_cast<observation*>(p)->observe(); }, &from_task);
  kcont_t* kc;
  {
    kcont::runtime_scope scope(rt);
    kc = kcont_create(
        wq_primedlow, nullptr,
        [](void* p, kcont_t*) {
          auto* ch = static_cast<chain*>(p);
          ch->o->observe();
          task_add(ch->tq, &ch->t);
        },
        &c, 0);
  }
  REQUIRE(kc != nullptr);
  REQUIRE(kcont_schedule(kc, rt.cpu(0), 0) == 0);
  REQUIRE(wait_until([&] { return o.done && from_task.done; }));
  check(o, rt);
  check(from_task, rt);
  kcont_destroy(kc);
  taskq_destroy(tq);
}
