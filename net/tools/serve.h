// kcont-nicsim --serve: the simulated NIC as a real network interface. An IPv4 stack
// (<kcont/inet.h>) on the NIC answers stock ping and a UDP echo load that run in a network
// namespace of our own, through a tap; then the floor (floor_responder.h) answers the same
// load on the same tap, and the two are compared. Without a tap or a namespace, the same stack
// runs on the in-memory wire against a built-in peer (mem_peer.h), saying why.
#pragma once

#include <csignal>

#include "nicsim_options.h"

namespace kcont::net {

// Returns the exit code: 0; 1 when an answer was corrupt, a buffer leaked or the JSON file
// could not be written; 2 for a bad KCONT_* variable or --intr-cpu, or --wire tap without a
// tap in a namespace.
int run_serve(const nicsim_options& o, const volatile std::sig_atomic_t& interrupted);

}  // namespace kcont::net
