// The engine's parts shared by its files: workers, pools, overseers, and what a worker thread
// serves (engine.cpp runs them; blocking_watch.cpp watches them). Locks: see engine.h.
#pragma once

#include "engine.h"
#include "thread_state.h"

#include <sys/types.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace kcont::detail {

struct worker;
struct pool;

// What this worker thread is serving, for the blocking hooks.
struct serving_state {
  queue_instance* q = nullptr;
  worker* w = nullptr;
  pool* p = nullptr;   // the worker's pool
  unsigned depth = 0;  // nested blocking regions; only the outermost counts
};
extern thread_local serving_state tl_serving;

inline std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Locks: see the legend in engine.h.
struct worker {
  std::condition_variable cv;          // [p] signalled when handed an instance or told to exit
  queue_instance* assigned = nullptr;  // [p]
  // [a] set with `assigned` by want_worker, for a worker polling without the lock
  // (spin-then-park); cleared by the worker when it takes the instance.
  std::atomic<bool> handed{false};
  pid_t tid = 0;  // [I] the kernel's id of its thread (the blocking watch reads its state)
  // [I] its thread's CPU-time clock (any thread of the process may read it: an idle probe
  // sees whether the worker ran); -1 if the library could not say
  clockid_t cpu_clock = -1;
  // [a] The instance it serves, for the blocking watch: set before serving, cleared before it
  // gives up its `active` slot, so an instance read here under engine::watch_mu (or a probe's
  // own lock) cannot be freed before the watch lets go of that lock (freeing waits for
  // active == 0, then for watch_mu and each probe's lock).
  std::atomic<queue_instance*> serving{nullptr};
  // [a] written by its own thread only: what its item runs, for the blocking watch (see
  // work_units in <kcont/function_workqueue.h>). kUnits: the item runs units, and only time
  // inside one (kInside) counts; the bits above count units started.
  static constexpr std::uint32_t kUnits = 1, kInside = 2, kUnitStep = 4;
  std::atomic<std::uint32_t> phase{0};
};

struct overseer {
  std::mutex mu;
  std::condition_variable cv;  // [o]
  unsigned wanted = 0;         // [o] bit per priority: that pool needs workers
  bool watch_asked = false;    // [o] CPU 0's: engine::ask_watch started the blocking watch
  bool stopping = false;       // [o]
  std::thread thread;          // [I] once started (engine construction)
};

struct pool {
  pool(engine& e, unsigned c, unsigned p, overseer& o) : eng(e), cpu(c), prio(p), ov(o) {}
  engine& eng;               // [I]
  const unsigned cpu, prio;  // [I]
  overseer& ov;              // [I]

  std::mutex mu;
  std::condition_variable exit_cv;        // [p] a worker exited (engine teardown waits)
  std::vector<worker*> all;               // [p] every worker thread alive
  std::vector<worker*> idle;              // [p] LIFO: the longest idle times out first
  std::deque<queue_instance*> overflow;   // [p] instances waiting for a worker
  unsigned workers = 0, starting = 0;     // [p] threads alive / being created
  std::uint64_t created = 0, exited = 0;  // [p] worker threads started / gone (stats)
  std::atomic<unsigned> blocked{0};       // [a] workers counted blocked now (stats)
  // [p] The blocking watch's detections of this pool's workers, and how long each had been in
  // its task then (from its start while the watch ran, else from the watch's first sample).
  std::uint64_t detected = 0, detect_ns_total = 0, detect_ns_max = 0;
  bool spare_wanted = false, stopping = false;  // [p]

  // pool mu held: ask the overseer for workers.
  void call_overseer() {
    std::lock_guard<std::mutex> lk(ov.mu);
    ov.wanted |= 1u << prio;
    ov.cv.notify_one();
  }
  void worker_main(worker* w);
  void serve(queue_instance& q, worker* w);
  // made; failed (the system refused a thread: retried); ceiling (max_workers reached).
  enum class spawn_result { made, failed, ceiling };
  spawn_result spawn();
};

// The blocking watch's own state (only the overseer of CPU 0 runs watch_pass; watch_mu held).
struct watch_candidate {
  queue_instance* q;
  const worker* w;
  pid_t tid;
  clockid_t cpu_clock;
  pool* p;
};

struct engine_watch {
  thread_state_reader reader;
  std::vector<watch_candidate> candidates;
  // A probe's: the worker it last handed a sleeper's queue to, looked at first on its next
  // pass (it is the one running that queue's next item, so the next to fall asleep). Only
  // compared, never dereferenced.
  const worker* handed_last = nullptr;
};

// The idle probes (blocking_watch.cpp): one thread per CPU.
struct engine_probes {
  std::mutex mu;
  std::condition_variable cv;         // [mu] the watch went on, or stopping
  bool stopping = false;              // [mu]
  std::atomic<bool> stop_now{false};  // [a] stopping, for a probe polling without mu
  std::vector<std::thread> threads;   // [I]
  // One per CPU: held by that CPU's probe while it looks at instances (as watch_mu by the
  // watch), and taken by an instance being freed. Not watch_mu: a probe is preempted whenever
  // its CPU has other work, and holding the shared lock then held up the other CPU's probe
  // (the blocking mix's detection took 150 us instead of 40).
  std::unique_ptr<std::mutex[]> looking;
};

struct engine_overseers {
  std::vector<std::unique_ptr<overseer>> list;
};

}  // namespace kcont::detail
