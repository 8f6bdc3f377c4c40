#include "nicsim_wires.h"

#include <kcont/tap_wire.h>

#include <cstdio>

namespace kcont::net {

std::unique_ptr<wire> make_wire(const nicsim_options& o,
                                const std::vector<std::unique_ptr<sim_nic>>& nics, nicsim_tap* net,
                                const std::string& no_tap_why) {
  if (net != nullptr && net->tap) {
    net->tap->connect(*nics[0]);
    const char* ns = net->ns->name().c_str();
    const char* tap = net->tap->device().name().c_str();
    std::printf(
        "kcont-nicsim: using tap device %s in namespace %s (watch it with: ip netns exec %s "
        "tcpdump -i %s)\n",
        tap, ns, ns, tap);
    std::fflush(stdout);  // now, not at exit: a user (or check_nicsim.sh) reads it meanwhile
    return std::move(net->tap);
  }
  if (o.wire == wire_choice::automatic)
    std::printf("kcont-nicsim: no tap in a namespace of our own (%s); using the in-memory wire\n",
                no_tap_why.c_str());
  auto mem = std::make_unique<memory_wire>();
  mem->connect(*nics[0], nics.size() > 1 ? nics[1].get() : nullptr);
  return mem;
}

}  // namespace kcont::net
