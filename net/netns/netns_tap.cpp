#include "netns_tap.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "netns.h"
#include "netns_thread.h"

namespace kcont::net {
namespace {

bool set_addr(int sock, const std::string& ifname, unsigned long req, std::uint32_t addr) {
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, ifname.c_str(), std::min(ifname.size(), std::size_t{IFNAMSIZ - 1}));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(addr);
  std::memcpy(&ifr.ifr_addr, &sin, sizeof sin);
  return ::ioctl(sock, req, &ifr) == 0;
}

// Runs on a thread inside the tap's namespace (sysctl and ioctls act on the caller's).
bool give_host_side(const std::string& ns_name, const std::string& ifname, ipv4_addr host,
                    unsigned prefix_len, std::string& why) {
  // IPv6 off first: the host's stack would otherwise chatter on the link (best effort).
  const std::string sysctl = "/proc/sys/net/ipv6/conf/" + ifname + "/disable_ipv6";
  if (int f = ::open(sysctl.c_str(), O_WRONLY | O_CLOEXEC); f >= 0) {
    [[maybe_unused]] ssize_t n = ::write(f, "1", 1);
    ::close(f);
  }
  const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const std::uint32_t mask = prefix_len == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix_len);
  const bool ok = sock >= 0 && set_addr(sock, ifname, SIOCSIFADDR, host) &&
                  set_addr(sock, ifname, SIOCSIFNETMASK, mask);
  if (!ok) why = "giving " + ifname + " its address in " + ns_name + ": " + std::strerror(errno);
  if (sock >= 0) ::close(sock);
  return ok;
}

}  // namespace

std::unique_ptr<tap_wire> make_tap_in_netns(const netns_handle& ns, const std::string& name_pattern,
                                            unsigned mtu, std::string& why) {
  std::unique_ptr<tap_wire> tap;
  if (!run_in_netns(
          ns, [&] { tap = tap_wire::create(name_pattern, mtu, why); }, why))
    return nullptr;
  return tap;
}

std::unique_ptr<tap_wire> make_tap_in_netns(const netns_handle& ns, ipv4_addr host,
                                            unsigned prefix_len, std::string& why) {
  std::unique_ptr<tap_wire> tap;
  const bool entered = run_in_netns(
      ns,
      [&] {
        auto t = tap_wire::create("kcont%d", 1500, why);
        if (t && give_host_side(ns.name(), t->device().name(), host, prefix_len, why))
          tap = std::move(t);
      },
      why);
  return entered ? std::move(tap) : nullptr;
}

}  // namespace kcont::net
