// kcont on softints, callouts and workqueue(9).
//
// Each queue (kcont_wq_t) is bound, per runtime, to one `kqueue` per CPU (or one in all): a
// FIFO of runnable continuations and a way to get it drained on its CPU: a softint of the
// queue's level (soft queues) or a work item on a workqueue(9) of the queue's priority
// (thread queues). The drain (run_queue) scans the FIFO from the oldest: a continuation whose
// lock cannot be taken at once marks that lock as blocked for this pass, and every later one
// with the same lock is skipped too, so {wq, lock, cpu} order holds while other locks' work
// runs meanwhile. When only blocked work is left, a soft queue retries one tick later (it
// must not block) and a thread queue sleeps briefly and drains again.
//
// Priority among the predefined thread queues (wq_prihigh .. wq_prilow) on one CPU: their
// drains run on separate worker pools, so each CPU keeps a `ready` flag per level (its queue
// has runnable work not stuck on a lock, or a continuation running that has not gone to sleep
// at a blocking point) and a bitmask of lower levels that stood aside. A
// drain about to start a continuation first checks the higher levels' flags; if one is set it
// records itself in the mask and returns, and whoever clears the last higher flag kicks it
// again (flag store, then mask load, against mask store, then flag load: seq_cst, so one side
// sees the other). A running continuation is never preempted.
//
// A continuation's fields are guarded by the mutex of the kqueue it belongs to (kc_queue);
// kcont_lock() finds it and re-checks, as callout_lock() does. Lock order: a continuation's
// own lock (held by func or by callers of setmutex) -> kqueue::mu -> the layers below.
// The executor never touches a continuation after func returned unless it is still alive:
// destroy from inside func defers the free to the executor.
#include <kcont/kcont.h>
#include <kcont/lockdebug.h>
#include <kcont/machine_hooks.h>
#include <kcont/softint.h>

#include <boost/intrusive/list.hpp>

#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace {

constexpr unsigned S_PENDING = 1u << 0;
constexpr unsigned S_EXPIRED = 1u << 1;
constexpr unsigned S_INVOKING = 1u << 2;
constexpr unsigned S_QUEUED = 1u << 3;   // on its kqueue's runnable list
constexpr unsigned S_RUNNING = 1u << 4;  // func running now
constexpr unsigned S_DYING = 1u << 5;    // destroyed from inside its own func
constexpr unsigned S_ALLOCATED = 1u << 6;
constexpr unsigned kMagic = 0x4b434f4eu;  // "KCON"
constexpr unsigned kDead = 0xdeadc047u;

[[noreturn]] void misuse(const char* what) {
  std::fprintf(stderr, "kcont: kcont misuse: %s\n", what);
  std::abort();
}

using kcont_list = boost::intrusive::list<
    kcont_t,
    boost::intrusive::member_hook<kcont_t, boost::intrusive::list_member_hook<>, &kcont_t::kc_link>,
    boost::intrusive::constant_time_size<false>>;

struct binding;
struct kqueue;

// One CPU's view of the four predefined thread levels (see the file comment).
struct alignas(64) level_gate {
  std::atomic<bool> ready[4] = {};
  std::atomic<unsigned> waiting{0};  // bit L: level L's drain stood aside
  kqueue* queues[4] = {};
};

struct kqueue {
  std::mutex mu;
  std::condition_variable ran;  // a func returned (halt and destroy wait here)
  kcont_list runnable;
  binding* b = nullptr;
  cpu_info* cpu = nullptr;  // nullptr: the queue of a non-per-CPU wq
  work drain_work{};        // thread queues: the work item that drains this queue
  bool drain_queued = false;
  callout retry;  // soft queues: try again one tick later when only blocked work is left
  bool retry_armed = false;
  level_gate* gate = nullptr;  // predefined thread queues: their CPU's gate
  unsigned level = 0;          // ... and their level in it, 0 = wq_prihigh
  unsigned running = 0;        // funcs of this queue running now
  bool wake_pending = false;   // a stop lowered `ready` while a lower level stood aside
};

struct binding {
  kcont::runtime* rt = nullptr;
  bool soft = false;
  bool percpu = true;
  void* softint = nullptr;  // soft queues
  workqueue* wq = nullptr;  // thread queues
  std::vector<std::unique_ptr<kqueue>> queues;
  kqueue& queue_for(cpu_info* ci) { return percpu ? *queues[cpu_index(ci)] : *queues[0]; }
};

}  // namespace

struct kcont_wq {
  int kind;  // 0..7 predefined (highest priority first), 8 acquired
  pri_t pri;
  int flags;
  binding* acquired = nullptr;  // acquired queues: their binding
  unsigned refs = 0;            // acquired queues: guarded by the runtime state's mutex
};

namespace {

kcont_wq g_predefined[8] = {{0, PRI_HIGH, 0},   {1, PRI_HIGH, 0}, {2, PRI_HIGH, 0},
                            {3, PRI_HIGH, 0},   {4, PRI_HIGH, 0}, {5, PRI_MEDHIGH, 0},
                            {6, PRI_MEDLOW, 0}, {7, PRI_LOW, 0}};
const unsigned kSoftLevel[4] = {SOFTINT_SERIAL, SOFTINT_NET, SOFTINT_BIO, SOFTINT_CLOCK};

void run_queue(kqueue& q);
void soft_drain(void* b) {
  auto* bd = static_cast<binding*>(b);
  run_queue(bd->queue_for(curcpu()));
}
void thread_drain(work* wk, void*) {
  // drain_work is a member of kqueue: find the kqueue from it.
  auto* q = reinterpret_cast<kqueue*>(reinterpret_cast<char*>(wk) - offsetof(kqueue, drain_work));
  run_queue(*q);
}
void retry_drain(void* qp) {
  auto* q = static_cast<kqueue*>(qp);
  {
    std::lock_guard<std::mutex> lk(q->mu);
    q->retry_armed = false;
  }
  softint_schedule_cpu(q->b->softint, q->cpu);
}

std::unique_ptr<binding> make_binding(kcont::runtime& rt, bool soft, unsigned level_or_pri,
                                      bool percpu, level_gate* gates = nullptr) {
  auto b = std::make_unique<binding>();
  b->rt = &rt;
  b->soft = soft;
  b->percpu = percpu;
  kcont::runtime_scope scope(rt);
  unsigned n = percpu ? rt.ncpu() : 1;
  for (unsigned i = 0; i < n; ++i) {
    auto q = std::make_unique<kqueue>();
    q->b = b.get();
    q->cpu = percpu ? rt.cpu(i) : nullptr;
    callout_init(&q->retry, CALLOUT_MPSAFE);
    if (q->cpu != nullptr) callout_bind(&q->retry, q->cpu);
    if (gates != nullptr) {
      q->gate = &gates[i];
      q->level = level_or_pri;
      gates[i].queues[level_or_pri] = q.get();
    }
    b->queues.push_back(std::move(q));
  }
  if (soft) {
    b->softint = softint_establish_rt(rt, level_or_pri | SOFTINT_MPSAFE, soft_drain, b.get());
    if (b->softint == nullptr)
      throw std::system_error(errno, std::generic_category(), "kcont: softint_establish");
  } else {
    int flags = WQ_MPSAFE | (percpu ? WQ_PERCPU : 0);
    if (int e = workqueue_create(&b->wq, "kcont", thread_drain, nullptr,
                                 static_cast<pri_t>(level_or_pri), 0, flags);
        e != 0)
      throw std::system_error(e, std::generic_category(), "kcont: workqueue_create");
  }
  return b;
}

void free_binding(binding* b) {
  if (b->soft) {
    softint_disestablish(b->softint);
  } else {
    workqueue_destroy(b->wq);  // drains
  }
  for (auto& q : b->queues) {
    callout_halt(&q->retry, nullptr);
    callout_destroy(&q->retry);
  }
  delete b;
}

struct runtime_state {
  std::unique_ptr<level_gate[]> gates;  // one per CPU
  std::unique_ptr<binding> predefined[8];
  std::mutex acquire_mu;
  std::map<std::pair<int, int>, kcont_wq*> acquired;
};

void* create_state(kcont::runtime& rt) {
  auto* st = new runtime_state;
  st->gates = std::make_unique<level_gate[]>(rt.ncpu());
  try {
    for (int k = 0; k < 8; ++k)
      st->predefined[k] =
          k < 4 ? make_binding(rt, true, kSoftLevel[k], true)
                : make_binding(rt, false, static_cast<unsigned>(k - 4), true, st->gates.get());
  } catch (...) {  // no thread or memory for a queue: undo what was made (kcont_init: EAGAIN)
    for (auto& b : st->predefined)
      if (b) free_binding(b.release());
    delete st;
    throw;
  }
  return st;
}
void destroy_state(void* p) {
  auto* st = static_cast<runtime_state*>(p);
  for (auto& b : st->predefined) free_binding(b.release());
  for (auto& [key, wq] : st->acquired) {
    free_binding(wq->acquired);
    delete wq;
  }
  delete st;
}
runtime_state& state_of(kcont::runtime& rt) {
  return *static_cast<runtime_state*>(
      kcont::machine::layer_state(rt, kcont::machine::layer::kcont, create_state, destroy_state));
}

binding& binding_of(kcont_wq* wq, kcont::runtime& rt) {
  if (wq->kind < 8) return *state_of(rt).predefined[wq->kind];
  return *wq->acquired;
}

kqueue* queue_of(const kcont_t* kc) {
  return static_cast<kqueue*>(kc->kc_queue.load());
}

// Locks the kqueue that owns kc.
kqueue& kcont_lock(const kcont_t* kc, std::unique_lock<std::mutex>& lk) {
  for (;;) {
    kqueue* q = queue_of(kc);
    lk = std::unique_lock<std::mutex>(q->mu);
    if (queue_of(kc) == q) return *q;
    lk.unlock();
  }
}

void check(const kcont_t* kc) {
  if (kc == nullptr) misuse("NULL continuation");
  if (kc->kc_magic != kMagic)
    misuse(kc->kc_magic == kDead ? "use of a destroyed continuation"
                                 : "use of an uninitialised continuation");
}

// Gets q drained soon. q->mu held.
void kick(kqueue& q) {
  if (q.b->soft) {
    softint_schedule_cpu(q.b->softint, q.cpu);
  } else if (!q.drain_queued) {
    q.drain_queued = true;
    workqueue_enqueue(q.b->wq, &q.drain_work, q.cpu);
  }
}

// q.mu held: records whether q has runnable work. True when the flag fell while a lower level
// stood aside: the caller then calls wake_waiting() once it holds no kqueue lock.
bool set_ready(kqueue& q, bool ready) {
  if (q.gate == nullptr) return false;
  const bool was = q.gate->ready[q.level].exchange(ready, std::memory_order_seq_cst);
  return was && !ready && q.gate->waiting.load(std::memory_order_seq_cst) != 0;
}

bool higher_ready(const kqueue& q) {
  for (unsigned l = 0; l < q.level; ++l)
    if (q.gate->ready[l].load(std::memory_order_seq_cst)) return true;
  return false;
}

// q.mu held: true if q must let a higher level's runnable work start first. It is then
// recorded as waiting, and kicked again when that work has started.
bool stand_aside(kqueue& q) {
  if (q.gate == nullptr || !higher_ready(q)) return false;
  q.gate->waiting.fetch_or(1u << q.level, std::memory_order_seq_cst);
  return higher_ready(q);  // else the higher level emptied meanwhile: carry on
}

// No kqueue lock held: kicks the levels that stood aside (they check again themselves).
void wake_waiting(level_gate* gate) {
  unsigned bits = gate->waiting.exchange(0, std::memory_order_seq_cst);
  for (unsigned l = 0; bits != 0; ++l, bits >>= 1) {
    if (!(bits & 1u)) continue;
    kqueue& w = *gate->queues[l];
    std::lock_guard<std::mutex> lk(w.mu);
    if (!w.runnable.empty()) kick(w);
  }
}

// Releases q.mu; then, if a stop lowered q's ready flag while lower levels stood aside, kicks
// them (wake_waiting must run with no kqueue lock held).
void unlock_and_wake(std::unique_lock<std::mutex>& lk, kqueue& q) {
  const bool wake = q.wake_pending;
  q.wake_pending = false;
  lk.unlock();
  if (wake) wake_waiting(q.gate);
}

// Makes kc runnable on q (which it belongs to; q->mu held).
void make_runnable(kqueue& q, kcont_t* kc) {
  if (kc->kc_state & S_QUEUED) return;
  kc->kc_state |= S_QUEUED;
  q.runnable.push_back(*kc);
  set_ready(q, true);
  if (!(kc->kc_state & S_RUNNING)) kick(q);  // a running one is picked up when func returns
}

void expire(void* p) {  // the timer's callout handler
  auto* kc = static_cast<kcont_t*>(p);
  std::unique_lock<std::mutex> lk;
  kqueue& q = kcont_lock(kc, lk);
  if (!(kc->kc_state & S_PENDING)) return;  // stopped meanwhile
  // Re-armed meanwhile (after an ack, or from func): this firing is stale and the new timer
  // will queue it when its time comes; queueing it now would run it early. (Found by the spin
  // model models/kcont_state.pml.)
  if (callout_pending(&kc->kc_timer)) return;
  kc->kc_state = (kc->kc_state & ~S_PENDING) | S_EXPIRED | S_INVOKING;
  make_runnable(q, kc);
}

// Block observer of a running thread-queue continuation: while it sleeps, its level holds
// the CPU's lower levels back only if it has more work queued.
void sleeping(void* qp) {
  auto& q = *static_cast<kqueue*>(qp);
  bool fell;
  {
    std::lock_guard<std::mutex> lk(q.mu);
    fell = set_ready(q, !q.runnable.empty());
  }
  if (fell) wake_waiting(q.gate);
}

void run_queue(kqueue& q) {
  std::unique_lock<std::mutex> lk(q.mu);
  q.drain_queued = false;
  bool fell = set_ready(q, !q.runnable.empty());
  kmutex_t* blocked[16];
  unsigned nblocked = 0;
  auto is_blocked = [&](kmutex_t* m) {
    for (unsigned i = 0; i < nblocked; ++i)
      if (blocked[i] == m) return true;
    return false;
  };
  auto it = q.runnable.begin();
  while (it != q.runnable.end()) {
    if (stand_aside(q)) {
      lk.unlock();
      if (fell) wake_waiting(q.gate);
      return;
    }
    kcont_t* kc = &*it;
    kmutex_t* lock = kc->kc_lock.load();
    if (lock != nullptr && (is_blocked(lock) || !mutex_tryenter(lock))) {
      if (!is_blocked(lock) && nblocked < 16) blocked[nblocked++] = lock;
      ++it;
      continue;
    }
    q.runnable.erase(it);
    kc->kc_state = (kc->kc_state & ~S_QUEUED) | S_RUNNING;
    kc->kc_runner = std::this_thread::get_id();
    kcont_func_t fn = kc->kc_func;
    void* arg = kc->kc_arg;
    ++q.running;
    lk.unlock();
    if (fell) wake_waiting(q.gate);
    fell = false;
    kcont::machine::block_observer previous;
    if (q.gate != nullptr) previous = kcont::machine::set_thread_block_observer({sleeping, &q});
    bool returned;
    {
      kcont::lockdebug::handler_scope scope(kc);
      returned = kcont::machine::run_handler(
          q.b->soft ? "kcont func (soft queue)" : "kcont func (thread queue)", nullptr,
          kcont::machine::code_address(fn), [fn, arg, kc] { fn(arg, kc); });
    }
    if (q.gate != nullptr) kcont::machine::set_thread_block_observer(previous);
    kmutex_t* held = kc->kc_lock.load();  // the lock func returned with (setmutex may change it)
    // A func that threw may have dropped its lock on the way out (a unique_lock unwinding):
    // release only what this thread still holds.
    if (!returned && held != nullptr && !mutex_owned(held)) held = nullptr;
    lk.lock();
    --q.running;
    kc->kc_runner = std::thread::id();
    kc->kc_state &= ~S_RUNNING;
    if (!(kc->kc_state & S_QUEUED)) kc->kc_state &= ~S_INVOKING;
    const bool dying = (kc->kc_state & S_DYING) != 0;
    // Released only now: whoever takes the lock next sees the invocation finished.
    if (held != nullptr) mutex_exit(held);
    fell = set_ready(q, !q.runnable.empty());
    q.ran.notify_all();
    if (dying) {  // destroyed from inside its own func: release it now
      kc->kc_magic = kDead;
      const bool allocated = (kc->kc_state & S_ALLOCATED) != 0;
      lk.unlock();
      callout_halt(&kc->kc_timer, nullptr);
      callout_destroy(&kc->kc_timer);
      kcont::lockdebug::forget(kc);
      if (allocated) delete kc;
      lk.lock();
    }
    it = q.runnable.begin();  // start again from the oldest: a lock may be free now
    nblocked = 0;
  }
  // Empty, or only work whose lock is held elsewhere: lower levels need not wait for it.
  if (set_ready(q, false) || fell) {
    lk.unlock();
    wake_waiting(q.gate);
    lk.lock();
  }
  if (q.runnable.empty()) return;
  // Only work whose lock is held elsewhere is left: try again a little later.
  if (q.b->soft) {
    if (!q.retry_armed) {
      q.retry_armed = true;
      callout_reset(&q.retry, 1, retry_drain, &q);
    }
  } else {
    lk.unlock();
    kpause("kcontlk", false, 1, nullptr);
    lk.lock();
    kick(q);
  }
}

// The caller is running kc's func.
bool inside_own_func(const kcont_t* kc) {
  return (kc->kc_state & S_RUNNING) && kc->kc_runner == std::this_thread::get_id();
}

// lockdebug, before `wait` waits for kc's func (kc's queue locked). Holding kc's own lock
// while func runs elsewhere is a certain deadlock: func gave the lock up for a while and must
// take it back before it returns. Holding it while func is not running is fine (the queued
// invocation cannot start, and halt cancels it). Locks func was seen to take are checked too.
void check_kcont_wait(const char* wait, kcont_t* kc) {
  if (inside_own_func(kc)) return;  // no wait
  if (kc->kc_state & S_RUNNING) kcont::lockdebug::check_wait_for_lock(wait, kc, kc->kc_lock.load());
  kcont::lockdebug::check_wait(wait, kc);
}

// Stops kc: timer, and a runnable-but-not-running invocation. q->mu held.
bool stop_locked(kqueue& q, kcont_t* kc) {
  const bool expired = (kc->kc_state & S_EXPIRED) != 0;
  if (kc->kc_state & S_PENDING) callout_stop(&kc->kc_timer);
  if (kc->kc_state & S_QUEUED) {
    q.runnable.erase(q.runnable.iterator_to(*kc));
    kc->kc_state &= ~S_QUEUED;
    if (!(kc->kc_state & S_RUNNING)) kc->kc_state &= ~S_INVOKING;
    // Its level has nothing left to run: lower it now (a drain that stood aside will not come
    // back to do it, and lower levels would wait behind it forever). With a func running the
    // drain lowers it when func returns.
    if (q.runnable.empty() && q.running == 0 && set_ready(q, false)) q.wake_pending = true;
  }
  kc->kc_state &= ~(S_PENDING | S_EXPIRED);
  return expired;
}

}  // namespace

kcont_wq_t* const wq_softserial = &g_predefined[0];
kcont_wq_t* const wq_softnet = &g_predefined[1];
kcont_wq_t* const wq_softbio = &g_predefined[2];
kcont_wq_t* const wq_softclock = &g_predefined[3];
kcont_wq_t* const wq_prihigh = &g_predefined[4];
kcont_wq_t* const wq_primedhigh = &g_predefined[5];
kcont_wq_t* const wq_primedlow = &g_predefined[6];
kcont_wq_t* const wq_prilow = &g_predefined[7];

int kcont_init(kcont_t* kc, kcont_wq_t* wq, kmutex_t* lock, kcont_func_t func, void* arg,
               int flags) {
  if (kc == nullptr || wq == nullptr || func == nullptr || flags != 0) return EINVAL;
  kcont::runtime& rt = kcont::runtime::current();
  binding* bp;
  try {
    bp = &binding_of(wq, rt);
  } catch (const std::system_error& e) {  // the runtime's queues could not be made
    return e.code().value() != 0 ? e.code().value() : EAGAIN;
  } catch (const std::bad_alloc&) {
    return ENOMEM;
  }
  binding& b = *bp;
  new (&kc->kc_link) boost::intrusive::list_member_hook<>();
  kc->kc_wq = wq;
  kc->kc_lock.store(lock);
  kc->kc_func = func;
  kc->kc_arg = arg;
  kc->kc_state = 0;
  kc->kc_runner = std::thread::id();
  kc->kc_queue.store(&b.queue_for(kcont::machine::current_cpu(rt)));
  callout_init(&kc->kc_timer, CALLOUT_MPSAFE);
  callout_setfunc(&kc->kc_timer, expire, kc);
  kc->kc_magic = kMagic;
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
  kc->kc_state |= S_ALLOCATED;
  return kc;
}

int kcont_schedule(kcont_t* kc, cpu_info* ci, int nticks) {
  check(kc);
  binding& b = *queue_of(kc)->b;
  kcont::runtime& rt = *b.rt;
  if (ci != nullptr && !b.percpu) return ENOENT;
  for (;;) {
    std::unique_lock<std::mutex> lk;
    kqueue& q = kcont_lock(kc, lk);
    const bool self = inside_own_func(kc);
    if ((kc->kc_state & S_INVOKING) && !(self && !(kc->kc_state & S_QUEUED))) return EBUSY;
    // Where it will run: where it runs now if running, else ci / the caller's CPU.
    kqueue* target = &q;
    if (!(kc->kc_state & S_RUNNING) && b.percpu) {
      cpu_info* want = ci != nullptr ? ci : kcont::machine::current_cpu(rt);
      target = &b.queue_for(want);
    }
    if (target != &q) {  // move it: both locks, in address order, then re-check
      if (kc->kc_state & (S_PENDING | S_QUEUED)) stop_locked(q, kc);
      unlock_and_wake(lk, q);
      std::mutex* first = &q.mu < &target->mu ? &q.mu : &target->mu;
      std::mutex* second = first == &q.mu ? &target->mu : &q.mu;
      std::unique_lock<std::mutex> a(*first), c(*second);
      if (queue_of(kc) != &q || (kc->kc_state & (S_RUNNING | S_QUEUED | S_PENDING))) continue;
      kc->kc_queue.store(target);
      continue;  // schedule again on the new queue
    }
    if (nticks <= 0) {
      if (kc->kc_state & S_PENDING) callout_stop(&kc->kc_timer);
      kc->kc_state = (kc->kc_state & ~(S_PENDING | S_EXPIRED)) | S_INVOKING;
      make_runnable(q, kc);
    } else {
      kc->kc_state = (kc->kc_state & ~S_EXPIRED) | S_PENDING;
      if (self) kc->kc_state &= ~S_INVOKING;
      // The timer fires on the caller's CPU (callout migration); expire() queues the
      // continuation on its own queue, which wakes the right CPU.
      callout_schedule(&kc->kc_timer, nticks);
    }
    return 0;
  }
}

bool kcont_stop(kcont_t* kc) {
  check(kc);
  std::unique_lock<std::mutex> lk;
  kqueue& q = kcont_lock(kc, lk);
  const bool expired = stop_locked(q, kc);
  unlock_and_wake(lk, q);
  return expired;
}

bool kcont_halt(kcont_t* kc) {
  check(kc);
  std::unique_lock<std::mutex> lk;
  kqueue* q = &kcont_lock(kc, lk);
  check_kcont_wait("kcont_halt", kc);
  bool expired = stop_locked(*q, kc);
  while ((kc->kc_state & S_RUNNING) && !inside_own_func(kc)) {
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
    kqueue& q = kcont_lock(kc, lk);
    if (inside_own_func(kc)) {  // the executor frees it after func returns
      stop_locked(q, kc);
      kc->kc_state |= S_DYING;
      return;
    }
  }
  {
    std::unique_lock<std::mutex> lk;
    kcont_lock(kc, lk);
    check_kcont_wait("kcont_destroy", kc);
  }
  kcont_halt(kc);
  callout_halt(&kc->kc_timer, nullptr);  // an expiry handler may be about to queue it
  {
    std::unique_lock<std::mutex> lk;
    kqueue& q = kcont_lock(kc, lk);
    stop_locked(q, kc);
    kc->kc_magic = kDead;
    unlock_and_wake(lk, q);
  }
  callout_destroy(&kc->kc_timer);
  kcont::lockdebug::forget(kc);
  if (kc->kc_state & S_ALLOCATED) delete kc;
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
  kc->kc_lock.store(lock);
  return old;
}

void kcont_setarg(kcont_t* kc, void* arg) {
  check(kc);
  kmutex_t* l = kc->kc_lock.load();
  if (l != nullptr && !mutex_owned(l))
    misuse("kcont_setarg without holding the continuation's lock");
  std::unique_lock<std::mutex> lk;
  kcont_lock(kc, lk);
  kc->kc_arg = arg;
}

void kcont_setfunc(kcont_t* kc, kcont_func_t func, void* arg) {
  check(kc);
  kmutex_t* l = kc->kc_lock.load();
  if (l != nullptr && !mutex_owned(l))
    misuse("kcont_setfunc without holding the continuation's lock");
  if (func == nullptr) misuse("kcont_setfunc with a NULL function");
  std::unique_lock<std::mutex> lk;
  kcont_lock(kc, lk);
  kc->kc_func = func;
  kc->kc_arg = arg;
}

namespace {
bool has_state(kcont_t* kc, unsigned bits) {
  check(kc);
  std::unique_lock<std::mutex> lk;
  kcont_lock(kc, lk);
  return (kc->kc_state & bits) != 0;
}
}  // namespace

bool kcont_pending(kcont_t* kc) {
  return has_state(kc, S_PENDING);
}
bool kcont_expired(kcont_t* kc) {
  return has_state(kc, S_EXPIRED);
}
bool kcont_active(kcont_t* kc) {
  return has_state(kc, S_PENDING | S_EXPIRED);
}
bool kcont_invoking(kcont_t* kc) {
  return has_state(kc, S_INVOKING);
}

bool kcont_ack(kcont_t* kc) {
  check(kc);
  std::unique_lock<std::mutex> lk;
  kcont_lock(kc, lk);
  const bool was = (kc->kc_state & S_INVOKING) != 0;
  kc->kc_state &= ~S_INVOKING;
  return was;
}

kcont_wq_t* kcont_workqueue_acquire(pri_t pri, int flags) {
  if (pri < PRI_NONE || pri > PRI_LOW || (flags & ~WQ_PERCPU) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  kcont::runtime& rt = kcont::runtime::current();
  auto fail = [](const std::system_error& e) -> kcont_wq_t* {  // no thread for its workers
    errno = e.code().value() != 0 ? e.code().value() : EAGAIN;
    return nullptr;
  };
  runtime_state* st;
  try {
    st = &state_of(rt);
  } catch (const std::system_error& e) {
    return fail(e);
  }
  std::lock_guard<std::mutex> lk(st->acquire_mu);
  kcont_wq*& slot = st->acquired[{pri, flags}];
  if (slot == nullptr) {
    auto wq = std::make_unique<kcont_wq>(kcont_wq{8, pri, flags});
    const unsigned level = pri == PRI_NONE ? PRI_MEDLOW : static_cast<unsigned>(pri);
    try {
      wq->acquired = make_binding(rt, false, level, (flags & WQ_PERCPU) != 0).release();
    } catch (const std::system_error& e) {
      st->acquired.erase({pri, flags});
      return fail(e);
    }
    slot = wq.release();
  }
  ++slot->refs;
  return slot;
}

int kcont_workqueue_release(kcont_wq_t* wq) {
  if (wq == nullptr || wq->kind != 8) return EINVAL;
  kcont::runtime& rt = *wq->acquired->rt;
  runtime_state& st = state_of(rt);
  binding* gone = nullptr;
  {
    std::lock_guard<std::mutex> lk(st.acquire_mu);
    if (--wq->refs == 0) {
      st.acquired.erase({wq->pri, wq->flags});
      gone = wq->acquired;
    }
  }
  if (gone != nullptr) {
    free_binding(gone);
    delete wq;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------

namespace kcont {

continuation::continuation(kcont_wq_t* wq, std::function<void()> fn, kmutex_t* lock)
    : continuation(runtime::current(), wq, std::move(fn), lock) {}

continuation::continuation(runtime& rt, kcont_wq_t* wq, std::function<void()> fn, kmutex_t* lock)
    : fn_(std::move(fn)), hz_(rt.hz()) {
  runtime_scope scope(rt);
  if (kcont_init(&kc_, wq, lock, &continuation::trampoline, this, 0) != 0)
    throw std::invalid_argument("kcont::continuation: NULL queue");
}

continuation::~continuation() {
  kcont_destroy(&kc_);
}

void continuation::trampoline(void* self, kcont_t*) {
  static_cast<continuation*>(self)->fn_();
}

}  // namespace kcont
