// mutex(9) in miniature: kmutex_t, the lock kernel-style interfaces take (callout_halt's
// interlock, a kcont's associated lock). An adaptive mutex that knows its owner, so that
// mutex_owned() can back the "must hold the lock" rules with checks.
#pragma once

#include <kcont/config.h>

#include <atomic>
#include <mutex>
#ifdef KCONT_LOCKDEBUG
#include <source_location>
#endif

struct kmutex;

namespace kcont::machine {
// A waiter for a kmutex_t's next release (the kcont layer's turnstile; see lock_wait in
// <kcont/machine_hooks.h>). Locks: [s] the kmutex's lock-waiter stripe, [a] atomic, [I] set
// before the first lock_wait.
struct lock_waiter {
  lock_waiter* next = nullptr;                // [s] on the kmutex's list
  lock_waiter* prev = nullptr;                // [s]
  std::atomic<struct ::kmutex*> on{nullptr};  // [s] written, [a] read: what it waits on
  void (*wake)(void* arg) = nullptr;          // [I]
  void* arg = nullptr;                        // [I]
};
}  // namespace kcont::machine

struct kmutex {
  std::mutex m;
  std::atomic<const void*> owner{nullptr};  // a per-thread tag while held
  // Who waits for the next release (the kcont layer's continuations; machine_hooks.h).
  std::atomic<kcont::machine::lock_waiter*> waiters{nullptr};
#ifdef KCONT_LOCKDEBUG
  std::source_location init_where{};  // names the lock in lockdebug reports
#endif
};
typedef kmutex kmutex_t;

// mutex_init's type and ipl are accepted for source compatibility; every kmutex is adaptive.
inline constexpr int MUTEX_DEFAULT = 0;
inline constexpr int MUTEX_DRIVER = 1;
inline constexpr int MUTEX_SPIN = 2;
inline constexpr int IPL_NONE = 0;
inline constexpr int IPL_SOFTCLOCK = 1;
inline constexpr int IPL_SOFTBIO = 2;
inline constexpr int IPL_SOFTNET = 3;
inline constexpr int IPL_SOFTSERIAL = 4;
inline constexpr int IPL_VM = 5;
inline constexpr int IPL_SCHED = 6;
inline constexpr int IPL_HIGH = 7;

#ifdef KCONT_LOCKDEBUG
// Debug builds record where each lock was initialised and taken (kcont/lockdebug.h).
void mutex_init(kmutex_t* m, int type, int ipl,
                std::source_location where = std::source_location::current());
void mutex_enter(kmutex_t* m, std::source_location where = std::source_location::current());
bool mutex_tryenter(kmutex_t* m, std::source_location where = std::source_location::current());
#else
void mutex_init(kmutex_t* m, int type, int ipl);
void mutex_enter(kmutex_t* m);  // recursion is misuse (checked)
bool mutex_tryenter(kmutex_t* m);
#endif
void mutex_destroy(kmutex_t* m);  // must not be held (checked)
void mutex_exit(kmutex_t* m);     // only by the owner (checked)
bool mutex_owned(const kmutex_t* m);
