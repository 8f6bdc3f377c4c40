// The CPU loop: what a virtual CPU does each time its backend wakes it.
//
// Order of work: every pending handler, highest level first (hard interrupts, then softints
// SERIAL > NET > BIO > CLOCK), looking at the higher levels again after each handler; then
// clock processing (the hook the callout layer registers) when its time has come; then sleep
// until woken or until the next clock time (tickless: with nothing due there is no timer).
#include "runtime_impl.h"
#include "softint_run.h"

#include <kcont/internal/spin.h>

namespace kcont::detail {
namespace {

// Runs the highest-priority pending handler; false if nothing was pending.
bool run_one(cpu_info* ci) {
  for (unsigned lvl = 0; lvl < nlevels; ++lvl) {
    if (pending_node* n = ci->queues[lvl].pop()) {
      softint_run(ci, n);
      ci->level_runs[lvl].bump();
      return true;
    }
  }
  return false;
}

// Calls the clock hook if the requested clock time has passed. Returns whether it did.
bool run_clock(cpu_info* ci) {
  std::int64_t due = ci->deadline.load(std::memory_order_seq_cst);
  if (due == kNoDeadline || ci->rt->clock_now() < due) return false;
  // Clear before calling: the hook requests its next time itself, and a request that races
  // with this exchange is not lost because the hook reads the wheel after it.
  ci->deadline.store(kNoDeadline, std::memory_order_seq_cst);
  if (clock_hook_fn hook = ci->rt->clock_hook.load(std::memory_order_acquire))
    hook(ci, ci->rt->clock_now());
  return true;
}

// The loop woke, or is about to sleep (or leave): awake-time accounting for the statistics
// (one clock read each way per wake-up, none per handler).
void note_awake(cpu_info* ci) {
  if (ci->awake_since.load(std::memory_order_relaxed) == 0)
    ci->awake_since.store(now_ns(), std::memory_order_relaxed);
}
void note_asleep(cpu_info* ci) {
  const std::int64_t since = ci->awake_since.load(std::memory_order_relaxed);
  if (since == 0) return;
  const std::int64_t now = now_ns();
  ci->awake_ns.value.store(ci->awake_ns.get() + static_cast<std::uint64_t>(now - since),
                           std::memory_order_relaxed);
  ci->awake_since.store(0, std::memory_order_relaxed);
}

void leave_loop(cpu_info* ci, bool quiet) {
  note_asleep(ci);
  cpu_leave(ci, quiet);
}

// Spin-then-park: after running work, poll for up to the runtime's spin window before going to
// sleep. The CPU stays CPU_AWAKE meanwhile, so producers push and do not wake it (no system
// call on either side). Returns true when work, a due clock or a stop request came.
bool spin_for_work(cpu_info* ci, std::int64_t window_ns) {
  const bool came = internal::spin_until(
      [ci] {
        if (ci->any_pending() || ci->stop_requested.load(std::memory_order_relaxed)) return true;
        const std::int64_t due = ci->deadline.load(std::memory_order_relaxed);
        return due != kNoDeadline && ci->rt->clock_now() >= due;
      },
      window_ns);
  (came ? ci->spin_hits : ci->spin_misses).bump();
  return came;
}

}  // namespace

// Ends a stop request: the loop stops consuming and run() returns (attached: the server's loop
// stops serving the CPU).
void cpu_leave(cpu_info* ci, bool quiet) {
  ci->drained = quiet;
  ci->sleep_state.store(CPU_STOPPED, std::memory_order_seq_cst);
  {
    std::lock_guard<std::mutex> lk(ci->rt->state_mu);
    ci->loop_running = false;
    ci->rt->state_cv.notify_all();  // a disestablish waiting for this CPU takes over its queue
  }
  ci->backend->stop();
}

bool cpu_run_inline(cpu_info* ci, std::int64_t give_up, std::uint64_t& runs) {
  for (;;) {
    while (run_one(ci)) {
      ++runs;
      if (now_ns() > give_up) return !ci->any_pending();
    }
    if (!run_clock(ci)) return true;
  }
}

void cpu_dispatch(cpu_info* ci, wake_reason reason) {
  if (reason == wake_reason::deadline) ci->timer_wakeups.bump();
  note_awake(ci);
  const std::int64_t spin_ns = ci->rt->spin_ns;
  bool ran = false;  // work ran since the last spin: only then is a spin worth it
  for (;;) {
    ci->sleep_state.store(CPU_AWAKE, std::memory_order_relaxed);
    while (run_one(ci)) {
      ran = true;
      // stop_deadline is written before stop_requested is set (release/acquire pair).
      if (ci->stop_requested.load(std::memory_order_acquire)) {
        ++ci->drain_runs;
        if (now_ns() > ci->stop_deadline) return leave_loop(ci, false);
      }
    }
    if (run_clock(ci)) continue;
    if (spin_ns != 0 && ran) {
      ran = false;
      if (spin_for_work(ci, spin_ns)) continue;
    }

    // About to sleep: announce it, then look once more (see the protocol in cpu.h).
    ci->sleep_state.store(CPU_SLEEPING, std::memory_order_seq_cst);
    if (ci->any_pending()) continue;
    const std::int64_t due = ci->deadline.load(std::memory_order_seq_cst);
    if (due != kNoDeadline && ci->rt->clock_now() >= due) continue;
    if (ci->stop_requested.load(std::memory_order_seq_cst)) return leave_loop(ci, true);
    // A manual clock arms no real timer: advance_clock() wakes the CPU.
    ci->backend->set_deadline(ci->rt->config.manual_clock ? kNoDeadline : due);
    ci->sleeps.bump();
    note_asleep(ci);
    return;
  }
}

}  // namespace kcont::detail

void cpu_info::request_clock(std::int64_t ns) noexcept {
  std::int64_t cur = deadline.load(std::memory_order_seq_cst);
  while (ns < cur) {
    if (deadline.compare_exchange_weak(cur, ns, std::memory_order_seq_cst)) {
      kick();
      return;
    }
  }
}
