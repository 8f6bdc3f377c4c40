// The phases of kcont-nicsim --serve, one function each: the kcont stack on the tap, the floor
// responder on the same tap, and the kcont stack on the in-memory wire against the built-in
// peer. Each starts its responder and its load (stock ping, the UDP echo load, the pusher, as
// the options say), prints the live line once a second unless o.quiet, runs until the load is
// done (or --seconds are up, or `interrupted`), and returns its books. kcont-nicsim --serve
// (serve.h) runs them one after the other; kcont-bench's net rows run them per start mode.
#pragma once

#include <kcont/inet.h>
#include <kcont/runtime.h>
#include <kcont/tap_wire.h>

#include <csignal>

#include "nicsim_options.h"
#include "serve_report.h"

namespace kcont::net {

class netns_handle;

// The addresses of every phase: the host side of the tap (or the built-in peer) and the
// responder (the kcont stack or the floor).
inline constexpr ipv4_addr serve_host = ipv4(10, 77, 0, 1);
inline constexpr ipv4_addr serve_nic = ipv4(10, 77, 0, 2);
inline constexpr unsigned serve_prefix_len = 24;
inline constexpr const char* serve_nic_text = "10.77.0.2";

// The kcont stack (o.nic: start mode, rings) on a runtime of the caller's, answering on `tap`
// the load that runs in `ns`. `ok` turns false when packet buffers leaked.
serve_phase serve_kcont_on_tap(const nicsim_options& o, kcont::runtime& rt, tap_wire& tap,
                               const netns_handle& ns,
                               const volatile std::sig_atomic_t& interrupted, bool& ok);
// The floor responder (one thread, epoll, no kcont) on `tap`, answering the same load.
serve_phase serve_floor_on_tap(const nicsim_options& o, tap_wire& tap, const netns_handle& ns,
                               const volatile std::sig_atomic_t& interrupted);
// The kcont stack on the in-memory wire, the built-in peer (mem_peer.h) playing the host. `ok`
// turns false when buffers leaked or an answer was corrupt.
serve_phase serve_kcont_in_memory(const nicsim_options& o, kcont::runtime& rt,
                                  const volatile std::sig_atomic_t& interrupted, bool& ok);

}  // namespace kcont::net
