// kcont: NetBSD's proposed kernel continuations (shared/seeds/netbsd-kernel-continuations.md)
// on kcont's softints (soft queues), callout wheels (timers) and worker engine (thread queues).
//
// A continuation is func(arg, kc) bound to a queue (kcont_wq_t) and optionally to a lock.
// kcont_schedule(kc, ci, nticks): nticks 0 runs it without delay (INVOKING set, PENDING and
// EXPIRED cleared); nticks > 0 arms its timer (PENDING set, EXPIRED cleared) and on expiry it
// becomes EXPIRED|INVOKING and loses PENDING. EBUSY while INVOKING (queued to run, or running)
// unless called from its own func; ENOENT for a CPU on a queue without per-CPU queues.
// With a lock, func runs holding it; continuations sharing {wq, lock, cpu} run in the order
// they became runnable, and while a lock is held elsewhere, runnable continuations of other
// locks run meanwhile (no head-of-line blocking).
//
// Decisions where the proposal is silent (docs/semantics.md "Semantics decisions (kcont)"):
//   - INVOKING clears when func returns, unless func rescheduled it (kcont_ack clears it
//     earlier); a schedule from inside its own func is allowed and acts as if acked first;
//   - kcont_stop also cancels a continuation that is runnable but not yet running (the
//     expired-but-not-run window), clearing INVOKING; it returns whether it was EXPIRED;
//   - while func runs, a reschedule is queued where it runs (like a running callout);
//   - kcont_destroy from another thread stops it and waits for a running func; from its own
//     func it is safe: the storage is released after func returns.
#pragma once

#include <kcont/callout.h>
#include <kcont/detail/duration.h>
#include <kcont/mutex.h>
#include <kcont/runtime.h>
#include <kcont/workqueue.h>
#include <boost/intrusive/list_hook.hpp>

#include <atomic>
#include <thread>

struct kcont_wq;
typedef struct kcont_wq kcont_wq_t;
struct kcont_cont;  // `kcont` itself is kcont's C++ namespace
typedef struct kcont_cont kcont_t;
typedef void (*kcont_func_t)(void* arg, kcont_t* kc);

// Caller storage (kcont_init); every field is private.
struct kcont_cont {
  boost::intrusive::list_member_hook<> kc_link;  // on its queue's runnable list
  callout kc_timer;
  kcont_wq* kc_wq;
  std::atomic<kmutex_t*> kc_lock;
  kcont_func_t kc_func;
  void* kc_arg;
  std::atomic<void*> kc_queue;              // the per-CPU (or only) queue it belongs to now
  unsigned kc_state;                        // guarded by its queue's lock
  std::thread::id kc_runner;                // thread running func, guarded by its queue's lock
  kcont::machine::lock_waiter kc_lockwait;  // on kc_lock's waiters while its lock is held elsewhere
  std::atomic<unsigned char> kc_resched;    // func re-scheduling itself unlocked (state.cpp)
  unsigned kc_magic;
};

// Predefined queues, highest priority first: soft ones run in softint context on the CPU
// loops (must not block), the others in thread context on the worker engine. All have
// per-CPU queues.
extern kcont_wq_t* const wq_softserial;
extern kcont_wq_t* const wq_softnet;
extern kcont_wq_t* const wq_softbio;
extern kcont_wq_t* const wq_softclock;
extern kcont_wq_t* const wq_prihigh;
extern kcont_wq_t* const wq_primedhigh;
extern kcont_wq_t* const wq_primedlow;
extern kcont_wq_t* const wq_prilow;

// flags must be 0 (as the proposal says). Binds to kcont::runtime::current(). NULL on bad
// arguments (errno EINVAL).
kcont_t* kcont_create(kcont_wq_t* wq, kmutex_t* lock, kcont_func_t func, void* arg, int flags);
// The same in caller storage: no allocation. Returns 0 or EINVAL.
int kcont_init(kcont_t* kc, kcont_wq_t* wq, kmutex_t* lock, kcont_func_t func, void* arg,
               int flags);
int kcont_schedule(kcont_t* kc, cpu_info* ci, int nticks);
bool kcont_stop(kcont_t* kc);
bool kcont_halt(kcont_t* kc);  // kcont extension: stop, then wait for a running func
void kcont_destroy(kcont_t* kc);
kmutex_t* kcont_getmutex(kcont_t* kc);
kmutex_t* kcont_setmutex(kcont_t* kc, kmutex_t* lock);
void kcont_setarg(kcont_t* kc, void* arg);
void kcont_setfunc(kcont_t* kc, kcont_func_t func, void* arg);
bool kcont_pending(kcont_t* kc);
bool kcont_expired(kcont_t* kc);
bool kcont_active(kcont_t* kc);  // PENDING or EXPIRED
bool kcont_invoking(kcont_t* kc);
bool kcont_ack(kcont_t* kc);  // clears INVOKING; returns whether it was set

// Thread-context queues by criteria: the same {pri, flags} gives the same queue
// (reference-counted); WQ_PERCPU gives per-CPU queues. Release returns 0, or EINVAL for a
// queue that was not acquired (a predefined one); the last release frees it (its runnable
// continuations are run first).
kcont_wq_t* kcont_workqueue_acquire(pri_t pri, int flags);
int kcont_workqueue_release(kcont_wq_t* wq);

#include <chrono>
#include <functional>

namespace kcont::detail {
// kcont_schedule with a callout_delay (<kcont/callout.h>): the chrono faces' nanoseconds are
// rounded once, to the first tick boundary at or after the call time + the delay.
int kcont_schedule_after(kcont_t* kc, cpu_info* ci, callout_delay delay);

// A one-shot hop onto a kcont queue: fn(arg) runs once, at the queue's level on the CPU, taking
// turns with the queue's continuations (the coroutine awaitable kcont::on(wq), <kcont/coro.h>).
// Caller storage, no allocation. Unlike a continuation, the queue never touches the hop once fn
// has begun: fn may free it. Fields are kcont's; [q] the lock of the kqueue it is queued on.
struct kcont_hop {
  boost::intrusive::list_member_hook<> link;  // [q] on its kqueue's hop list
  void (*fn)(void*) = nullptr;
  void* arg = nullptr;
  kcont_wq_t* wq = nullptr;  // set by kcont_hop_schedule
  void* queue = nullptr;     // the kqueue it was queued on
};
// Queues h on wq's queue of ci (nullptr: the caller's CPU) in rt, where an acquired wq keeps a
// reference until kcont_hop_done. 0, ENOENT (ci given for a queue without per-CPU queues),
// EAGAIN or ENOMEM (the runtime's queues cannot be made). Nothing is queued on an error.
int kcont_hop_schedule(kcont_hop* h, kcont::runtime& rt, kcont_wq_t* wq, cpu_info* ci);
// Once per successful schedule, when the hop is finished with: `begun` from inside fn (no lock
// taken), else it withdraws a hop that has not begun (returns whether it took it off its
// queue: false if fn has begun meanwhile). Drops an acquired queue's reference.
bool kcont_hop_done(kcont_hop* h, bool begun);
}  // namespace kcont::detail

namespace kcont {

// RAII continuation on a queue, taking any callable. schedule() runs it without delay;
// schedule(duration) at the first tick boundary at or after the call time + the duration
// (rounded up to whole nanoseconds, never early): zero or negative is one tick; durations
// beyond INT_MAX ticks (about 24.8 days at hz 1000; seconds::max(), +inf and NaN too) are
// clamped to INT_MAX ticks. The same saturating rule as kcont::callout
// (<kcont/detail/duration.h>).
// The destructor destroys it (stopping it and waiting for a running call).
class continuation {
 public:
  continuation(kcont_wq_t* wq, std::function<void()> fn, kmutex_t* lock = nullptr);
  continuation(runtime& rt, kcont_wq_t* wq, std::function<void()> fn, kmutex_t* lock = nullptr);
  ~continuation();
  continuation(const continuation&) = delete;
  continuation& operator=(const continuation&) = delete;

  int schedule(cpu_info* ci = nullptr) { return kcont_schedule(&kc_, ci, 0); }
  template <class Rep, class Period>
  int schedule(std::chrono::duration<Rep, Period> after, cpu_info* ci = nullptr) {
    return detail::kcont_schedule_after(&kc_, ci,
                                        detail::callout_delay::ns(detail::duration_to_ns(after)));
  }
  bool stop() { return kcont_stop(&kc_); }
  bool halt() { return kcont_halt(&kc_); }
  bool pending() { return kcont_pending(&kc_); }
  bool expired() { return kcont_expired(&kc_); }
  bool active() { return kcont_active(&kc_); }
  bool invoking() { return kcont_invoking(&kc_); }
  bool ack() { return kcont_ack(&kc_); }
  kcont_t* get() { return &kc_; }

 private:
  static void trampoline(void* self, kcont_t*);
  std::function<void()> fn_;
  kcont_t kc_;
};

}  // namespace kcont
