#include "floor_responder.h"

#include <kcont/wire_format.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace nicsim_floor {

using namespace kcont::net::wire_format;

const char* floor_drop_name(floor_drop why) {
  switch (why) {
    case floor_drop::short_frame:
      return "short_frame";
    case floor_drop::not_for_us:
      return "not_for_us";
    case floor_drop::unsupported:
      return "unsupported";
    case floor_drop::bad_checksum:
      return "bad_checksum";
    case floor_drop::write_failed:
      return "write_failed";
  }
  return "?";
}

floor_responder::floor_responder(int tap_fd, floor_config cfg) : fd_(tap_fd), cfg_(cfg) {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  stopfd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd_;
  const bool ok = epfd_ >= 0 && stopfd_ >= 0 && ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd_, &ev) == 0;
  ev.data.fd = stopfd_;
  if (!ok || ::epoll_ctl(epfd_, EPOLL_CTL_ADD, stopfd_, &ev) != 0) {
    const int err = errno;
    if (epfd_ >= 0) ::close(epfd_);
    if (stopfd_ >= 0) ::close(stopfd_);
    throw std::system_error(err, std::generic_category(), "floor responder: epoll");
  }
  thread_ = std::thread([this] { run(); });
}

floor_responder::~floor_responder() {
  stop();
  ::close(epfd_);
  ::close(stopfd_);
}

void floor_responder::stop() {
  if (!thread_.joinable()) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(stopfd_, &one, sizeof one);
  thread_.join();
}

floor_stats floor_responder::stats() const {
  floor_stats s;
  s.rx = rx_.load(std::memory_order_relaxed);
  s.tx = tx_.load(std::memory_order_relaxed);
  s.arp_answered = arp_.load(std::memory_order_relaxed);
  s.icmp_answered = icmp_.load(std::memory_order_relaxed);
  s.udp_echoed = udp_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < floor_drop_reasons; ++i)
    s.drops[i] = drops_[i].load(std::memory_order_relaxed);
  return s;
}

void floor_responder::run() {
  // Room for any frame the host sends at MTU 1500 with a VLAN tag; a read that fills the
  // buffer may have lost a tail (a tap truncates silently) and is dropped as short.
  alignas(64) std::uint8_t buf[4096];
  for (;;) {
    epoll_event evs[2];
    const int n = ::epoll_wait(epfd_, evs, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; ++i)
      if (evs[i].data.fd == stopfd_) return;
    // Drain the tap: the host queues frames while we answer.
    for (;;) {
      const ssize_t len = ::read(fd_, buf, sizeof buf);
      if (len < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        // EBADFD: the link was deleted under us; nothing more will arrive.
        gone_.store(true, std::memory_order_relaxed);
        return;
      }
      rx_.fetch_add(1, std::memory_order_relaxed);
      if (static_cast<std::size_t>(len) == sizeof buf) {
        drop(floor_drop::short_frame);
        continue;
      }
      answer(buf, static_cast<std::size_t>(len));
    }
  }
}

bool floor_responder::send(const std::uint8_t* f, std::size_t len) {
  if (::write(fd_, f, len) != static_cast<ssize_t>(len)) {
    drop(floor_drop::write_failed);
    return false;
  }
  tx_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void floor_responder::answer(std::uint8_t* f, std::size_t len) {
  if (len < ether_header) return drop(floor_drop::short_frame);
  const std::uint16_t type = get_be<std::uint16_t>(f + 12);
  const bool to_us = std::memcmp(f, cfg_.mac.data(), 6) == 0;
  if (!to_us && (f[0] & 1) == 0) return drop(floor_drop::not_for_us);
  // Replies go back where the request came from, from us.
  std::memcpy(f, f + 6, 6);
  std::memcpy(f + 6, cfg_.mac.data(), 6);
  std::uint8_t* p = f + ether_header;

  if (type == ethertype_arp) {
    if (len < ether_header + arp_packet) return drop(floor_drop::short_frame);
    if (get_be<std::uint16_t>(p) != arp_hrd_ether || get_be<std::uint16_t>(p + 2) != ethertype_ip ||
        p[4] != 6 || p[5] != 4 || get_be<std::uint16_t>(p + 6) != arp_op_request)
      return drop(floor_drop::unsupported);
    if (get_be<std::uint32_t>(p + 24) != cfg_.addr) return drop(floor_drop::not_for_us);
    put_be<std::uint16_t>(p + 6, arp_op_reply);
    std::memcpy(p + 18, p + 8, 10);  // target = the asker (MAC and address)
    std::memcpy(p + 8, cfg_.mac.data(), 6);
    put_be<std::uint32_t>(p + 14, cfg_.addr);
    if (send(f, ether_header + arp_packet)) arp_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (type != ethertype_ip) return drop(floor_drop::unsupported);
  if (len < ether_header + ip_header) return drop(floor_drop::short_frame);
  if (p[0] != 0x45 || (get_be<std::uint16_t>(p + 6) & (ip_mf | ip_offmask)) != 0)
    return drop(floor_drop::unsupported);
  const std::uint16_t total = get_be<std::uint16_t>(p + 2);
  if (total < ip_header || total > len - ether_header) return drop(floor_drop::short_frame);
  if (in_cksum(p, ip_header) != 0) return drop(floor_drop::bad_checksum);
  const std::uint32_t src = get_be<std::uint32_t>(p + 12), dst = get_be<std::uint32_t>(p + 16);
  if (dst != cfg_.addr) return drop(floor_drop::not_for_us);
  std::uint8_t* l4 = p + ip_header;
  const std::size_t l4_len = total - ip_header;

  if (p[9] == proto_icmp) {
    if (l4_len < icmp_header) return drop(floor_drop::short_frame);
    if (in_cksum(l4, l4_len) != 0) return drop(floor_drop::bad_checksum);
    if (l4[0] != icmp_echo) return drop(floor_drop::unsupported);
    l4[0] = icmp_echoreply;
    put_be<std::uint16_t>(l4 + 2, 0);
    put_be<std::uint16_t>(l4 + 2, in_cksum(l4, l4_len));
  } else if (p[9] == proto_udp) {
    if (l4_len < udp_header) return drop(floor_drop::short_frame);
    const std::uint16_t ulen = get_be<std::uint16_t>(l4 + 4);
    if (ulen < udp_header || ulen > l4_len) return drop(floor_drop::short_frame);
    if (!udp_cksum_ok(src, dst, l4, ulen)) return drop(floor_drop::bad_checksum);
    const std::uint16_t sport = get_be<std::uint16_t>(l4), dport = get_be<std::uint16_t>(l4 + 2);
    if (dport != cfg_.echo_port || sport == 0 || sport == cfg_.echo_port)
      return drop(floor_drop::unsupported);
    put_be<std::uint16_t>(l4, dport);
    put_be<std::uint16_t>(l4 + 2, sport);
    put_be<std::uint16_t>(l4 + 6, 0);
    put_be<std::uint16_t>(l4 + 6, udp_cksum(dst, src, l4, ulen));
    put_be<std::uint16_t>(p + 2, static_cast<std::uint16_t>(ip_header + ulen));
  } else {
    return drop(floor_drop::unsupported);
  }
  put_be<std::uint32_t>(p + 12, dst);
  put_be<std::uint32_t>(p + 16, src);
  p[8] = 64;  // TTL
  put_be<std::uint16_t>(p + 10, 0);
  put_be<std::uint16_t>(p + 10, in_cksum(p, ip_header));
  if (send(f, ether_header + get_be<std::uint16_t>(p + 2)))
    (p[9] == proto_icmp ? icmp_ : udp_).fetch_add(1, std::memory_order_relaxed);
}

}  // namespace nicsim_floor
