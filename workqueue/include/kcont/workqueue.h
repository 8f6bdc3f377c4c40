// workqueue(9), after the NetBSD manual page, on the pooled worker engine.
//
// workqueue_create(&wq, name, func, arg, pri, ipl, flags) makes a queue whose work items run
// func(wk, arg) in thread context. WQ_PERCPU: one queue per CPU, and workqueue_enqueue(wq, wk,
// ci) runs wk on CPU ci (NULL: the caller's curcpu()); without it there is one queue and ci is
// ignored. Each queue runs its items one at a time, in the order enqueued. WQ_MPSAFE: run
// without the kernel lock. A work item may be enqueued again only once it has started
// running; enqueueing it while it is still queued aborts with a message.
// workqueue_wait(wq, wk) returns once wk is neither queued nor running (from wk's own run:
// aborts with a message). workqueue_destroy waits until every queued item has run.
//
// pri is one of kcont's four engine levels (PRI_HIGH, PRI_MEDHIGH, PRI_MEDLOW, PRI_LOW), or
// PRI_NONE (medium-low): the kernel's numeric thread priorities mean nothing in user space.
#pragma once

#include <kcont/runtime.h>
#include <kcont/task.h>

typedef int pri_t;
inline constexpr pri_t PRI_NONE = -1;
inline constexpr pri_t PRI_HIGH = 0;
inline constexpr pri_t PRI_MEDHIGH = 1;
inline constexpr pri_t PRI_MEDLOW = 2;
inline constexpr pri_t PRI_LOW = 3;

inline constexpr int WQ_MPSAFE = 0x01;
inline constexpr int WQ_PERCPU = 0x02;
inline constexpr int WQ_FPU = 0x04;  // accepted: user space has no FPU context to save

struct work {
  task wk_task;  // private
  void* wk_wq;   // private
};

struct workqueue;

// Returns 0, or EINVAL (bad pri or flags, NULL func) / ENOMEM.
int workqueue_create(workqueue** wqp, const char* name, void (*func)(work*, void*), void* arg,
                     pri_t pri, int ipl, int flags);
void workqueue_enqueue(workqueue* wq, work* wk, cpu_info* ci);
void workqueue_wait(workqueue* wq, work* wk);
void workqueue_destroy(workqueue* wq);
