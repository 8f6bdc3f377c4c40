// Wait-under-lock detection must not cry wolf: the waits below hold a lock, but not one the
// awaited handler takes (or it is the interlock the wait releases), so they must return
// normally. The reports themselves are death tests (death_lockdebug.cpp). Runs in every
// build; without KCONT_LOCKDEBUG there is nothing to report and it says so.
#include <doctest/doctest.h>
#include <kcont/callout.h>
#include <kcont/internal/lockdebug.h>
#include <kcont/kcont.h>
#include <kcont/softint.h>
#include <kcont/task.h>

#include <atomic>

#include "test_util.h"

namespace {

struct locked_counter {
  kmutex_t lock;
  std::atomic<int> runs{0};
  locked_counter() { mutex_init(&lock, MUTEX_DEFAULT, IPL_NONE); }
  static void fn(void* self) {
    auto* c = static_cast<locked_counter*>(self);
    mutex_enter(&c->lock);
    mutex_exit(&c->lock);
    ++c->runs;
  }
};

}  // namespace

TEST_CASE("lockdebug: waits under unrelated locks or the released interlock are fine") {
  if (!kcont::lockdebug::enabled) MESSAGE("this build has no KCONT_LOCKDEBUG: nothing to detect");
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  locked_counter handler_lock;
  kmutex_t unrelated;
  mutex_init(&unrelated, MUTEX_DEFAULT, IPL_NONE);

  callout c;
  callout_init(&c, CALLOUT_MPSAFE);
  callout_reset(&c, 1, locked_counter::fn, &handler_lock);
  REQUIRE(kcont_test::wait_until([&] { return handler_lock.runs.load() == 1; }));
  mutex_enter(&unrelated);
  callout_halt(&c, nullptr);  // holds a lock the handler never took
  mutex_exit(&unrelated);
  mutex_enter(&handler_lock.lock);
  callout_halt(&c, &handler_lock.lock);  // the interlock is released while waiting
  mutex_exit(&handler_lock.lock);
  callout_destroy(&c);

  taskq* tq = taskq_create("ld-ok", 1, 0, TASKQ_MPSAFE);
  task t;
  task_set(&t, locked_counter::fn, &handler_lock);
  task_add(tq, &t);
  REQUIRE(kcont_test::wait_until([&] { return handler_lock.runs.load() == 2; }));
  mutex_enter(&unrelated);
  taskq_barrier(tq);
  taskq_del_barrier(tq, &t);
  mutex_exit(&unrelated);
  taskq_destroy(tq);

  // A continuation's own lock held while it is merely queued: destroy cancels it, no wait.
  kcont_t* kc = kcont_create(
      wq_prihigh, &handler_lock.lock, [](void*, kcont_t*) {}, nullptr, 0);
  mutex_enter(&handler_lock.lock);
  CHECK(kcont_schedule(kc, rt.cpu(0), 0) == 0);
  kcont_destroy(kc);
  mutex_exit(&handler_lock.lock);
  mutex_destroy(&unrelated);
}
