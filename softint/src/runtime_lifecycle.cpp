// A runtime's lifecycle: creating its CPUs, starting and stopping their loop threads (or, in
// attach mode, handing the CPUs to the server's loop and taking them back), and the drain a
// stop does. Configuration is in runtime_config.cpp; which runtime and CPU a call acts on is
// in current.cpp.
#include "runtime_impl.h"
#include "stats_export.h"

#include <kcont/detail/duration.h>
#include <kcont/internal/misuse.h>
#include <kcont/internal/thread_setup.h>

#include <sys/prctl.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <system_error>

namespace kcont::detail {

void runtime_impl::notify_quiesce_waiters() {
  if (quiesce_waiters.load(std::memory_order_seq_cst) == 0) return;
  std::lock_guard<std::mutex> lk(state_mu);
  state_cv.notify_all();
}

runtime_impl::runtime_impl(runtime* f, const runtime_config& cfg)
    : face(f), config(cfg), epoch_ns(now_ns()), queue_timing(cfg.queue_timing || cfg.export_stats) {
  manual_now.store(epoch_ns);
  if (config.hz == 0 || config.hz > 100000)
    throw std::invalid_argument("kcont: runtime_config.hz must be in 1..100000, got " +
                                std::to_string(config.hz));
  if (config.spin_before_sleep.count() < 0 || config.spin_before_sleep.count() > 10000)
    throw std::invalid_argument(
        "kcont: runtime_config.spin_before_sleep must be in 0..10000 us, got " +
        std::to_string(config.spin_before_sleep.count()) + " us");
  if (config.stuck_handler_threshold.count() < 0 ||
      config.stuck_handler_threshold.count() > 86400000)
    throw std::invalid_argument(
        "kcont: runtime_config.stuck_handler_threshold must be in 0..86400000 ms, got " +
        std::to_string(config.stuck_handler_threshold.count()) + " ms");
  if (const auto b = config.blocking_threshold.count(); b != 0 && (b < 20 || b > 10000000))
    throw std::invalid_argument(
        "kcont: runtime_config.blocking_threshold must be 0 (off) or in 20..10000000 us, got " +
        std::to_string(b) + " us");
  if (config.elastic_max_active == 0 || config.elastic_max_active > 1024)
    throw std::invalid_argument(
        "kcont: runtime_config.elastic_max_active must be in 1..1024, got " +
        std::to_string(config.elastic_max_active));
  if (config.max_workers == 0 || config.max_workers > 65536)
    throw std::invalid_argument("kcont: runtime_config.max_workers must be in 1..65536, got " +
                                std::to_string(config.max_workers));
  if (config.worker_idle_timeout.count() < 1 || config.worker_idle_timeout.count() > 86400000)
    throw std::invalid_argument(
        "kcont: runtime_config.worker_idle_timeout must be in 1..86400000 ms, got " +
        std::to_string(config.worker_idle_timeout.count()) + " ms");
  spin_ns = attached() || config.manual_clock ? 0 : config.spin_before_sleep.count() * 1000;
  unsigned n = config.ncpu == 0 ? (attached() ? 1u : internal::online_cpus()) : config.ncpu;
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
  stop_stats_publisher(publisher);  // its thread reads every layer: first
  publisher = nullptr;
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

void runtime_impl::start() {
  std::lock_guard<std::mutex> life(lifecycle_mu_);
  if (running()) return;
  if (attached()) {  // no threads: hand each CPU to the server's loop
    for (auto& c : cpus_) {
      cpu_info* ci = c.get();
      std::lock_guard<std::mutex> cl(*ci->backend->consumer_lock());
      ci->stop_requested.store(false);
      ci->drain_runs = 0;
      ci->sleep_state.store(CPU_AWAKE);
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
    ci->sleep_state.store(CPU_AWAKE);
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
      ci->sleep_state.store(CPU_STOPPED);
      running_.store(true, std::memory_order_release);  // so stop_locked joins what started
      stop_locked();
      throw;
    }
  }
  running_.store(true, std::memory_order_release);
}

void runtime_impl::loop_main(cpu_info* ci) {
  set_this_thread_cpu(ci);
  char name[16];
  std::snprintf(name, sizeof name, "kcont/cpu%u", ci->index);
  internal::name_this_thread(name);
  // The default 50 us timer slack would let the kernel fire a CPU's clock deadline late.
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  if (config.pin_threads) ci->pinned = internal::pin_this_thread(ci->index);
  ci->backend->run();
  set_this_thread_cpu(nullptr);
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
  if (cpu_info* self = this_thread_cpu(); self != nullptr && self->rt == this)
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
  cpu_info* self = this_thread_cpu();
  if (self != nullptr && self->rt == this) {
    std::fprintf(stderr,
                 "kcont: runtime::stop() called from its own CPU thread %u: refused "
                 "(it would wait for itself)\n",
                 self->index);
    report.drained = false;
    return report;
  }
  if (unsigned w = live_watches.load(); w != 0) {
    char what[160];
    std::snprintf(what, sizeof what,
                  "runtime::stop() with %u live fd watch(es): a watch belongs to a running "
                  "runtime; unwatch_fd them before stopping or destroying the runtime",
                  w);
    internal::misuse("runtime", what);
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

}  // namespace kcont::detail
