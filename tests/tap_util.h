// Helpers for tests that drive a kcont::net::tap_device from the host's side: a packet socket
// on the tap's interface (inject frames into the tap, capture what the tap wrote), link
// deletion over rtnetlink, and the checks a tap test needs (is a tap possible here, open fds,
// interface flags). Header-only; Linux only. Everything here acts in the calling thread's
// network namespace: call it from inside the test's own (netns_util.h), never the host's.
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <kcont/tap.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace kcont_test {

// IEEE 802 "local experimental" EtherType 1: nothing on the host handles it, so test frames
// carry it and readers can tell them from the host's own traffic on the tap (IPv6 etc.).
inline constexpr std::uint16_t test_ethertype = 0x88B5;
inline constexpr std::size_t eth_hlen = 14;

// Whether a tap can be made in the calling thread's namespace; if not, `why` says what is
// missing (the tests print it and skip).
inline bool tap_available(std::string& why) {
  return kcont::net::tap_device::create("", 0, why) != nullptr;
}

// A test frame: broadcast destination, a locally administered source, test_ethertype, then a
// 4-byte sequence number (when it fits) and a pattern derived from it. `len` counts from the
// destination MAC; len < 14 gives the first len bytes of such a frame (a runt).
inline std::vector<std::uint8_t> make_frame(std::uint32_t seq, std::size_t len) {
  std::vector<std::uint8_t> f(std::max(len, eth_hlen + 4));
  std::memset(f.data(), 0xff, 6);
  const std::uint8_t src[6] = {0x02, 0x6b, 0x63, 0x00, 0x00, 0x01};
  std::memcpy(f.data() + 6, src, 6);
  f[12] = test_ethertype >> 8;
  f[13] = test_ethertype & 0xff;
  std::memcpy(f.data() + 14, &seq, 4);
  for (std::size_t i = 18; i < f.size(); ++i) f[i] = static_cast<std::uint8_t>(seq * 31 + i);
  f.resize(len);
  return f;
}

inline std::uint16_t ethertype_of(const std::uint8_t* frame, std::size_t len) {
  return len < eth_hlen ? 0 : static_cast<std::uint16_t>(frame[12] << 8 | frame[13]);
}

// An AF_PACKET/SOCK_RAW socket bound to one interface: the host's side of the tap.
// send() puts a frame on the interface's transmit path, so it arrives at the tap's fd;
// recv_frame() captures frames arriving on the interface (the ones the tap's fd wrote), as
// tcpdump would, skipping what the host itself sends out. `protocol` is the EtherType to
// capture (host order); ETH_P_ALL captures everything.
class raw_socket {
 public:
  explicit raw_socket(int ifindex, std::uint16_t protocol = test_ethertype) : ifindex_(ifindex) {
    // Protocol 0 until bound, so no frame from another interface slips in first.
    fd_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      error_ = std::string("AF_PACKET socket: ") + std::strerror(errno) +
               (errno == EPERM ? " (needs CAP_NET_RAW)" : "");
      return;
    }
    // Room for a burst of captured frames (FORCE needs CAP_NET_ADMIN; plain is capped).
    int bytes = 8 << 20;
    if (::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) < 0)
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(protocol);
    sll.sll_ifindex = ifindex;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) {
      error_ = std::string("binding an AF_PACKET socket: ") + std::strerror(errno);
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~raw_socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  raw_socket(const raw_socket&) = delete;
  raw_socket& operator=(const raw_socket&) = delete;

  bool ok() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }
  int fd() const { return fd_; }

  // Sends `len` bytes, from the destination MAC on, as one frame. Returns the bytes sent or
  // -1 with errno (EINVAL for < 14 bytes, EMSGSIZE beyond MTU + 14, ENETDOWN when down).
  ssize_t send(const std::uint8_t* frame, std::size_t len) {
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = ifindex_;
    sll.sll_halen = 6;
    std::memcpy(sll.sll_addr, frame, len >= 6 ? 6 : len);
    return ::sendto(fd_, frame, len, 0, reinterpret_cast<sockaddr*>(&sll), sizeof sll);
  }
  ssize_t send(const std::vector<std::uint8_t>& frame) { return send(frame.data(), frame.size()); }

  // The next frame that arrived on the interface, whole, or nothing after `timeout`.
  std::optional<std::vector<std::uint8_t>> recv_frame(std::chrono::milliseconds timeout) {
    auto give_up = std::chrono::steady_clock::now() + timeout;
    std::vector<std::uint8_t> buf(kcont::net::tap_device::max_frame);
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          give_up - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, left.count() > 0 ? static_cast<int>(left.count()) : 0) <= 0)
        return std::nullopt;
      sockaddr_ll from{};
      socklen_t fromlen = sizeof from;
      ssize_t n = ::recvfrom(fd_, buf.data(), buf.size(), MSG_DONTWAIT | MSG_TRUNC,
                             reinterpret_cast<sockaddr*>(&from), &fromlen);
      if (n < 0) {
        // ENETDOWN: the link went down since the last call (reported once, then cleared).
        if (errno == EAGAIN || errno == EINTR || errno == ENETDOWN) continue;
        return std::nullopt;
      }
      if (from.sll_pkttype == PACKET_OUTGOING) continue;  // the host's own transmissions
      buf.resize(static_cast<std::size_t>(n));
      return buf;
    }
  }

 private:
  int fd_ = -1;
  int ifindex_;
  std::string error_;
};

// Deletes a link the way `ip link delete` does (rtnetlink RTM_DELLINK), without a shell.
// Returns false with `why` set on failure.
inline bool delete_link(int ifindex, std::string& why) {
  int nl = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (nl < 0) {
    why = std::string("netlink socket: ") + std::strerror(errno);
    return false;
  }
  struct {
    nlmsghdr nh;
    ifinfomsg ifi;
  } req{};
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg));
  req.nh.nlmsg_type = RTM_DELLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.nh.nlmsg_seq = 1;
  req.ifi.ifi_family = AF_UNSPEC;
  req.ifi.ifi_index = ifindex;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  bool ok = false;
  if (::sendto(nl, &req, req.nh.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) <
      0) {
    why = std::string("sending RTM_DELLINK: ") + std::strerror(errno);
  } else {
    alignas(nlmsghdr) char reply[4096];
    ssize_t n = ::recv(nl, reply, sizeof reply, 0);
    auto* h = reinterpret_cast<nlmsghdr*>(reply);
    if (n < 0) {
      why = std::string("reading the RTM_DELLINK answer: ") + std::strerror(errno);
    } else if (!NLMSG_OK(h, static_cast<unsigned>(n)) || h->nlmsg_type != NLMSG_ERROR) {
      why = "unexpected answer to RTM_DELLINK";
    } else {
      int err = -static_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
      ok = err == 0;
      if (!ok) why = std::string("RTM_DELLINK: ") + std::strerror(err);
    }
  }
  ::close(nl);
  return ok;
}

inline bool delete_link(const std::string& name, std::string& why) {
  unsigned idx = ::if_nametoindex(name.c_str());
  if (idx == 0) {
    why = "no interface named " + name;
    return false;
  }
  return delete_link(static_cast<int>(idx), why);
}

// The interface's flags (IFF_UP, ...), or -1 if it does not exist.
inline int link_flags(const std::string& name) {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  int r = ::ioctl(s, SIOCGIFFLAGS, &ifr);
  ::close(s);
  return r < 0 ? -1 : static_cast<unsigned short>(ifr.ifr_flags);
}

// Sets or clears IFF_UP on the interface (like `ip link set NAME up|down`).
inline bool set_link_up(const std::string& name, bool up) {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  bool ok = ::ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
  if (ok) {
    ifr.ifr_flags = static_cast<short>(up ? ifr.ifr_flags | IFF_UP : ifr.ifr_flags & ~IFF_UP);
    ok = ::ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
  }
  ::close(s);
  return ok;
}

// Turns IPv6 off on the interface, so the host's stack stops sending its own frames (router
// solicitations, MLD) on it. Best effort: false if the sysctl is not there or not writable.
inline bool quiet_host_stack(const std::string& name) {
  std::string path = "/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6";
  int f = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (f < 0) return false;
  bool ok = ::write(f, "1", 1) == 1;
  ::close(f);
  return ok;
}

// Open file descriptors of this process (for leak checks).
inline int count_open_fds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (::readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n - 3;  // ".", ".." and the directory's own fd
}

// Reads the next test frame (test_ethertype) from the tap, waiting up to `timeout` and
// skipping the host's own traffic. Returns the status of the last read_frame: none after the
// timeout.
inline kcont::net::tap_device::read_status read_test_frame(kcont::net::tap_device& tap,
                                                           std::uint8_t* buf, std::size_t cap,
                                                           std::size_t* len,
                                                           std::chrono::milliseconds timeout) {
  using st = kcont::net::tap_device::read_status;
  auto give_up = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    st s = tap.read_frame(buf, cap, len);
    if (s == st::frame || s == st::truncated) {
      if (cap >= eth_hlen && ethertype_of(buf, *len) != test_ethertype) continue;
      return s;
    }
    if (s != st::none) return s;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        give_up - std::chrono::steady_clock::now());
    if (left.count() <= 0) return st::none;
    pollfd p{tap.fd(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
}

}  // namespace kcont_test
