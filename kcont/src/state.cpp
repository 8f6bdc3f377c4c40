// The kernel-style face of kcont: the PENDING / EXPIRED / INVOKING state machine of the
// proposal (shared/seeds/netbsd-kernel-continuations.md) on top of the drains (drain.cpp) and
// the bindings (bindings.cpp). Decisions where the proposal is silent are in <kcont/kcont.h>
// and docs/semantics.md ("Semantics decisions (kcont)").
#include "kcont_impl.h"

#include <kcont/internal/lock_pair.h>
#include <kcont/internal/lockdebug.h>

#include <cerrno>
#include <new>
#include <system_error>
#include <thread>

using namespace kcont::detail;

namespace {

void check(const kcont_t* kc) {
  if (kc == nullptr) misuse("NULL continuation");
  if (kc->kc_magic != KC_MAGIC)
    misuse(kc->kc_magic == KC_DEAD ? "use of a destroyed continuation"
                                   : "use of an uninitialised continuation");
}

// ---- Re-scheduling from its own func without the queue's lock ----
//
// A func that re-schedules its own continuation at once (the kernel's "more to do: run me
// again") would take its queue's lock for that, and the drain takes it again as func returns:
// two lock pairs per cycle. Instead func asks in kc_resched, and either the drain runs it again
// at once without the lock (drain.cpp, run_again) or whoever next holds the lock queues it as
// kcont_schedule would have (settle_resched). Func may ask so only while KC_RESCHED_OK, which
// the drain sets as func starts if the state is then just INVOKING and RUNNING (neither
// PENDING, EXPIRED nor QUEUED; not acked): there the locked path could only queue it and return 0,
// and every reader's answer is the same whether the ask is queued yet or not. Every locked
// operation that may change the state first takes the word by exchange (lock_settled), queueing
// an ask it finds: ask (compare-and-swap OK -> OK|ASKED), run again (OK|ASKED -> OK) and those
// exchanges are read-modify-writes of one word, so each ask is queued or run exactly once, and
// before any later stop, ack or destroy takes effect.

// kcont_lock; `changes`: the caller may change kc's state, so an ask made without the lock is
// queued first and no later one may skip the lock.
kqueue& lock_settled(kcont_t* kc, std::unique_lock<std::mutex>& lk, bool changes) {
  kqueue& q = kcont_lock(kc, lk);
  if (changes) settle_resched(q, kc);
  return q;
}

// The timer's callout handler: PENDING -> EXPIRED|INVOKING, and runnable.
void expire(void* p) {  // the timer's callout handler
  auto* kc = static_cast<kcont_t*>(p);
  std::unique_lock<std::mutex> lk;
  kqueue& q = lock_settled(kc, lk, false);   // changes only a PENDING one (never asking)
  if (!(kc->kc_state & KC_PENDING)) return;  // stopped meanwhile
  // Re-armed meanwhile (after an ack, or from func): this firing is stale and the new timer
  // will queue it when its time comes; queueing it now would run it early. (Found by the spin
  // model models/kcont_state.pml.)
  if (callout_pending(&kc->kc_timer)) return;
  kc->kc_state = (kc->kc_state & ~KC_PENDING) | KC_EXPIRED | KC_INVOKING;
  make_runnable(q, kc);
}

// The caller is running kc's func.
bool inside_own_func(const kcont_t* kc) {
  return (kc->kc_state & KC_RUNNING) && kc->kc_runner == std::this_thread::get_id();
}

// lockdebug, before `wait` waits for kc's func (kc's queue locked). Holding kc's own lock
// while func runs elsewhere is a certain deadlock: func gave the lock up for a while and must
// take it back before it returns. Holding it while func is not running is fine (the queued
// invocation cannot start, and halt cancels it). Locks func was seen to take are checked too.
void check_kcont_wait(const char* wait, kcont_t* kc) {
  if (inside_own_func(kc)) return;  // no wait
  if (kc->kc_state & KC_RUNNING)
    kcont::lockdebug::check_wait_for_lock(wait, kc, kc->kc_lock.load());
  kcont::lockdebug::check_wait(wait, kc);
}

// Stops kc: timer, and a runnable-but-not-running invocation. q->mu held.
bool stop_locked(kqueue& q, kcont_t* kc) {
  const bool expired = (kc->kc_state & KC_EXPIRED) != 0;
  if (kc->kc_state & KC_PENDING) callout_stop(&kc->kc_timer);
  if (kc->kc_state & KC_QUEUED) {
    q.runnable.erase(q.runnable.iterator_to(*kc));
    work_dequeued(q);
    q.counters.withdrawn(kc);
    kcont::machine::lock_unwait(&kc->kc_lockwait);  // no longer waits for its lock
    kc->kc_state &= ~KC_QUEUED;
    if (!(kc->kc_state & KC_RUNNING)) kc->kc_state &= ~KC_INVOKING;
    // Its level has nothing left to run: lower it now (a drain that stood aside will not come
    // back to do it, and lower levels would wait behind it forever). With a func running the
    // drain lowers it when func returns.
    if (!has_runnable(q) && q.running == 0 && set_ready(q, false)) q.wake_pending = true;
  }
  kc->kc_state &= ~(KC_PENDING | KC_EXPIRED);
  return expired;
}

}  // namespace

void kcont::detail::queue_now(kqueue& q, kcont_t* kc) {
  if (kc->kc_state & KC_PENDING) callout_stop(&kc->kc_timer);
  kc->kc_state = (kc->kc_state & ~(KC_PENDING | KC_EXPIRED)) | KC_INVOKING;
  make_runnable(q, kc);
}

void kcont::detail::allow_resched(kcont_t* kc) {
  // INVOKING too: acked while it was queued, another thread's schedule could succeed
  // meanwhile, and a reader's kcont_invoking would depend on whether the ask was queued yet.
  const unsigned clean_mask = KC_PENDING | KC_EXPIRED | KC_QUEUED | KC_DYING | KC_INVOKING;
  const bool clean = (kc->kc_state & clean_mask) == KC_INVOKING;
  kc->kc_resched.store(clean ? KC_RESCHED_OK : 0, std::memory_order_relaxed);
}

void kcont::detail::settle_resched(kqueue& q, kcont_t* kc) {
  if (kc->kc_resched.exchange(0, std::memory_order_acq_rel) & KC_RESCHED_ASKED) queue_now(q, kc);
}

// As func returns (q.mu held): func's thread made its last unlocked ask or re-run before taking
// the lock, and every other writer holds q.mu, so a load and a store do: no locked
// instruction on every invocation's way out.
void kcont::detail::settle_returned(kqueue& q, kcont_t* kc) {
  const unsigned char was = kc->kc_resched.load(std::memory_order_relaxed);
  kc->kc_resched.store(0, std::memory_order_relaxed);
  if (was & KC_RESCHED_ASKED) queue_now(q, kc);
}

bool kcont::detail::take_resched(kcont_t* kc) {
  unsigned char asked = KC_RESCHED_OK | KC_RESCHED_ASKED;
  return kc->kc_resched.compare_exchange_strong(asked, KC_RESCHED_OK, std::memory_order_acq_rel,
                                                std::memory_order_relaxed);
}

int kcont_init(kcont_t* kc, kcont_wq_t* wq, kmutex_t* lock, kcont_func_t func, void* arg,
               int flags) {
  if (kc == nullptr || wq == nullptr || func == nullptr || flags != 0) return EINVAL;
  kcont::runtime& rt = kcont::runtime::current();
  binding* bp;
  try {
    bp = &bind(wq, rt);  // for an acquired queue: a reference while kc is bound to it
  } catch (const std::system_error& e) {  // the runtime's queues could not be made
    return e.code().value() != 0 ? e.code().value() : EAGAIN;
  } catch (const std::bad_alloc&) {
    return ENOMEM;
  }
  binding& b = *bp;
  new (&kc->kc_link) boost::intrusive::list_member_hook<>();
  new (&kc->kc_lockwait) kcont::machine::lock_waiter{};
  kc->kc_lockwait.wake = lock_wake;
  kc->kc_lockwait.arg = kc;
  kc->kc_wq = wq;
  kc->kc_lock.store(lock);
  kc->kc_func = func;
  kc->kc_arg = arg;
  kc->kc_state = 0;
  kc->kc_runner = std::thread::id();
  kc->kc_resched.store(0);
  kc->kc_queue.store(&b.queue_for(kcont::machine::current_cpu(rt)));
  callout_init(&kc->kc_timer, CALLOUT_MPSAFE);
  callout_setfunc(&kc->kc_timer, expire, kc);
  kc->kc_magic = KC_MAGIC;
  return 0;
}

kcont_t* kcont_create(kcont_wq_t* wq, kmutex_t* lock, kcont_func_t func, void* arg, int flags) {
  auto* kc = new (std::nothrow) kcont_t;
  if (kc == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  if (int e = kcont_init(kc, wq, lock, func, arg, flags); e != 0) {
    delete kc;
    errno = e;
    return nullptr;
  }
  kc->kc_state |= KC_ALLOCATED;
  return kc;
}

int kcont_schedule(kcont_t* kc, cpu_info* ci, int nticks) {
  return kcont::detail::kcont_schedule_after(kc, ci, kcont::detail::callout_delay::ticks(nticks));
}

// kcont_schedule with a delay in ticks (nticks <= 0: at once) or, for the chrono faces, in
// nanoseconds (rounded once to a tick boundary by the callout layer; <= 0: one tick).
int kcont::detail::kcont_schedule_after(kcont_t* kc, cpu_info* ci, callout_delay delay) {
  check(kc);
  const bool at_once = !delay.in_ns && delay.amount <= 0;
  binding& b = *queue_of(kc)->b;
  kcont::runtime& rt = *b.rt;
  if (ci != nullptr && !b.percpu) return ENOENT;
  if (at_once && tl_running_kc == kc) {  // see "Re-scheduling" above
    unsigned char clean = KC_RESCHED_OK;
    if (kc->kc_resched.compare_exchange_strong(clean, KC_RESCHED_OK | KC_RESCHED_ASKED,
                                               std::memory_order_acq_rel,
                                               std::memory_order_relaxed))
      return 0;  // queued (or run again) as func returns
  }              // else with the lock held, below
  for (;;) {
    std::unique_lock<std::mutex> lk;
    kqueue& q = lock_settled(kc, lk, tl_running_kc == kc);
    const bool self = inside_own_func(kc);
    if ((kc->kc_state & KC_INVOKING) && !(self && !(kc->kc_state & KC_QUEUED))) return EBUSY;
    // Where it will run: where it runs now if running, else ci / the caller's CPU.
    kqueue* target = &q;
    if (!(kc->kc_state & KC_RUNNING) && b.percpu) {
      cpu_info* want = ci != nullptr ? ci : kcont::machine::current_cpu(rt);
      target = &b.queue_for(want);
    }
    if (target != &q) {  // move it: both locks, in address order, then re-check
      if (kc->kc_state & (KC_PENDING | KC_QUEUED)) stop_locked(q, kc);
      unlock_and_wake(lk, q);
      kcont::internal::lock_pair both(q.mu, target->mu);
      if (queue_of(kc) != &q || (kc->kc_state & (KC_RUNNING | KC_QUEUED | KC_PENDING))) continue;
      kc->kc_queue.store(target);
      continue;  // schedule again on the new queue
    }
    if (at_once) {
      queue_now(q, kc);
    } else {
      kc->kc_state = (kc->kc_state & ~KC_EXPIRED) | KC_PENDING;
      if (self) kc->kc_state &= ~KC_INVOKING;
      // The timer fires on the caller's CPU (callout migration); expire() queues the
      // continuation on its own queue, which wakes the right CPU.
      callout_arm(&kc->kc_timer, delay, nullptr, nullptr);
    }
    return 0;
  }
}

bool kcont_stop(kcont_t* kc) {
  check(kc);
  std::unique_lock<std::mutex> lk;
  kqueue& q = lock_settled(kc, lk, true);
  const bool expired = stop_locked(q, kc);
  unlock_and_wake(lk, q);
  return expired;
}

bool kcont_halt(kcont_t* kc) {
  check(kc);
  std::unique_lock<std::mutex> lk;
  kqueue* q = &lock_settled(kc, lk, true);
  check_kcont_wait("kcont_halt", kc);
  bool expired = stop_locked(*q, kc);
  while ((kc->kc_state & KC_RUNNING) && !inside_own_func(kc)) {
    q->ran.wait(lk);
    expired = stop_locked(*q, kc) || expired;  // func may have rescheduled itself
  }
  unlock_and_wake(lk, *q);
  return expired;
}

void kcont_destroy(kcont_t* kc) {
  check(kc);
  {
    std::unique_lock<std::mutex> lk;
    kqueue& q = lock_settled(kc, lk, true);
    if (inside_own_func(kc)) {  // the executor frees it after func returns
      stop_locked(q, kc);
      kc->kc_state |= KC_DYING;
      return;
    }
  }
  {
    std::unique_lock<std::mutex> lk;
    lock_settled(kc, lk, false);
    check_kcont_wait("kcont_destroy", kc);
  }
  kcont_halt(kc);
  callout_halt(&kc->kc_timer, nullptr);  // an expiry handler may be about to queue it
  {
    std::unique_lock<std::mutex> lk;
    kqueue& q = lock_settled(kc, lk, true);
    stop_locked(q, kc);
    kc->kc_magic = KC_DEAD;
    unlock_and_wake(lk, q);
  }
  callout_destroy(&kc->kc_timer);
  kcont::lockdebug::forget(kc);
  kcont_wq* wq = kc->kc_wq;
  if (kc->kc_state & KC_ALLOCATED) delete kc;
  unbind(wq);  // an acquired queue may go with its last continuation
}

kmutex_t* kcont_getmutex(kcont_t* kc) {
  check(kc);
  return kc->kc_lock.load();
}

kmutex_t* kcont_setmutex(kcont_t* kc, kmutex_t* lock) {
  check(kc);
  kmutex_t* old = kc->kc_lock.load();
  if (old == nullptr && lock != nullptr)
    misuse("kcont_setmutex with a lock on a continuation that has none");
  if (old != nullptr && !mutex_owned(old))
    misuse("kcont_setmutex without holding the continuation's current lock");
  std::unique_lock<std::mutex> lk;
  kqueue& q = lock_settled(kc, lk, true);
  kc->kc_lock.store(lock);
  if (kc->kc_state & KC_QUEUED) {  // it waited for the old lock, if anything: try the new one
    kcont::machine::lock_unwait(&kc->kc_lockwait);
    kick(q);
  }
  return old;
}

void kcont_setarg(kcont_t* kc, void* arg) {
  check(kc);
  kmutex_t* l = kc->kc_lock.load();
  if (l != nullptr && !mutex_owned(l))
    misuse("kcont_setarg without holding the continuation's lock");
  std::unique_lock<std::mutex> lk;
  lock_settled(kc, lk, true);
  kc->kc_arg = arg;
}

void kcont_setfunc(kcont_t* kc, kcont_func_t func, void* arg) {
  check(kc);
  kmutex_t* l = kc->kc_lock.load();
  if (l != nullptr && !mutex_owned(l))
    misuse("kcont_setfunc without holding the continuation's lock");
  if (func == nullptr) misuse("kcont_setfunc with a NULL function");
  std::unique_lock<std::mutex> lk;
  lock_settled(kc, lk, true);
  // The proposal: "If no lock is associated with the continuation, then only arg may be
  // changed" (an executor may be reading func at any moment).
  if (l == nullptr && func != kc->kc_func)
    misuse(
        "kcont_setfunc changing the function of a continuation that has no lock (only "
        "its arg may change)");
  kc->kc_func = func;
  kc->kc_arg = arg;
}

namespace {
bool has_state(kcont_t* kc, unsigned bits) {
  check(kc);
  std::unique_lock<std::mutex> lk;
  lock_settled(kc, lk, false);
  return (kc->kc_state & bits) != 0;
}
}  // namespace

bool kcont_pending(kcont_t* kc) {
  return has_state(kc, KC_PENDING);
}
bool kcont_expired(kcont_t* kc) {
  return has_state(kc, KC_EXPIRED);
}
bool kcont_active(kcont_t* kc) {
  return has_state(kc, KC_PENDING | KC_EXPIRED);
}
bool kcont_invoking(kcont_t* kc) {
  return has_state(kc, KC_INVOKING);
}

bool kcont_ack(kcont_t* kc) {
  check(kc);
  std::unique_lock<std::mutex> lk;
  lock_settled(kc, lk, true);
  const bool was = (kc->kc_state & KC_INVOKING) != 0;
  kc->kc_state &= ~KC_INVOKING;
  return was;
}
