// callout(9): timers on per-CPU hierarchical timing wheels, after the NetBSD manual page.
//
// A callout is caller-owned storage (no allocation anywhere). callout_reset arms it to call
// func(arg) after `ticks` clock ticks (hz per second, the runtime's config) on its CPU, at
// SOFTINT_CLOCK level. States, as in NetBSD:
//   PENDING   armed and not yet due
//   EXPIRED   due: its handler was called (or is about to be) since the last reset/stop
//   INVOKING  set with EXPIRED just before the handler is called; cleared by callout_ack
// A due callout gets EXPIRED|INVOKING and loses PENDING before its handler runs; the handler
// may re-arm, stop, halt-from-itself or destroy its callout.
//
// Timing: never early. A callout reset with n ticks fires at the first tick boundary at least
// n tick periods after the call (so at most one tick late, plus the wake-up), for every n up
// to INT_MAX (about 24.8 days at hz 1000). n <= 0 counts as 1. A delay beyond the wheel's
// range (2^30 ticks) is armed in segments: when a segment ends the callout is re-armed for the
// rest instead of firing, staying PENDING throughout (callout_stop cancels it as usual).
//
// CPU: a callout runs on the CPU whose wheel holds it (at first, curcpu() of callout_init).
// callout_reset/callout_schedule move an unbound callout that is neither pending nor running
// to the caller's curcpu() (NetBSD's migration rule; for a foreign thread, the CPU it is
// running on); a pending or running one stays where it is. callout_bind pins it to one CPU
// (moving it, with its due time, if pending; not allowed while its handler runs elsewhere).
#pragma once

#include <kcont/detail/duration.h>
#include <kcont/mutex.h>
#include <kcont/runtime.h>
#include <boost/intrusive/list_hook.hpp>

#include <chrono>
#include <cstdint>
#include <functional>

struct callout {
  // All fields are private to kcont; sizeof(struct callout) <= 64. Locks: [c] the lock of
  // c_cpu's wheel (callout/src/callout_impl.h); [m] written with both CPUs' locks (migration),
  // read under either or with an atomic_ref load; [i] written only by callout_init and
  // callout_destroy.
  boost::intrusive::list_member_hook<> c_link;  // [c] wheel bucket or expired list
  void (*c_func)(void*);                        // [c]
  void* c_arg;                                  // [c]
  cpu_info* c_cpu;                              // [m] wheel it is on, or will be armed on
  std::uint32_t c_time;                         // [c] due tick (wrapping)
  std::uint32_t c_flags;                        // [c]
  std::uint32_t c_magic;  // [i] initialised / destroyed marker for misuse checks
  std::uint32_t c_rest;   // [c] ticks still to wait after c_time (beyond the wheel's range)
  std::uint8_t c_level;   // [c] wheel level while in a bucket
};

// NetBSD's name for the storage (callout(9): callout_t).
typedef struct callout callout_t;

inline constexpr unsigned CALLOUT_MPSAFE = 0x0100;  // run without the kernel lock

void callout_init(callout* c, unsigned flags);
void callout_destroy(callout* c);  // must not be pending or running (checked)
void callout_setfunc(callout* c, void (*func)(void*), void* arg);
void callout_reset(callout* c, int ticks, void (*func)(void*), void* arg);
void callout_schedule(callout* c, int ticks);
bool callout_stop(callout* c);  // never waits; returns whether it had EXPIRED
// Stops and waits for a running handler, dropping `interlock` (if not NULL) while waiting.
// Returns whether it had EXPIRED. From the callout's own handler it does not wait.
bool callout_halt(callout* c, kmutex_t* interlock);
bool callout_pending(const callout* c);
bool callout_expired(const callout* c);
bool callout_invoking(const callout* c);
void callout_ack(callout* c);
bool callout_active(const callout* c);  // PENDING or EXPIRED
void callout_bind(callout* c, cpu_info* ci);

// Ticks of runtime::current() (wrapping 32-bit counter) and conversions at its hz.
std::uint32_t getticks();
int mstohz(int ms);  // rounded up
int hztoms(int ticks);

namespace kcont::detail {

// How long a callout waits: whole ticks (the kernel-style calls: n tick periods, n <= 0 counts
// as 1) or nanoseconds (the chrono faces: the first tick boundary at or after call time + ns,
// rounded once, never early; ns <= 0 is one tick; at most INT_MAX ticks).
struct callout_delay {
  std::int64_t amount;
  bool in_ns;
  static constexpr callout_delay ticks(int n) noexcept { return {n, false}; }
  static constexpr callout_delay ns(std::int64_t n) noexcept { return {n, true}; }
};

// callout_reset (func not NULL) or callout_schedule (func NULL) with a callout_delay.
void callout_arm(::callout* c, callout_delay delay, void (*func)(void*), void* arg);

}  // namespace kcont::detail

namespace kcont {

// One CPU's callouts (callout_stats). Counters only grow; pending is a count now.
struct callout_cpu_stats {
  std::uint64_t pending = 0;    // armed and not yet run: on the wheel or due, waiting to run
  std::uint64_t armed = 0;      // callout_reset / callout_schedule calls (a re-arm counts)
  std::uint64_t fired = 0;      // handlers started
  std::uint64_t cancelled = 0;  // pending callouts stopped (callout_stop, callout_halt)
};
// rt's callouts on CPU `cpu` (all zero if rt has never armed one); std::out_of_range for a CPU
// rt does not have. Any thread; holds that CPU's wheel lock only to read `pending`.
callout_cpu_stats callout_stats(runtime& rt, unsigned cpu);

// RAII callout taking any callable, with std::chrono durations. schedule(d) takes a duration
// of any representation and period, rounded up to whole nanoseconds, and fires at the first
// tick boundary at or after the call time + d (rounded once: never early, less than one tick
// late plus the wake-up): zero or negative is one tick; the largest delay is INT_MAX ticks
// (about 24.8 days at hz 1000), and a longer duration (seconds::max(), +inf, and NaN) is
// clamped to it. The
// conversion saturates and never overflows (<kcont/detail/duration.h>: one rule for every
// chrono face). The destructor halts (waits for a running handler) and destroys; from inside
// its own handler it is allowed as the handler's last action.
class callout {
 public:
  explicit callout(std::function<void()> fn, unsigned flags = CALLOUT_MPSAFE);
  callout(runtime& rt, std::function<void()> fn, unsigned flags = CALLOUT_MPSAFE);
  ~callout();
  callout(const callout&) = delete;
  callout& operator=(const callout&) = delete;

  template <class Rep, class Period>
  void schedule(std::chrono::duration<Rep, Period> after) {
    detail::callout_arm(&c_, detail::callout_delay::ns(detail::duration_to_ns(after)),
                        &callout::trampoline, this);
  }
  void schedule_ticks(int ticks) { callout_reset(&c_, ticks, &callout::trampoline, this); }
  bool stop() { return callout_stop(&c_); }
  bool halt(kmutex_t* interlock = nullptr) { return callout_halt(&c_, interlock); }
  bool pending() const { return callout_pending(&c_); }
  bool expired() const { return callout_expired(&c_); }
  bool invoking() const { return callout_invoking(&c_); }
  bool active() const { return callout_active(&c_); }
  void ack() { callout_ack(&c_); }
  void bind(cpu_info* ci) { callout_bind(&c_, ci); }
  ::callout* get() { return &c_; }

 private:
  static void trampoline(void* self);
  std::function<void()> fn_;
  ::callout c_;
};

}  // namespace kcont
