#include "nicsim_wires.h"

#include <kcont/tap_wire.h>

#include <cstdio>

namespace kcont::net {

std::unique_ptr<wire> make_wire(const nicsim_options& o,
                                const std::vector<std::unique_ptr<sim_nic>>& nics) {
  if (o.wire == wire_choice::tap || o.wire == wire_choice::automatic) {
    std::string why;
    if (auto tap = tap_wire::create(o.tap_name, 1500, why)) {
      tap->connect(*nics[0]);
      std::printf("kcont-nicsim: using tap device %s (watch it with: tcpdump -i %s)\n",
                  tap->device().name().c_str(), tap->device().name().c_str());
      return tap;
    }
    if (o.wire == wire_choice::tap) {
      std::fprintf(stderr, "kcont-nicsim: --wire tap: %s\n", why.c_str());
      return nullptr;
    }
    std::printf("kcont-nicsim: no tap device (%s); using the in-memory wire\n", why.c_str());
  }
  auto mem = std::make_unique<memory_wire>();
  mem->connect(*nics[0], nics.size() > 1 ? nics[1].get() : nullptr);
  return mem;
}

}  // namespace kcont::net
