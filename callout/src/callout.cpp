// callout(9) on the per-CPU timing wheels (wheel.h).
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
#include "wheel.h"

#include <kcont/callout.h>
#include <kcont/internal/lock_pair.h>
#include <kcont/internal/lockdebug.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/internal/misuse.h>
#include <kcont/softint.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

namespace kcont::detail {
namespace {

constexpr std::uint32_t CALLOUT_MAGIC = 0x43414c4cu;  // "CALL"
constexpr std::uint32_t CALLOUT_DESTROYED = 0xdeadca11u;
constexpr std::uint8_t CALLOUT_ON_EXPIRED_LIST = 0xff;  // c_level while waiting for softclock

constexpr std::uint32_t CALLOUT_PENDING = 0x0001;
constexpr std::uint32_t CALLOUT_EXPIRED = 0x0002;
constexpr std::uint32_t CALLOUT_INVOKING = 0x0004;
constexpr std::uint32_t CALLOUT_BOUND = 0x0200;

static_assert(sizeof(::callout) <= 64, "struct callout must fit a cache line");

[[noreturn]] void misuse(const char* what, const ::callout* c) {
  kcont::internal::misuse_at("callout", what, "callout", c);
}

void check(const ::callout* c) {
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

void softclock(void* arg);
void clock_hook(cpu_info* ci, std::int64_t now);

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
  softint_disestablish(st->softclock);
  delete st;
}

callout_state& state_of(runtime& rt) {
  return *static_cast<callout_state*>(
      machine::layer_state(rt, machine::layer::callout, create_state, destroy_state));
}

cpu_info* cpu_of(const ::callout* c) {
  return std::atomic_ref<cpu_info* const>(c->c_cpu).load(std::memory_order_acquire);
}
void set_cpu(::callout* c, cpu_info* ci) {
  std::atomic_ref<cpu_info*>(c->c_cpu).store(ci, std::memory_order_release);
}

// Locks the wheel that owns c; returns it locked.
callout_cpu& callout_lock(const ::callout* c, std::unique_lock<std::mutex>& lk) {
  for (;;) {
    cpu_info* ci = cpu_of(c);
    callout_cpu& cc = state_of(machine::runtime_of(ci)).of(ci);
    lk = std::unique_lock<std::mutex>(cc.lock);
    if (cpu_of(c) == ci) return cc;
    lk.unlock();
  }
}

// Asks ci's loop to run the clock hook when tick `count` begins.
void request_tick(callout_state& st, cpu_info* ci, std::int64_t count) {
  machine::request_clock(ci, st.tick_ns(count));
}

// Takes c off whatever list holds it. c's wheel lock held; c PENDING.
void unlink_pending(callout_cpu& cc, ::callout* c) {
  if (c->c_level == CALLOUT_ON_EXPIRED_LIST)
    cc.expired.erase(cc.expired.iterator_to(*c));
  else
    cc.wheel.remove(c);
}

bool stop_locked(callout_cpu& cc, ::callout* c) {
  bool expired = (c->c_flags & CALLOUT_EXPIRED) != 0;
  if (c->c_flags & CALLOUT_PENDING) unlink_pending(cc, c);
  c->c_flags &= ~(CALLOUT_PENDING | CALLOUT_EXPIRED);
  return expired;
}

// The longest a callout sits on the wheel in one go: a quarter of the 32-bit tick space, so
// that its distance from the wheel's position (the delay plus however far the position lags)
// stays far from 2^31, where wrap-safe comparisons would see it in the past. A longer delay
// is armed in segments (c_rest holds what is left after c_time).
constexpr std::int64_t kSegment = INT32_MAX / 2;

// The first tick at which a callout reset at `now` with `ticks` may fire: at least `ticks`
// whole tick periods later (never early), for any int (no clamp: see kSegment).
std::int64_t due_count(const callout_state& st, int ticks, std::int64_t now) {
  std::int64_t n = ticks <= 0 ? 1 : ticks;
  std::int64_t due_ns =
      now + (st.ns_per_tick != 0
                 ? n * st.ns_per_tick
                 : static_cast<std::int64_t>(
                       (static_cast<__int128>(n) * 1'000'000'000 + st.hz - 1) / st.hz));
  std::int64_t count = st.tick_count(due_ns);  // the tick containing due_ns...
  if (st.tick_ns(count) < due_ns) ++count;     // ...or the next one unless it starts exactly there
  return count;
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
  request_tick(st, cc.ci, due - rest);
}

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

// callout_schedule, and callout_reset when func is not NULL (set under the same lock).
void schedule(::callout* c, int ticks, void (*func)(void*), void* arg) {
  cpu_info* here = nullptr;  // the caller's CPU, looked up only if the callout may migrate
  for (;;) {
    std::unique_lock<std::mutex> lk;
    callout_cpu& cc = callout_lock(c, lk);
    callout_state& st = state_of(machine::runtime_of(cc.ci));
    const std::int64_t at_ns = machine::clock_ns(*st.rt);
    const std::int64_t now = st.tick_count(at_ns);
    const std::int64_t due = due_count(st, ticks, at_ns);
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

}  // namespace
}  // namespace kcont::detail

using namespace kcont::detail;

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
  schedule(c, ticks, func, arg);
}

void callout_schedule(::callout* c, int ticks) {
  check(c);
  schedule(c, ticks, nullptr, nullptr);
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
  return t > INT32_MAX ? INT32_MAX : static_cast<int>(t);
}

int hztoms(int ticks) {
  if (ticks <= 0) return 0;
  std::int64_t hz = kcont::runtime::current().hz();
  std::int64_t ms = static_cast<std::int64_t>(ticks) * 1000 / hz;
  return ms > INT32_MAX ? INT32_MAX : static_cast<int>(ms);
}

// ---------------------------------------------------------------------------------------------

namespace kcont {

callout::callout(std::function<void()> fn, unsigned flags)
    : callout(runtime::current(), std::move(fn), flags) {}

callout::callout(runtime& rt, std::function<void()> fn, unsigned flags)
    : fn_(std::move(fn)), hz_(rt.hz()) {
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
