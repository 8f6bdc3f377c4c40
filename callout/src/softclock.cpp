// The CPU side of callout(9) (callout_impl.h): a runtime's callout state, the clock hook that
// advances a CPU's wheel when its next tick comes (tickless: it asks for the one after), and the
// softclock softint that runs what is due.
#include "callout_impl.h"

#include <kcont/internal/lockdebug.h>
#include <kcont/softint.h>

#include <cstdio>
#include <cstdlib>

namespace kcont::detail::callouts {
namespace {

void softclock(void* arg) {
  auto* st = static_cast<callout_state*>(arg);
  callout_cpu& cc = st->of(curcpu());
  std::unique_lock<std::mutex> lk(cc.lock);
  while (!cc.expired.empty()) {
    ::callout* c = &cc.expired.front();
    cc.expired.pop_front();
    c->c_flags = (c->c_flags & ~CALLOUT_PENDING) | CALLOUT_EXPIRED | CALLOUT_INVOKING;
    void (*func)(void*) = c->c_func;
    void* farg = c->c_arg;
    const bool mpsafe = (c->c_flags & CALLOUT_MPSAFE) != 0;
    cc.running = c;
    cc.fired.bump();
    lk.unlock();
    if (!mpsafe) kernel_lock();
    {
      kcont::lockdebug::handler_scope scope(c);
      // func may re-arm, stop, halt or destroy (and free) c; a throw is reported and c's
      // state is settled as if func had returned.
      machine::run_handler("callout handler", nullptr, machine::code_address(func),
                           [func, farg] { func(farg); });
    }
    if (!mpsafe) kernel_unlock();
    lk.lock();
    cc.running = nullptr;
    if (cc.halt_waiters != 0) cc.done_cv.notify_all();
  }
}

void clock_hook(cpu_info* ci, std::int64_t now) {
  callout_state& st = state_of(machine::runtime_of(ci));
  callout_cpu& cc = st.of(ci);
  bool due;
  {
    std::lock_guard<std::mutex> lk(cc.lock);
    std::int64_t count = st.tick_count(now);
    std::uint32_t t = st.ticks32(count);
    std::size_t before = cc.expired.empty() ? 0 : 1;
    callout_list fresh;
    cc.wheel.advance(t, fresh);
    while (!fresh.empty()) {
      ::callout& c = fresh.front();
      fresh.pop_front();
      if (c.c_rest != 0 && next_segment(c, t)) {
        cc.wheel.insert(&c);  // a far callout's segment ended: re-armed, not run
        continue;
      }
      c.c_level = CALLOUT_ON_EXPIRED_LIST;
      cc.expired.push_back(c);
    }
    due = before != 0 || !cc.expired.empty();
    std::uint32_t next = cc.wheel.next_event();
    if (next - cc.wheel.cur() < timing_wheel::kNothing) {
      std::int64_t next_count = count + static_cast<std::int32_t>(next - t);
      machine::request_clock(ci, st.tick_ns(next_count));
    }
  }
  if (due) softint_schedule_cpu(st.softclock, ci);
}

// The callout layer's part of the exported statistics (machine::set_stats_hook).
void export_stats(runtime& rt, stats_segment::cpu_record* cpus, stats_segment::pool_record*) {
  for (unsigned i = 0; i < rt.ncpu(); ++i) {
    const callout_cpu_stats s = callout_stats(rt, i);
    cpus[i].callouts_pending = s.pending;
    cpus[i].callouts_armed = s.armed;
    cpus[i].callouts_fired = s.fired;
    cpus[i].callouts_cancelled = s.cancelled;
  }
}

void* create_state(runtime& rt) {
  auto* st = new callout_state;
  st->rt = &rt;
  st->epoch = machine::epoch_ns(rt);
  st->hz = rt.hz();
  st->initial_ticks = rt.config().initial_ticks;
  if (1'000'000'000 % st->hz == 0) st->ns_per_tick = 1'000'000'000 / st->hz;
  std::uint32_t start = st->ticks32(st->tick_count(machine::clock_ns(rt)));
  for (unsigned i = 0; i < rt.ncpu(); ++i)
    st->cpus.push_back(std::make_unique<callout_cpu>(rt.cpu(i), start));
  st->softclock = softint_establish_rt(rt, SOFTINT_CLOCK | SOFTINT_MPSAFE, softclock, st);
  if (st->softclock == nullptr) {
    std::fprintf(stderr, "kcont: callout: cannot establish the softclock softint\n");
    std::abort();
  }
  machine::set_clock_hook(rt, clock_hook);
  machine::set_stats_hook(rt, machine::layer::callout, export_stats);
  return st;
}

void destroy_state(void* p) {
  auto* st = static_cast<callout_state*>(p);
  std::uint64_t left = 0;
  for (auto& cc : st->cpus) left += cc->wheel.count();
  if (left != 0)
    std::fprintf(stderr, "kcont: runtime destroyed with %llu callout(s) still pending\n",
                 static_cast<unsigned long long>(left));
  machine::set_clock_hook(*st->rt, nullptr);
  machine::set_stats_hook(*st->rt, machine::layer::callout, nullptr);
  softint_disestablish(st->softclock);
  delete st;
}

}  // namespace

callout_state* state_if_made(runtime& rt) {
  return static_cast<callout_state*>(machine::layer_state_if_made(rt, machine::layer::callout));
}

callout_state& state_of(runtime& rt) {
  return *static_cast<callout_state*>(
      machine::layer_state(rt, machine::layer::callout, create_state, destroy_state));
}

}  // namespace kcont::detail::callouts
