// Statistics of the worker engine's pools (issue 21): one pool of worker threads per CPU and
// priority level serves every taskq, workqueue(9), taskctx hand-off and kcont thread queue of
// that CPU and level (engine.h in workqueue/src tells how).
#pragma once

#include <kcont/runtime.h>

#include <cstdint>
#include <vector>

namespace kcont {

struct worker_pool_stats {
  unsigned cpu = 0;
  unsigned priority = 0;  // 0 high, 1 medium-high, 2 medium-low, 3 low (PRI_* order)
  unsigned workers = 0;   // worker threads alive now
  unsigned idle = 0;      // ... of which waiting for work (busy = workers - idle)
  unsigned waiting = 0;   // queues with work waiting for a worker to be created
  // ... of the workers, counted blocked now: inside one of kcont's blocking points (kpause,
  // blocking_scope, a contended kmutex_t), or found asleep in a task by the blocking watch
  // (runtime_config::blocking_threshold; only workers of elastic queues with work waiting)
  unsigned blocked = 0;
  std::uint64_t created = 0, exited = 0;  // worker threads started / gone so far
  // The blocking watch's detections so far, and how long each detected worker had been in its
  // task then: total (mean = total / detected) and the longest, in nanoseconds.
  std::uint64_t blocked_detected = 0, detect_ns_total = 0, detect_ns_max = 0;
};

// Every pool of rt, CPU-major (cpu * 4 + priority); empty while rt has never run thread-context
// work (the engine is made on first use; reading never makes it). Any thread; takes each pool's
// lock in turn, briefly.
std::vector<worker_pool_stats> worker_pools(runtime& rt);

}  // namespace kcont
