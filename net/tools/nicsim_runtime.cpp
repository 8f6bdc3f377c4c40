#include "nicsim_runtime.h"

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace kcont::net {
namespace {
bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0';
}
}  // namespace

std::unique_ptr<kcont::runtime> make_nicsim_runtime(const nicsim_options& o) {
  kcont::runtime_config rc = kcont::runtime_config::from_env();
  // Observable by default (kcont-stat PID; a handler stuck for a second is reported), unless
  // KCONT_STATS or KCONT_WATCHDOG_MS says otherwise (KCONT_STATS=0 turns the export off).
  if (!env_set("KCONT_STATS")) rc.export_stats = true;
  if (!env_set("KCONT_WATCHDOG_MS")) rc.stuck_handler_threshold = std::chrono::seconds(1);
  if (o.ncpu != 0) rc.ncpu = o.ncpu;  // else KCONT_NCPU, else the host's
  rc.backend = o.backend;
  auto rt = std::make_unique<kcont::runtime>(rc);
  if (o.nic.intr_cpu >= rt->ncpu())
    throw std::invalid_argument(
        "'--intr-cpu' needs a CPU of the runtime, 0.." + std::to_string(rt->ncpu() - 1) +
        " (it has " + std::to_string(rt->ncpu()) + " CPUs; --ncpu or KCONT_NCPU sets them), not " +
        std::to_string(o.nic.intr_cpu));
  return rt;
}

}  // namespace kcont::net
