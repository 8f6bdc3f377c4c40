#include "udp_load.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include "netns.h"

namespace kcont::net {
namespace {

std::int64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

sockaddr_in sin_of(std::uint32_t addr, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(addr);
  a.sin_port = htons(port);
  return a;
}

// A warm-up probe: shorter than any counted payload, so its echo is told apart and ignored.
constexpr char kWarm[4] = {'w', 'a', 'r', 'm'};

}  // namespace

udp_load::udp_load(const udp_load_config& cfg)
    : cfg_(cfg), tracker_(cfg.window, cfg.payload, cfg.timeout_ns) {}

udp_load::~udp_load() {
  stop();
}

void udp_load::start(const netns_handle& ns) {
  thread_ = std::thread([this, &ns] { run(&ns); });
}

void udp_load::stop() {
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

std::string udp_load::error() const {
  return done() ? error_ : std::string();
}

void udp_load::run(const netns_handle* ns) {
  auto fail = [this](const std::string& what) {
    error_ = what + ": " + std::strerror(errno);
    done_.store(true, std::memory_order_release);
  };
  if (!ns->enter_thread()) return fail("entering the namespace");
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail("UDP socket");
  const int sink =
      cfg_.sink_port != 0 ? ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
  int big = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
  const sockaddr_in local = sin_of(cfg_.local, 0), remote = sin_of(cfg_.remote, cfg_.echo_port);
  const sockaddr_in sink_at = sin_of(cfg_.local, cfg_.sink_port);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0 ||
      ::connect(fd, reinterpret_cast<const sockaddr*>(&remote), sizeof remote) != 0 ||
      (sink >= 0 &&
       ::bind(sink, reinterpret_cast<const sockaddr*>(&sink_at), sizeof sink_at) != 0)) {
    fail("binding the UDP load's sockets");
    ::close(fd);
    if (sink >= 0) ::close(sink);
    return;
  }
  std::vector<std::uint8_t> out(cfg_.payload), in(65536);

  // Warm-up: the host resolves the responder through ARP first and holds only a few
  // datagrams meanwhile; the counted load starts once one echo came back (or after 5 s).
  const std::int64_t warm_until = now_ns() + 5'000'000'000;
  std::int64_t warm_next = 0;
  while (!stop_.load(std::memory_order_acquire) && !reached_.load(std::memory_order_relaxed) &&
         now_ns() < warm_until) {
    if (now_ns() >= warm_next) {
      ::send(fd, kWarm, sizeof kWarm, 0);
      warm_next = now_ns() + 100'000'000;
    }
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 20);
    while (::recv(fd, in.data(), in.size(), 0) == static_cast<ssize_t>(sizeof kWarm))
      reached_.store(true, std::memory_order_relaxed);
  }

  const std::int64_t gap = cfg_.pps != 0 ? 1'000'000'000 / static_cast<std::int64_t>(cfg_.pps) : 0;
  std::int64_t next_send = now_ns();
  std::int64_t drain_until = 0;  // after stop or count: when to give up on the echoes out
  for (;;) {
    // Echoes first: each one answered opens the window for the next send below.
    for (ssize_t n; (n = ::recv(fd, in.data(), in.size(), 0)) >= 0;)
      if (n != static_cast<ssize_t>(sizeof kWarm))
        tracker_.answer(in.data(), static_cast<std::size_t>(n), now_ns());
    if (sink >= 0)
      while (::recv(sink, in.data(), in.size(), 0) >= 0)
        sunk_.fetch_add(1, std::memory_order_relaxed);
    std::int64_t now = now_ns();
    const bool stopping = stop_.load(std::memory_order_acquire);
    const echo_counts c = tracker_.counts();
    const bool all_sent = cfg_.count != 0 && c.sent >= cfg_.count;
    if ((stopping || all_sent) && drain_until == 0) drain_until = now + cfg_.timeout_ns;
    if (drain_until != 0 && (tracker_.outstanding() == 0 || now >= drain_until)) break;
    // Send while the window and the rate allow (a burst of at most the window after a stall).
    if (drain_until == 0) {
      for (std::uint64_t sent = c.sent; cfg_.count == 0 || sent < cfg_.count; ++sent) {
        if (gap != 0 && now < next_send) break;
        std::uint64_t seq = 0;
        if (!tracker_.next(out.data(), now, &seq)) break;
        if (::send(fd, out.data(), out.size(), 0) != static_cast<ssize_t>(out.size())) {
          tracker_.unsend(seq);  // the socket's buffer is full: try again once it drains
          break;
        }
        if (gap != 0) next_send = std::max(next_send + gap, now - gap * 16);
      }
    }
    now = now_ns();
    const std::int64_t due = tracker_.expire(now);
    // Sleep until an echo arrives, the next send is due, or the oldest probe times out; at
    // most 10 ms (stop() is seen within that).
    std::int64_t wait = 10'000'000;
    if (gap != 0 && drain_until == 0 && tracker_.outstanding() < cfg_.window)
      wait = std::min(wait, std::max<std::int64_t>(0, next_send - now));
    if (due != 0) wait = std::min(wait, std::max<std::int64_t>(0, due - now));
    pollfd p[2] = {{fd, POLLIN, 0}, {sink, POLLIN, 0}};
    const timespec ts{static_cast<time_t>(wait / 1'000'000'000),
                      static_cast<long>(wait % 1'000'000'000)};
    ::ppoll(p, sink >= 0 ? 2 : 1, &ts, nullptr);
  }
  tracker_.give_up();
  ::close(fd);
  if (sink >= 0) ::close(sink);
  done_.store(true, std::memory_order_release);
}

}  // namespace kcont::net
