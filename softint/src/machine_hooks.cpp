// The machine's services to kcont's higher layers (kcont/internal/machine_hooks.h): the clock
// hook and requests, the runtime's clock, per-layer state, and the blocking hooks and
// observers. The fd watches (fd_watch.cpp), the lock waiters (lock_waiters.cpp) and the
// exception policy (handler_exceptions.cpp) have files of their own.
#include "runtime_impl.h"

#include <kcont/internal/machine_hooks.h>

#include <atomic>
#include <chrono>
#include <mutex>

namespace kcont::detail {
std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch())
      .count();
}
}  // namespace kcont::detail

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
std::int64_t clock_ns(runtime& rt) {
  return rt.impl().clock_now();
}
std::int64_t epoch_ns(runtime& rt) {
  return rt.impl().epoch_ns;
}

void set_stats_hook(runtime& rt, layer which, stats_hook fn) {
  rt.impl().stats_hooks[static_cast<unsigned>(which)].store(fn, std::memory_order_release);
}

void* layer_state_if_made(runtime& rt, layer which) {
  return rt.impl().layers[static_cast<unsigned>(which)].state.load(std::memory_order_acquire);
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

namespace kcont::machine {
namespace {
std::atomic<void (*)()> g_block_begin{nullptr}, g_block_end{nullptr};
thread_local block_observer tl_block_observer;
}  // namespace

void set_blocking_hooks(void (*begin)(), void (*end)()) {
  g_block_begin.store(begin);
  g_block_end.store(end);
}

block_observer set_thread_block_observer(block_observer o) {
  block_observer previous = tl_block_observer;
  tl_block_observer = o;
  return previous;
}

void blocking_begin() {
  if (tl_block_observer.begin != nullptr) tl_block_observer.begin(tl_block_observer.arg);
  if (auto f = g_block_begin.load(std::memory_order_acquire)) f();
}

void blocking_end() {
  if (auto f = g_block_end.load(std::memory_order_acquire)) f();
}

}  // namespace kcont::machine
