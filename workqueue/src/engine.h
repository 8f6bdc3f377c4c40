// The pooled per-CPU worker engine (the NetBSD per-CPU task-worker sketch, built for real).
//
// Per runtime, per CPU, per priority level (high, medium-high, medium-low, low) a pool of
// worker threads pinned to that CPU's core. Work is queued on a *queue instance* (a taskq's
// queue, or one CPU's queue of a per-CPU workqueue); an instance that has work and fewer than
// `max_active` workers asks its pool for one more: an idle worker is handed the instance at
// once; with none idle the instance waits on the pool's overflow list and the CPU's
// *overseer* thread creates a worker. So scheduling never creates a thread on the caller's
// path, and work is never lost when thread creation fails: the instance stays on the overflow
// list and the overseer retries. A worker serves one instance at a time until that instance
// has no work left, so one queue's sleeping work never blocks another queue. A worker that
// picks up work while no other worker of its pool is idle asks the overseer for a spare. Idle
// workers exit after the idle timeout unless they are the last idle one of their pool.
//
// Lock order: queue_instance::mu -> pool::mu -> overseer::mu. A worker holds no lock while it
// runs a task.
//
// Locks used to protect the fields below (and those of pool, worker and overseer in
// engine.cpp):
//   [I] immutable after construction (or set before the object is published)
//   [q] queue_instance::mu
//   [p] pool::mu of the pool concerned
//   [o] overseer::mu
//   [c] engine::counters_mu_
//   [a] atomic
//
// Invariants:
//   - instance.active = workers serving it + (1 if it is on an overflow list);
//   - a worker is on its pool's idle list iff it serves no instance;
//   - an instance with queued work has active >= 1 (someone will run it);
//   - an elastic instance wants active == min(max_active, 1 + blocked).
//
// Blocking-aware elasticity (what Linux cmwq does in the scheduler). An elastic instance runs
// `target` tasks at once; a worker of it that sleeps does not count, so another worker takes
// its place (up to max_active) while it sleeps. Two ways to learn that a worker sleeps:
//   - declared: kcont's blocking points (kpause, kcont::blocking_scope, a contended kmutex_t)
//     tell the engine before the worker sleeps: another worker takes over at once;
//   - detected: a task that blocks some other way (read(2), a std::mutex, a condition
//     variable, sleep_for) is found by the engine's *blocking watch*. While an elastic instance
//     has work queued behind busy workers (and only then: no wake-ups when idle), the
//     overseer of CPU 0 samples every busy elastic worker each half blocking threshold; one
//     found in the same task on two samples is asked about at the kernel
//     (thread_state.h): asleep, it counts as blocked until it runs again or its task ends.
// Either way, once the sleeper is back the extra worker leaves at its next task boundary.
#pragma once

#include <kcont/internal/queue_counters.h>
#include <kcont/runtime.h>
#include <kcont/task.h>
#include <kcont/worker_stats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace kcont::detail {

inline constexpr unsigned kPriorities = 4;  // high, medium-high, medium-low, low

class engine;
struct pool;
struct engine_probes;
struct watch_candidate;
struct worker;
struct engine_watch;

// A queue instance: the unit of serialisation and of worker assignment.
// Registered with its runtime's queue statistics (<kcont/queue_stats.h>) while it exists.
struct queue_instance {
  // kind: "taskq", "workqueue" or "handoff"; name and owner: the face's (kept, not copied).
  queue_instance(engine& e, unsigned prio, unsigned most_active, bool is_mpsafe, int home,
                 const char* kind, const char* queue_name, const void* queue_owner);
  ~queue_instance();
  queue_instance(const queue_instance&) = delete;
  queue_instance& operator=(const queue_instance&) = delete;

  engine* const eng;          // [I]
  const unsigned priority;    // [I]
  const unsigned max_active;  // [I] workers that may serve it at once
  const bool mpsafe;          // [I] false: tasks run holding the kernel lock
  const int home_cpu;         // [I] CPU whose pool serves it; -1: the CPU of whoever adds work

  // Elastic (blocking-aware) instances run `target` tasks at once, and add a worker when a
  // running task blocks (declared or detected, see above) and work is queued, up to max_active;
  // a worker that finds more unblocked workers than `target` leaves.
  bool elastic = false;     // [I]
  unsigned target = 1;      // [I] elastic: tasks meant to run at once
  const void* const owner;  // [I] the taskq or workqueue (lockdebug names handlers by it)
  const char* const name;   // [I] the taskq's or workqueue's name (reports, statistics)

  std::mutex mu;
  std::condition_variable idle_cv;        // [q] a task finished (barriers, destroy)
  unsigned blocked = 0;                   // [q] workers of this instance inside a blocking region
  task_list work;                         // [q]
  unsigned active = 0;                    // [q] see the invariants above
  std::uint64_t finished_runs = 0;        // [q] tasks completed
  std::uint64_t started = 0;              // [q] tasks taken off `work`: a run's sequence number
  internal::queue_counters counters;      // [q] statistics (barrier markers are not counted)
  internal::queue_stats_node stats_node;  // [I] its entry in the runtime's registry

  // Workers serving this instance now, and what they run (barriers and the blocking watch
  // look here).
  enum class blocked_by : std::uint8_t { none, declared, detected };
  struct running_slot {
    const worker* w;
    std::thread::id thread;
    const task* t;                          // the task object as queued (copied before the call)
    std::uint64_t seq;                      // `started` when it was taken
    bool in_barrier;                        // waiting in instance_barrier on this instance
    blocked_by blocked = blocked_by::none;  // counted in `blocked` as what
    std::int64_t started_ns = 0;     // steady clock when it began, while the watch ran; else 0
    std::int64_t first_seen_ns = 0;  // the blocking watch's first sample of it; 0: none yet
    std::uint32_t seen_phase = 0;    // its worker's phase at that sample (work_units)
    std::int64_t detected_ns = 0;    // when the watch or a probe found it asleep
  };
  std::vector<running_slot> running;  // [q]

  // Barriers called from this instance's own tasks (see instance_barrier).
  unsigned barrier_members = 0;   // [q] own tasks waiting in a barrier now
  std::uint64_t barrier_gen = 0;  // [q] bumped when every slot is such a task
};

struct engine_stats {
  std::uint64_t threads_created = 0, thread_create_failures = 0, threads_exited = 0;
  unsigned workers_now = 0, idle_now = 0;
  // Spin-then-park (runtime_config::spin_before_sleep): a worker handed work while polling
  // after its last instance, or polling in vain and then waiting.
  std::uint64_t spin_hits = 0, spin_misses = 0;
  // Workers not made because the runtime's ceiling (runtime_config::max_workers) was reached.
  std::uint64_t ceiling_refusals = 0;
  std::uint64_t watch_passes = 0;      // samples taken by the blocking watch
  std::uint64_t probe_detections = 0;  // sleepers found by the idle probes
};

class engine {
 public:
  explicit engine(runtime& rt);  // its limits and the watch's threshold from rt.config()
  ~engine();                     // stops every worker and overseer (their queues must be drained)

  // q's mu held: q has new work; get it a worker if it may have one more. With `wake_later`,
  // an idle worker handed q is not woken here but returned there, for the caller to wake once
  // it has let go of its locks (wake_handed): the idle probe, which every thread it wakes
  // preempts at once, would otherwise hold the locks the woken worker needs first.
  void want_worker(queue_instance& q, std::unique_lock<std::mutex>& q_lock,
                   worker** wake_later = nullptr);
  // No lock held: wakes a worker want_worker handed work to (kept alive: see worker_gone).
  static void wake_handed(worker* w);

  runtime& rt;  // [I]
  // [I] set before the first task (runtime_config::worker_idle_timeout; tests shorten it): an
  // idle worker waits this long for work before it exits (the last idle one of a pool stays).
  std::chrono::milliseconds idle_timeout;
  engine_stats stats();
  std::vector<worker_pool_stats> pool_stats();  // takes each pool's mu in turn

  // The blocking watch (see the top of this file). [I] from the runtime's config.
  const std::chrono::nanoseconds blocking_threshold;  // 0: no watch (declared blocking only)
  const unsigned max_workers;                         // the runtime's ceiling on workers
  std::atomic<unsigned> threads{0};                   // [a] worker threads alive or starting
  std::atomic<bool> watch_on{false};                  // [a] the watch is sampling (or asked to)
  // Instances lock it as they are destroyed, so the watch, which holds it while it samples,
  // never looks at a freed one. Lock order: watch_mu -> queue_instance::mu -> pool::mu.
  std::mutex watch_mu;
  // q's mu held: q has work waiting behind its busy workers; start the watch if it is off.
  void ask_watch();
  // One sample of every busy elastic worker (the overseer of CPU 0 runs it, every half
  // threshold while it returns true): whether anything is still worth watching.
  bool watch_pass();
  bool watches() const { return blocking_threshold.count() > 0; }
  // The idle probes (runtime_config::blocking_probe; blocking_watch.cpp): [I] whether they run.
  const bool probing;
  std::atomic<std::uint64_t> probe_detections{0};  // [a] sleepers the probes found
  void wake_probes();                              // the watch went on: the probes look again
  void no_probe_inside();  // an instance is being freed: waits until no probe looks at one
  // A worker thread is about to free its worker: waits until neither the watch nor a probe
  // can still be looking at it (they read a candidate's phase, and a probe wakes it, after
  // letting go of the pool's lock).
  void worker_gone();
  void probe_pass(unsigned cpu, engine_watch& own);  // one look at CPU cpu's busy workers

  // Test hook: the next `n` thread creations fail as if the system refused them.
  std::atomic<int> fail_next_creations{0};                  // [a]
  std::atomic<std::uint64_t> spin_hits{0}, spin_misses{0};  // [a] see engine_stats
  std::atomic<std::uint64_t> watch_passes{0};               // [a] see engine_stats
  void bump(std::uint64_t engine_stats::*field);

  // The runtime's own queue for hand-offs that need a thread of this runtime (the Asio taskctx
  // executor's never-blocking post, kcont::on(taskctx*)): one task at a time, in the order
  // added; made on first use, drained and freed by ~engine.
  queue_instance& handoff_queue();

 private:
  friend struct pool;
  std::unique_ptr<engine_watch> watch_;    // [watch_mu] made by the first watch_pass
  std::unique_ptr<engine_probes> probes_;  // [I] if probing (kept after they stop, till ~engine)
  void start_probes();
  void stop_probes();
  void collect_candidates(std::vector<watch_candidate>& out, int cpu);
  void mark_detected(queue_instance& q, queue_instance::running_slot& slot, pool& p,
                     std::unique_lock<std::mutex>& ql, std::int64_t since,
                     worker** wake_later = nullptr);
  std::once_flag handoff_once_;
  std::unique_ptr<queue_instance> handoff_;  // [I] once made (handoff_once_)
  void* overseers_ = nullptr;                // [I] engine_overseers (engine.cpp)
  std::mutex counters_mu_;
  engine_stats counters_;                     // [c]
  std::vector<std::unique_ptr<pool>> pools_;  // [I] [cpu * kPriorities + prio]
  pool& pool_of(unsigned cpu, unsigned prio) { return *pools_[cpu * kPriorities + prio]; }
};

// The engine of a runtime (created on first use, destroyed with the runtime).
engine& engine_of(runtime& rt);
engine* engine_if_made(runtime& rt);  // nullptr until the runtime's first thread-context work

// Operations on one queue instance shared by the taskq and workqueue faces.
// Queues t (its func/arg set) unless already queued; returns whether it queued it.
bool instance_add(queue_instance& q, task* t);
// Takes t off q if queued there; returns whether it did.
bool instance_del(queue_instance& q, task* t);
// Waits until t is not running on q. Returns false (without waiting) if this thread is the one
// running t.
bool instance_wait_not_running(queue_instance& q, const task* t);
// Waits until q has no queued and no running work. Returns whether it had any when called.
bool instance_drain(queue_instance& q);
// Whether this thread is running one of q's tasks.
bool instance_is_mine(queue_instance& q);
// OpenBSD's taskq_barrier: returns once every task queued on q before the call, and every
// task running then, has finished. A marker goes to the tail of the work list; the worker
// that reaches it (or the barrier itself, once it is at the head) notes how many tasks had
// been taken, and the barrier waits for those runs. Called from one of q's own tasks, that
// task counts as finished, and so does every task of q waiting in a barrier of q (it has
// reached a barrier, as OpenBSD's threads do); when every one of q's max_active slots is held
// by a task waiting in a barrier, no one could run what is queued and they all return.
void instance_barrier(queue_instance& q);

// The blocking hooks (installed as the machine's blocking hooks when an engine exists).
void worker_blocking_begin();
void worker_blocking_end();

}  // namespace kcont::detail
