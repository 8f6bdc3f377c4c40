// task(9): the task structure and OpenBSD's task queues (task_add(9)), on the pooled worker
// engine. The taskctx serialiser of the 2015 diff (task_dispatch) is in <kcont/taskctx.h>,
// included at the end as the diff declared both in one header.
//
// task_set follows the 2015 diff and today's OpenBSD: one argument, fn(arg).
#pragma once

#include <boost/intrusive/list.hpp>

#include <atomic>

// Locks: [o] the owner's (task_set before first use, as the man page says); [l] the lock of the
// list the task is on (a taskq's or workqueue's queue instance, a taskctx's tc_mtx), read
// without it as an atomic to ask "queued?".
struct task {
  boost::intrusive::list_member_hook<> t_entry;  // [l] private: queue link
  void (*t_func)(void*);                         // [o]
  void* t_arg;                                   // [o]
  std::atomic<unsigned> t_flags;                 // [l] private: TASK_ONQUEUE
  std::atomic<void*> t_queue;                    // [l] private: the queue it is queued on
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

// Task queues (OpenBSD task_add(9)) on the pooled worker engine.
//
// taskq_create(name, nthreads, ipl, flags): up to nthreads tasks of the queue run at once, on
// workers of the engine's pools (no thread belongs to a taskq); nthreads 1 runs tasks one at a
// time in the order they were added. TASKQ_MPSAFE: run without the kernel lock. Returns NULL
// (errno EINVAL) for nthreads 0 or unknown flags. Binds to kcont::runtime::current().
// task_add returns 1 if it queued t, 0 if t was already queued; task_del returns 1 if it took t
// off the queue, 0 if t was not queued (a running task is not queued). taskq_barrier waits
// until every task queued or running on tq when it was called has finished, as OpenBSD's does
// (from one of tq's own tasks, that task counts as finished; two tasks barriering at once do not
// wait for each other); taskq_del_barrier deletes t and waits until t no longer runs
// (from t itself: aborts with a message). taskq_destroy waits until every queued task has run.
// systq (kernel lock held) and systqmp (no kernel lock) are single-threaded queues of the
// default runtime. A task that throws is reported and abandoned (the exception policy,
// <kcont/runtime.h>); the queue goes on.
struct taskq;

inline constexpr unsigned TASKQ_MPSAFE = 1u << 0;
inline constexpr unsigned TASKQ_CANTSLEEP = 1u << 1;  // accepted; kcont's workers may sleep
// kcont extension, as WQ_ELASTIC for workqueue(9): nthreads tasks run at once, but one that
// sleeps (at a kcont blocking point, or found asleep by the blocking watch; see
// runtime_config::blocking_threshold) does not count, and other workers take its place (up to
// runtime_config::elastic_max_active - 1 beyond nthreads). Without it nthreads is a hard bound,
// as in OpenBSD, however the tasks sleep.
inline constexpr unsigned TASKQ_ELASTIC = 1u << 8;

taskq* taskq_create(const char* name, unsigned nthreads, int ipl, unsigned flags = 0);
void taskq_destroy(taskq* tq);
int task_add(taskq* tq, task* t);
int task_del(taskq* tq, task* t);
void taskq_barrier(taskq* tq);
void taskq_del_barrier(taskq* tq, task* t);

extern taskq* const systq;
extern taskq* const systqmp;

// The 2015 diff declares the taskctx interfaces in this header too.
#include <kcont/taskctx.h>

namespace kcont {
class runtime;
namespace detail {
// Runs t on a worker of rt (its worker engine's hand-off queue: one task at a time, in the
// order handed off). For kcont's own faces: the Asio taskctx executor's post, kcont::on(taskctx*).
void runtime_handoff(kcont::runtime& rt, task* t);
// Takes t back if it has not been taken to run yet; returns whether it did.
bool runtime_handoff_withdraw(kcont::runtime& rt, task* t);
}  // namespace detail
}  // namespace kcont
