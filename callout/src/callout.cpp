// callout(9)'s kernel face (callout_init ... callout_bind, getticks, mstohz) and the C++ face,
// kcont::callout. The structures and the rules they follow are in callout_impl.h.
#include "callout_impl.h"

#include <kcont/internal/lock_pair.h>
#include <kcont/internal/lockdebug.h>

#include <climits>
#include <new>
#include <stdexcept>
#include <string>

using namespace kcont::detail::callouts;
using kcont::detail::callout_delay;

void callout_init(::callout* c, unsigned flags) {
  if (c == nullptr) misuse("NULL callout", c);
  if ((flags & ~CALLOUT_MPSAFE) != 0) misuse("callout_init with unknown flags", c);
  // Initialising a callout that is still armed would corrupt its wheel (its links are reset
  // while a bucket holds them). Read without a lock: if anyone still used it, that is the bug.
  if (c->c_magic == CALLOUT_MAGIC && (c->c_flags & CALLOUT_PENDING) != 0)
    misuse("callout_init of a pending callout (callout_stop or callout_halt it first)", c);
  new (&c->c_link) boost::intrusive::list_member_hook<>();
  c->c_func = nullptr;
  c->c_arg = nullptr;
  c->c_time = 0;
  c->c_rest = 0;
  c->c_flags = flags;
  c->c_level = 0;
  kcont::runtime& rt = kcont::runtime::current();
  state_of(rt);  // create the runtime's callout state (and clock hook) before first use
  c->c_cpu = curcpu();
  c->c_magic = CALLOUT_MAGIC;
}

void callout_destroy(::callout* c) {
  check(c);
  std::unique_lock<std::mutex> lk;
  callout_cpu& cc = callout_lock(c, lk);
  if (c->c_flags & CALLOUT_PENDING)
    misuse("callout_destroy of a pending callout (stop it first)", c);
  if (cc.running == c && kcont::machine::this_thread_cpu() != cc.ci)
    misuse("callout_destroy of a callout whose handler is running (callout_halt it first)", c);
  c->c_magic = CALLOUT_DESTROYED;
  kcont::lockdebug::forget(c);
}

void callout_setfunc(::callout* c, void (*func)(void*), void* arg) {
  check(c);
  std::unique_lock<std::mutex> lk;
  callout_lock(c, lk);
  c->c_func = func;
  c->c_arg = arg;
}

void callout_reset(::callout* c, int ticks, void (*func)(void*), void* arg) {
  check(c);
  if (func == nullptr) misuse("callout_reset with a NULL function", c);
  schedule(c, callout_delay::ticks(ticks), func, arg);
}

void callout_schedule(::callout* c, int ticks) {
  check(c);
  schedule(c, callout_delay::ticks(ticks), nullptr, nullptr);
}

bool callout_stop(::callout* c) {
  check(c);
  std::unique_lock<std::mutex> lk;
  callout_cpu& cc = callout_lock(c, lk);
  return stop_locked(cc, c);
}

bool callout_halt(::callout* c, kmutex_t* interlock) {
  check(c);
  std::unique_lock<std::mutex> lk;
  callout_cpu* cc = &callout_lock(c, lk);
  if (!(cc->running == c && kcont::machine::this_thread_cpu() == cc->ci))
    kcont::lockdebug::check_wait("callout_halt", c, interlock);
  bool expired = stop_locked(*cc, c);
  // Wait while the handler runs elsewhere; then stop again, since handlers re-arm themselves.
  // From the handler itself (this thread is that CPU's loop) there is nothing to wait for.
  while (cc->running == c && kcont::machine::this_thread_cpu() != cc->ci) {
    if (interlock != nullptr) mutex_exit(interlock);
    ++cc->halt_waiters;
    cc->done_cv.wait(lk, [&] { return cc->running != c; });
    --cc->halt_waiters;
    lk.unlock();
    if (interlock != nullptr) mutex_enter(interlock);
    cc = &callout_lock(c, lk);
    expired = stop_locked(*cc, c) || expired;
  }
  return expired;
}

bool callout_pending(const ::callout* c) {
  check(c);
  std::unique_lock<std::mutex> lk;
  callout_lock(c, lk);
  return (c->c_flags & CALLOUT_PENDING) != 0;
}

bool callout_expired(const ::callout* c) {
  check(c);
  std::unique_lock<std::mutex> lk;
  callout_lock(c, lk);
  return (c->c_flags & CALLOUT_EXPIRED) != 0;
}

bool callout_invoking(const ::callout* c) {
  check(c);
  std::unique_lock<std::mutex> lk;
  callout_lock(c, lk);
  return (c->c_flags & CALLOUT_INVOKING) != 0;
}

void callout_ack(::callout* c) {
  check(c);
  std::unique_lock<std::mutex> lk;
  callout_lock(c, lk);
  c->c_flags &= ~CALLOUT_INVOKING;
}

bool callout_active(const ::callout* c) {
  check(c);
  std::unique_lock<std::mutex> lk;
  callout_lock(c, lk);
  return (c->c_flags & (CALLOUT_PENDING | CALLOUT_EXPIRED)) != 0;
}

void callout_bind(::callout* c, cpu_info* ci) {
  check(c);
  if (ci == nullptr) misuse("callout_bind to a NULL cpu_info", c);
  for (;;) {
    std::unique_lock<std::mutex> lk;
    callout_cpu& from = callout_lock(c, lk);
    callout_state& st = state_of(kcont::machine::runtime_of(from.ci));
    if (&kcont::machine::runtime_of(ci) != st.rt)
      misuse("callout_bind to a CPU of another runtime", c);
    if (from.running == c && from.ci != ci)
      misuse("callout_bind of a callout whose handler is running (halt it first)", c);
    c->c_flags |= CALLOUT_BOUND;
    if (from.ci == ci) return;
    callout_cpu& to = st.of(ci);
    lk.unlock();
    kcont::internal::lock_pair both(from.lock, to.lock);
    if (cpu_of(c) != from.ci || from.running == c) continue;
    bool pending = (c->c_flags & CALLOUT_PENDING) != 0;
    if (pending) unlink_pending(from, c);
    set_cpu(c, ci);
    if (pending) {  // keeps its due tick on the new wheel
      const std::int64_t now = st.tick_count(kcont::machine::clock_ns(*st.rt));
      to.wheel.catch_up(st.ticks32(now));
      to.wheel.insert(c);
      request_tick(st, ci, st.count_of(c->c_time, now));
    }
    return;
  }
}

std::uint32_t getticks() {
  callout_state& st = state_of(kcont::runtime::current());
  return st.ticks32(st.tick_count(kcont::machine::clock_ns(*st.rt)));
}

int mstohz(int ms) {
  if (ms <= 0) return 0;
  std::int64_t hz = kcont::runtime::current().hz();
  std::int64_t t = (static_cast<std::int64_t>(ms) * hz + 999) / 1000;
  return t > INT_MAX ? INT_MAX : static_cast<int>(t);
}

int hztoms(int ticks) {
  if (ticks <= 0) return 0;
  std::int64_t hz = kcont::runtime::current().hz();
  std::int64_t ms = static_cast<std::int64_t>(ticks) * 1000 / hz;
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

// ---------------------------------------------------------------------------------------------

namespace kcont {

callout::callout(std::function<void()> fn, unsigned flags)
    : callout(runtime::current(), std::move(fn), flags) {}

callout::callout(runtime& rt, std::function<void()> fn, unsigned flags) : fn_(std::move(fn)) {
  runtime_scope scope(rt);
  callout_init(&c_, flags);
}

callout::~callout() {
  callout_halt(&c_, nullptr);
  callout_destroy(&c_);
}

void callout::trampoline(void* self) {
  static_cast<callout*>(self)->fn_();
}

}  // namespace kcont

namespace kcont {
callout_cpu_stats callout_stats(runtime& rt, unsigned cpu) {
  if (cpu >= rt.ncpu())
    throw std::out_of_range("kcont::callout_stats: no CPU " + std::to_string(cpu) +
                            " (the runtime has " + std::to_string(rt.ncpu()) + ")");
  callout_cpu_stats s;
  detail::callouts::callout_state* st = detail::callouts::state_if_made(rt);
  if (st == nullptr) return s;
  detail::callouts::callout_cpu& cc = *st->cpus[cpu];
  s.armed = cc.armed.get();
  s.fired = cc.fired.get();
  s.cancelled = cc.cancelled.get();
  std::lock_guard<std::mutex> lk(cc.lock);
  s.pending = cc.wheel.count() + static_cast<std::uint64_t>(cc.expired.size());
  return s;
}
}  // namespace kcont
