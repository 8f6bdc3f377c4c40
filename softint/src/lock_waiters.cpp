// Lock waiters (machine_hooks.h): the kmutex_t side of the kcont layer's turnstile.
//
// Locks used here:
//   [s] the stripe of the kmutex (stripe_of(m)): guards a kmutex's waiter list and each
//       waiter's links and `on`; held while the releaser calls wake.
//   [a] read without a lock (atomic).
// A kmutex's `waiters` pointer is written under its stripe and read without it by mutex_exit
// (the fast path: one load after a fence, and nothing more when no one waits).
//
// The race between a waiter registering and the holder releasing is closed as in a Dekker
// pair: the waiter stores itself (seq_cst), then tries the lock; the releaser unlocks, issues
// a seq_cst fence, then loads `waiters`. Either the try succeeds or the releaser sees the
// waiter.
#include <kcont/internal/machine_hooks.h>
#include <kcont/mutex.h>

#include <atomic>
#include <cstdint>
#include <mutex>

namespace kcont::machine {
namespace {

constexpr std::size_t kStripes = 64;
std::mutex g_stripes[kStripes];  // constant-initialised: usable before and after main

std::mutex& stripe_of(const kmutex_t* m) {
  const auto a = reinterpret_cast<std::uintptr_t>(m);
  return g_stripes[(a >> 6) % kStripes];
}

// [s] held: unlinks w from m's list.
void unlink_locked(kmutex_t* m, lock_waiter* w) {
  if (w->prev != nullptr)
    w->prev->next = w->next;
  else
    m->waiters.store(w->next, std::memory_order_seq_cst);
  if (w->next != nullptr) w->next->prev = w->prev;
  w->next = w->prev = nullptr;
  w->on.store(nullptr, std::memory_order_relaxed);
}

}  // namespace

void lock_wait(kmutex_t* m, lock_waiter* w) {
  lock_unwait(w);  // from wherever it is, and after any wake of it in flight
  std::lock_guard<std::mutex> lk(stripe_of(m));
  lock_waiter* head = m->waiters.load(std::memory_order_relaxed);
  w->prev = nullptr;
  w->next = head;
  if (head != nullptr) head->prev = w;
  w->on.store(m, std::memory_order_relaxed);
  m->waiters.store(w, std::memory_order_seq_cst);
}

void lock_unwait(lock_waiter* w) {
  for (;;) {
    // `on` stays set while a releaser calls w's wake (it holds the stripe then), so seeing
    // nullptr means no wake of w is in flight.
    kmutex_t* m = w->on.load(std::memory_order_acquire);
    if (m == nullptr) return;
    std::lock_guard<std::mutex> lk(stripe_of(m));
    if (w->on.load(std::memory_order_relaxed) != m) continue;  // moved or woken meanwhile
    if (w->next != nullptr || w->prev != nullptr || m->waiters.load() == w) unlink_locked(m, w);
    w->on.store(nullptr, std::memory_order_release);
    return;
  }
}

// Called by mutex_exit after the unlock when `waiters` was seen non-empty.
void detail_wake_lock_waiters(kmutex_t* m) {
  std::lock_guard<std::mutex> lk(stripe_of(m));
  lock_waiter* w = m->waiters.load(std::memory_order_relaxed);
  m->waiters.store(nullptr, std::memory_order_relaxed);
  while (w != nullptr) {
    lock_waiter* next = w->next;
    w->next = w->prev = nullptr;
    w->wake(w->arg);
    w->on.store(nullptr, std::memory_order_release);  // after wake: see lock_unwait
    w = next;
  }
}

}  // namespace kcont::machine
