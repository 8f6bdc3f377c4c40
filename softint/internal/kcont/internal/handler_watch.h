// The running side of the stuck-handler watchdog (<kcont/watchdog.h>): each thread that runs
// handlers has a slot saying what it runs now; run_handler (machine_hooks.h) fills it.
//
// Protocol between a handler's thread and the watchdog (an asymmetric Dekker handshake):
//   handler thread: store kind/queue/fn, bump seq (release), store depth; compiler fence; read
//                   parked; if set, wake the watchdog (watch_unpark).
//   watchdog:       store parked; membarrier(PRIVATE_EXPEDITED) (a full fence on every running
//                   thread of the process); read every slot's depth; sleep only if all are 0.
// The membarrier orders the handler thread's plain store before its load as a fence would,
// so either the watchdog sees the handler running or the handler sees it parked; the hot path
// needs no fence instruction.
//
// Locks used to protect the fields of handler_slot:
//   [a] atomic, written only by the slot's own thread, read by the watchdog
//   [I] immutable once registered
//   [r] the registry's mutex (watchdog.cpp)
//   [W] the watchdog thread only
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>

namespace kcont::machine {

struct alignas(64) handler_slot {
  std::atomic<const char*> kind{nullptr};   // [a]
  std::atomic<const char*> queue{nullptr};  // [a]
  std::atomic<const void*> fn{nullptr};     // [a]
  std::atomic<std::uint64_t> seq{0};        // [a] bumped at each handler's start and end
  std::atomic<unsigned> depth{0};           // [a] nested handlers running now (0: idle)
  int cpu = -1;                             // [I] runtime CPU the thread serves, -1: none
  pthread_t thread{};                       // [I]
  handler_slot* next = nullptr;             // [r]
  std::uint64_t seen_seq = 0;               // [W] seq at the last sample
  std::int64_t seen_since = 0;              // [W] when that seq was first seen
  std::uint64_t reported_seq = 0;           // [W] the invocation reported stuck (0: none)
  std::int64_t reported_since = 0;          // [W] and what it was, for the line that says it
  const char* reported_kind = nullptr;      // [W] returned
  const char* reported_queue = nullptr;     // [W]
  const void* reported_fn = nullptr;        // [W]
};

// Whether the watchdog is on (relaxed: turning it on applies from the next handler).
extern std::atomic<bool> g_watch_on;
// Set by the watchdog while it sleeps for want of running handlers.
extern std::atomic<int> g_watch_parked;

// Registers the calling thread on first use; nullptr if its slot could not be allocated (its
// handlers then go unwatched).
handler_slot* this_thread_handler_slot() noexcept;
void watch_unpark() noexcept;

// What a handler's start saved, for its end to restore (handlers nest: a callout runs inside
// the softclock softint, a taskctx task inside whatever dispatched it).
struct watch_frame {
  handler_slot* slot = nullptr;  // nullptr: the watchdog was off when the handler began
  const char* kind;
  const char* queue;
  const void* fn;
};

inline void watch_publish(handler_slot* s, const char* kind, const char* queue,
                          const void* fn) noexcept {
  s->kind.store(kind, std::memory_order_relaxed);
  s->queue.store(queue, std::memory_order_relaxed);
  s->fn.store(fn, std::memory_order_relaxed);
  s->seq.store(s->seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

inline watch_frame watch_enter(const char* kind, const char* queue, const void* fn) noexcept {
  watch_frame f{};
  if (!g_watch_on.load(std::memory_order_relaxed)) return f;
  handler_slot* s = this_thread_handler_slot();
  if (s == nullptr) return f;
  f = {s, s->kind.load(std::memory_order_relaxed), s->queue.load(std::memory_order_relaxed),
       s->fn.load(std::memory_order_relaxed)};
  watch_publish(s, kind, queue, fn);
  s->depth.store(s->depth.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // the watchdog's membarrier does the rest
  if (g_watch_parked.load(std::memory_order_relaxed) != 0) watch_unpark();
  return f;
}

inline void watch_leave(const watch_frame& f) noexcept {
  handler_slot* s = f.slot;
  if (s == nullptr) return;
  // A new seq: the enclosing handler's remaining run is timed afresh (a softclock running
  // many short callouts is not one stuck handler).
  watch_publish(s, f.kind, f.queue, f.fn);
  s->depth.store(s->depth.load(std::memory_order_relaxed) - 1, std::memory_order_release);
}

}  // namespace kcont::machine
