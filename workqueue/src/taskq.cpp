// task(9) task queues on the pooled worker engine.
//
// A taskq is one queue_instance (engine.h) running nthreads tasks at once, served by workers
// from the pool of the CPU that adds work. TASKQ_ELASTIC (a kcont extension) makes it elastic:
// a task that sleeps (declared or found by the blocking watch) lets another worker take its
// place.
// systq/systqmp are static objects bound to the default runtime on first use.
#include "engine.h"
#include "task_flags.h"

#include <kcont/internal/lockdebug.h>
#include <kcont/internal/misuse.h>
#include <kcont/task.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <system_error>
#include <unordered_set>

namespace {
using kcont::detail::TASK_ONQUEUE;
constexpr unsigned kDefaultPriority = 1;  // medium-high
}  // namespace

// Locks: [I] set by taskq_create (or statically, for systq/systqmp) before use; [b] written
// once inside `bound` (std::call_once), read after it. The queue instance follows engine.h.
struct taskq {
  const char* name;   // [I]
  unsigned nthreads;  // [I]
  bool mpsafe;        // [I]
  bool elastic;       // [I] TASKQ_ELASTIC
  std::once_flag bound;
  // [b] Owned, and freed by taskq_destroy; the system queues' instances are never freed (their
  // workers may run until the process exits, after static destructors).
  kcont::detail::queue_instance* q;
};

namespace {

using kcont::detail::queue_instance;

[[noreturn]] void misuse(const char* what, const taskq* tq) {
  kcont::internal::misuse_named("taskq", what, "taskq", tq != nullptr ? tq->name : nullptr);
}

// Live taskqs (made by taskq_create, not yet destroyed), so that taskq_destroy of a taskq
// destroyed already is answered with a message instead of a double free. Create and destroy
// only (not the task_add path). Built on first use, never destroyed (static destructors).
std::mutex g_live_mu;  // constant-initialised
std::unordered_set<const taskq*>& live_taskqs() {
  static auto* set = new std::unordered_set<const taskq*>;
  return *set;
}
void register_live(const taskq* tq) {
  std::lock_guard<std::mutex> lk(g_live_mu);
  live_taskqs().insert(tq);
}
bool unregister_live(const taskq* tq) {
  std::lock_guard<std::mutex> lk(g_live_mu);
  return live_taskqs().erase(tq) == 1;
}

queue_instance& instance(taskq* tq) {
  if (tq == nullptr) misuse("NULL taskq", tq);
  std::call_once(tq->bound, [tq] {  // system queues bind lazily to the default runtime
    auto& eng = kcont::detail::engine_of(kcont::runtime::default_runtime());
    tq->q = new queue_instance(eng, kDefaultPriority, 1, tq->mpsafe, -1, "taskq", tq->name, tq);
  });
  if (!tq->q) misuse("use of a destroyed taskq", tq);
  return *tq->q;
}

taskq g_systq{"systq", 1, false, false, {}, nullptr};
taskq g_systqmp{"systqmp", 1, true, false, {}, nullptr};

}  // namespace

taskq* const systq = &g_systq;
taskq* const systqmp = &g_systqmp;

taskq* taskq_create(const char* name, unsigned nthreads, int, unsigned flags) {
  if (nthreads == 0 || (flags & ~(TASKQ_MPSAFE | TASKQ_CANTSLEEP | TASKQ_ELASTIC)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  auto* tq = new (std::nothrow)
      taskq{name, nthreads, (flags & TASKQ_MPSAFE) != 0, (flags & TASKQ_ELASTIC) != 0, {}, nullptr};
  if (tq == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  try {
    std::call_once(tq->bound, [tq] {
      auto& eng = kcont::detail::engine_of(kcont::runtime::current());
      // Elastic: nthreads at once, and a sleeping task's place taken by up to
      // elastic_max_active - 1 extra workers.
      const unsigned extra = tq->elastic ? eng.rt.config().elastic_max_active - 1 : 0;
      tq->q = new queue_instance(eng, kDefaultPriority, tq->nthreads + extra, tq->mpsafe, -1,
                                 "taskq", tq->name, tq);
      tq->q->elastic = tq->elastic;
      tq->q->target = tq->nthreads;
    });
  } catch (const std::system_error& e) {  // the engine's first threads could not be made
    delete tq;
    errno = e.code().value() != 0 ? e.code().value() : EAGAIN;
    return nullptr;
  } catch (const std::bad_alloc&) {
    delete tq;
    errno = ENOMEM;
    return nullptr;
  }
  register_live(tq);
  return tq;
}

void taskq_destroy(taskq* tq) {
  if (tq == nullptr) misuse("taskq_destroy(NULL)", tq);
  if (tq == systq || tq == systqmp) misuse("taskq_destroy of a system taskq", tq);
  {
    std::lock_guard<std::mutex> lk(g_live_mu);
    if (live_taskqs().count(tq) == 0) {
      kcont::internal::misuse("taskq",
                              "taskq_destroy of a taskq that is not alive (destroyed twice, or "
                              "never made by taskq_create)");
    }
  }
  queue_instance& q = instance(tq);
  if (kcont::detail::instance_is_mine(q)) misuse("taskq_destroy from one of its own tasks", tq);
  kcont::lockdebug::check_wait("taskq_destroy", tq);
  kcont::detail::instance_drain(q);  // drained, not dropped
  kcont::lockdebug::forget(tq);
  unregister_live(tq);
  delete tq->q;
  delete tq;
}

int task_add(taskq* tq, task* t) {
  queue_instance& q = instance(tq);
  if (t->t_func == nullptr) misuse("task_add of a task with no function (task_set it first)", tq);
  return kcont::detail::instance_add(q, t) ? 1 : 0;
}

int task_del(taskq* tq, task* t) {
  queue_instance& q = instance(tq);
  if ((t->t_flags.load() & TASK_ONQUEUE) != 0 && t->t_queue != &q && t->t_queue != nullptr)
    misuse("task_del on a taskq the task was not added to", tq);
  return kcont::detail::instance_del(q, t) ? 1 : 0;
}

void taskq_barrier(taskq* tq) {
  queue_instance& q = instance(tq);
  kcont::lockdebug::check_wait("taskq_barrier", tq);
  kcont::detail::instance_barrier(q);
}

void taskq_del_barrier(taskq* tq, task* t) {
  queue_instance& q = instance(tq);
  task_del(tq, t);
  kcont::lockdebug::check_wait("taskq_del_barrier", t);
  if (!kcont::detail::instance_wait_not_running(q, t))
    misuse("taskq_del_barrier of the task that is calling it (it would wait for itself)", tq);
}

bool task_pending(const task* t) {
  return (t->t_flags.load() & TASK_ONQUEUE) != 0;
}

void kcont::detail::runtime_handoff(kcont::runtime& rt, task* t) {
  if (t->t_func == nullptr)
    kcont::internal::misuse("taskq", "a hand-off of a task with no function");
  instance_add(engine_of(rt).handoff_queue(), t);
}

bool kcont::detail::runtime_handoff_withdraw(kcont::runtime& rt, task* t) {
  return instance_del(engine_of(rt).handoff_queue(), t);
}
