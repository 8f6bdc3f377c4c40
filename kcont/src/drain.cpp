// Running a kqueue: lock-associated ordering, lock waiters, bounded passes.
//
// A drain scans the runnable FIFO from the oldest. A continuation whose lock cannot be taken
// at once registers on that lock's waiters (the lock then kicks this queue when it is
// released: a turnstile, no polling) and the lock is marked blocked for this pass, so every
// later continuation with the same lock is skipped too: {wq, lock, cpu} order holds, while
// continuations of other locks run meanwhile. The set of blocked locks has no size limit.
// After each run the scan starts again from the oldest (a lock may be free now).
//
// A drain runs at most kBatch continuations, then hands the rest to a fresh drain (the
// softint again, or the work item again) and returns: a continuation that reschedules itself
// lets hard interrupts, higher softint levels and runtime::stop() through.
//
// A thread-queue func that sleeps at a blocking point (kpause, blocking_scope, a contended
// kmutex) kicks another drain of its queue (the queue's workqueue is elastic), so one sleeper
// does not hold back the other continuations of its level on that CPU; those sharing its lock
// still wait for it, in order. The engine's blocking watch finds a func asleep elsewhere
// (read(2), a std::mutex): it times each func on its own (work_unit), never the drain.
#include "kcont_impl.h"

#include <kcont/function_workqueue.h>
#include <kcont/internal/lockdebug.h>
#include <kcont/softint.h>

#include <thread>
#include <unordered_set>

namespace kcont::detail {
namespace {

constexpr unsigned kBatch = 64;

// The locks found held elsewhere during one pass: a small open-addressed table, and a heap
// set only when more than kInline distinct locks are blocked in one pass.
class blocked_locks {
 public:
  bool contains(const kmutex_t* m) const {
    for (unsigned i = 0, h = hash(m); i < kSlots; ++i, h = (h + 1) % kSlots) {
      if (slots_[h] == m) return true;
      if (slots_[h] == nullptr) break;
    }
    return overflow_ && overflow_->count(m) != 0;
  }
  void add(const kmutex_t* m) {
    if (used_ < kInline) {
      unsigned h = hash(m);
      while (slots_[h] != nullptr) h = (h + 1) % kSlots;
      slots_[h] = m;
      ++used_;
      return;
    }
    if (!overflow_) overflow_ = std::make_unique<std::unordered_set<const kmutex_t*>>();
    overflow_->insert(m);
  }
  void clear() {
    if (used_ != 0) std::fill(std::begin(slots_), std::end(slots_), nullptr);
    used_ = 0;
    overflow_.reset();
  }

 private:
  static constexpr unsigned kSlots = 64, kInline = 48;  // keep the table at most 3/4 full
  static unsigned hash(const kmutex_t* m) {
    return static_cast<unsigned>((reinterpret_cast<std::uintptr_t>(m) >> 4) % kSlots);
  }
  const kmutex_t* slots_[kSlots] = {};
  unsigned used_ = 0;
  std::unique_ptr<std::unordered_set<const kmutex_t*>> overflow_;
};

// Block observer of a running thread-queue continuation (see the file comment).
void sleeping(void* qp) {
  auto& q = *static_cast<kqueue*>(qp);
  bool fell, more;
  {
    std::lock_guard<std::mutex> lk(q.mu);
    more = has_runnable(q);
    fell = set_ready(q, more);
  }
  if (fell) wake_waiting(q.gate);
  if (more) kick(q);
}

// q.mu held: kc's lock is held elsewhere. Registers kc on the lock's waiters; returns true if
// the lock was released meanwhile and is now ours.
bool wait_for_lock(kcont_t* kc, kmutex_t* lock) {
  kcont::machine::lock_wait(lock, &kc->kc_lockwait);
  if (!mutex_tryenter(lock)) return false;
  kcont::machine::lock_unwait(&kc->kc_lockwait);
  return true;
}

// Func returned having asked to run again (state.cpp, "Re-scheduling from its own func"):
// may it run again at once, without the queue's lock? On a soft queue (no level gate, no
// block observer), without a lock of its own (it would keep it from its other waiters), when
// nothing else is queued (FIFO: they go first) and nobody has touched its state since it
// started (take_resched fails once a locked operation took the word; it then goes the locked
// way). Bounded by the drain's batch like any other run.
bool run_again(const kqueue& q, kcont_t* kc) {
  return q.b->soft && kc->kc_lock.load(std::memory_order_relaxed) == nullptr &&
         q.queued_work.load(std::memory_order_acquire) == 0 && take_resched(kc);
}

// Runs kc's func (taken off the runnable list, lock held if it has one), and again while
// run_again allows, at most `budget` times in all. q.mu held on entry and on return; released
// meanwhile. Returns how many times func ran.
unsigned invoke(kqueue& q, kcont_t* kc, std::unique_lock<std::mutex>& lk, bool& fell,
                unsigned budget) {
  kc->kc_state = (kc->kc_state & ~KC_QUEUED) | KC_RUNNING;
  kc->kc_runner = std::this_thread::get_id();
  const std::uint64_t timed_from = q.counters.started(kc);
  kcont_func_t fn = kc->kc_func;
  void* arg = kc->kc_arg;
  ++q.running;
  allow_resched(kc);  // func may re-schedule itself without the lock (state.cpp)
  lk.unlock();
  if (kc->kc_lockwait.on.load(std::memory_order_acquire) != nullptr)
    kcont::machine::lock_unwait(&kc->kc_lockwait);  // ran before its lock's release woke it
  if (fell) wake_waiting(q.gate);
  fell = false;
  kcont::machine::block_observer previous;
  if (!q.b->soft) previous = kcont::machine::set_thread_block_observer({sleeping, &q});
  bool returned;
  unsigned ran = 0;
  do {
    kcont::lockdebug::handler_scope scope(kc);
    work_unit unit;  // the blocking watch times each func on its own (see thread_drain)
    const kcont_t* const outer = tl_running_kc;
    tl_running_kc = kc;
    returned = kcont::machine::run_handler(
        q.b->soft ? "kcont func (soft queue)" : "kcont func (thread queue)", nullptr,
        kcont::machine::code_address(fn), [fn, arg, kc] { fn(arg, kc); });
    tl_running_kc = outer;
    ++ran;
  } while (returned && ran < budget && run_again(q, kc));
  if (!q.b->soft) kcont::machine::set_thread_block_observer(previous);
  kmutex_t* held = kc->kc_lock.load();  // the lock func returned with (setmutex may change it)
  // A func that threw may have dropped its lock on the way out (a unique_lock unwinding):
  // release only what this thread still holds.
  if (!returned && held != nullptr && !mutex_owned(held)) held = nullptr;
  lk.lock();
  settle_returned(q, kc);  // queues it if func asked to run again
  --q.running;
  q.counters.finished(timed_from);
  q.counters.ran_at_once(ran - 1);  // the runs again without the lock
  kc->kc_runner = std::thread::id();
  kc->kc_state &= ~KC_RUNNING;
  if (!(kc->kc_state & KC_QUEUED)) kc->kc_state &= ~KC_INVOKING;
  const bool dying = (kc->kc_state & KC_DYING) != 0;
  // Released only now: whoever takes the lock next sees the invocation finished.
  if (held != nullptr) mutex_exit(held);
  fell = set_ready(q, has_runnable(q));
  q.ran.notify_all();
  if (dying) {  // destroyed from inside its own func: release it now
    kc->kc_magic = KC_DEAD;
    const bool allocated = (kc->kc_state & KC_ALLOCATED) != 0;
    kcont_wq* wq = kc->kc_wq;
    lk.unlock();
    callout_halt(&kc->kc_timer, nullptr);
    callout_destroy(&kc->kc_timer);
    kcont::lockdebug::forget(kc);
    if (allocated) delete kc;
    unbind(wq);
    lk.lock();
  }
  return ran;
}

// Runs the oldest hop (q.hops not empty) and then, on a soft queue, the hop its fn queued onto
// this same queue (hop.cpp, q.stashed_hop) at once while nothing else is queued, at most
// `budget` in all; a stashed hop that may not run at once goes to the front of the hop list
// (everything queued now came after it). q.mu held on entry and on return; released meanwhile.
// A hop is never touched once its fn begins: fn may free it. Returns how many ran.
unsigned run_hop(kqueue& q, std::unique_lock<std::mutex>& lk, bool& fell, unsigned budget) {
  kcont_hop& h = q.hops.front();
  q.hops.pop_front();
  work_dequeued(q);
  const std::uint64_t timed_from = q.counters.started(&h);
  void (*fn)(void*) = h.fn;
  void* arg = h.arg;
  ++q.running;
  lk.unlock();
  if (fell) wake_waiting(q.gate);
  fell = false;
  kcont::machine::block_observer previous;
  if (!q.b->soft) previous = kcont::machine::set_thread_block_observer({sleeping, &q});
  unsigned ran = 0;
  kcont_hop* to_front = nullptr;
  for (;;) {
    {
      work_unit unit;
      const kqueue* const outer = tl_hop_q;
      tl_hop_q = &q;
      kcont::machine::run_handler(q.b->soft ? "kcont hop (soft queue)" : "kcont hop (thread queue)",
                                  nullptr, kcont::machine::code_address(fn),
                                  [fn, arg] { fn(arg); });
      tl_hop_q = outer;
    }
    ++ran;
    if (q.stashed_hop.load(std::memory_order_relaxed) == nullptr) break;
    kcont_hop* next = q.stashed_hop.exchange(nullptr, std::memory_order_acq_rel);
    if (next == nullptr) break;  // withdrawn meanwhile (kcont_hop_done)
    if (ran == budget || q.queued_work.load(std::memory_order_acquire) != 0) {
      to_front = next;
      break;
    }
    fn = next->fn;
    arg = next->arg;
  }
  if (!q.b->soft) kcont::machine::set_thread_block_observer(previous);
  lk.lock();
  --q.running;
  q.counters.finished(timed_from);
  q.counters.ran_at_once(ran - 1);  // the stashed hops that ran without the lock
  if (to_front != nullptr) {
    q.hops.push_front(*to_front);
    work_queued(q);
    q.counters.queued(to_front);
  }
  fell = set_ready(q, has_runnable(q));
  return ran;
}

// Hops and continuations take turns: after one of a kind has run, the other kind goes next
// if it has work that can start (a coroutine hopping in a loop cannot starve continuations,
// nor the reverse).
void run_queue(kqueue& q) {
  const kqueue* const outer = tl_draining_q;
  tl_draining_q = &q;
  struct restore {
    const kqueue* was;
    ~restore() { tl_draining_q = was; }
  } restore_on_return{outer};
  std::unique_lock<std::mutex> lk(q.mu);
  q.drain_queued.store(false, std::memory_order_seq_cst);
  bool fell = set_ready(q, has_runnable(q));
  blocked_locks blocked;
  unsigned runs = 0;
  bool hop_next = true;  // whose turn it is when both kinds can run
  auto it = q.runnable.begin();
  for (;;) {
    const bool hop = !q.hops.empty() && (hop_next || it == q.runnable.end());
    if (!hop && it == q.runnable.end()) break;
    if (stand_aside(q)) {  // a higher level goes first; it kicks us back
      lk.unlock();
      if (fell) wake_waiting(q.gate);
      return;
    }
    if (runs == kBatch) {  // bounded: a fresh drain goes on with the rest
      lk.unlock();
      if (fell) wake_waiting(q.gate);
      kick(q);
      return;
    }
    if (hop) {
      runs += run_hop(q, lk, fell, kBatch - runs);
      hop_next = false;
    } else {
      kcont_t* kc = &*it;
      kmutex_t* lock = kc->kc_lock.load();
      if (lock != nullptr) {
        bool skip = blocked.contains(lock);  // a lock seen held this pass: keep order behind it
        if (!skip && !mutex_tryenter(lock) && !wait_for_lock(kc, lock)) {
          blocked.add(lock);
          skip = true;
        }
        if (skip) {
          ++it;
          continue;
        }
      }
      q.runnable.erase(it);
      work_dequeued(q);
      runs += invoke(q, kc, lk, fell, kBatch - runs);
      hop_next = true;
    }
    it = q.runnable.begin();  // start again from the oldest: a lock may be free now
    blocked.clear();
  }
  // Empty, or only work whose lock is held elsewhere (its release kicks us): lower levels
  // need not wait for it.
  if (set_ready(q, false) || fell) {
    lk.unlock();
    wake_waiting(q.gate);
  }
}

}  // namespace

kqueue* queue_of(const kcont_t* kc) {
  return static_cast<kqueue*>(kc->kc_queue.load());
}

kqueue& kcont_lock(const kcont_t* kc, std::unique_lock<std::mutex>& lk) {
  for (;;) {
    kqueue* q = queue_of(kc);
    lk = std::unique_lock<std::mutex>(q->mu);
    if (queue_of(kc) == q) return *q;
    lk.unlock();
  }
}

void kick(kqueue& q) {
  if (q.b->soft) {
    softint_schedule_cpu(q.b->softint, q.cpu);
  } else if (!q.drain_queued.exchange(true, std::memory_order_seq_cst)) {
    workqueue_enqueue(q.b->wq, &q.drain_work, q.cpu);
  }
}

void make_runnable(kqueue& q, kcont_t* kc) {
  if (kc->kc_state & KC_QUEUED) return;
  kc->kc_state |= KC_QUEUED;
  q.runnable.push_back(*kc);
  work_queued(q);
  q.counters.queued(kc);
  set_ready(q, true);
  // A running one is picked up when func returns; one added on a soft queue by a func of this
  // very drain, by the drain's next look (see tl_draining_q).
  if (!(kc->kc_state & KC_RUNNING) && (tl_draining_q != &q || !q.b->soft)) kick(q);
}

void lock_wake(void* kc) {
  kick(*queue_of(static_cast<kcont_t*>(kc)));
}

void soft_drain(void* binding_arg) {
  auto* b = static_cast<binding*>(binding_arg);
  run_queue(b->queue_for(curcpu()));
}

void thread_drain(work* wk, void* binding_arg) {
  auto* b = static_cast<binding*>(binding_arg);
  for (auto& q : b->queues) {
    if (&q->drain_work != wk) continue;
    set_draining(b);
    // Only a func or hop that sleeps is blocking; the drain waiting on q->mu while others
    // add work is not (it once let a second drain run beside it, out of order).
    work_units units;
    run_queue(*q);
    set_draining(nullptr);
    return;
  }
}

}  // namespace kcont::detail
