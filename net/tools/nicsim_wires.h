// kcont-nicsim's wire: a tap device if asked (or if one can be made, by default), else the
// in-memory wire, saying why it fell back.
#pragma once

#include "nicsim_options.h"

#include <kcont/nicsim.h>

#include <memory>
#include <vector>

namespace kcont::net {

// Connects the NICs to the chosen wire. nullptr (after a message) when --wire tap cannot be
// had.
std::unique_ptr<wire> make_wire(const nicsim_options& o,
                                const std::vector<std::unique_ptr<sim_nic>>& nics);

}  // namespace kcont::net
