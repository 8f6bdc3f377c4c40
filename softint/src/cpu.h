// struct cpu_info: one virtual CPU of a runtime, and its wake-up protocol.
//
// Wake-up protocol (a Dekker handshake; every access named here is seq_cst):
//   producer: push work (node_queue::push) or lower the deadline, then read sleep_state;
//             if it is cpu_sleeping, CAS it to cpu_awake and, if the CAS won, backend->wake().
//   loop:     store cpu_sleeping, then look for work and for a lowered deadline once more;
//             only if there is none does it return to the backend and block.
// Either the producer sees cpu_sleeping and wakes the loop, or the loop sees the work. Only the
// producer that wins the CAS makes the system call, so a burst of schedules wakes once.
#pragma once

#include "loop_backend.h"
#include "node_queue.h"

#include <kcont/runtime.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

namespace kcont::detail {

class runtime_impl;

// Priority levels of a CPU, highest first.
enum level : unsigned { level_hard = 0, level_serial, level_net, level_bio, level_clock, nlevels };

enum : int { cpu_awake = 0, cpu_sleeping = 1, cpu_stopped = 2 };

// Relaxed counters written only by the loop thread and read by stats().
struct loop_counter {
  std::atomic<std::uint64_t> value{0};
  void bump() noexcept {
    value.store(value.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  std::uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};

std::int64_t now_ns() noexcept;  // steady_clock, nanoseconds since its epoch

}  // namespace kcont::detail

struct alignas(64) cpu_info {
  using level = kcont::detail::level;

  cpu_info(kcont::detail::runtime_impl* runtime, unsigned cpu_index)
      : rt(runtime), index(cpu_index) {}

  // Any thread: queue `n` (whose PENDING bit the caller just set) and wake the loop if needed.
  void enqueue(unsigned lvl, kcont::detail::pending_node* n) noexcept {
    queues[lvl].push(n);
    kick();
  }
  // Any thread: earliest time the clock hook must run on this CPU; wakes the loop if needed.
  void request_clock(std::int64_t ns) noexcept;
  // Any thread: wake the loop if it sleeps.
  void kick() noexcept {
    if (sleep_state.load(std::memory_order_seq_cst) != kcont::detail::cpu_sleeping) return;
    int expected = kcont::detail::cpu_sleeping;
    if (sleep_state.compare_exchange_strong(expected, kcont::detail::cpu_awake,
                                            std::memory_order_seq_cst)) {
      wakeups.bump_from_any_thread();
      backend->wake();
    }
  }

  // Consumer side (loop thread, or the runtime's state lock holder while the loop is down).
  bool any_pending() const noexcept {
    for (const auto& q : queues)
      if (!q.empty()) return true;
    return false;
  }

  kcont::detail::runtime_impl* const rt;
  const unsigned index;

  kcont::detail::node_queue queues[kcont::detail::nlevels];

  alignas(64) std::atomic<int> sleep_state{kcont::detail::cpu_stopped};
  std::atomic<std::int64_t> deadline{kcont::detail::no_deadline};  // clock hook due time
  std::atomic<bool> stop_requested{false};
  std::int64_t stop_deadline = 0;  // give up draining after this (set with stop_requested)

  // Loop-thread private.
  alignas(64) kcont::detail::pending_node* running_node = nullptr;  // handler running now
  bool loop_running = false;  // guarded by the runtime's state_mu
  bool drained = true;        // last stop went quiet in time
  std::uint64_t drain_runs = 0;

  struct {
    std::atomic<std::uint64_t> value{0};
    void bump_from_any_thread() noexcept { value.fetch_add(1, std::memory_order_relaxed); }
  } wakeups;
  kcont::detail::loop_counter handlers_run, sleeps, timer_wakeups;
  std::atomic<bool> pinned{false};

  std::unique_ptr<kcont::detail::loop_backend> backend;
  std::thread thread;
};
