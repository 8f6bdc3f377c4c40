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
// kcont/internal/machine_hooks.h, not installed). Locks: [s] the kmutex's lock-waiter stripe, [a]
// atomic, [I] set before the first lock_wait.
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

// Interrupt priority levels, by both kernels' names, for every interface that takes an `ipl`
// (mutex_init, taskq_create, taskctx_init, TASKCTX_INITIALIZER, workqueue_create). User space
// has no spl: kcont accepts any of them and ignores it. The values keep each kernel's relative
// order: NetBSD's NONE < SOFTCLOCK < SOFTBIO < SOFTNET < SOFTSERIAL < VM < SCHED < HIGH, and
// OpenBSD's NONE < SOFTCLOCK < SOFTNET < BIO < NET < SOFTTTY < TTY < VM < AUDIO <
// CLOCK = STATCLOCK = SCHED < HIGH < IPI.
inline constexpr int IPL_NONE = 0;
inline constexpr int IPL_SOFTCLOCK = 1;
inline constexpr int IPL_SOFTBIO = 2;  // NetBSD
inline constexpr int IPL_SOFTNET = 3;
inline constexpr int IPL_SOFTSERIAL = 4;  // NetBSD
inline constexpr int IPL_BIO = 5;         // OpenBSD (and older NetBSD drivers)
inline constexpr int IPL_NET = 6;
inline constexpr int IPL_SOFTTTY = 7;  // OpenBSD
inline constexpr int IPL_TTY = 8;
inline constexpr int IPL_VM = 9;
inline constexpr int IPL_AUDIO = 10;
inline constexpr int IPL_CLOCK = 11;
inline constexpr int IPL_STATCLOCK = IPL_CLOCK;
inline constexpr int IPL_SCHED = IPL_CLOCK;
inline constexpr int IPL_HIGH = 12;
inline constexpr int IPL_IPI = 13;  // OpenBSD
// OpenBSD flags OR-ed into an ipl (e.g. IPL_NET | IPL_MPSAFE): accepted and ignored with it.
inline constexpr int IPL_MPSAFE = 0x100;
inline constexpr int IPL_WAKEUP = 0x200;

#ifdef KCONT_LOCKDEBUG
// Debug builds record where each lock was initialised and taken (kcont/internal/lockdebug.h).
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
