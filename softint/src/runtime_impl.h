// runtime_impl: the CPUs of one runtime, their threads, and the hooks higher layers register.
//
// Lock order: lifecycle_mu_ (start/stop) → state_mu (loop_running flags, disestablish waits).
// layers_mu is held while a higher layer's state is made (which may make a lower layer's, and
// establish softints), never while start or stop runs.
//
// Locks used to protect the fields below:
//   [I] immutable after construction
//   [a] atomic
//   [l] lifecycle_mu_
//   [y] layers_mu (creation of a layer's state; reads are [a] acquire loads)
//   [m] state_mu
//   [r] queues_mu
#pragma once

#include "cpu.h"

#include <kcont/internal/machine_hooks.h>
#include <kcont/internal/queue_counters.h>
#include <kcont/runtime.h>

#include <boost/intrusive/list.hpp>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

namespace kcont::detail {

class stats_publisher;  // stats_export.h

// Called on a CPU's loop thread when its requested clock time has passed (callout layer).
using clock_hook_fn = void (*)(cpu_info* ci, std::int64_t now);

class runtime_impl {
 public:
  runtime_impl(runtime* face, const runtime_config& cfg);
  ~runtime_impl();

  void start();
  stop_report stop();
  bool running() const { return running_.load(std::memory_order_acquire); }

  unsigned ncpu() const { return static_cast<unsigned>(cpus_.size()); }
  cpu_info* cpu(unsigned i) const { return i < cpus_.size() ? cpus_[i].get() : nullptr; }
  cpu_info* current_cpu() const;  // curcpu() within this runtime
  const std::vector<std::unique_ptr<cpu_info>>& cpus() const { return cpus_; }

  runtime* const face;          // [I]
  const runtime_config config;  // [I]
  std::int64_t spin_ns = 0;     // [I] spin-then-park window (0: off; see runtime_config)

  // Disestablish waits (softint.cpp) and loop exits meet here.
  std::mutex state_mu;
  std::condition_variable state_cv;          // [m]
  std::atomic<unsigned> quiesce_waiters{0};  // [a]
  void notify_quiesce_waiters();

  std::atomic<clock_hook_fn> clock_hook{nullptr};  // [a]
  const std::int64_t epoch_ns;                     // [I] creation time: tick 0
  // The runtime's time: steady_clock, or with a manual clock epoch_ns + what advance_clock
  // added.
  std::int64_t clock_now() const noexcept {
    return config.manual_clock ? manual_now.load(std::memory_order_seq_cst) : now_ns();
  }
  std::atomic<std::int64_t> manual_now{0};  // [a]

  // Higher layers' per-runtime state (machine_hooks.h).
  std::recursive_mutex layers_mu;  // recursive: one layer's state may create a lower one's
  struct layer_slot {
    std::atomic<void*> state{nullptr};
    void (*destroy)(void*) = nullptr;
  };
  layer_slot layers[static_cast<unsigned>(machine::layer::count)];  // state [a], destroy [y]
  // [a] each higher layer's part of the exported statistics (machine::set_stats_hook)
  std::atomic<machine::stats_hook> stats_hooks[static_cast<unsigned>(machine::layer::count)] = {};
  // [I] set by the constructor when config.export_stats; stopped first by the destructor
  stats_publisher* publisher = nullptr;
  // The queues of every layer (queue_registry.cpp); lock order queues_mu -> a queue's lock.
  // Declared before the layers' states go (in ~runtime_impl) and destroyed after them.
  std::mutex queues_mu;
  boost::intrusive::list<internal::queue_stats_node,
                         boost::intrusive::member_hook<internal::queue_stats_node,
                                                       boost::intrusive::list_member_hook<>,
                                                       &internal::queue_stats_node::link>>
      queues;                     // [r]
  std::uint64_t queues_made = 0;  // [r]
  const bool queue_timing;        // [I] config.queue_timing || config.export_stats
  std::atomic<std::uint64_t> established_softints{0};  // [a]
  std::atomic<unsigned> live_watches{0};               // [a] fd watches (fd_watch.cpp)

  // Attach mode (attach.h): the CPUs are served by the server's loop.
  bool attached() const { return config.attach.what != attach_target::kind::none; }
  std::uint64_t drain_attached();

 private:
  void loop_main(cpu_info* ci);
  stop_report stop_locked();  // lifecycle_mu_ held
  void stop_attached(stop_report& report, std::int64_t give_up);

  std::vector<std::unique_ptr<cpu_info>> cpus_;  // [I]
  std::mutex lifecycle_mu_;
  std::atomic<bool> running_{false};  // [a] written [l]
};

// The CPU this thread is the loop of (or, attached, is serving right now), or nullptr.
cpu_info* this_thread_cpu() noexcept;
// Makes this thread act as `ci` (attach mode, around a dispatch); returns the previous value.
cpu_info* set_this_thread_cpu(cpu_info* ci) noexcept;

// cpu_loop.cpp: ends the CPU's service (its loop, or an attached CPU's service by the server's
// loop): drained = quiet, loop_running false, backend->stop(). As the CPU.
void cpu_leave(cpu_info* ci, bool quiet);

}  // namespace kcont::detail
