// Which runtime and which CPU a kernel-style call acts on: the loop thread's own CPU, a
// runtime_scope (worker threads, attach mode), or the default runtime, started on first use and
// kept usable by static destructors; curcpu(), cpu_lookup() and friends answer from it.
#include "runtime_impl.h"

#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

namespace kcont {
namespace detail {
namespace {
thread_local cpu_info* tl_cpu = nullptr;    // set on loop threads (and attached, while serving)
thread_local runtime* tl_scoped = nullptr;  // set by runtime_scope
}  // namespace

cpu_info* this_thread_cpu() noexcept {
  return tl_cpu;
}

cpu_info* set_this_thread_cpu(cpu_info* ci) noexcept {
  cpu_info* prev = tl_cpu;
  tl_cpu = ci;
  return prev;
}

cpu_info* runtime_impl::current_cpu() const {
  cpu_info* ci = this_thread_cpu();
  if (ci != nullptr && ci->rt == this) return ci;
  int host = ::sched_getcpu();
  unsigned i = host < 0 ? 0u : static_cast<unsigned>(host) % ncpu();
  return cpus_[i].get();
}

}  // namespace detail

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
  if (cpu_info* ci = detail::this_thread_cpu()) return *ci->rt->face;
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
  return detail::this_thread_cpu() != nullptr;
}

}  // namespace kcont

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
