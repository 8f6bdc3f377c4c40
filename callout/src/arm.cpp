// Arming a callout (callout_impl.h): the first tick it may fire at (never early), far deadlines
// armed in segments of kSegment ticks, and NetBSD's migration to the caller's CPU.
#include "callout_impl.h"

#include <kcont/internal/lock_pair.h>

#include <algorithm>
#include <climits>

namespace kcont::detail::callouts {
namespace {
// The longest a callout sits on the wheel in one go: a quarter of the 32-bit tick space, so
// that its distance from the wheel's position (the delay plus however far the position lags)
// stays far from 2^31, where wrap-safe comparisons would see it in the past. A longer delay
// is armed in segments (c_rest holds what is left after c_time).
constexpr std::int64_t kSegment = INT32_MAX / 2;

// The first tick boundary at or after `at_ns` (a count).
std::int64_t first_boundary(const callout_state& st, std::int64_t at_ns) {
  std::int64_t count = st.tick_count(at_ns);  // the tick containing at_ns...
  if (st.tick_ns(count) < at_ns) ++count;     // ...or the next one unless it starts exactly there
  return count;
}

// The first tick at which a callout armed at `now` (ns) with `delay` may fire (never early).
// Ticks: at least n whole tick periods later, for any int (no clamp: see kSegment).
// Nanoseconds: the first boundary at or after now + delay, the delay clamped to INT_MAX tick
// periods (the largest the chrono faces document).
std::int64_t due_count(const callout_state& st, callout_delay delay, std::int64_t now) {
  if (delay.in_ns && delay.amount > 0) {
    const std::int64_t at = delay.amount > INT64_MAX - now ? INT64_MAX : now + delay.amount;
    return std::min(first_boundary(st, at), due_count(st, callout_delay::ticks(INT_MAX), now));
  }
  const std::int64_t n = !delay.in_ns && delay.amount > 0 ? delay.amount : 1;
  const std::int64_t period =
      st.ns_per_tick != 0 ? n * st.ns_per_tick
                          : static_cast<std::int64_t>(
                                (static_cast<__int128>(n) * 1'000'000'000 + st.hz - 1) / st.hz);
  return first_boundary(st, now + period);
}

// Arms c on cc's wheel to fire at tick `due` (a count); `now` is the current tick (a count).
// Beyond kSegment ticks the first segment is the remainder and the rest whole segments, so the
// last re-arm is always kSegment ticks before `due`, and any callout armed directly for the
// same tick was armed after it: callouts due in the same tick, far or near, still run in the
// order they were armed. (Not quite: an arm that lands in the very tick of that last re-arm,
// before this CPU's clock hook has processed the tick, goes first.)
void insert_locked(callout_state& st, callout_cpu& cc, ::callout* c, std::int64_t due,
                   std::int64_t now) {
  cc.wheel.catch_up(st.ticks32(now));
  const std::int64_t dist = due - now;  // >= 1
  const std::int64_t rest = dist > kSegment ? (dist - 1) / kSegment * kSegment : 0;
  c->c_time = st.ticks32(due - rest);
  c->c_rest = static_cast<std::uint32_t>(rest);
  c->c_flags |= CALLOUT_PENDING;
  cc.wheel.insert(c);
  cc.armed.bump();
  request_tick(st, cc.ci, due - rest);
}

}  // namespace

// c's segment ended at tick t (or before, if the clock hook ran late): moves its time on by the
// next segments, all that have ended too. Returns whether it is still in the future (to be
// re-inserted, PENDING as before); false: it is due now.
bool next_segment(::callout& c, std::uint32_t t) {
  do {
    const std::uint32_t seg = std::min<std::uint32_t>(c.c_rest, kSegment);
    c.c_time += seg;
    c.c_rest -= seg;
  } while (c.c_rest != 0 && static_cast<std::int32_t>(c.c_time - t) <= 0);
  return static_cast<std::int32_t>(c.c_time - t) > 0;
}

void schedule(::callout* c, callout_delay delay, void (*func)(void*), void* arg) {
  cpu_info* here = nullptr;  // the caller's CPU, looked up only if the callout may migrate
  for (;;) {
    std::unique_lock<std::mutex> lk;
    callout_cpu& cc = callout_lock(c, lk);
    callout_state& st = state_of(machine::runtime_of(cc.ci));
    const std::int64_t at_ns = machine::clock_ns(*st.rt);
    const std::int64_t now = st.tick_count(at_ns);
    const std::int64_t due = due_count(st, delay, at_ns);
    if (func != nullptr) {
      c->c_func = func;
      c->c_arg = arg;
    } else if (c->c_func == nullptr) {
      misuse("callout_schedule before callout_setfunc", c);
    }
    c->c_flags &= ~(CALLOUT_EXPIRED | CALLOUT_INVOKING);
    if (c->c_flags & CALLOUT_PENDING) {  // stays on its CPU
      unlink_pending(cc, c);
      insert_locked(st, cc, c, due, now);
      return;
    }
    // NetBSD's migration rule: an unbound callout that is not running moves to the caller's
    // CPU (of the same runtime). curcpu() within the callout's runtime: plain curcpu() on a
    // foreign thread would start the default runtime.
    bool may_migrate = !(c->c_flags & CALLOUT_BOUND) && cc.running != c;
    if (may_migrate && here == nullptr) here = machine::current_cpu(*st.rt);
    if (!may_migrate || here == cc.ci || &machine::runtime_of(here) != st.rt) {
      insert_locked(st, cc, c, due, now);
      return;
    }
    callout_cpu& to = st.of(here);
    std::unique_lock<std::mutex> lk2(to.lock, std::try_to_lock);
    if (!lk2.owns_lock()) {
      // Take both in address order, then check nothing changed meanwhile.
      lk.unlock();
      kcont::internal::lock_pair both(cc.lock, to.lock);
      if (cpu_of(c) != cc.ci || (c->c_flags & CALLOUT_PENDING) || cc.running == c) continue;
      set_cpu(c, here);
      insert_locked(st, to, c, due, now);
      return;
    }
    set_cpu(c, here);
    insert_locked(st, to, c, due, now);
    return;
  }
}

}  // namespace kcont::detail::callouts

namespace kcont::detail {
void callout_arm(::callout* c, callout_delay delay, void (*func)(void*), void* arg) {
  callouts::check(c);
  callouts::schedule(c, delay, func, arg);
}
}  // namespace kcont::detail
