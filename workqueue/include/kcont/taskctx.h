// The taskctx serialiser of OpenBSD's 2015 diff: task_dispatch and taskctx_barrier.
//
// A taskctx guarantees that the work submitted to it never runs concurrently. task_dispatch
// runs the task at once in the caller's thread when the context is free; when another thread
// is inside, it queues the task and returns, and the thread inside runs every pending task
// before it leaves. A task is copied before it runs, so its owner may re-dispatch or free it
// while it runs. A task already queued is not queued twice.
//
// taskctx_barrier returns once every task running or queued when it was called has run, and
// the thread that ran them has either left the context or gone on to a task dispatched after
// the barrier (so continuous dispatching from other threads never holds it back; nothing
// polls). Lifetime: stop dispatching, then taskctx_barrier; after that no thread touches the
// taskctx and it may be freed.
//
// A task that throws is reported and abandoned (the exception policy, <kcont/runtime.h>): the
// thread leaves the context as if the task had returned, and the queued tasks still run.
//
// Context: task_dispatch may be called from any thread, including CPU loop threads (the
// task then runs there and must not block). taskctx_barrier sleeps; calling it from a task
// running in the same taskctx is misuse (it would wait for itself) and aborts with a message.
#pragma once

#include <kcont/task.h>

#include <atomic>
#include <cstddef>
#include <mutex>

// Fields private to kcont. Locks: [t] tc_mtx, [a] atomic (workqueue/src/taskctx.cpp).
struct taskctx {
  std::mutex tc_mtx;
  task_list tc_worklist;                   // [t] queued tasks, oldest first
  std::atomic<unsigned> tc_serializer{0};  // [a] 0 free, >= 1 someone inside
  std::atomic<void*> tc_stats{nullptr};    // [t] its kcont::taskctx_stats's counters, if any
};

// The ipl is accepted for source compatibility; `self` is unused (C++ initialises in place).
#define TASKCTX_INITIALIZER(self, ipl) \
  {}

void taskctx_init(taskctx* tc, int ipl);
void task_dispatch(taskctx* tc, task* t);
void taskctx_barrier(taskctx* tc);

namespace kcont {

class runtime;

// Shows tc in rt's queue statistics (<kcont/queue_stats.h>, kcont-stat(1)) as a queue of kind
// "taskctx" named `name` while this object lives: tasks dispatched (run at once or queued),
// depth, runs, and with queue timing the sampled wait and run times. Opt-in because a taskctx
// has no destroy call (kcont could not know when one is freed): destroy this object before tc
// is freed. Observed, a dispatch that finds the context free takes tc_mtx twice to count
// (before and after its task); unobserved, counting costs one relaxed load per dispatch.
// At most one per taskctx at a time (a second aborts with a message); `name` is kept, not
// copied.
class taskctx_stats {
 public:
  taskctx_stats(runtime& rt, taskctx* tc, const char* name);
  ~taskctx_stats();
  taskctx_stats(const taskctx_stats&) = delete;
  taskctx_stats& operator=(const taskctx_stats&) = delete;

 private:
  struct impl;
  impl* impl_;
};

}  // namespace kcont

namespace kcont::detail {
// Takes t off tc's queue if it is still queued there (not yet taken by the thread inside);
// returns whether it did. Not an OpenBSD call (taskctx has no task_del): the coroutine
// awaitable dispatch(taskctx*) withdraws its task with it when its frame is destroyed.
bool taskctx_withdraw(taskctx* tc, task* t);
// tc_mtx held: the tasks queued on tc (its barriers' markers not counted).
std::size_t taskctx_queued_tasks(taskctx* tc);
}  // namespace kcont::detail
