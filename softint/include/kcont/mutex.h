// mutex(9) in miniature: kmutex_t, the lock kernel-style interfaces take (callout_halt's
// interlock, a kcont's associated lock). An adaptive mutex that knows its owner, so that
// mutex_owned() can back the "must hold the lock" rules with checks.
#pragma once

#include <atomic>
#include <mutex>

struct kmutex {
  std::mutex m;
  std::atomic<const void*> owner{nullptr};  // a per-thread tag while held
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

void mutex_init(kmutex_t* m, int type, int ipl);
void mutex_destroy(kmutex_t* m);  // must not be held (checked)
void mutex_enter(kmutex_t* m);    // recursion is misuse (checked)
void mutex_exit(kmutex_t* m);     // only by the owner (checked)
bool mutex_tryenter(kmutex_t* m);
bool mutex_owned(const kmutex_t* m);
