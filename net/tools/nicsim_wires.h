// kcont-nicsim's wire: the tap in our namespace if asked (or if one could be made, by
// default), else the in-memory wire, saying why it fell back.
#pragma once

#include "nicsim_options.h"
#include "nicsim_tap.h"

#include <kcont/nicsim.h>

#include <memory>
#include <string>
#include <vector>

namespace kcont::net {

// Connects the NICs to the chosen wire: `net`'s tap (taken from it) when there is one, else
// the in-memory wire; with --wire auto and no tap, `no_tap_why` is printed as the reason.
std::unique_ptr<wire> make_wire(const nicsim_options& o,
                                const std::vector<std::unique_ptr<sim_nic>>& nics, nicsim_tap* net,
                                const std::string& no_tap_why);

}  // namespace kcont::net
