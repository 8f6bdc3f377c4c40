// The awaitables of <kcont/coro.h>: sleeps on callouts, hops onto a kcont queue (kcont_hop,
// hop.cpp) or a taskq, and into a taskctx.
// Each keeps its callout or task in the awaiting coroutine's frame and resumes the coroutine
// from that handler; the protocols that make destroying a suspended frame safe are at each.
#include <kcont/coro.h>
#include <kcont/internal/machine_hooks.h>

#include <system_error>

namespace kcont::detail {

void coro_unhandled(std::exception_ptr error) noexcept {
  try {
    std::rethrow_exception(error);
  } catch (...) {
    kcont::machine::handler_threw("spawned coroutine", nullptr, nullptr);
  }
}

// ---- sleep_awaiter -------------------------------------------------------------------------

bool sleep_awaiter::await_ready() noexcept {
  if (!stop_.stop_requested()) return false;
  state_.store(SLEEP_CANCELLED, std::memory_order_relaxed);  // stopped before it began
  return true;
}

// Arms the callout and suspends, unless the sleep was claimed while arming (the stop callback
// ran at once, or the callout fired before the state said "waiting"): then it declines to
// suspend and the coroutine goes on at once. After the CAS to SLEEP_WAITING this function must
// not touch *this: the coroutine may already be running again, and the awaiter gone.
bool sleep_awaiter::await_suspend(std::coroutine_handle<> h) {
  h_ = h;
  state_.store(SLEEP_ARMING, std::memory_order_relaxed);
  {
    runtime_scope scope(*rt_);
    callout_init(&c_, CALLOUT_MPSAFE);
  }
  initialised_ = true;
  if (stop_.stop_possible()) on_stop_.emplace(stop_, canceller{this});  // may claim at once
  if (state_.load(std::memory_order_acquire) == SLEEP_ARMING)
    callout_arm(&c_, callout_delay::ns(ns_), &sleep_awaiter::fire, this);
  int arming = SLEEP_ARMING;
  return state_.compare_exchange_strong(arming, SLEEP_WAITING, std::memory_order_acq_rel);
}

bool sleep_awaiter::await_resume() const noexcept {
  return state_.load(std::memory_order_acquire) == SLEEP_FIRED;
}

void sleep_awaiter::fire(void* self) {
  static_cast<sleep_awaiter*>(self)->claim(SLEEP_FIRED);
}

// The callout fired or the stop token was stopped: the first to claim the sleep wins. Claiming
// a waiting sleep resumes the coroutine here; claiming one still arming leaves the resuming to
// await_suspend's failed CAS.
void sleep_awaiter::claim(int how) noexcept {
  int s = state_.load(std::memory_order_acquire);
  while (s == SLEEP_ARMING || s == SLEEP_WAITING) {
    const int was = s;
    if (state_.compare_exchange_weak(s, how, std::memory_order_acq_rel)) {
      if (was == SLEEP_WAITING) h_.resume();
      return;
    }
  }
}

// Runs when the co_await expression ends (inside the handler that resumed the coroutine), or
// when the frame is destroyed while suspended. Order: the stop callback first (its destructor
// waits for a callback running on another thread; inside the callback itself it does not),
// then claim a still-waiting sleep so a late firing resumes nothing, then callout_halt (waits
// for a handler running on another CPU; from the handler itself it does not wait).
sleep_awaiter::~sleep_awaiter() {
  if (!initialised_) return;
  on_stop_.reset();
  int waiting = SLEEP_WAITING;
  state_.compare_exchange_strong(waiting, SLEEP_CANCELLED, std::memory_order_acq_rel);
  callout_halt(&c_, nullptr);
  callout_destroy(&c_);
}

// ---- kqueue_hop ----------------------------------------------------------------------------

void kqueue_hop::await_suspend(std::coroutine_handle<> h) {
  h_ = h;
  hop_.fn = &kqueue_hop::run;
  hop_.arg = this;
  runtime& rt = rt_ != nullptr   ? *rt_
                : ci_ != nullptr ? kcont::machine::runtime_of(ci_)
                                 : runtime::current();
  scheduled_ = true;
  if (int e = kcont_hop_schedule(&hop_, rt, wq_, ci_); e != 0) {
    scheduled_ = false;  // nothing was queued: *this is still ours, and the coroutine goes on
    throw std::system_error(e, std::generic_category(), "kcont::on: cannot queue the hop");
  }
  // From here on *this may be gone (the hop may have run already).
}

void kqueue_hop::run(void* self) {
  auto* a = static_cast<kqueue_hop*>(self);
  a->begun_ = true;
  a->h_.resume();
}

// Inside run(): only drops an acquired queue's reference. A frame destroyed while the hop waits:
// the hop leaves its queue and never runs.
kqueue_hop::~kqueue_hop() {
  if (scheduled_) kcont_hop_done(&hop_, begun_);
}

// ---- taskq_hop -----------------------------------------------------------------------------

void taskq_hop::await_suspend(std::coroutine_handle<> h) {
  h_ = h;
  task_set(&t_, &taskq_hop::run, this);
  queued_ = true;
  task_add(tq_, &t_);  // from here on *this may be gone (the task may have run already)
}

void taskq_hop::run(void* self) {
  static_cast<taskq_hop*>(self)->h_.resume();
}

// Inside run(): the task is no longer queued and task_del finds nothing. A frame destroyed
// while the task waits: the task leaves the queue and never runs.
taskq_hop::~taskq_hop() {
  if (queued_) task_del(tq_, &t_);
}

// ---- taskctx_hop ---------------------------------------------------------------------------

// task_dispatch runs the task here and now when the context is free: the coroutine is then
// resumed inside this call (legal: it is suspended from the moment await_suspend begins) and
// runs until its next suspension before task_dispatch returns. Either way *this may be gone
// once task_dispatch returns.
void taskctx_hop::await_suspend(std::coroutine_handle<> h) {
  h_ = h;
  task_set(&t_, &taskctx_hop::run, this);
  dispatched_ = true;
  task_dispatch(tc_, &t_);
}

void taskctx_hop::run(void* self) {
  static_cast<taskctx_hop*>(self)->h_.resume();
}

taskctx_hop::~taskctx_hop() {
  if (dispatched_) taskctx_withdraw(tc_, &t_);
}

}  // namespace kcont::detail
