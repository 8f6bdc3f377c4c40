// callout(9) on the per-CPU timing wheels (wheel.h): the private structures, shared by its files
// (one job each):
//   callout.cpp    the kernel face (callout_init ... callout_bind, getticks) and the C++ face;
//   arm.cpp        arming: the due tick (never early), far deadlines in segments, migration;
//   softclock.cpp  per-runtime state, the clock hook that advances a CPU's wheel, softclock.
//
// Per runtime: one callout_cpu per CPU (a wheel, the list of due callouts, the callout whose
// handler runs now) and one softclock softint (SOFTINT_CLOCK) that runs due callouts. The
// machine's clock hook, called on a CPU's loop thread when its requested time comes, advances
// that CPU's wheel to the current tick, moves what is due to the expired list, schedules
// softclock, and asks for the next wake-up (tickless: nothing armed, nothing asked).
//
// Lock order: an interlock given to callout_halt → callout_cpu::lock (two of them only in
// migration, taken in address order) → the machine's internal locks. A callout's fields are
// guarded by the lock of its c_cpu; callout_lock() finds it, re-checking c_cpu after locking
// because a migration may move it meanwhile (c_cpu changes only with both CPUs' locks held).
//
// Locks used to protect the fields below (as in OpenBSD kern_timeout.c):
//   [I] immutable once the runtime's callout state is made (state_of)
//   [c] callout_cpu::lock of the CPU concerned; for a struct callout, of its c_cpu
//   [s] the softclock of that CPU only (its loop thread)
//
// Handler protocol (NetBSD kern_timeout.c): softclock takes a due callout off the expired list,
// turns PENDING into EXPIRED|INVOKING, records it as running, drops the lock and calls the
// handler; afterwards it never touches the callout again (the handler may free it), it only
// clears `running` and wakes callout_halt waiters.
#pragma once

#include "wheel.h"

#include <kcont/callout.h>
#include <kcont/internal/counters.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/internal/misuse.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace kcont::detail::callouts {

inline constexpr std::uint32_t CALLOUT_MAGIC = 0x43414c4cu;  // "CALL"
inline constexpr std::uint32_t CALLOUT_DESTROYED = 0xdeadca11u;
inline constexpr std::uint8_t CALLOUT_ON_EXPIRED_LIST =
    0xff;  // c_level while waiting for softclock

inline constexpr std::uint32_t CALLOUT_PENDING = 0x0001;
inline constexpr std::uint32_t CALLOUT_EXPIRED = 0x0002;
inline constexpr std::uint32_t CALLOUT_INVOKING = 0x0004;
inline constexpr std::uint32_t CALLOUT_BOUND = 0x0200;

static_assert(sizeof(::callout) <= 64, "struct callout must fit a cache line");

[[noreturn]] inline void misuse(const char* what, const ::callout* c) {
  kcont::internal::misuse_at("callout", what, "callout", c);
}

inline void check(const ::callout* c) {
  if (c == nullptr) misuse("NULL callout", c);
  if (c->c_magic != CALLOUT_MAGIC)
    misuse(c->c_magic == CALLOUT_DESTROYED
               ? "use of a destroyed callout"
               : "use of an uninitialised callout (callout_init it first)",
           c);
}

struct alignas(64) callout_cpu {
  callout_cpu(cpu_info* c, std::uint32_t start) : ci(c), wheel(start) {}
  std::mutex lock;
  std::condition_variable done_cv;  // [c] running cleared (callout_halt waiters)
  cpu_info* const ci;               // [I]
  timing_wheel wheel;               // [c]
  callout_list expired;             // [c] due, waiting for softclock
  ::callout* running = nullptr;     // [c] written by [s]: the handler running now
  unsigned halt_waiters = 0;        // [c]
  // Statistics (callout_stats): written with [c] held, read without it (relaxed).
  internal::owner_counter armed, fired, cancelled;
};

// Every field [I].
struct callout_state {
  runtime* rt;
  std::int64_t epoch;
  std::int64_t hz;
  std::uint32_t initial_ticks;
  std::vector<std::unique_ptr<callout_cpu>> cpus;
  void* softclock = nullptr;

  // A tick is a whole number of nanoseconds when hz divides 10^9 (every usual hz); then the
  // arithmetic below is one 64-bit division. Otherwise it falls back to 128-bit products.
  std::int64_t ns_per_tick = 0;

  // Ticks since the epoch, as a 64-bit count (no wrap) and as the 32-bit kernel counter.
  std::int64_t tick_count(std::int64_t ns) const {
    if (ns_per_tick != 0) return (ns - epoch) / ns_per_tick;
    return static_cast<std::int64_t>(static_cast<__int128>(ns - epoch) * hz / 1'000'000'000);
  }
  std::uint32_t ticks32(std::int64_t count) const {
    return initial_ticks + static_cast<std::uint32_t>(count);
  }
  // The time tick `count` begins, rounded up so that reaching it means the tick has come.
  std::int64_t tick_ns(std::int64_t count) const {
    if (ns_per_tick != 0) return epoch + count * ns_per_tick;
    __int128 n = static_cast<__int128>(count) * 1'000'000'000 + hz - 1;
    return epoch + static_cast<std::int64_t>(n / hz);
  }
  // The 64-bit count of a 32-bit tick `t`, taken as the nearest one to `near` (a count).
  std::int64_t count_of(std::uint32_t t, std::int64_t near) const {
    return near + static_cast<std::int32_t>(t - ticks32(near));
  }
  callout_cpu& of(const cpu_info* ci) const { return *cpus[cpu_index(ci)]; }
};

// The runtime's callout state, made on first use (softclock.cpp); state_if_made does not make it.
callout_state& state_of(runtime& rt);
callout_state* state_if_made(runtime& rt);

inline cpu_info* cpu_of(const ::callout* c) {
  return std::atomic_ref<cpu_info* const>(c->c_cpu).load(std::memory_order_acquire);
}
inline void set_cpu(::callout* c, cpu_info* ci) {
  std::atomic_ref<cpu_info*>(c->c_cpu).store(ci, std::memory_order_release);
}

// Locks the wheel that owns c; returns it locked.
inline callout_cpu& callout_lock(const ::callout* c, std::unique_lock<std::mutex>& lk) {
  for (;;) {
    cpu_info* ci = cpu_of(c);
    callout_cpu& cc = state_of(machine::runtime_of(ci)).of(ci);
    lk = std::unique_lock<std::mutex>(cc.lock);
    if (cpu_of(c) == ci) return cc;
    lk.unlock();
  }
}

// Asks ci's loop to run the clock hook when tick `count` begins.
inline void request_tick(callout_state& st, cpu_info* ci, std::int64_t count) {
  machine::request_clock(ci, st.tick_ns(count));
}

// Takes c off whatever list holds it. c's wheel lock held; c PENDING.
inline void unlink_pending(callout_cpu& cc, ::callout* c) {
  if (c->c_level == CALLOUT_ON_EXPIRED_LIST)
    cc.expired.erase(cc.expired.iterator_to(*c));
  else
    cc.wheel.remove(c);
}

inline bool stop_locked(callout_cpu& cc, ::callout* c) {
  bool expired = (c->c_flags & CALLOUT_EXPIRED) != 0;
  if (c->c_flags & CALLOUT_PENDING) {
    unlink_pending(cc, c);
    cc.cancelled.bump();
  }
  c->c_flags &= ~(CALLOUT_PENDING | CALLOUT_EXPIRED);
  return expired;
}

// callout_schedule, and callout_reset when func is not NULL (set under the same lock); arm.cpp.
void schedule(::callout* c, callout_delay delay, void (*func)(void*), void* arg);
// c's segment ended at tick t: moves it on (arm.cpp). True: re-insert it; false: it is due.
bool next_segment(::callout& c, std::uint32_t t);

}  // namespace kcont::detail::callouts
