// struct cpu_info: one virtual CPU of a runtime, and its wake-up protocol.
//
// Wake-up protocol (a Dekker handshake; every access named here is seq_cst):
//   producer: push work (node_queue::push) or lower the deadline, then read sleep_state;
//             if it is CPU_SLEEPING, CAS it to CPU_AWAKE and, if the CAS won, backend->wake().
//   loop:     store CPU_SLEEPING, then look for work and for a lowered deadline once more;
//             only if there is none does it return to the backend and block.
// Either the producer sees CPU_SLEEPING and wakes the loop, or the loop sees the work. Only the
// producer that wins the CAS makes the system call, so a burst of schedules wakes once.
//
// Locks used to protect the fields of cpu_info:
//   [I] immutable once the runtime is constructed
//   [a] atomic; the wake-up protocol's accesses are seq_cst
//   [L] the CPU's own loop thread (in attach mode, the server thread serving it right now)
//   [l] runtime_impl's lifecycle lock (start/stop), while the loop is not running
//   [m] runtime_impl::state_mu
// A field marked [L] may also be touched under [l] once the loop has left (stop reads the
// drain figures, start resets them).
#pragma once

#include "loop_backend.h"
#include "node_queue.h"

#include <kcont/internal/counters.h>
#include <kcont/runtime.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

namespace kcont::detail {

class runtime_impl;

// Priority levels of a CPU, highest first.
enum level : unsigned { level_hard = 0, level_serial, level_net, level_bio, level_clock, nlevels };

enum : int { CPU_AWAKE = 0, CPU_SLEEPING = 1, CPU_STOPPED = 2 };

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
    if (sleep_state.load(std::memory_order_seq_cst) != kcont::detail::CPU_SLEEPING) return;
    int expected = kcont::detail::CPU_SLEEPING;
    if (sleep_state.compare_exchange_strong(expected, kcont::detail::CPU_AWAKE,
                                            std::memory_order_seq_cst)) {
      wakeups.add();
      backend->wake();
    }
  }

  // Consumer side (loop thread, or the runtime's state lock holder while the loop is down).
  bool any_pending() const noexcept {
    for (const auto& q : queues)
      if (!q.empty()) return true;
    return false;
  }

  kcont::detail::runtime_impl* const rt;  // [I]
  const unsigned index;                   // [I]

  // [a] pushed by any thread (a multi-producer stack), taken [L].
  kcont::detail::node_queue queues[kcont::detail::nlevels];

  alignas(64) std::atomic<int> sleep_state{kcont::detail::CPU_STOPPED};  // [a]
  std::atomic<std::int64_t> deadline{kcont::detail::kNoDeadline};        // [a] clock hook due time
  std::atomic<bool> stop_requested{false};                               // [a]
  // [l] give up draining after this; written before stop_requested is set (release), read [L].
  std::int64_t stop_deadline = 0;

  alignas(64) kcont::detail::pending_node* running_node = nullptr;  // [L] handler running now
  bool loop_running = false;                                        // [m]
  bool drained = true;           // [L] last stop went quiet in time
  std::uint64_t drain_runs = 0;  // [L]

  kcont::internal::shared_counter wakeups;  // [a] by whoever wakes the loop
  kcont::internal::owner_counter level_runs[kcont::detail::nlevels];  // [a] written [L]
  kcont::internal::owner_counter sleeps, timer_wakeups;               // [a] written [L]
  // [a] written [L]: time the loop spent awake (handlers, clock, spinning), added at each
  // sleep; awake_since is when it last woke (0 while it sleeps), so a reader adds the rest.
  kcont::internal::owner_counter awake_ns;
  std::atomic<std::int64_t> awake_since{0};
  kcont::internal::owner_counter spin_hits, spin_misses;  // [a] written [L]
  std::atomic<bool> pinned{false};                        // [a]

  std::unique_ptr<kcont::detail::loop_backend> backend;  // [I] made with the CPU
  std::thread thread;                                    // [l]
};
