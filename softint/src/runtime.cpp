// kcont::runtime, the public face: each member forwards to runtime_impl (runtime_lifecycle.cpp)
// or reads its CPUs.
#include "runtime_impl.h"
#include "stats_export.h"

#include <kcont/watchdog.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

namespace kcont {

runtime::runtime(runtime_config config)
    : impl_(std::make_unique<detail::runtime_impl>(this, config)) {
  if (config.stuck_handler_threshold.count() != 0)
    set_stuck_handler_watchdog(config.stuck_handler_threshold);
  impl_->start();
  if (impl_->config.export_stats) impl_->publisher = detail::start_stats_publisher(*this);
}

std::string runtime::stats_segment_path() const {
  return detail::stats_publisher_path(impl_->publisher);
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
    if (ci->sleep_state.load(std::memory_order_seq_cst) != detail::CPU_SLEEPING) return false;
    for (const auto& q : ci->queues)
      if (q.has_incoming()) return false;
    const std::int64_t due = ci->deadline.load(std::memory_order_seq_cst);
    if (due != detail::kNoDeadline && due <= im.clock_now()) return false;
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

cpu_loop_stats runtime::cpu_stats(unsigned index) const {
  const cpu_info* ci = impl_->cpu(index);
  if (ci == nullptr)
    throw std::out_of_range("kcont::runtime::cpu_stats: no CPU " + std::to_string(index) +
                            " (the runtime has " + std::to_string(ncpu()) + ")");
  cpu_loop_stats s;
  s.hard_interrupts = ci->level_runs[detail::level_hard].get();
  s.softint_serial = ci->level_runs[detail::level_serial].get();
  s.softint_net = ci->level_runs[detail::level_net].get();
  s.softint_bio = ci->level_runs[detail::level_bio].get();
  s.softint_clock = ci->level_runs[detail::level_clock].get();
  s.wakeups = ci->wakeups.get();
  s.loop_sleeps = ci->sleeps.get();
  s.timer_wakeups = ci->timer_wakeups.get();
  s.spin_hits = ci->spin_hits.get();
  s.spin_misses = ci->spin_misses.get();
  s.awake_ns = ci->awake_ns.get();
  if (const std::int64_t since = ci->awake_since.load(std::memory_order_relaxed); since != 0) {
    const std::int64_t now = detail::now_ns();
    if (now > since) s.awake_ns += static_cast<std::uint64_t>(now - since);
  }
  s.pinned = ci->pinned;
  return s;
}

runtime_stats runtime::stats() const {
  runtime_stats s;
  for (const auto& ci : impl_->cpus()) {
    for (const auto& c : ci->level_runs) s.handlers_run += c.get();
    s.wakeups += ci->wakeups.get();
    s.loop_sleeps += ci->sleeps.get();
    s.timer_wakeups += ci->timer_wakeups.get();
    s.spin_hits += ci->spin_hits.get();
    s.spin_misses += ci->spin_misses.get();
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

}  // namespace kcont
