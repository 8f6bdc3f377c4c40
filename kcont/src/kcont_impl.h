// kcont's private structures, shared by its files (one job each):
//   bindings.cpp     a queue's per-runtime binding: kqueues, their softint or workqueue,
//                    predefined and acquired queues, reference counts;
//   level_gate.cpp   strict priority among the four predefined thread levels of one CPU;
//   drain.cpp        running a kqueue: lock-associated ordering, lock waiters, bounded passes;
//   state.cpp        the kernel-style API: the PENDING/EXPIRED/INVOKING state machine;
//   continuation.cpp the RAII face;
//   hop.cpp          one-shot hops onto a queue (the coroutine awaitable on(wq));
//   coro.cpp         the coroutine awaitables of <kcont/coro.h> (sleeps, hops).
//
// Each queue (kcont_wq_t) is bound, per runtime, to one kqueue per CPU (or one in all): a FIFO
// of runnable continuations and a way to get it drained on its CPU — a softint of the queue's
// level (soft queues) or a work item on a workqueue(9) of the queue's priority (thread queues).
//
// Locks used to protect the fields below:
//   [I] immutable after creation
//   [q] the kqueue's mu (for a continuation: the mu of the kqueue it belongs to, kc_queue;
//       kcont_lock() finds it and re-checks, as callout_lock() does)
//   [r] the runtime state's acquire_mu
//   [a] atomic, read and written without a lock
//   [s] the lock-waiter stripe of the continuation's kmutex (softint/src/lock_waiters.cpp)
//   [f] kc_resched: atomic; set under [q], taken by func's thread by compare-and-swap and by
//       others by exchange under [q] (state.cpp, "Re-scheduling from its own func")
// Lock order: a continuation's own lock (held by func, or by callers of setmutex) -> kqueue mu
// -> lock-waiter stripe -> the layers below (softint, callout, the worker engine).
#pragma once

#include <kcont/internal/machine_hooks.h>
#include <kcont/internal/misuse.h>
#include <kcont/internal/queue_counters.h>
#include <kcont/kcont.h>

#include <boost/intrusive/list.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace kcont::detail {

// kc_state bits [q].
inline constexpr unsigned KC_PENDING = 1u << 0;
inline constexpr unsigned KC_EXPIRED = 1u << 1;
inline constexpr unsigned KC_INVOKING = 1u << 2;
inline constexpr unsigned KC_QUEUED = 1u << 3;   // on its kqueue's runnable list
inline constexpr unsigned KC_RUNNING = 1u << 4;  // func running now
inline constexpr unsigned KC_DYING = 1u << 5;    // destroyed from inside its own func
inline constexpr unsigned KC_ALLOCATED = 1u << 6;
inline constexpr unsigned KC_MAGIC = 0x4b434f4eu;  // kc_magic of a live continuation: "KCON"
inline constexpr unsigned KC_DEAD = 0xdeadc047u;   // ... of a destroyed one

inline constexpr unsigned kSoftLevels = 4;                       // wq_softserial .. wq_softclock
inline constexpr unsigned kThreadLevels = 4;                     // wq_prihigh .. wq_prilow
inline constexpr int kPredefined = kSoftLevels + kThreadLevels;  // kinds 0..7, soft first
inline constexpr int kAcquiredKind = kPredefined;

[[noreturn]] inline void misuse(const char* what) {
  kcont::internal::misuse("kcont", what);
}

using kcont_list = boost::intrusive::list<
    kcont_t,
    boost::intrusive::member_hook<kcont_t, boost::intrusive::list_member_hook<>, &kcont_t::kc_link>,
    boost::intrusive::constant_time_size<false>>;
using hop_list =
    boost::intrusive::list<kcont_hop,
                           boost::intrusive::member_hook<
                               kcont_hop, boost::intrusive::list_member_hook<>, &kcont_hop::link>,
                           boost::intrusive::constant_time_size<false>>;

struct binding;
struct kqueue;

// One CPU's view of the four predefined thread levels (level_gate.cpp).
struct alignas(64) level_gate {
  std::atomic<bool> ready[kThreadLevels] = {};  // [a] level L has work that may start
  std::atomic<unsigned> waiting{0};             // [a] bit L: level L's drain stood aside
  kqueue* queues[kThreadLevels] = {};           // [I]
};

// Registered with its runtime's queue statistics (<kcont/queue_stats.h>) while it exists:
// continuations and hops count as its tasks.
struct kqueue {
  kqueue(kcont::runtime& rt, const char* name, cpu_info* ci);
  ~kqueue();
  kqueue(const kqueue&) = delete;
  kqueue& operator=(const kqueue&) = delete;

  kcont::runtime& rt;  // [I]
  std::mutex mu;
  std::condition_variable ran;            // [q] a func returned (halt and destroy wait here)
  kcont_list runnable;                    // [q]
  hop_list hops;                          // [q] one-shot hops (hop.cpp), oldest first
  binding* b = nullptr;                   // [I]
  cpu_info* const cpu;                    // [I] nullptr: the queue of a non-per-CPU wq
  work drain_work{};                      // [I] thread queues: the work item that drains this queue
  std::atomic<bool> drain_queued{false};  // [a] drain_work is queued and has not started
  level_gate* gate = nullptr;             // [I] predefined thread queues: their CPU's gate
  unsigned level = 0;                     // [I] ... and their level in it, 0 = wq_prihigh
  unsigned running = 0;                   // [q] funcs of this queue running now
  // [q] written, read without it: continuations and hops queued (drain.cpp's run_again).
  std::atomic<unsigned> queued_work{0};
  // [a] A hop queued onto this soft queue from inside one of its own hops while nothing else
  // was queued: its drain runs it next (run_hop); kcont_hop_done may take it back first.
  // Written only by the drain's thread when empty; taken by exchange or compare-and-swap.
  std::atomic<kcont_hop*> stashed_hop{nullptr};
  bool wake_pending = false;  // [q] a stop lowered `ready` while a lower level stood aside
  kcont::internal::queue_counters counters;      // [q]
  kcont::internal::queue_stats_node stats_node;  // [I]
};

struct binding {
  kcont::runtime* rt = nullptr;                 // [I]
  bool soft = false;                            // [I]
  bool percpu = true;                           // [I]
  void* softint = nullptr;                      // [I] soft queues
  workqueue* wq = nullptr;                      // [I] thread queues
  std::vector<std::unique_ptr<kqueue>> queues;  // [I]
  kqueue& queue_for(cpu_info* ci) { return percpu ? *queues[cpu_index(ci)] : *queues[0]; }
};

// The per-runtime state of the kcont layer (bindings.cpp).
struct runtime_state {
  std::unique_ptr<level_gate[]> gates;  // [I] one per CPU
  // Owned. The soft queues' [I], made with the state; the thread queues' [a], made under
  // acquire_mu on first use, so that a runtime using only soft queues (attach mode) starts no
  // worker engine and no thread.
  std::atomic<binding*> predefined[kPredefined] = {};
  std::mutex acquire_mu;
  std::map<std::pair<int, int>, kcont_wq*> acquired;  // [r] by {pri, flags}
  // [r] The runtime is being destroyed: a queue whose last reference goes stays in `acquired`
  // (refs 0) for the teardown to free, which it does once no drain runs.
  bool tearing_down = false;
  // Acquired bindings being freed on a thread of their own (their last reference went inside
  // one of their own drains); the runtime's teardown waits for them.
  std::mutex reap_mu;
  std::condition_variable reaped;  // [reap_mu]
  unsigned reaping = 0;            // [reap_mu]
};

}  // namespace kcont::detail

// A queue handle. Predefined ones are static and bind lazily in each runtime; an acquired one
// belongs to one runtime and lives while it is acquired or has continuations bound to it.
struct kcont_wq {
  int kind;   // [I] below kPredefined: predefined (highest priority first); kAcquiredKind
  pri_t pri;  // [I]
  int flags;  // [I]
  kcont::detail::binding* acquired = nullptr;  // [I] acquired queues: their binding
  kcont::runtime* rt = nullptr;                // [I] acquired queues: their runtime
  unsigned refs = 0;  // [r] acquired queues: acquisitions + continuations bound to it
};

namespace kcont::detail {

// [q] held: q has work to start (a runnable continuation or a hop).
inline bool has_runnable(const kqueue& q) {
  return !q.runnable.empty() || !q.hops.empty();
}
// [q] held: a continuation or hop joined / left q's lists.
inline void work_queued(kqueue& q) {
  q.queued_work.store(q.queued_work.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}
inline void work_dequeued(kqueue& q) {
  q.queued_work.store(q.queued_work.load(std::memory_order_relaxed) - 1, std::memory_order_release);
}

// ---- bindings.cpp ----
runtime_state& state_of(kcont::runtime& rt);
// The binding of wq in rt; for an acquired queue, takes a reference for a continuation bound
// to it (dropped by unbind). Throws std::system_error when the runtime's queues cannot be made.
binding& bind(kcont_wq* wq, kcont::runtime& rt);
void unbind(kcont_wq* wq);
void set_draining(const binding* b);  // this thread drains b (nullptr: none)

// ---- level_gate.cpp ----
bool set_ready(kqueue& q, bool ready);
bool stand_aside(kqueue& q);
void wake_waiting(level_gate* gate);
void unlock_and_wake(std::unique_lock<std::mutex>& lk, kqueue& q);

// ---- state.cpp ----
// The continuation whose func this thread is running now (invoke() sets it around func), or
// nullptr. Constant-initialised: reading it is one thread-pointer-relative load.
inline thread_local const kcont_t* tl_running_kc = nullptr;
// kc_resched bits: func may ask unlocked; func asked.
inline constexpr unsigned char KC_RESCHED_OK = 1, KC_RESCHED_ASKED = 2;
void queue_now(kqueue& q, kcont_t* kc);        // [q] held: schedule at once (state + runnable)
void allow_resched(kcont_t* kc);               // [q] held, func about to start: may ask unlocked
void settle_resched(kqueue& q, kcont_t* kc);   // [q] held: no more unlocked asks; queue an ask
void settle_returned(kqueue& q, kcont_t* kc);  // the same as func returns (no unlocked ask left)
// Func's thread, no lock, func returned: true if func asked and may run again at once.
bool take_resched(kcont_t* kc);

// ---- drain.cpp ----
// The queue whose drain this thread is running now (run_queue), or nullptr. Work added to a
// soft queue from inside one of its own funcs or hops needs no kick: the drain looks again
// after each run. (A thread queue is still kicked: measured, a hop loop on wq_prihigh took
// 1.3-1.7x longer without the kick, 95-113 ns -> 137-189 ns per hop.)
inline thread_local const kqueue* tl_draining_q = nullptr;
// The queue whose hop this thread is running now (run_hop), or nullptr.
inline thread_local const kqueue* tl_hop_q = nullptr;
kqueue* queue_of(const kcont_t* kc);
kqueue& kcont_lock(const kcont_t* kc, std::unique_lock<std::mutex>& lk);
void kick(kqueue& q);                        // any lock or none: get q drained soon
void make_runnable(kqueue& q, kcont_t* kc);  // [q] held
void soft_drain(void* binding_arg);          // the soft queues' softint handler
void thread_drain(work* wk, void* arg);      // the thread queues' workqueue function
void lock_wake(void* kc);                    // kc's lock was released: get its queue drained

}  // namespace kcont::detail
