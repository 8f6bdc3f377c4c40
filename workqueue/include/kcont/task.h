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
};

#define TASK_INITIALIZER(fn, arg) \
  {                               \
    {}, (fn), (arg), {            \
      0                           \
    }                             \
  }

void task_set(task* t, void (*fn)(void*), void* arg);

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
