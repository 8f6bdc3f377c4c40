// The awaitables of <kcont/coro.h>: sleeps on callouts, hops onto a kcont queue (kcont_hop,
// hop.cpp) or a taskq, and into a taskctx.
// Each keeps its callout or task in the awaiting coroutine's frame and resumes the coroutine
// from that handler; the protocols that make destroying a suspended frame safe are at each.
#include <kcont/coro.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/internal/misuse.h>

#include <system_error>

namespace kcont::detail {

void coro_unhandled(std::exception_ptr error) noexcept {
  try {
    std::rethrow_exception(error);
  } catch (...) {
    kcont::machine::handler_threw("spawned coroutine", nullptr, nullptr);
  }
}

// ---- sleep_slot ----------------------------------------------------------------------------

void sleep_slot::begin(std::coroutine_handle<> handle) noexcept {
  h = handle;
  state.store(SLEEP_ARMING, std::memory_order_relaxed);
}

// Arms the callout unless the sleep was claimed while arming (a stop callback ran at once), and
// suspends unless it was claimed meanwhile (that, or the callout fired before the state said
// "waiting"): then await_suspend declines and the coroutine goes on at once. After the CAS to
// SLEEP_WAITING nothing here may touch the slot: the coroutine may already be running again.
bool sleep_slot::arm_and_wait(std::int64_t ns) {
  if (state.load(std::memory_order_acquire) == SLEEP_ARMING)
    callout_arm(&c, callout_delay::ns(ns), &sleep_slot::fire, this);
  int arming = SLEEP_ARMING;
  return state.compare_exchange_strong(arming, SLEEP_WAITING, std::memory_order_acq_rel);
}

void sleep_slot::fire(void* self) {
  static_cast<sleep_slot*>(self)->claim(SLEEP_FIRED);
}

// The first to claim a sleep wins. Claiming a waiting sleep resumes the coroutine here; claiming
// one still arming leaves the resuming to arm_and_wait's failed CAS.
bool sleep_slot::claim(int how) noexcept {
  int s = state.load(std::memory_order_acquire);
  while (s == SLEEP_ARMING || s == SLEEP_WAITING) {
    const int was = s;
    if (state.compare_exchange_weak(s, how, std::memory_order_acq_rel)) {
      if (was == SLEEP_WAITING) h.resume();
      return true;
    }
  }
  return false;
}

bool sleep_slot::busy() const noexcept {
  const int s = state.load(std::memory_order_acquire);
  return s == SLEEP_ARMING || s == SLEEP_WAITING;
}

// A waiting sleep (its frame is being destroyed) is claimed so a late firing resumes nothing.
// With stop_callout, the callout is stopped unless it fired (its handler is then ours, or
// returning, and a later arm of a running callout is allowed).
void sleep_slot::settle(bool stop_callout) noexcept {
  int waiting = SLEEP_WAITING;
  state.compare_exchange_strong(waiting, SLEEP_CANCELLED, std::memory_order_acq_rel);
  if (stop_callout && state.load(std::memory_order_acquire) != SLEEP_FIRED) callout_stop(&c);
}

// ---- sleep_awaiter -------------------------------------------------------------------------

bool sleep_awaiter::await_ready() noexcept {
  if (!stop_.stop_requested()) return false;
  slot_.state.store(sleep_slot::SLEEP_CANCELLED, std::memory_order_relaxed);  // stopped already
  return true;
}

bool sleep_awaiter::await_suspend(std::coroutine_handle<> h) {
  slot_.begin(h);
  {
    runtime_scope scope(*rt_);
    callout_init(&slot_.c, CALLOUT_MPSAFE);
  }
  initialised_ = true;
  if (stop_.stop_possible()) on_stop_.emplace(stop_, canceller{&slot_});  // may claim at once
  return slot_.arm_and_wait(ns_);
}

// Runs when the co_await expression ends (inside the handler that resumed the coroutine), or
// when the frame is destroyed while suspended. Order: the stop callback first (its destructor
// waits for a callback running on another thread; inside the callback itself it does not),
// then settle the slot, then callout_halt (waits for a handler running on another CPU; from the
// handler itself it does not wait) before the callout is destroyed.
sleep_awaiter::~sleep_awaiter() {
  if (!initialised_) return;
  on_stop_.reset();
  slot_.settle(false);
  callout_halt(&slot_.c, nullptr);
  callout_destroy(&slot_.c);
}

// ---- timer ---------------------------------------------------------------------------------

bool timer_awaiter::await_suspend(std::coroutine_handle<> h) {
  if (slot_->busy())
    kcont::internal::misuse("kcont::timer", "a second coroutine waits on a timer (one at a time)");
  began_ = true;
  slot_->begin(h);
  return slot_->arm_and_wait(ns_);
}

// The callout stays made (the timer's): a cancelled wait only stops it, so the next wait arms
// it again without a lock more. Inside the firing handler nothing is left to do.
timer_awaiter::~timer_awaiter() {
  if (began_) slot_->settle(true);
}

}  // namespace kcont::detail

namespace kcont {

timer::timer(runtime& rt) {
  runtime_scope scope(rt);
  callout_init(&slot_.c, CALLOUT_MPSAFE);
}

timer::~timer() {
  cancel();
  callout_halt(&slot_.c, nullptr);
  callout_destroy(&slot_.c);
}

bool timer::cancel() noexcept {
  return slot_.claim(detail::sleep_slot::SLEEP_CANCELLED);
}

}  // namespace kcont

namespace kcont::detail {

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

// ---- workqueue_hop -------------------------------------------------------------------------

void workqueue_hop::await_suspend(std::coroutine_handle<> h) {
  h_ = h;
  fn = &workqueue_hop::run;
  queued_ = true;
  q_->enqueue(this, ci_);  // from here on *this may be gone
}

void workqueue_hop::run(function_workqueue::item* it) {
  static_cast<workqueue_hop*>(it)->h_.resume();
}

// Inside run(): the item is no longer queued. A frame destroyed while it waits: withdrawn.
workqueue_hop::~workqueue_hop() {
  if (queued_) q_->withdraw(this);
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

// ---- taskctx_post_hop ----------------------------------------------------------------------

void taskctx_post_hop::await_suspend(std::coroutine_handle<> h) {
  h_ = h;
  task_set(&handoff_, &taskctx_post_hop::hand_off, this);
  task_set(&t_, &taskctx_post_hop::run, this);
  queued_ = true;
  runtime_handoff(*rt_, &handoff_);  // from here on *this may be gone
}

// On the worker: t_ goes into the context (run there at once when it is free). Nothing after
// task_dispatch touches *this: the coroutine may have run and ended inside it.
void taskctx_post_hop::hand_off(void* self) {
  auto* a = static_cast<taskctx_post_hop*>(self);
  task_dispatch(a->tc_, &a->t_);
}

void taskctx_post_hop::run(void* self) {
  static_cast<taskctx_post_hop*>(self)->h_.resume();
}

// Inside run(): neither task is queued and both withdrawals find nothing. A frame destroyed
// while waiting: the hand-off or the task in the context is taken back, whichever is queued.
taskctx_post_hop::~taskctx_post_hop() {
  if (!queued_) return;
  if (!runtime_handoff_withdraw(*rt_, &handoff_)) taskctx_withdraw(tc_, &t_);
}

}  // namespace kcont::detail
