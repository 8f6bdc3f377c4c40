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

#include <kcont/mutex.h>
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
// kcont extension: blocking-aware elasticity. Items of one queue still start in the order
// enqueued, but while an item sleeps in a kcont blocking point (kpause, kcont::blocking_scope,
// a contended kmutex_t) the next items may start on another worker (up to 16 at once per
// queue), as Linux cmwq does. Without it a queue runs its items strictly one at a time.
inline constexpr int WQ_ELASTIC = 0x100;

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

// kpause(9): sleep `timo` ticks of runtime::current() (timo >= 1), releasing `mtx` (if not
// NULL) meanwhile. Returns EWOULDBLOCK when the time is up, EINVAL for timo <= 0 (kcont has
// nothing that would end an unbounded pause). A blocking point: on an elastic queue another
// worker takes over while it sleeps.
int kpause(const char* wmesg, bool intr, int timo, kmutex_t* mtx);

namespace kcont {
// Marks a region in which the calling worker may sleep (a blocking point, as kpause is).
class blocking_scope {
 public:
  blocking_scope();
  ~blocking_scope();
  blocking_scope(const blocking_scope&) = delete;
  blocking_scope& operator=(const blocking_scope&) = delete;
};
}  // namespace kcont
