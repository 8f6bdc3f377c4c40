// The runtime: creating the CPUs, starting and stopping their loop threads, and finding the
// runtime and CPU a kernel-style call acts on.
#include "runtime_impl.h"

#include <kcont/detail/duration.h>
#include <kcont/machine_hooks.h>

#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

namespace kcont {
namespace detail {
namespace {

thread_local cpu_info* tl_cpu = nullptr;    // set on loop threads
thread_local runtime* tl_scoped = nullptr;  // set by runtime_scope

unsigned online_cpus() {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1;
}

}  // namespace

cpu_info* this_thread_cpu() noexcept {
  return tl_cpu;
}

cpu_info* set_this_thread_cpu(cpu_info* ci) noexcept {
  cpu_info* prev = tl_cpu;
  tl_cpu = ci;
  return prev;
}

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch())
      .count();
}

void runtime_impl::notify_quiesce_waiters() {
  if (quiesce_waiters.load(std::memory_order_seq_cst) == 0) return;
  std::lock_guard<std::mutex> lk(state_mu);
  state_cv.notify_all();
}

runtime_impl::runtime_impl(runtime* f, const runtime_config& cfg)
    : face(f), config(cfg), epoch_ns(now_ns()), host_cores_(online_cpus()) {
  manual_now.store(epoch_ns);
  if (config.hz == 0 || config.hz > 100000)
    throw std::invalid_argument("kcont: runtime_config.hz must be in 1..100000, got " +
                                std::to_string(config.hz));
  unsigned n = config.ncpu == 0 ? (attached() ? 1u : host_cores_) : config.ncpu;
  if (n > 1024)
    throw std::invalid_argument("kcont: runtime_config.ncpu must be at most 1024, got " +
                                std::to_string(n));
  backend_kind kind = config.backend;
  void* loop = nullptr;
  if (attached()) {
    loop = config.attach.loop;
    if (loop == nullptr)
      throw std::invalid_argument("kcont: runtime_config.attach names no loop (nullptr)");
    kind = config.attach.what == attach_target::kind::libevent_base ? backend_kind::libevent
                                                                    : backend_kind::asio;
  }
#ifndef KCONT_HAVE_LIBEVENT
  if (kind == backend_kind::libevent)
    throw std::invalid_argument(
        "kcont: the libevent backend is not built into this kcont (libevent-dev was missing "
        "when it was built); use the asio backend");
#endif
  cpus_.reserve(n);
  for (unsigned i = 0; i < n; ++i) {
    cpus_.push_back(std::make_unique<cpu_info>(this, i));
    cpu_info* ci = cpus_.back().get();
#ifdef KCONT_HAVE_LIBEVENT
    if (kind == backend_kind::libevent) {
      ci->backend = make_libevent_backend(ci, loop);
      continue;
    }
#endif
    ci->backend = make_asio_backend(ci, loop);
  }
}

runtime_impl::~runtime_impl() {
  if (!running()) {
    // Stopped with work parked on its CPUs: it will never run. Say so rather than drop it.
    std::uint64_t parked = 0;
    {
      std::lock_guard<std::mutex> lk(state_mu);
      for (const auto& ci : cpus_)
        if (!ci->loop_running)
          for (auto& q : ci->queues) parked += q.count();
    }
    if (parked != 0)
      std::fprintf(stderr,
                   "kcont: runtime destroyed while stopped with %llu softint instance(s) parked "
                   "on its CPUs; they never ran (start() it again, or call stop() on a running "
                   "runtime, to run them before destroying it)\n",
                   static_cast<unsigned long long>(parked));
  }
  stop();
  for (int i = 3; i >= 0; --i) {  // highest layer first
    if (void* st = layers[i].state.exchange(nullptr)) layers[i].destroy(st);
  }
  auto left = established_softints.load();
  if (left != 0)
    std::fprintf(stderr,
                 "kcont: runtime destroyed with %llu softint(s) still established; their "
                 "storage is leaked (disestablish them before destroying the runtime)\n",
                 static_cast<unsigned long long>(left));
}

cpu_info* runtime_impl::current_cpu() const {
  cpu_info* ci = tl_cpu;
  if (ci != nullptr && ci->rt == this) return ci;
  int host = ::sched_getcpu();
  unsigned i = host < 0 ? 0u : static_cast<unsigned>(host) % ncpu();
  return cpus_[i].get();
}

void runtime_impl::start() {
  std::lock_guard<std::mutex> life(lifecycle_mu_);
  if (running()) return;
  if (attached()) {  // no threads: hand each CPU to the server's loop
    for (auto& c : cpus_) {
      cpu_info* ci = c.get();
      std::lock_guard<std::mutex> cl(*ci->backend->consumer_lock());
      ci->stop_requested.store(false);
      ci->drain_runs = 0;
      ci->sleep_state.store(cpu_awake);
      {
        std::lock_guard<std::mutex> lk(state_mu);
        ci->loop_running = true;
      }
      ci->backend->run();  // returns at once; the loop's first dispatch runs parked work
    }
    running_.store(true, std::memory_order_release);
    return;
  }
  for (auto& c : cpus_) {
    cpu_info* ci = c.get();
    ci->stop_requested.store(false);
    ci->drain_runs = 0;
    ci->sleep_state.store(cpu_awake);
    {
      std::lock_guard<std::mutex> lk(state_mu);
      ci->loop_running = true;
    }
    try {
      ci->thread = std::thread([this, ci] { loop_main(ci); });
    } catch (const std::system_error&) {
      {
        std::lock_guard<std::mutex> lk(state_mu);
        ci->loop_running = false;
      }
      ci->sleep_state.store(cpu_stopped);
      running_.store(true, std::memory_order_release);  // so stop_locked joins what started
      stop_locked();
      throw;
    }
  }
  running_.store(true, std::memory_order_release);
}

void runtime_impl::loop_main(cpu_info* ci) {
  tl_cpu = ci;
  char name[16];
  std::snprintf(name, sizeof name, "kcont/cpu%u", ci->index);
  ::pthread_setname_np(::pthread_self(), name);
  // The default 50 us timer slack would let the kernel fire a CPU's clock deadline late.
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  if (config.pin_threads) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(ci->index % host_cores_, &set);
    ci->pinned = ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set) == 0;
  }
  ci->backend->run();
  tl_cpu = nullptr;
}

// Attached CPUs drain through the server's loop; the caller waits (or, running that loop
// itself, drains inline). A CPU the loop did not serve by `give_up` is taken back unserved:
// its work stays parked for drain_attached() or start().
void runtime_impl::stop_attached(stop_report& report, std::int64_t give_up) {
  for (auto& c : cpus_) {
    cpu_info* ci = c.get();
    if (!ci->backend->caller_runs_loop()) continue;
    std::lock_guard<std::mutex> cl(*ci->backend->consumer_lock());
    if (!ci->loop_running) continue;  // its dispatch on another thread already left
    cpu_info* prev = set_this_thread_cpu(ci);
    std::uint64_t runs = 0;
    bool quiet = cpu_run_inline(ci, give_up, runs);
    ci->drain_runs += runs;
    cpu_leave(ci, quiet);
    set_this_thread_cpu(prev);
  }
  {
    auto until = clock::time_point(std::chrono::nanoseconds(give_up));
    std::unique_lock<std::mutex> lk(state_mu);
    state_cv.wait_until(lk, until, [this] {
      for (auto& c : cpus_)
        if (c->loop_running) return false;
      return true;
    });
  }
  for (auto& c : cpus_) {
    cpu_info* ci = c.get();
    // A dispatch still under way gives up at give_up by itself; the lock waits for it.
    std::lock_guard<std::mutex> cl(*ci->backend->consumer_lock());
    if (!ci->loop_running) continue;
    ++report.attached_unserved;
    cpu_leave(ci, false);
  }
}

std::uint64_t runtime_impl::drain_attached() {
  if (!attached())
    throw std::logic_error("kcont: runtime::drain_attached() on a runtime that is not attached");
  if (cpu_info* self = tl_cpu; self != nullptr && self->rt == this)
    throw std::logic_error(
        "kcont: runtime::drain_attached() from a handler of the runtime's own CPU");
  std::uint64_t runs = 0;
  for (auto& c : cpus_) {
    cpu_info* ci = c.get();
    std::lock_guard<std::mutex> cl(*ci->backend->consumer_lock());
    bool took_over = false;
    {
      std::lock_guard<std::mutex> lk(state_mu);  // a stopped CPU's queue: become its consumer
      if (!ci->loop_running) ci->loop_running = took_over = true;
    }
    cpu_info* prev = set_this_thread_cpu(ci);
    cpu_run_inline(ci, deadline_after(now_ns(), config.drain_timeout), runs);
    set_this_thread_cpu(prev);
    if (took_over) {
      std::lock_guard<std::mutex> lk(state_mu);
      ci->loop_running = false;
      state_cv.notify_all();
    }
  }
  return runs;
}

stop_report runtime_impl::stop() {
  std::lock_guard<std::mutex> life(lifecycle_mu_);
  return stop_locked();
}

stop_report runtime_impl::stop_locked() {
  stop_report report;
  if (!running()) return report;
  cpu_info* self = tl_cpu;
  if (self != nullptr && self->rt == this) {
    std::fprintf(stderr,
                 "kcont: runtime::stop() called from its own CPU thread %u: refused "
                 "(it would wait for itself)\n",
                 self->index);
    report.drained = false;
    return report;
  }
  if (unsigned w = live_watches.load(); w != 0) {
    std::fprintf(stderr,
                 "kcont: runtime::stop() with %u live fd watch(es): a watch belongs to a running "
                 "runtime; unwatch_fd them before stopping or destroying the runtime\n",
                 w);
    std::abort();
  }
  // Saturated: a drain_timeout too long for nanoseconds (milliseconds::max()) waits forever
  // instead of wrapping into the past and giving up at once.
  const std::int64_t give_up = deadline_after(now_ns(), config.drain_timeout);
  for (auto& c : cpus_) {
    c->stop_deadline = give_up;
    c->stop_requested.store(true, std::memory_order_seq_cst);
    c->kick();
  }
  if (attached()) stop_attached(report, give_up);
  for (auto& c : cpus_) {
    if (c->thread.joinable()) c->thread.join();
    report.drained = report.drained && c->drained;
    report.ran_during_drain += c->drain_runs;
  }
  running_.store(false, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lk(state_mu);  // loops are down: we are the consumer
    for (auto& c : cpus_)
      for (auto& q : c->queues) report.left_pending += q.count();
  }
  return report;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------

bool parse_backend(const std::string& name, backend_kind& out) {
  if (name == "asio") {
    out = backend_kind::asio;
    return true;
  }
  if (name == "libevent") {
    out = backend_kind::libevent;
    return true;
  }
  return false;
}

bool backend_available(backend_kind kind) {
#ifdef KCONT_HAVE_LIBEVENT
  (void)kind;
  return true;
#else
  return kind == backend_kind::asio;
#endif
}

const char* backend_name(backend_kind kind) {
  return kind == backend_kind::asio ? "asio" : "libevent";
}

namespace {
// A KCONT_* variable that holds a whole number in lo..hi: digits only (no sign, blank,
// fraction or exponent). Unset or empty means `fallback`. Anything else throws
// std::invalid_argument naming the variable, its value and the range: never wrapped, never
// silently ignored.
std::uint64_t env_number(const char* var, std::uint64_t lo, std::uint64_t hi,
                         std::uint64_t fallback, const char* meaning) {
  const char* v = std::getenv(var);
  if (v == nullptr || *v == '\0') return fallback;
  std::uint64_t x = 0;
  bool ok = true;
  for (const char* p = v; *p != '\0' && ok; ++p) {
    const unsigned digit = static_cast<unsigned char>(*p) - static_cast<unsigned>('0');
    ok = digit <= 9 && digit <= hi && x <= (hi - digit) / 10;  // x * 10 + digit <= hi
    x = x * 10 + digit;
  }
  if (!ok || x < lo)
    throw std::invalid_argument(std::string("kcont: ") + var + "=" + v +
                                " is not valid: it takes a whole number in " + std::to_string(lo) +
                                ".." + std::to_string(hi) + meaning);
  return x;
}
}  // namespace

runtime_config runtime_config::from_env() {
  runtime_config c;
  c.ncpu = static_cast<unsigned>(
      env_number("KCONT_NCPU", 0, 1024, c.ncpu, " (0: the host's online CPUs)"));
  c.hz = static_cast<unsigned>(env_number("KCONT_HZ", 1, 100000, c.hz, " (ticks per second)"));
  c.pin_threads = env_number("KCONT_PIN", 0, 1, 1, " (1: pin the loop threads)") != 0;
  c.initial_ticks = static_cast<std::uint32_t>(
      env_number("KCONT_INITIAL_TICKS", 0, UINT32_MAX, 0, " (the tick counter's start)"));
  if (const char* b = std::getenv("KCONT_BACKEND"); b != nullptr && *b != '\0') {
    if (!parse_backend(b, c.backend))
      throw std::invalid_argument(std::string("kcont: KCONT_BACKEND=") + b +
                                  " is not valid: it takes asio or libevent");
  }
  return c;
}

std::string stop_report::summary() const {
  std::string s = drained ? "drained" : "NOT drained within drain_timeout";
  s += "; " + std::to_string(ran_during_drain) + " handler(s) ran during the drain";
  if (attached_unserved != 0)
    s += "; " + std::to_string(attached_unserved) +
         " attached CPU(s) not served by the server's loop within drain_timeout (was the loop "
         "running?)";
  if (left_pending != 0)
    s += "; " + std::to_string(left_pending) +
         " softint instance(s) left pending (parked: they run if the runtime starts again" +
         (attached_unserved != 0 ? std::string(" or on runtime::drain_attached()") : "") + ")";
  return s;
}

runtime::runtime(runtime_config config)
    : impl_(std::make_unique<detail::runtime_impl>(this, config)) {
  impl_->start();
}

runtime::~runtime() = default;  // runtime_impl's destructor stops

void runtime::start() {
  impl_->start();
}
stop_report runtime::stop() {
  return impl_->stop();
}
void runtime::advance_clock(std::chrono::nanoseconds d) {
  detail::runtime_impl& im = *impl_;
  if (!im.config.manual_clock)
    throw std::logic_error(
        "kcont: advance_clock on a runtime without runtime_config::manual_clock");
  if (d.count() < 0) throw std::invalid_argument("kcont: advance_clock by a negative duration");
  im.manual_now.fetch_add(d.count(), std::memory_order_seq_cst);
  // The loop compares its deadline with the clock after announcing sleep (cpu.h): either it
  // sees the new time or this kick sees it asleep.
  for (const auto& ci : im.cpus()) ci->kick();
}

bool runtime::quiescent() const {
  const detail::runtime_impl& im = *impl_;
  for (const auto& ci : im.cpus()) {
    if (ci->sleep_state.load(std::memory_order_seq_cst) != detail::cpu_sleeping) return false;
    for (const auto& q : ci->queues)
      if (q.has_incoming()) return false;
    const std::int64_t due = ci->deadline.load(std::memory_order_seq_cst);
    if (due != detail::no_deadline && due <= im.clock_now()) return false;
  }
  return true;
}

bool runtime::running() const {
  return impl_->running();
}
unsigned runtime::ncpu() const {
  return impl_->ncpu();
}
unsigned runtime::hz() const {
  return impl_->config.hz;
}
const runtime_config& runtime::config() const {
  return impl_->config;
}
cpu_info* runtime::cpu(unsigned index) const {
  return impl_->cpu(index);
}

runtime_stats runtime::stats() const {
  runtime_stats s;
  for (const auto& ci : impl_->cpus()) {
    s.handlers_run += ci->handlers_run.get();
    s.wakeups += ci->wakeups.value.load(std::memory_order_relaxed);
    s.loop_sleeps += ci->sleeps.get();
    s.timer_wakeups += ci->timer_wakeups.get();
    s.pinned_cpus += ci->pinned ? 1 : 0;
  }
  return s;
}

bool runtime::attached() const {
  return impl_->attached();
}
std::uint64_t runtime::drain_attached() {
  return impl_->drain_attached();
}

std::uint64_t runtime::pending_work() const {
  std::uint64_t n = 0;
  // A running CPU's queues belong to its loop thread; only stopped CPUs can be counted.
  std::lock_guard<std::mutex> lk(impl_->state_mu);
  for (const auto& ci : impl_->cpus()) {
    if (!ci->loop_running)
      for (auto& q : ci->queues) n += q.count();
  }
  return n;
}

namespace {
// The default runtime, never freed: it is used until the process ends. At exit it is stopped
// (drained), and static destructors that run after that may still use it: the first use
// starts it again and registers another stop (exit runs handlers registered while it runs).
runtime* g_default = nullptr;
std::once_flag g_default_once;
std::atomic<bool> g_default_stopped_at_exit{false};
std::mutex g_default_restart_mu;  // constant-initialised

void stop_default_at_exit() {
  cpu_info* self = detail::this_thread_cpu();
  if (self != nullptr && self->rt->face == g_default) return;  // exit() from one of its CPUs
  g_default->stop();
  g_default_stopped_at_exit.store(true);
}

void restart_default_after_exit() {
  std::lock_guard<std::mutex> lk(g_default_restart_mu);
  if (!g_default_stopped_at_exit.load()) return;
  g_default->start();
  g_default_stopped_at_exit.store(false);
  std::atexit(stop_default_at_exit);
}
}  // namespace

runtime& runtime::default_runtime() {
  std::call_once(g_default_once, [] {
    g_default = new runtime(runtime_config::from_env());
    std::atexit(stop_default_at_exit);
  });
  if (g_default_stopped_at_exit.load(std::memory_order_relaxed)) [[unlikely]]
    restart_default_after_exit();
  return *g_default;
}

runtime& runtime::current() {
  if (cpu_info* ci = detail::tl_cpu) return *ci->rt->face;
  if (detail::tl_scoped != nullptr) return *detail::tl_scoped;
  return default_runtime();
}

runtime_scope::runtime_scope(runtime& rt) : previous_(detail::tl_scoped) {
  detail::tl_scoped = &rt;
}
runtime_scope::~runtime_scope() {
  detail::tl_scoped = previous_;
}

bool in_interrupt_context() {
  return detail::tl_cpu != nullptr;
}

}  // namespace kcont

namespace kcont::machine {

void set_clock_hook(runtime& rt, clock_hook hook) {
  rt.impl().clock_hook.store(hook);
}
void request_clock(cpu_info* ci, std::int64_t ns) {
  ci->request_clock(ns);
}
runtime& runtime_of(const cpu_info* ci) {
  return *ci->rt->face;
}
cpu_info* this_thread_cpu() {
  return detail::this_thread_cpu();
}
cpu_info* current_cpu(runtime& rt) {
  return rt.impl().current_cpu();
}
std::int64_t now_ns() {
  return detail::now_ns();
}
std::int64_t clock_ns(runtime& rt) {  // machine_hooks.h
  return rt.impl().clock_now();
}
std::int64_t epoch_ns(runtime& rt) {
  return rt.impl().epoch_ns;
}

void* layer_state(runtime& rt, layer which, void* (*create)(runtime&), void (*destroy)(void*)) {
  auto& slot = rt.impl().layers[static_cast<unsigned>(which)];
  if (void* st = slot.state.load(std::memory_order_acquire)) return st;
  std::lock_guard<std::recursive_mutex> lk(rt.impl().layers_mu);
  if (void* st = slot.state.load(std::memory_order_acquire)) return st;
  void* st = create(rt);
  slot.destroy = destroy;
  slot.state.store(st, std::memory_order_release);
  return st;
}

}  // namespace kcont::machine

cpu_info* curcpu() {
  return kcont::runtime::current().impl().current_cpu();
}
unsigned cpu_index(const cpu_info* ci) {
  return ci->index;
}
cpu_info* cpu_lookup(unsigned index) {
  return kcont::runtime::current().cpu(index);
}
unsigned kcont_ncpu() {
  return kcont::runtime::current().ncpu();
}

namespace {
// Never destroyed: handlers run by static destructors may still take it.
std::recursive_mutex& the_kernel_lock() {
  static auto* m = new std::recursive_mutex;
  return *m;
}
}  // namespace
void kernel_lock() {
  the_kernel_lock().lock();
}
void kernel_unlock() {
  the_kernel_lock().unlock();
}
