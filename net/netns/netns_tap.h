// A tap made inside one of our namespaces: nothing of it ever exists in the host's default
// namespace (the tap is created by a thread that has entered ours, so the kernel puts it
// there; its fd then works from any thread).
#pragma once

#include <kcont/inet.h>
#include <kcont/tap_wire.h>

#include <memory>
#include <string>

namespace kcont::net {

class netns_handle;

// The tap (`name_pattern`, `mtu` as tap_wire::create takes them), up, nothing else set.
// nullptr with `why` on failure.
std::unique_ptr<tap_wire> make_tap_in_netns(const netns_handle& ns, const std::string& name_pattern,
                                            unsigned mtu, std::string& why);

// A kcont%d tap (MTU 1500, up) with `host`/`prefix_len` on its host side, IPv6 off on it (no
// router solicitations or MLD reports to count). nullptr with `why` on failure.
std::unique_ptr<tap_wire> make_tap_in_netns(const netns_handle& ns, ipv4_addr host,
                                            unsigned prefix_len, std::string& why);

}  // namespace kcont::net
