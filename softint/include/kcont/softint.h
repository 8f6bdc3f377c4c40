// softint(9): software interrupts on the virtual CPUs, after the NetBSD manual page.
//
// A softint is established once and then scheduled any number of times, on the current CPU
// (softint_schedule) or a given one (softint_schedule_cpu). Scheduling one that is already
// pending on that CPU is coalesced: the handler runs once for all of them, and that run starts
// after every one of the schedules. Handlers run on the CPU's loop thread in strict level
// priority (SERIAL > NET > BIO > CLOCK, checked again between handlers), never two at once on
// one CPU; the same softint may run on two CPUs at once.
//
// Context: softint_schedule* may be called from any thread, including foreign threads and
// handlers; they allocate nothing and make a system call only to wake a sleeping CPU.
// softint_establish / softint_disestablish may sleep (not from interrupt context, except that
// a handler may disestablish its own softint: it waits for nothing, no run starts again on any
// CPU, and the storage is released by the last loop done with it, at the latest when the
// handler returns).
#pragma once

#include <kcont/runtime.h>

#include <functional>

// Levels, lowest to highest priority, and flags (values as in NetBSD's <sys/intr.h>).
inline constexpr unsigned SOFTINT_CLOCK = 0x0000;
inline constexpr unsigned SOFTINT_BIO = 0x0001;
inline constexpr unsigned SOFTINT_NET = 0x0002;
inline constexpr unsigned SOFTINT_SERIAL = 0x0003;
inline constexpr unsigned SOFTINT_LVLMASK = 0x00ff;
inline constexpr unsigned SOFTINT_MPSAFE = 0x0100;  // run without the kernel lock
// kcont extension: a simulated hard interrupt, above every softint level.
inline constexpr unsigned SOFTINT_HARDINTR = 0x0004;

// Returns a cookie, or nullptr on failure (unknown level or flag bits: errno = EINVAL).
// Binds to runtime::current().
void* softint_establish(unsigned flags, void (*func)(void*), void* arg);
void* softint_establish_rt(kcont::runtime& rt, unsigned flags, void (*func)(void*), void* arg);

// Waits until the handler runs on no CPU; after it returns the handler never runs again and
// pending schedules are discarded. See the file comment for calls from the handler itself.
void softint_disestablish(void* cookie);

void softint_schedule(void* cookie);                    // on curcpu()
void softint_schedule_cpu(void* cookie, cpu_info* ci);  // on ci (must be the softint's runtime's)

namespace kcont {

// RAII softint taking any callable. The callable is stored once at construction.
class softint {
 public:
  softint(unsigned flags, std::function<void()> fn);
  softint(runtime& rt, unsigned flags, std::function<void()> fn);
  ~softint();  // disestablishes (waits for a running handler)
  softint(const softint&) = delete;
  softint& operator=(const softint&) = delete;

  void schedule() { softint_schedule(cookie_); }
  void schedule(cpu_info* ci) { softint_schedule_cpu(cookie_, ci); }
  void* cookie() const { return cookie_; }

 private:
  static void trampoline(void* self);
  std::function<void()> fn_;
  void* cookie_;
};

}  // namespace kcont
