#include "mem_peer.h"

#include <kcont/wire_format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

namespace kcont::net {
namespace {

using namespace kcont::net::wire_format;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr std::uint16_t kPingId = 0x6b63;
constexpr std::size_t kArpFrame = ether_header + arp_packet;

}  // namespace

mem_peer::mem_peer(sim_nic& nic, pkt_pool& pool, const mem_peer_config& cfg)
    : nic_(nic),
      pool_(pool),
      cfg_(cfg),
      ping_(1, cfg.ping_payload, cfg.timeout_ns),
      udp_(cfg.udp_window, cfg.udp_payload, cfg.timeout_ns) {
  nic_.set_input([this](pkt* m) { input(m); });
}

mem_peer::~mem_peer() {
  stop();
}

void mem_peer::start() {
  thread_ = std::thread([this] { run(); });
}

void mem_peer::stop() {
  stop_.store(true, std::memory_order_release);
  wake();
  if (thread_.joinable()) thread_.join();
}

void mem_peer::wake() {
  {
    std::lock_guard lk(mu_);
    woken_ = true;
  }
  cv_.notify_one();
}

bool mem_peer::send_arp_request() {
  pkt* m = pool_.get();
  if (m == nullptr) return false;
  std::uint8_t* f = m->data;
  std::memset(f, 0xff, 6);
  std::memcpy(f + 6, cfg_.mac.data(), 6);
  put_be<std::uint16_t>(f + 12, ethertype_arp);
  std::uint8_t* a = f + ether_header;
  put_be<std::uint16_t>(a, arp_hrd_ether);
  put_be<std::uint16_t>(a + 2, ethertype_ip);
  a[4] = 6;
  a[5] = 4;
  put_be<std::uint16_t>(a + 6, arp_op_request);
  std::memcpy(a + 8, cfg_.mac.data(), 6);
  put_be<std::uint32_t>(a + 14, cfg_.addr);
  std::memset(a + 18, 0, 6);
  put_be<std::uint32_t>(a + 24, cfg_.target);
  m->len = kArpFrame;
  if (nic_.output(m) == 0) return true;
  pool_.put(m);
  return false;
}

bool mem_peer::send_echo(bool icmp, const std::uint8_t* payload, std::size_t len,
                         std::uint64_t seq) {
  pkt* m = pool_.get();
  if (m == nullptr) {
    send_fail_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  std::uint8_t* f = m->data;
  std::memcpy(f, target_mac_.data(), 6);
  std::memcpy(f + 6, cfg_.mac.data(), 6);
  put_be<std::uint16_t>(f + 12, ethertype_ip);
  std::uint8_t* ip = f + ether_header;
  std::uint8_t* l4 = ip + ip_header;
  const std::size_t l4_len = (icmp ? icmp_header : udp_header) + len;
  std::memcpy(l4 + (icmp ? icmp_header : udp_header), payload, len);
  if (icmp) {
    l4[0] = icmp_echo;
    l4[1] = 0;
    put_be<std::uint16_t>(l4 + 2, 0);
    put_be<std::uint16_t>(l4 + 4, kPingId);
    put_be<std::uint16_t>(l4 + 6, static_cast<std::uint16_t>(seq));
    put_be<std::uint16_t>(l4 + 2, in_cksum(l4, l4_len));
  } else {
    put_be<std::uint16_t>(l4, cfg_.udp_port);
    put_be<std::uint16_t>(l4 + 2, cfg_.echo_port);
    put_be<std::uint16_t>(l4 + 4, static_cast<std::uint16_t>(l4_len));
    put_be<std::uint16_t>(l4 + 6, 0);
    put_be<std::uint16_t>(
        l4 + 6, udp_cksum(cfg_.addr, cfg_.target, l4, static_cast<std::uint16_t>(l4_len)));
  }
  ip[0] = 0x45;
  ip[1] = 0;
  put_be<std::uint16_t>(ip + 2, static_cast<std::uint16_t>(ip_header + l4_len));
  put_be<std::uint16_t>(ip + 4, static_cast<std::uint16_t>(seq));
  put_be<std::uint16_t>(ip + 6, 0);
  ip[8] = 64;
  ip[9] = icmp ? proto_icmp : proto_udp;
  put_be<std::uint16_t>(ip + 10, 0);
  put_be<std::uint32_t>(ip + 12, cfg_.addr);
  put_be<std::uint32_t>(ip + 16, cfg_.target);
  put_be<std::uint16_t>(ip + 10, in_cksum(ip, ip_header));
  m->len = static_cast<std::uint32_t>(ether_header + ip_header + l4_len);
  if (nic_.output(m) == 0) return true;
  pool_.put(m);  // the send queue is full
  send_fail_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void mem_peer::input(pkt* m) {
  const std::int64_t now = now_ns();
  std::uint8_t* f = m->data;
  const std::size_t len = m->len;
  bool answer = false;
  if (len >= kArpFrame && get_be<std::uint16_t>(f + 12) == ethertype_arp) {
    std::uint8_t* a = f + ether_header;
    const std::uint16_t op = get_be<std::uint16_t>(a + 6);
    if (op == arp_op_reply && get_be<std::uint32_t>(a + 14) == cfg_.target &&
        !resolved_.load(std::memory_order_acquire)) {
      std::memcpy(target_mac_.data(), a + 8, 6);
      resolved_.store(true, std::memory_order_release);
      answer = true;
    } else if (op == arp_op_request && get_be<std::uint32_t>(a + 24) == cfg_.addr) {
      // The responder resolves us (its send_udp): answer in the same buffer.
      std::memcpy(f, a + 8, 6);
      std::memcpy(f + 6, cfg_.mac.data(), 6);
      put_be<std::uint16_t>(a + 6, arp_op_reply);
      std::memcpy(a + 18, a + 8, 10);
      std::memcpy(a + 8, cfg_.mac.data(), 6);
      put_be<std::uint32_t>(a + 14, cfg_.addr);
      m->len = kArpFrame;
      if (nic_.output(m) == 0) {
        arp_answered_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
  } else if (len >= ether_header + ip_header && get_be<std::uint16_t>(f + 12) == ethertype_ip) {
    const std::uint8_t* ip = f + ether_header;
    const std::uint16_t total = get_be<std::uint16_t>(ip + 2);
    const std::uint8_t* l4 = ip + ip_header;
    if (ip[0] != 0x45 || total < ip_header || total > len - ether_header ||
        in_cksum(ip, ip_header) != 0) {
      bad_cksum_.fetch_add(1, std::memory_order_relaxed);
    } else if (ip[9] == proto_icmp && total >= ip_header + icmp_header && l4[0] == icmp_echoreply &&
               get_be<std::uint16_t>(l4 + 4) == kPingId) {
      if (in_cksum(l4, total - ip_header) != 0)
        bad_cksum_.fetch_add(1, std::memory_order_relaxed);
      else
        ping_.answer(l4 + icmp_header, total - ip_header - icmp_header, now);
      answer = true;
    } else if (ip[9] == proto_udp && total >= ip_header + udp_header) {
      const std::uint16_t ulen = get_be<std::uint16_t>(l4 + 4);
      if (ulen < udp_header || ulen > total - ip_header ||
          !udp_cksum_ok(get_be<std::uint32_t>(ip + 12), get_be<std::uint32_t>(ip + 16), l4, ulen)) {
        bad_cksum_.fetch_add(1, std::memory_order_relaxed);
      } else if (get_be<std::uint16_t>(l4) == cfg_.echo_port &&
                 get_be<std::uint16_t>(l4 + 2) == cfg_.udp_port) {
        udp_.answer(l4 + udp_header, ulen - udp_header, now);
        answer = true;
      } else if (get_be<std::uint16_t>(l4 + 2) == cfg_.sink_port) {
        sunk_.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  pool_.put(m);
  if (answer) wake();
}

void mem_peer::run() {
  // Resolve the responder first, as the host's stack would.
  const std::int64_t give_up_at = now_ns() + 5'000'000'000;
  while (!resolved_.load(std::memory_order_acquire) && !stop_.load(std::memory_order_acquire) &&
         now_ns() < give_up_at) {
    send_arp_request();
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, std::chrono::milliseconds(100), [this] { return woken_; });
    woken_ = false;
  }
  const bool reachable = resolved_.load(std::memory_order_acquire);
  std::vector<std::uint8_t> buf(std::max(cfg_.ping_payload, cfg_.udp_payload));
  const std::int64_t ping_gap = std::int64_t{cfg_.ping_interval_us} * 1000;
  const std::int64_t udp_gap =
      cfg_.udp_pps != 0 ? 1'000'000'000 / static_cast<std::int64_t>(cfg_.udp_pps) : 0;
  std::int64_t next_ping = now_ns(), next_udp = next_ping, drain_until = 0;
  while (reachable) {
    std::int64_t now = now_ns();
    const bool stopping = stop_.load(std::memory_order_acquire);
    if (stopping && drain_until == 0) drain_until = now + cfg_.timeout_ns;
    const bool ping_more = !stopping && ping_.counts().sent < cfg_.ping_count;
    const bool udp_more = !stopping && (cfg_.udp_count == 0 || udp_.counts().sent < cfg_.udp_count);
    std::uint64_t seq = 0;
    if (ping_more && now >= next_ping && ping_.next(buf.data(), now, &seq)) {
      if (!send_echo(true, buf.data(), cfg_.ping_payload, seq)) ping_.unsend(seq);
      next_ping = std::max(next_ping + ping_gap, now - ping_gap);
    }
    for (std::uint64_t sent = udp_.counts().sent;
         udp_more && (cfg_.udp_count == 0 || sent < cfg_.udp_count); ++sent) {
      if (udp_gap != 0 && now < next_udp) break;
      if (!udp_.next(buf.data(), now, &seq)) break;
      if (!send_echo(false, buf.data(), cfg_.udp_payload, seq)) {
        udp_.unsend(seq);
        break;
      }
      if (udp_gap != 0) next_udp = std::max(next_udp + udp_gap, now - udp_gap * 16);
    }
    now = now_ns();
    const std::int64_t due1 = ping_.expire(now), due2 = udp_.expire(now);
    const bool settled = ping_.outstanding() == 0 && udp_.outstanding() == 0;
    const bool udp_open = !stopping && cfg_.udp_count == 0;
    if (settled && !ping_more && !udp_more && !udp_open) break;
    if (drain_until != 0 && (settled || now >= drain_until)) break;
    std::int64_t until = now + 10'000'000;
    if (ping_more) until = std::min(until, next_ping);
    if (udp_more && udp_gap != 0) until = std::min(until, next_udp);
    if (due1 != 0) until = std::min(until, due1);
    if (due2 != 0) until = std::min(until, due2);
    std::unique_lock lk(mu_);
    if (!woken_ && until > now)
      cv_.wait_for(lk, std::chrono::nanoseconds(until - now), [this] { return woken_; });
    woken_ = false;
  }
  ping_.give_up();
  udp_.give_up();
  done_.store(true, std::memory_order_release);
}

}  // namespace kcont::net
