// The statistics publisher of a runtime (runtime_config::export_stats): owns the shared-memory
// segment <kcont/stats_segment.h> describes and one thread that answers readers' requests.
#pragma once

#include <kcont/runtime.h>

#include <string>

namespace kcont::detail {

class stats_publisher;

// Makes the segment (sweeping stale ones of dead processes first) and starts the thread. On
// failure (no /dev/shm, no thread) says why on stderr and returns nullptr: the runtime runs on
// without exported statistics.
stats_publisher* start_stats_publisher(runtime& rt);
// Stops the thread, removes the segment, frees p (nullptr: nothing).
void stop_stats_publisher(stats_publisher* p);
std::string stats_publisher_path(const stats_publisher* p);  // "/dev/shm/kcont.<pid>", or ""

}  // namespace kcont::detail
