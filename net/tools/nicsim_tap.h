// kcont-nicsim's tap, always inside its namespace kcont-nicsim-<pid> (own_netns.h): for
// --wire tap and auto, and for --serve (which also gives the tap's host side an address);
// kcont-bench's net rows make theirs the same way, in kcont-bench-<pid>.
// Made before the runtime starts any thread, so the reaper is forked from a process without
// threads.
#pragma once

#include <kcont/inet.h>
#include <kcont/tap_wire.h>

#include <memory>
#include <optional>
#include <string>

#include "own_netns.h"

namespace kcont::net {

struct nicsim_tap {
  std::unique_ptr<own_netns> ns;
  std::unique_ptr<tap_wire> tap;  // moved to the wire by plain runs; kept by --serve

  ~nicsim_tap() { tap.reset(); }  // the tap before its namespace
};

struct tap_host_side {
  ipv4_addr addr;
  unsigned prefix_len;
};

// Sweeps stale namespaces (saying which), makes ours (`prefix`<pid>, one of netns.h's) and the
// tap in it: `name_pattern` and MTU 1500, or, with `host`, kcont%d with that address on its
// host side. nullptr with `why` (nothing is made then).
std::unique_ptr<nicsim_tap> open_nicsim_tap(const std::string& name_pattern,
                                            std::optional<tap_host_side> host, std::string& why,
                                            const char* prefix = netns_prefix_nicsim);

}  // namespace kcont::net
