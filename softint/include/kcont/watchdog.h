// The stuck-handler watchdog: a handler of any kind (softint, callout, taskq or taskctx task,
// workqueue item, kcont func or hop, a function posted through the Asio executors) that has
// been running longer than a threshold is reported once, naming its kind, queue, function
// (dladdr) and CPU; when it finally returns, one more line says after how long.
//
// Process-wide, like the exception policy (<kcont/runtime.h>): off until
// set_stuck_handler_watchdog() turns it on, or a runtime is made with
// runtime_config::stuck_handler_threshold (env KCONT_WATCHDOG_MS) set.
//
// Cost: with the watchdog off, one relaxed load per handler. On, a handler's thread stores
// what it runs into its own slot (a few plain stores on its own cache line, no clock read,
// no system call). One thread, "kcont/watchdog", samples the slots every threshold/4 (at least
// 1 ms) while some handler runs, and sleeps on a futex while none does (no wake-ups while the
// process is idle); the first handler to start wakes it. Where the kernel lacks
// membarrier(2)'s private expedited command (Linux < 4.14), it cannot sleep safely and samples
// every period instead (stuck_handler_watchdog_stats().can_park says which).
//
// A report means "at least this long": a handler is reported between threshold and
// threshold + two sampling periods after it began.
#pragma once

#include <chrono>
#include <cstdint>

namespace kcont {

struct stuck_handler_report {
  const char* kind;    // "softint handler", "callout handler", "taskq task", ...
  char queue[64];      // the queue's name, or "-"
  char function[256];  // "symbol+0xoff (module)", or the address
  char thread[16];     // the thread's name (kcont/cpu0, kcont/w1hi, ...)
  int cpu;             // the runtime CPU the thread serves; -1: not a kcont thread
  std::chrono::nanoseconds running_for;  // at least this long
  bool returned;  // false: still running (the first report); true: it has now returned
};

// Turns the watchdog on with this threshold (1 ms .. 24 h), or off with zero. Anything else
// throws std::invalid_argument. A new threshold applies from the next sample.
void set_stuck_handler_watchdog(std::chrono::nanoseconds threshold);
std::chrono::nanoseconds stuck_handler_watchdog();  // zero while off

// Who hears of stuck handlers: nullptr (the default) writes one line to stderr per report.
// `fn` runs on the watchdog's thread, never on the stuck one's. Once this returns, the
// previous function is not running and is not called again (so its `arg` may be freed); `fn`
// itself may call it.
using stuck_handler_reporter = void (*)(const stuck_handler_report& report, void* arg);
void set_stuck_handler_reporter(stuck_handler_reporter fn, void* arg);

struct stuck_handler_watchdog_figures {
  std::uint64_t reported = 0;  // handlers reported stuck in this process
  std::uint64_t samples = 0;   // times the watchdog looked at the slots
  std::uint64_t parks = 0;     // times it went to sleep with no handler running
  bool can_park = false;       // false: membarrier(2) is missing, it samples while on
};
stuck_handler_watchdog_figures stuck_handler_watchdog_stats();

}  // namespace kcont
