// task(9) structures and the taskctx serialiser of OpenBSD's 2015 diff (task_dispatch).
//
// A taskctx guarantees that the work submitted to it never runs concurrently. task_dispatch
// runs the task at once in the caller's thread when the context is free; when another thread
// is inside, it queues the task and returns, and the thread inside runs every pending task
// before it leaves. A task is copied before it runs, so its owner may re-dispatch or free it
// while it runs. A task already queued is not queued twice.
//
// task_set follows the 2015 diff and today's OpenBSD: one argument, fn(arg).
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

#include <boost/intrusive/list.hpp>

#include <atomic>
#include <mutex>

struct task {
  boost::intrusive::list_member_hook<> t_entry;  // private: queue link
  void (*t_func)(void*);
  void* t_arg;
  std::atomic<unsigned> t_flags;  // private: TASK_ONQUEUE
  std::atomic<void*> t_queue;     // private: the queue it is queued on
};

// clang-format off
#define TASK_INITIALIZER(fn, arg) { {}, (fn), (arg), {0}, {nullptr} }
// clang-format on

void task_set(task* t, void (*fn)(void*), void* arg);
bool task_pending(const task* t);  // queued and not yet started

// A FIFO of tasks linked through t_entry.
using task_list = boost::intrusive::list<
    task, boost::intrusive::member_hook<task, boost::intrusive::list_member_hook<>, &task::t_entry>,
    boost::intrusive::constant_time_size<false>>;

struct taskctx {
  std::mutex tc_mtx;
  task_list tc_worklist;                   // private: queued tasks, guarded by tc_mtx
  std::atomic<unsigned> tc_serializer{0};  // private: 0 free, >= 1 someone inside
};

// The ipl is accepted for source compatibility; `self` is unused (C++ initialises in place).
#define TASKCTX_INITIALIZER(self, ipl) \
  {}

void taskctx_init(taskctx* tc, int ipl);
void task_dispatch(taskctx* tc, task* t);
void taskctx_barrier(taskctx* tc);

// ---- task queues (OpenBSD task_add(9)) on the pooled worker engine ----------------------------
//
// taskq_create(name, nthreads, ipl, flags): up to nthreads tasks of the queue run at once, on
// workers of the engine's pools (no thread belongs to a taskq); nthreads 1 runs tasks one at a
// time in the order they were added. TASKQ_MPSAFE: run without the kernel lock. Returns NULL
// (errno EINVAL) for nthreads 0 or unknown flags. Binds to kcont::runtime::current().
// task_add returns 1 if it queued t, 0 if t was already queued; task_del returns 1 if it took t
// off the queue, 0 if t was not queued (a running task is not queued). taskq_barrier waits
// until every task running on tq when it was called has finished (from one of tq's own tasks,
// that task counts as finished); taskq_del_barrier deletes t and waits until t no longer runs
// (from t itself: aborts with a message). taskq_destroy waits until every queued task has run.
// systq (kernel lock held) and systqmp (no kernel lock) are single-threaded queues of the
// default runtime. A task that throws is reported and abandoned (the exception policy,
// <kcont/runtime.h>); the queue goes on.
struct taskq;

inline constexpr unsigned TASKQ_MPSAFE = 1u << 0;
inline constexpr unsigned TASKQ_CANTSLEEP = 1u << 1;  // accepted; kcont's workers may sleep

taskq* taskq_create(const char* name, unsigned nthreads, int ipl, unsigned flags = 0);
void taskq_destroy(taskq* tq);
int task_add(taskq* tq, task* t);
int task_del(taskq* tq, task* t);
void taskq_barrier(taskq* tq);
void taskq_del_barrier(taskq* tq, task* t);

extern taskq* const systq;
extern taskq* const systqmp;
