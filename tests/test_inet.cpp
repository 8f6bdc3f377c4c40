// The IPv4 stack (<kcont/inet.h>). Detached (no threads, a hand-driven clock): crafted ARP,
// ICMP and UDP frames get byte-exact replies whose checksums an independent checksum here
// verifies; every malformed or unsupported frame is counted under its own reason and nothing
// else changes; ARP resolution with a held packet, the retry timer giving up, expiry and the
// cache's limits. Attached to simulated NICs on the in-memory wire: resolution both ways
// between two stacks, 1 000 ICMP echoes and 10^5 UDP echoes answered byte-exact, exactly once;
// the retry callout giving up; stopping with a retry pending; the NIC's input hook; misuse.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <kcont/inet.h>
#include <kcont/nicsim.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <books.h>
#include "test_util.h"

using namespace kcont::net;
using namespace std::chrono_literals;

namespace {

using bytes = std::vector<std::uint8_t>;

constexpr ether_addr kMacA{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a};
constexpr ether_addr kMacB{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b};
constexpr ether_addr kMacPeer{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
constexpr ether_addr kBroadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr ipv4_addr kIpA = ipv4(10, 0, 0, 1);
constexpr ipv4_addr kIpB = ipv4(10, 0, 0, 2);
constexpr ipv4_addr kIpPeer = ipv4(10, 0, 0, 9);
constexpr ipv4_addr kSubnetBroadcast = ipv4(10, 0, 0, 255);

inet_config config_of(ether_addr mac, ipv4_addr addr) {
  inet_config c;
  c.mac = mac;
  c.addr = addr;
  return c;
}

// ---- frames, written here independently of the stack --------------------------------------

// RFC 1071 the slow way: 16-bit words one at a time, folded once at the end.
std::uint16_t ref_cksum(const std::uint8_t* p, std::size_t n, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i < n; i += 2)
    sum += (std::uint32_t{p[i]} << 8) | (i + 1 < n ? p[i + 1] : 0);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum & 0xffff);
}

std::uint16_t get16(const bytes& b, std::size_t at) {
  return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}
void set16(bytes& b, std::size_t at, unsigned v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v);
}
void put16(bytes& b, unsigned v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}
void put32(bytes& b, std::uint32_t v) {
  put16(b, v >> 16);
  put16(b, v & 0xffff);
}
void put_mac(bytes& b, const ether_addr& m) {
  b.insert(b.end(), m.begin(), m.end());
}

bytes ether(const ether_addr& dst, const ether_addr& src, unsigned type, const bytes& payload) {
  bytes b;
  put_mac(b, dst);
  put_mac(b, src);
  put16(b, type);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

bytes arp_packet(unsigned op, const ether_addr& sha, ipv4_addr spa, const ether_addr& tha,
                 ipv4_addr tpa) {
  bytes b;
  put16(b, 1);       // Ethernet
  put16(b, 0x0800);  // IPv4
  b.push_back(6);
  b.push_back(4);
  put16(b, op);
  put_mac(b, sha);
  put32(b, spa);
  put_mac(b, tha);
  put32(b, tpa);
  return b;
}

struct ip_fields {
  std::uint8_t tos = 0;
  std::uint16_t id = 0x1234;
  std::uint16_t off = 0;
  std::uint8_t ttl = 64;
};

bytes ipv4_packet(ipv4_addr src, ipv4_addr dst, std::uint8_t proto, const bytes& payload,
                  ip_fields f = {}) {
  bytes b;
  b.push_back(0x45);
  b.push_back(f.tos);
  put16(b, 20 + payload.size());
  put16(b, f.id);
  put16(b, f.off);
  b.push_back(f.ttl);
  b.push_back(proto);
  put16(b, 0);
  put32(b, src);
  put32(b, dst);
  set16(b, 10, ref_cksum(b.data(), 20));
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

bytes icmp_message(std::uint8_t type, std::uint8_t code, std::uint16_t id, std::uint16_t seq,
                   const bytes& data) {
  bytes b{type, code, 0, 0};
  put16(b, id);
  put16(b, seq);
  b.insert(b.end(), data.begin(), data.end());
  set16(b, 2, ref_cksum(b.data(), b.size()));
  return b;
}

std::uint32_t pseudo_sum(ipv4_addr src, ipv4_addr dst, std::size_t len) {
  return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 17 +
         static_cast<std::uint32_t>(len);
}

bytes udp_datagram(ipv4_addr src, ipv4_addr dst, std::uint16_t sport, std::uint16_t dport,
                   const bytes& data, bool with_checksum = true) {
  bytes b;
  put16(b, sport);
  put16(b, dport);
  put16(b, 8 + data.size());
  put16(b, 0);
  b.insert(b.end(), data.begin(), data.end());
  if (with_checksum) {
    std::uint16_t c = ref_cksum(b.data(), b.size(), pseudo_sum(src, dst, b.size()));
    set16(b, 6, c == 0 ? 0xffff : c);
  }
  return b;
}

bytes pattern(std::size_t n, unsigned seed) {
  bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed * 7 + i * 13);
  return b;
}

// An IPv4 frame from the peer to `dst` (Ethernet to A's MAC unless told).
bytes ip_frame(ipv4_addr src, ipv4_addr dst, std::uint8_t proto, const bytes& payload,
               ip_fields f = {}, const ether_addr& eth_dst = kMacA) {
  return ether(eth_dst, kMacPeer, 0x0800, ipv4_packet(src, dst, proto, payload, f));
}

// Every checksum of a frame the stack sent is right, by the independent sum.
void check_checksums(const bytes& f) {
  REQUIRE(f.size() >= 14);
  if (get16(f, 12) != 0x0800) return;
  REQUIRE(f.size() >= 34);
  CHECK(ref_cksum(f.data() + 14, 20) == 0);
  const std::size_t total = get16(f, 16);
  REQUIRE(14 + total == f.size());
  const std::uint8_t* l4 = f.data() + 34;
  const std::size_t l4_len = total - 20;
  const ipv4_addr src = (std::uint32_t{get16(f, 26)} << 16) | get16(f, 28);
  const ipv4_addr dst = (std::uint32_t{get16(f, 30)} << 16) | get16(f, 32);
  if (f[23] == 1) CHECK(ref_cksum(l4, l4_len) == 0);
  if (f[23] == 17) CHECK(ref_cksum(l4, l4_len, pseudo_sum(src, dst, l4_len)) == 0);
}

// ---- stats, field by field -------------------------------------------------------------------

static_assert(sizeof(inet_stats) == (20 + inet_drop_reasons) * sizeof(std::uint64_t),
              "fields() below lists every counter of inet_stats");

std::map<std::string, std::uint64_t> fields(const inet_stats& s) {
  std::map<std::string, std::uint64_t> m = {{"rx_frames", s.rx_frames},
                                            {"rx_arp", s.rx_arp},
                                            {"rx_ipv4", s.rx_ipv4},
                                            {"rx_icmp", s.rx_icmp},
                                            {"rx_udp", s.rx_udp},
                                            {"tx_frames", s.tx_frames},
                                            {"tx_arp", s.tx_arp},
                                            {"tx_icmp", s.tx_icmp},
                                            {"tx_udp", s.tx_udp},
                                            {"arp_requests_answered", s.arp_requests_answered},
                                            {"arp_replies_learned", s.arp_replies_learned},
                                            {"arp_requests_sent", s.arp_requests_sent},
                                            {"arp_resolution_failures", s.arp_resolution_failures},
                                            {"icmp_echoes_answered", s.icmp_echoes_answered},
                                            {"udp_echoed", s.udp_echoed},
                                            {"udp_echoed_bytes", s.udp_echoed_bytes},
                                            {"udp_sunk", s.udp_sunk},
                                            {"udp_sunk_bytes", s.udp_sunk_bytes},
                                            {"udp_sent", s.udp_sent},
                                            {"udp_sent_bytes", s.udp_sent_bytes}};
  for (std::size_t i = 0; i < inet_drop_reasons; ++i)
    m[std::string("drop.") + inet_drop_name(static_cast<inet_drop>(i))] = s.drops[i];
  return m;
}

// What changed between two stats, as "name+N" words in name order.
std::string delta(const inet_stats& before, const inet_stats& after) {
  const auto b = fields(before), a = fields(after);
  std::string out;
  for (const auto& [name, v] : a) {
    const auto was = b.at(name);
    if (v == was) continue;
    if (!out.empty()) out += ' ';
    out += name + (v > was ? "+" + std::to_string(v - was) : "-" + std::to_string(was - v));
  }
  return out;
}

// ---- a detached stack: no threads, a clock moved by hand ---------------------------------------

struct rig {
  pkt_pool pool{64};
  std::vector<bytes> sent;
  int answer = 0;  // what output returns (0: takes the frame)
  std::int64_t now = 1'000'000'000;
  inet_stack st;

  explicit rig(inet_config cfg = config_of(kMacA, kIpA))
      : st(
            pool, cfg,
            [this](pkt* m) {
              if (answer != 0) return answer;
              sent.emplace_back(m->data, m->data + m->len);
              pool.put(m);
              return 0;
            },
            [this] { return now; }) {}

  void feed(const bytes& f) {
    pkt* m = pool.get();
    REQUIRE(m != nullptr);
    std::memcpy(m->data, f.data(), f.size());
    m->len = static_cast<std::uint32_t>(f.size());
    st.input(m);
  }
  // Feeds `f`; returns what the stack sent in answer (one frame at most).
  std::optional<bytes> exchange(const bytes& f) {
    sent.clear();
    feed(f);
    REQUIRE(sent.size() <= 1);
    if (sent.empty()) return std::nullopt;
    return sent[0];
  }
  void advance(std::chrono::milliseconds d) { now += std::chrono::nanoseconds(d).count(); }
  bool all_buffers_home() const { return pool.available() == pool.size(); }
};

int send(inet_stack& st, ipv4_addr dst, std::uint16_t dport, const bytes& data,
         std::uint16_t sport = 5000) {
  return st.send_udp(dst, dport, sport, data);
}

}  // namespace

// ---- replies, byte for byte ------------------------------------------------------------------

TEST_CASE("an ARP request for our address is answered byte-exact, and its sender is learned") {
  rig r;
  const bytes req =
      ether(kBroadcast, kMacPeer, 0x0806, arp_packet(1, kMacPeer, kIpPeer, ether_addr{}, kIpA));
  const auto before = r.st.stats();
  auto reply = r.exchange(req);
  REQUIRE(reply);
  CHECK(*reply == ether(kMacPeer, kMacA, 0x0806, arp_packet(2, kMacA, kIpA, kMacPeer, kIpPeer)));
  CHECK(delta(before, r.st.stats()) ==
        "arp_requests_answered+1 rx_arp+1 rx_frames+1 tx_arp+1 tx_frames+1");
  // Learned from the request (as BSD and Linux do): a datagram to it needs no ARP request.
  r.sent.clear();
  CHECK(send(r.st, kIpPeer, 9, pattern(10, 1)) == 0);
  REQUIRE(r.sent.size() == 1);
  CHECK(r.sent[0] ==
        ether(kMacPeer, kMacA, 0x0800,
              ipv4_packet(kIpA, kIpPeer, 17, udp_datagram(kIpA, kIpPeer, 5000, 9, pattern(10, 1)),
                          {.id = 1})));
  check_checksums(r.sent[0]);
  CHECK(r.st.stats().arp_requests_sent == 0);
  CHECK(r.all_buffers_home());
}

TEST_CASE(
    "a padded ARP request is answered without the padding; an RFC 5227 probe is answered, not "
    "learned") {
  rig r;
  bytes req = ether(kBroadcast, kMacPeer, 0x0806, arp_packet(1, kMacPeer, 0, ether_addr{}, kIpA));
  req.resize(60, 0xee);  // the minimum Ethernet frame
  auto reply = r.exchange(req);
  REQUIRE(reply);
  CHECK(*reply == ether(kMacPeer, kMacA, 0x0806, arp_packet(2, kMacA, kIpA, kMacPeer, 0)));
  // Not learned: sending to it asks.
  r.sent.clear();
  CHECK(send(r.st, kIpPeer, 9, {}) == 0);
  CHECK(r.st.stats().arp_requests_sent == 1);
  // A request from off our network is answered too (and not learned: nothing could use it).
  const ipv4_addr far = ipv4(192, 168, 1, 9);
  reply = r.exchange(
      ether(kBroadcast, kMacPeer, 0x0806, arp_packet(1, kMacPeer, far, ether_addr{}, kIpA)));
  REQUIRE(reply);
  CHECK(*reply == ether(kMacPeer, kMacA, 0x0806, arp_packet(2, kMacA, kIpA, kMacPeer, far)));
}

TEST_CASE(
    "an ICMP echo request is answered byte-exact: padding trimmed, TOS and DF kept, fresh id and "
    "TTL") {
  rig r;
  const bytes data = pattern(33, 5);  // odd length
  bytes req = ip_frame(kIpPeer, kIpA, 1, icmp_message(8, 0, 0xbeef, 7, data),
                       {.tos = 0x10, .id = 0x4242, .off = 0x4000, .ttl = 3});
  const auto before = r.st.stats();
  auto reply = r.exchange(req);
  REQUIRE(reply);
  CHECK(*reply == ether(kMacPeer, kMacA, 0x0800,
                        ipv4_packet(kIpA, kIpPeer, 1, icmp_message(0, 0, 0xbeef, 7, data),
                                    {.tos = 0x10, .id = 1, .off = 0x4000, .ttl = 64})));
  check_checksums(*reply);
  CHECK(delta(before, r.st.stats()) ==
        "icmp_echoes_answered+1 rx_frames+1 rx_icmp+1 rx_ipv4+1 tx_frames+1 tx_icmp+1");
  // A small echo in a frame padded to 60 bytes: the reply is as long as the datagram.
  req = ip_frame(kIpPeer, kIpA, 1, icmp_message(8, 0, 1, 2, {}));
  req.resize(60, 0xaa);
  reply = r.exchange(req);
  REQUIRE(reply);
  CHECK(reply->size() == 14 + 20 + 8);
  CHECK(*reply == ether(kMacPeer, kMacA, 0x0800,
                        ipv4_packet(kIpA, kIpPeer, 1, icmp_message(0, 0, 1, 2, {}), {.id = 2})));
  CHECK(r.all_buffers_home());
}

TEST_CASE("a UDP datagram to the echo port comes back byte-exact, with or without a checksum") {
  rig r;
  for (bool with_checksum : {true, false}) {
    for (std::size_t n : {0, 1, 100, 1472}) {
      CAPTURE(with_checksum);
      CAPTURE(n);
      const bytes data = pattern(n, static_cast<unsigned>(n));
      const bytes req =
          ip_frame(kIpPeer, kIpA, 17, udp_datagram(kIpPeer, kIpA, 40000, 7, data, with_checksum),
                   {.tos = 0x10, .off = 0x4000});
      const auto before = r.st.stats();
      const auto id = static_cast<std::uint16_t>(before.tx_frames + 1);
      auto reply = r.exchange(req);
      REQUIRE(reply);
      // From our address, a fresh datagram (TOS 0, DF clear), always checksummed.
      CHECK(*reply == ether(kMacPeer, kMacA, 0x0800,
                            ipv4_packet(kIpA, kIpPeer, 17,
                                        udp_datagram(kIpA, kIpPeer, 7, 40000, data), {.id = id})));
      check_checksums(*reply);
      CHECK(delta(before, r.st.stats()) ==
            "rx_frames+1 rx_ipv4+1 rx_udp+1 tx_frames+1 tx_udp+1 udp_echoed+1" +
                (n != 0 ? " udp_echoed_bytes+" + std::to_string(n) : std::string()));
    }
  }
  // Bytes beyond the UDP length (in the IP payload) are not echoed.
  bytes d = udp_datagram(kIpPeer, kIpA, 40000, 7, pattern(5, 9));
  d.resize(d.size() + 6, 0x5a);
  auto trimmed = r.exchange(ip_frame(kIpPeer, kIpA, 17, d));
  REQUIRE(trimmed);
  CHECK(trimmed->size() == 14 + 20 + 8 + 5);
  check_checksums(*trimmed);
  // To the subnet's broadcast address: answered from our own address.
  auto reply = r.exchange(ip_frame(kIpPeer, kSubnetBroadcast, 17,
                                   udp_datagram(kIpPeer, kSubnetBroadcast, 40000, 7, pattern(4, 0)),
                                   {}, kBroadcast));
  REQUIRE(reply);
  CHECK(get16(*reply, 26) == (kIpA >> 16));
  CHECK(get16(*reply, 28) == (kIpA & 0xffff));
  check_checksums(*reply);
  CHECK(r.all_buffers_home());
}

TEST_CASE(
    "a UDP datagram to the sink port is counted and consumed, and trailing bytes beyond its length "
    "ignored") {
  rig r;
  const auto before = r.st.stats();
  CHECK_FALSE(r.exchange(
      ip_frame(kIpPeer, kIpA, 17, udp_datagram(kIpPeer, kIpA, 1234, 9, pattern(500, 1)))));
  CHECK_FALSE(
      r.exchange(ip_frame(kIpPeer, kIpA, 17, udp_datagram(kIpPeer, kIpA, 1234, 9, {}, false))));
  // UDP length 8 + 3 in an IP payload of 8 + 10: the datagram is the first 11 bytes (BSD
  // trims), so its checksum covers those only.
  bytes d = udp_datagram(kIpPeer, kIpA, 1234, 9, pattern(3, 2));
  d.resize(d.size() + 7, 0x5a);
  CHECK_FALSE(r.exchange(ip_frame(kIpPeer, kIpA, 17, d)));
  CHECK(delta(before, r.st.stats()) ==
        "rx_frames+3 rx_ipv4+3 rx_udp+3 udp_sunk+3 udp_sunk_bytes+503");
  CHECK(r.all_buffers_home());
}

// ---- every bad frame under its own reason --------------------------------------------------

TEST_CASE(
    "each malformed or unsupported frame is counted under its own reason and nothing else "
    "changes") {
  const bytes echo = icmp_message(8, 0, 1, 1, pattern(16, 3));
  const bytes good_udp = udp_datagram(kIpPeer, kIpA, 5000, 7, pattern(16, 4));
  const bytes good_ip = ip_frame(kIpPeer, kIpA, 1, echo);
  auto fix_ip = [](bytes f) {
    set16(f, 24, 0);
    const std::size_t hlen = (f[14] & 0x0f) * 4u;
    set16(f, 24, ref_cksum(f.data() + 14, std::min(hlen, f.size() - 14)));
    return f;
  };
  auto arp = [](unsigned op, const ether_addr& sha, ipv4_addr spa, ipv4_addr tpa) {
    return ether(kBroadcast, kMacPeer, 0x0806, arp_packet(op, sha, spa, ether_addr{}, tpa));
  };
  struct bad_case {
    const char* what;
    bytes frame;
    inet_drop why;
    const char* layers;  // the rx counters that move besides rx_frames
  };
  std::vector<bad_case> cases;
  auto add = [&](const char* what, bytes f, inet_drop why, const char* layers) {
    cases.push_back({what, std::move(f), why, layers});
  };
  add("10 bytes", bytes(10, 0), inet_drop::ether_short, "");
  add("1519 bytes", bytes(1519, 0), inet_drop::ether_oversized, "");
  add("IPv6 MLD report", ether({0x33, 0x33, 0, 0, 0, 0x16}, kMacPeer, 0x86dd, bytes(56, 0)),
      inet_drop::ether_unsupported, "");
  add("802.3 LLC (a length, not a type)", ether(kBroadcast, kMacPeer, 0x0026, bytes(38, 0)),
      inet_drop::ether_unsupported, "");
  {
    bytes f = good_ip;
    f[5] = 0x0c;
    add("IPv4 to another unicast MAC", f, inet_drop::ether_not_for_us, "");
  }
  {
    bytes f = good_ip;
    std::memcpy(f.data() + 6, kMacA.data(), 6);
    add("from our own MAC", f, inet_drop::ether_from_us, "");
    f = good_ip;
    f[6] = 0x03;
    add("from a multicast MAC", f, inet_drop::ether_bad_source, "");
  }
  {
    bytes f = arp(1, kMacPeer, kIpPeer, kIpA);
    f.resize(41);
    add("ARP, 27 bytes", f, inet_drop::arp_malformed, "rx_arp");
    f = arp(1, kMacPeer, kIpPeer, kIpA);
    set16(f, 14, 6);
    add("ARP for IEEE 802 hardware", f, inet_drop::arp_malformed, "rx_arp");
    f = arp(3, kMacPeer, kIpPeer, kIpA);
    add("ARP opcode 3 (RARP)", f, inet_drop::arp_malformed, "rx_arp");
    f = arp(1, {0x01, 0, 0x5e, 0, 0, 1}, kIpPeer, kIpA);
    add("ARP from a multicast hardware address", f, inet_drop::arp_malformed, "rx_arp");
    f = arp(1, kMacPeer, kSubnetBroadcast, kIpA);
    add("ARP from the broadcast address", f, inet_drop::arp_malformed, "rx_arp");
    f = arp(2, kMacPeer, 0, kIpA);
    add("ARP reply from 0.0.0.0", f, inet_drop::arp_malformed, "rx_arp");
    f = arp(1, kMacA, kIpPeer, kIpA);
    std::memcpy(f.data() + 6, kMacPeer.data(), 6);
    add("ARP whose sender hardware address is ours", f, inet_drop::ether_from_us, "rx_arp");
    add("ARP request for another address", arp(1, kMacPeer, kIpPeer, ipv4(10, 0, 0, 3)),
        inet_drop::arp_not_for_us, "rx_arp");
    add("ARP reply to another address",
        ether(kMacA, kMacPeer, 0x0806, arp_packet(2, kMacPeer, kIpPeer, kMacB, kIpB)),
        inet_drop::arp_not_for_us, "rx_arp");
    add("ARP reply to us from off our network",
        ether(kMacA, kMacPeer, 0x0806, arp_packet(2, kMacPeer, ipv4(192, 168, 1, 9), kMacA, kIpA)),
        inet_drop::arp_off_link, "rx_arp");
    add("ARP from someone using our address", arp(1, kMacPeer, kIpA, kIpA),
        inet_drop::arp_duplicate, "rx_arp");
  }
  {
    bytes f = good_ip;
    f.resize(14 + 19);
    add("IPv4, 19 bytes", f, inet_drop::ip_short, "rx_ipv4");
    f = good_ip;
    f[14] = 0x65;
    add("version 6 in an IPv4 frame", fix_ip(f), inet_drop::ip_version, "rx_ipv4");
    f = good_ip;
    f[14] = 0x44;
    add("IHL 4", fix_ip(f), inet_drop::ip_header_length, "rx_ipv4");
    f = good_ip;
    f[14] = 0x4f;
    add("IHL 15 beyond the frame", f, inet_drop::ip_short, "rx_ipv4");
    f = good_ip;
    f[24] ^= 0x01;
    add("header checksum", f, inet_drop::ip_checksum, "rx_ipv4");
    f = good_ip;
    set16(f, 16, f.size() - 14 + 1);
    add("total length beyond the frame", fix_ip(f), inet_drop::ip_bad_length, "rx_ipv4");
    f = good_ip;
    set16(f, 16, 19);
    add("total length below the header", fix_ip(f), inet_drop::ip_bad_length, "rx_ipv4");
    // IHL 6: a 4-byte option (NOPs) inserted, lengths and checksum right.
    f = good_ip;
    f.insert(f.begin() + 34, {1, 1, 1, 1});
    f[14] = 0x46;
    set16(f, 16, get16(f, 16) + 4);
    add("IP options", fix_ip(f), inet_drop::ip_options, "rx_ipv4");
    add("from 127.0.0.1", ip_frame(ipv4(127, 0, 0, 1), kIpA, 1, echo), inet_drop::ip_bad_source,
        "rx_ipv4");
    add("from 224.0.0.1", ip_frame(ipv4(224, 0, 0, 1), kIpA, 1, echo), inet_drop::ip_bad_source,
        "rx_ipv4");
    add("from our subnet's broadcast", ip_frame(kSubnetBroadcast, kIpA, 1, echo),
        inet_drop::ip_bad_source, "rx_ipv4");
    add("from 0.0.0.0", ip_frame(0, kIpA, 1, echo), inet_drop::ip_bad_source, "rx_ipv4");
    add("to another address", ip_frame(kIpPeer, ipv4(10, 0, 0, 3), 1, echo),
        inet_drop::ip_not_for_us, "rx_ipv4");
    add("to a multicast group",
        ip_frame(kIpPeer, ipv4(224, 0, 0, 251), 17, good_udp, {}, {0x01, 0x00, 0x5e, 0, 0, 0xfb}),
        inet_drop::ip_not_for_us, "rx_ipv4");
    add("first fragment (MF)", ip_frame(kIpPeer, kIpA, 1, echo, {.off = 0x2000}),
        inet_drop::ip_fragment, "rx_ipv4");
    add("a later fragment", ip_frame(kIpPeer, kIpA, 1, echo, {.off = 0x0010}),
        inet_drop::ip_fragment, "rx_ipv4");
    add("TCP", ip_frame(kIpPeer, kIpA, 6, bytes(20, 0)), inet_drop::ip_no_protocol, "rx_ipv4");
  }
  {
    add("ICMP, 4 bytes", ip_frame(kIpPeer, kIpA, 1, {8, 0, 0xf7, 0xff}), inet_drop::icmp_short,
        "rx_icmp rx_ipv4");
    bytes m = echo;
    m[9] ^= 0xff;
    add("ICMP checksum", ip_frame(kIpPeer, kIpA, 1, m), inet_drop::icmp_checksum,
        "rx_icmp rx_ipv4");
    add("echo reply", ip_frame(kIpPeer, kIpA, 1, icmp_message(0, 0, 1, 1, {})),
        inet_drop::icmp_unsupported, "rx_icmp rx_ipv4");
    add("timestamp request", ip_frame(kIpPeer, kIpA, 1, icmp_message(13, 0, 1, 1, bytes(12, 0))),
        inet_drop::icmp_unsupported, "rx_icmp rx_ipv4");
    add("echo to the subnet broadcast",
        ip_frame(kIpPeer, kSubnetBroadcast, 1, echo, {}, kBroadcast), inet_drop::icmp_broadcast,
        "rx_icmp rx_ipv4");
    add("echo to 255.255.255.255", ip_frame(kIpPeer, 0xffffffff, 1, echo, {}, kBroadcast),
        inet_drop::icmp_broadcast, "rx_icmp rx_ipv4");
    add("echo to us in a link broadcast", ip_frame(kIpPeer, kIpA, 1, echo, {}, kBroadcast),
        inet_drop::icmp_broadcast, "rx_icmp rx_ipv4");
  }
  {
    add("UDP, 6 bytes", ip_frame(kIpPeer, kIpA, 17, bytes(6, 0)), inet_drop::udp_short,
        "rx_ipv4 rx_udp");
    bytes u = good_udp;
    set16(u, 4, 7);
    add("UDP length 7", ip_frame(kIpPeer, kIpA, 17, u), inet_drop::udp_bad_length,
        "rx_ipv4 rx_udp");
    u = good_udp;
    set16(u, 4, u.size() + 1);
    add("UDP length beyond the datagram", ip_frame(kIpPeer, kIpA, 17, u), inet_drop::udp_bad_length,
        "rx_ipv4 rx_udp");
    u = good_udp;
    u[12] ^= 0x40;
    add("UDP checksum", ip_frame(kIpPeer, kIpA, 17, u), inet_drop::udp_checksum, "rx_ipv4 rx_udp");
    add("echo from port 0", ip_frame(kIpPeer, kIpA, 17, udp_datagram(kIpPeer, kIpA, 0, 7, {})),
        inet_drop::udp_bad_port, "rx_ipv4 rx_udp");
    add("echo from an echo port",
        ip_frame(kIpPeer, kIpA, 17, udp_datagram(kIpPeer, kIpA, 7, 7, {})), inet_drop::udp_bad_port,
        "rx_ipv4 rx_udp");
    add("DNS", ip_frame(kIpPeer, kIpA, 17, udp_datagram(kIpPeer, kIpA, 5000, 53, bytes(30, 1))),
        inet_drop::udp_no_port, "rx_ipv4 rx_udp");
  }

  rig r;
  std::vector<bool> reason_seen(inet_drop_reasons);
  for (const auto& c : cases) {
    CAPTURE(c.what);
    const auto before = r.st.stats();
    CHECK_FALSE(r.exchange(c.frame));
    std::string want = std::string("drop.") + inet_drop_name(c.why) + "+1";
    for (std::string layers = c.layers; !layers.empty();) {
      const auto sp = layers.find(' ');
      want += " " + layers.substr(0, sp) + "+1";
      layers = sp == std::string::npos ? "" : layers.substr(sp + 1);
    }
    want += " rx_frames+1";
    // delta() lists names in order; sort the expectation the same way.
    std::vector<std::string> words;
    for (std::size_t at = 0; at < want.size();) {
      const auto sp = want.find(' ', at);
      words.push_back(want.substr(at, sp - at));
      at = sp == std::string::npos ? want.size() : sp + 1;
    }
    std::sort(words.begin(), words.end());
    std::string sorted;
    for (const auto& w : words) sorted += (sorted.empty() ? "" : " ") + w;
    CHECK(delta(before, r.st.stats()) == sorted);
    CHECK(r.all_buffers_home());
    reason_seen[static_cast<std::size_t>(c.why)] = true;
  }
  // The output-side reasons, each once: the interface refusing an answer.
  const bytes ping = ip_frame(kIpPeer, kIpA, 1, echo);
  for (auto [answer, why] :
       {std::pair{ENOBUFS, inet_drop::no_buffer}, std::pair{ENETDOWN, inet_drop::if_down}}) {
    r.answer = answer;
    const auto before = r.st.stats();
    CHECK_FALSE(r.exchange(ping));
    CHECK(delta(before, r.st.stats()) ==
          std::string("drop.") + inet_drop_name(why) + "+1 rx_frames+1 rx_icmp+1 rx_ipv4+1");
    CHECK(r.all_buffers_home());
    reason_seen[static_cast<std::size_t>(why)] = true;
  }
  // The ARP-side reasons have their own tests below; every input reason is covered here.
  for (std::size_t i = 0; i < inet_drop_reasons; ++i) {
    const auto why = static_cast<inet_drop>(i);
    if (why == inet_drop::arp_unresolved || why == inet_drop::arp_hold_replaced ||
        why == inet_drop::arp_cache_full)
      continue;
    CAPTURE(inet_drop_name(why));
    CHECK(reason_seen[i]);
  }
}

TEST_CASE("a stopped stack drops its input and refuses to send") {
  rig r;
  r.st.stop();
  r.st.stop();  // idempotent
  const auto before = r.st.stats();
  CHECK_FALSE(r.exchange(ip_frame(kIpPeer, kIpA, 1, icmp_message(8, 0, 1, 1, {}))));
  CHECK(delta(before, r.st.stats()) == "drop.if_down+1 rx_frames+1");
  CHECK(send(r.st, kIpPeer, 9, {}) == ENETDOWN);
  CHECK(r.all_buffers_home());
}

// ---- ARP resolution, detached ------------------------------------------------------------------

TEST_CASE(
    "send_udp resolves first: one request, the newest packet held, sent when the reply comes") {
  rig r;
  CHECK(send(r.st, kIpPeer, 9, pattern(5, 1)) == 0);
  REQUIRE(r.sent.size() == 1);
  CHECK(r.sent[0] ==
        ether(kBroadcast, kMacA, 0x0806, arp_packet(1, kMacA, kIpA, ether_addr{}, kIpPeer)));
  // A second datagram replaces the held one (la_hold); no second request within arp_retry.
  CHECK(send(r.st, kIpPeer, 9, pattern(6, 2)) == 0);
  CHECK(r.sent.size() == 1);
  CHECK(r.st.stats().dropped(inet_drop::arp_hold_replaced) == 1);
  // The reply: learned, and the held datagram (the second, id 2) goes out to its address.
  const auto before = r.st.stats();
  r.sent.clear();
  r.feed(ether(kMacA, kMacPeer, 0x0806, arp_packet(2, kMacPeer, kIpPeer, kMacA, kIpA)));
  REQUIRE(r.sent.size() == 1);
  CHECK(r.sent[0] ==
        ether(kMacPeer, kMacA, 0x0800,
              ipv4_packet(kIpA, kIpPeer, 17, udp_datagram(kIpA, kIpPeer, 5000, 9, pattern(6, 2)),
                          {.id = 2})));
  check_checksums(r.sent[0]);
  CHECK(delta(before, r.st.stats()) ==
        "arp_replies_learned+1 rx_arp+1 rx_frames+1 tx_frames+1 tx_udp+1 udp_sent+1 "
        "udp_sent_bytes+6");
  // Resolved: the next goes out at once.
  r.sent.clear();
  CHECK(send(r.st, kIpPeer, 9, {}) == 0);
  REQUIRE(r.sent.size() == 1);
  CHECK(get16(r.sent[0], 12) == 0x0800);
  // Until arp_keep has passed: then the entry is forgotten on first sight and asked anew.
  r.advance(r.st.config().arp_keep);
  r.sent.clear();
  CHECK(send(r.st, kIpPeer, 9, {}) == 0);
  REQUIRE(r.sent.size() == 1);
  CHECK(get16(r.sent[0], 12) == 0x0806);
  CHECK(r.st.stats().arp_requests_sent == 2);
  r.st.stop();  // frees the held one
  CHECK(r.st.stats().dropped(inet_drop::if_down) == 1);
  CHECK(r.all_buffers_home());
}

TEST_CASE(
    "the ARP timer asks arp_max_tries times, then gives up; sends fail at once for arp_down") {
  inet_config cfg = config_of(kMacA, kIpA);
  cfg.arp_max_tries = 3;
  cfg.arp_retry = 100ms;
  cfg.arp_down = 5000ms;
  rig r(cfg);
  CHECK(send(r.st, kIpPeer, 9, pattern(8, 0)) == 0);
  CHECK(r.st.stats().arp_requests_sent == 1);
  r.advance(99ms);
  r.st.arp_timer();  // not due yet
  CHECK(r.st.stats().arp_requests_sent == 1);
  r.advance(1ms);
  r.st.arp_timer();
  CHECK(r.st.stats().arp_requests_sent == 2);
  r.advance(100ms);
  r.st.arp_timer();
  CHECK(r.st.stats().arp_requests_sent == 3);
  CHECK(r.st.stats().arp_resolution_failures == 0);
  CHECK(r.pool.available() == r.pool.size() - 1);  // the held one
  r.advance(100ms);
  const auto before = r.st.stats();
  r.st.arp_timer();
  CHECK(delta(before, r.st.stats()) == "arp_resolution_failures+1 drop.arp_unresolved+1");
  CHECK(r.all_buffers_home());
  for (const auto& f : r.sent)
    CHECK(f == ether(kBroadcast, kMacA, 0x0806, arp_packet(1, kMacA, kIpA, ether_addr{}, kIpPeer)));
  CHECK(r.sent.size() == 3);
  // Down: refused at once, counted.
  CHECK(send(r.st, kIpPeer, 9, {}) == EHOSTDOWN);
  CHECK(r.st.stats().dropped(inet_drop::arp_unresolved) == 2);
  // An answer from it meanwhile would resolve it; here arp_down runs out and it is asked again.
  r.advance(5000ms);
  r.sent.clear();
  CHECK(send(r.st, kIpPeer, 9, {}) == 0);
  CHECK(r.sent.size() == 1);
  CHECK(r.st.stats().arp_requests_sent == 4);
}

TEST_CASE(
    "the ARP cache: fixed size, least recently used resolved entry evicted, waiting ones never") {
  inet_config cfg = config_of(kMacA, kIpA);
  cfg.arp_cache_size = 2;
  rig r(cfg);
  auto learn = [&](ipv4_addr ip, std::uint8_t tag) {
    r.feed(ether(kBroadcast, {2, 0, 0, 0, 0, tag}, 0x0806,
                 arp_packet(1, {2, 0, 0, 0, 0, tag}, ip, ether_addr{}, kIpA)));
  };
  const ipv4_addr h1 = ipv4(10, 0, 0, 11), h2 = ipv4(10, 0, 0, 12), h3 = ipv4(10, 0, 0, 13);
  learn(h1, 11);
  r.advance(1ms);
  learn(h2, 12);
  r.advance(1ms);
  CHECK(send(r.st, h1, 9, {}) == 0);  // h1 used: h2 is now the least recently used
  r.advance(1ms);
  learn(h3, 13);  // evicts h2
  const auto asked = r.st.stats().arp_requests_sent;
  CHECK(send(r.st, h1, 9, {}) == 0);
  CHECK(send(r.st, h3, 9, {}) == 0);
  CHECK(r.st.stats().arp_requests_sent == asked);
  CHECK(send(r.st, h2, 9, {}) == 0);  // forgotten: asked (evicting h1)
  CHECK(r.st.stats().arp_requests_sent == asked + 1);
  // Two entries waiting for replies: a third address finds none free.
  CHECK(send(r.st, h1, 9, {}) == 0);  // h1 evicted above: asked, now both wait
  CHECK(send(r.st, ipv4(10, 0, 0, 14), 9, {}) == ENOBUFS);
  CHECK(r.st.stats().dropped(inet_drop::arp_cache_full) == 1);
  // A request from a fourth host is still answered, just not learned.
  r.sent.clear();
  learn(ipv4(10, 0, 0, 15), 15);
  CHECK(r.sent.size() == 1);
  r.st.stop();
  CHECK(r.all_buffers_home());
}

TEST_CASE("send_udp refuses what it cannot send, with the documented errors") {
  rig r;
  CHECK(r.st.send_udp(kIpPeer, 9, 5000, bytes(1473, 0)) == EMSGSIZE);
  CHECK(r.st.send_udp(ipv4(127, 0, 0, 1), 9, 5000, {}) == EINVAL);
  CHECK(r.st.send_udp(ipv4(224, 0, 0, 1), 9, 5000, {}) == EINVAL);
  CHECK(r.st.send_udp(0, 9, 5000, {}) == EINVAL);
  CHECK(r.st.send_udp(kIpA, 9, 5000, {}) == EINVAL);
  CHECK(r.st.send_udp(kIpPeer, 0, 5000, {}) == EINVAL);
  CHECK(r.st.send_udp(kIpPeer, 9, 0, {}) == EINVAL);
  CHECK(r.st.send_udp(ipv4(192, 168, 1, 1), 9, 5000, {}) == ENETUNREACH);
  CHECK(r.sent.empty());
  CHECK(r.st.stats().drops_total() == 0);
  // Broadcasts need no ARP.
  CHECK(r.st.send_udp(0xffffffff, 9, 5000, bytes(3, 1)) == 0);
  CHECK(r.st.send_udp(kSubnetBroadcast, 9, 5000, bytes(3, 1)) == 0);
  REQUIRE(r.sent.size() == 2);
  for (const auto& f : r.sent) {
    CHECK(std::equal(kBroadcast.begin(), kBroadcast.end(), f.begin()));
    check_checksums(f);
  }
  // The pool empty: ENOBUFS, counted.
  std::vector<pkt*> taken;
  while (pkt* m = r.pool.get()) taken.push_back(m);
  CHECK(r.st.send_udp(0xffffffff, 9, 5000, {}) == ENOBUFS);
  CHECK(r.st.stats().dropped(inet_drop::no_buffer) == 1);
  for (pkt* m : taken) r.pool.put(m);
}

TEST_CASE("a bad configuration is refused with a message") {
  pkt_pool pool(4);
  auto out = [&](pkt* m) {
    pool.put(m);
    return 0;
  };
  auto refused = [&](inet_config c, const char* says) {
    CAPTURE(says);
    CHECK_THROWS_WITH_AS(inet_stack(pool, c, out), doctest::Contains(says), std::invalid_argument);
  };
  inet_config c;
  c.addr = ipv4(224, 0, 0, 1);
  refused(c, "unicast");
  c = {};
  c.addr = ipv4(10, 0, 0, 255);
  refused(c, "broadcast");
  c = {};
  c.addr = ipv4(10, 0, 0, 0);
  refused(c, "network");
  c = {};
  c.prefix_len = 33;
  refused(c, "prefix_len");
  c = {};
  c.mac[0] = 0x01;
  refused(c, "mac");
  c = {};
  c.arp_cache_size = 0;
  refused(c, "arp_cache_size");
  c = {};
  c.sink_port = 7;
  refused(c, "differ");
  c = {};
  c.arp_max_tries = 0;
  refused(c, "arp_max_tries");
  c = {};
  c.arp_retry = 0ms;
  refused(c, "arp_retry");
  CHECK_THROWS_AS(inet_stack(pool, inet_config{}, nullptr), std::invalid_argument);
  // A /31 has no broadcast address: both of its addresses are hosts (RFC 3021).
  c = {};
  c.addr = ipv4(10, 0, 0, 1);
  c.prefix_len = 31;
  CHECK_NOTHROW(inet_stack(pool, c, out));
}

// ---- attached to simulated NICs --------------------------------------------------------------

namespace {

// Two NICs back to back on the in-memory wire (A on CPU 0, B on CPU 1), one pool; stacks are
// added by the tests. The destructor takes the NICs down before the stacks go.
struct pair_rig {
  kcont::runtime rt{kcont_test::cpus(2)};
  pkt_pool pool{4096};
  sim_nic a{rt, nic_named("simA", 0), pool};
  sim_nic b{rt, nic_named("simB", 1), pool};
  memory_wire w;
  std::optional<inet_stack> sa, sb;

  pair_rig() { w.connect(a, &b); }
  ~pair_rig() {
    a.down();
    b.down();
  }
  static nic_config nic_named(const char* name, unsigned cpu) {
    nic_config c;
    c.name = name;
    c.intr_cpu = cpu;
    return c;
  }
  // Both NICs down; then every buffer must be back in the pool.
  void down_and_count_buffers() {
    a.down();
    b.down();
    CHECK(pool.available() == pool.size());
  }
  // Sends a frame from B's side (a test-side peer without a stack), waiting out a full queue.
  void send_from_b(const bytes& f) {
    for (;;) {
      pkt* m = pool.get();
      if (m != nullptr) {
        std::memcpy(m->data, f.data(), f.size());
        m->len = static_cast<std::uint32_t>(f.size());
        if (b.output(m) == 0) return;
        pool.put(m);
      }
      std::this_thread::sleep_for(50us);
    }
  }
};

}  // namespace

TEST_CASE("two stacks on a memory wire: ARP resolution both ways, the held datagram delivered") {
  pair_rig p;
  inet_config ca = config_of(kMacA, kIpA), cb = config_of(kMacB, kIpB);
  p.sa.emplace(p.a, p.pool, ca);
  p.sb.emplace(p.b, p.pool, cb);
  p.a.up();
  p.b.up();
  CHECK(send(*p.sa, kIpB, 9, pattern(100, 1)) == 0);
  REQUIRE(kcont_test::wait_until([&] { return p.sb->stats().udp_sunk == 1; }));
  auto sa = p.sa->stats(), sb = p.sb->stats();
  CHECK(sa.arp_requests_sent == 1);
  CHECK(sb.arp_requests_answered == 1);
  CHECK(sa.arp_replies_learned == 1);
  CHECK(sa.udp_sent == 1);
  CHECK(sb.udp_sunk_bytes == 100);
  // The other way: B learned A from A's request (targeted at B), so no request is needed.
  CHECK(send(*p.sb, kIpA, 9, pattern(200, 2)) == 0);
  REQUIRE(kcont_test::wait_until([&] { return p.sa->stats().udp_sunk == 1; }));
  sa = p.sa->stats();
  sb = p.sb->stats();
  CHECK(sb.arp_requests_sent == 0);
  CHECK(sb.udp_sent == 1);
  CHECK(sa.udp_sunk_bytes == 200);
  // And a UDP echo across: A asks B's echo port from port 5000, which B's... A has no socket
  // on 5000: the echo comes back and A counts it as udp_no_port.
  CHECK(send(*p.sa, kIpB, 7, pattern(64, 3)) == 0);
  REQUIRE(
      kcont_test::wait_until([&] { return p.sa->stats().dropped(inet_drop::udp_no_port) == 1; }));
  CHECK(p.sb->stats().udp_echoed == 1);
  CHECK(p.sa->stats().drops_total() == 1);
  CHECK(p.sb->stats().drops_total() == 0);
  // The NIC still counts every non-simulator frame it handed over as foreign.
  CHECK(p.b.stats().rx_foreign == p.sb->stats().rx_frames);
  p.down_and_count_buffers();
}

namespace {

// A test-side peer on NIC B: sends requests to A's stack and checks every answer byte for byte.
struct echo_peer {
  pair_rig& p;
  std::uint64_t n;
  std::vector<std::atomic<std::uint8_t>> seen;
  std::atomic<std::uint64_t> answers{0}, bad{0}, duplicates{0};
  std::mutex mu;
  std::string first_bad;  // [mu]

  echo_peer(pair_rig& rig, std::uint64_t count) : p(rig), n(count), seen(count) {}
  void fail(const std::string& why) {
    bad.fetch_add(1);
    std::lock_guard<std::mutex> lk(mu);
    if (first_bad.empty()) first_bad = why;
  }
  void mark(std::uint64_t k) {
    if (k >= n) return fail("answer to a request never sent: " + std::to_string(k));
    if (seen[k].exchange(1) != 0) duplicates.fetch_add(1);
    answers.fetch_add(1);
  }
  // Every request answered exactly once, and every answer as expected.
  void check(bool done, const char* what) {
    {
      std::lock_guard<std::mutex> lk(mu);
      CHECK_MESSAGE(bad.load() == 0, first_bad);
    }
    CHECK(done);
    torture::books books(what);
    books.add_object(0, n, answers.load(), 0, "sent", "lost");
    CHECK_MESSAGE(books.balanced(), books.summary());
    CHECK(duplicates.load() == 0);
  }
  // Sends requests 0..n-1 built by `make`, at most `window` unanswered at a time.
  template <class Make>
  bool run(Make make, unsigned window) {
    for (std::uint64_t k = 0; k < n; ++k) {
      if (!kcont_test::wait_until([&] { return k - answers.load() < window || bad.load() != 0; }))
        return false;
      if (bad.load() != 0) return false;
      p.send_from_b(make(k));
    }
    return kcont_test::wait_until([&] { return answers.load() + bad.load() >= n; }, 60s);
  }
};

}  // namespace

TEST_CASE("1 000 ICMP echoes over the memory wire: every one answered, byte-exact, none lost") {
  pair_rig p;
  p.sa.emplace(p.a, p.pool, config_of(kMacA, kIpA));
  constexpr std::uint64_t kEchoes = 1000;
  echo_peer peer(p, kEchoes);
  auto data_of = [](std::uint64_t k) { return pattern(k % 64, static_cast<unsigned>(k)); };
  p.b.set_input([&](pkt* m) {
    const bytes f(m->data, m->data + m->len);
    p.pool.put(m);
    if (f.size() < 42) return peer.fail("short frame");
    const std::uint16_t seq = get16(f, 40);
    const auto want = ether(kMacB, kMacA, 0x0800,
                            ipv4_packet(kIpA, kIpB, 1, icmp_message(0, 0, 0x77, seq, data_of(seq)),
                                        {.id = static_cast<std::uint16_t>(seq + 1)}));
    if (f != want) return peer.fail("echo reply " + std::to_string(seq) + " differs");
    if (ref_cksum(f.data() + 14, 20) != 0 || ref_cksum(f.data() + 34, f.size() - 34) != 0)
      return peer.fail("checksum");
    peer.mark(seq);
  });
  p.a.up();
  p.b.up();
  const bool done = peer.run(
      [&](std::uint64_t k) {
        return ether(
            kMacA, kMacB, 0x0800,
            ipv4_packet(kIpB, kIpA, 1,
                        icmp_message(8, 0, 0x77, static_cast<std::uint16_t>(k), data_of(k))));
      },
      32);
  peer.check(done, "ICMP echo");
  // A's count moves once the wire took the reply, which may be just after B saw it.
  kcont_test::wait_until([&] { return p.sa->stats().icmp_echoes_answered >= kEchoes; }, 5s);
  const auto s = p.sa->stats();
  CHECK(s.icmp_echoes_answered == kEchoes);
  CHECK(s.drops_total() == 0);
  p.down_and_count_buffers();
}

TEST_CASE("10^5 UDP datagrams echoed byte-exact over the memory wire, each exactly once") {
  pair_rig p;
  p.sa.emplace(p.a, p.pool, config_of(kMacA, kIpA));
  constexpr std::uint64_t kDatagrams = 100'000;
  echo_peer peer(p, kDatagrams);
  // The datagram's number in its first 4 bytes, then a pattern; lengths 4..1472.
  auto data_of = [](std::uint64_t k) {
    bytes d = pattern(k % 997 == 0 ? 1472 : 4 + k % 300, static_cast<unsigned>(k));
    for (int i = 0; i < 4; ++i) d[i] = static_cast<std::uint8_t>(k >> (24 - 8 * i));
    return d;
  };
  std::atomic<std::uint64_t> bytes_back{0};
  p.b.set_input([&](pkt* m) {
    const bytes f(m->data, m->data + m->len);
    p.pool.put(m);
    if (f.size() < 46) return peer.fail("short frame");
    const std::uint64_t k = (std::uint64_t{get16(f, 42)} << 16) | get16(f, 44);
    // A's replies are its only datagrams, in arrival order: the k-th carries id k + 1.
    const auto want =
        ether(kMacB, kMacA, 0x0800,
              ipv4_packet(kIpA, kIpB, 17, udp_datagram(kIpA, kIpB, 7, 40000, data_of(k)),
                          {.id = static_cast<std::uint16_t>(k + 1)}));
    if (f != want) return peer.fail("echo " + std::to_string(k) + " differs");
    bytes_back.fetch_add(f.size() - 42);
    peer.mark(k);
  });
  p.a.up();
  p.b.up();
  const bool done = peer.run(
      [&](std::uint64_t k) {
        return ether(kMacA, kMacB, 0x0800,
                     ipv4_packet(kIpB, kIpA, 17, udp_datagram(kIpB, kIpA, 40000, 7, data_of(k))));
      },
      64);
  peer.check(done, "UDP echo");
  kcont_test::wait_until([&] { return p.sa->stats().udp_echoed_bytes >= bytes_back.load(); }, 5s);
  const auto s = p.sa->stats();
  CHECK(s.udp_echoed == kDatagrams);
  CHECK(s.udp_echoed_bytes == bytes_back.load());
  CHECK(s.rx_udp == kDatagrams);
  CHECK(s.drops_total() == 0);
  p.down_and_count_buffers();
}

TEST_CASE("on a NIC the retry callout asks arp_max_tries times, arp_retry apart, then gives up") {
  pair_rig p;
  inet_config cfg = config_of(kMacA, kIpA);
  cfg.arp_max_tries = 3;
  cfg.arp_retry = 20ms;
  p.sa.emplace(p.a, p.pool, cfg);
  std::atomic<int> requests{0};
  p.b.set_input([&](pkt* m) {  // nobody answers: B only counts A's requests
    if (m->len >= 42 && m->data[12] == 0x08 && m->data[13] == 0x06) requests.fetch_add(1);
    p.pool.put(m);
  });
  p.a.up();
  p.b.up();
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(send(*p.sa, kIpPeer, 9, pattern(10, 0)) == 0);
  REQUIRE(kcont_test::wait_until([&] { return p.sa->stats().arp_resolution_failures == 1; }));
  const auto took = std::chrono::steady_clock::now() - t0;
  const auto s = p.sa->stats();
  CHECK(s.arp_requests_sent == 3);
  CHECK(s.dropped(inet_drop::arp_unresolved) == 1);
  CHECK(took >= 3 * cfg.arp_retry);  // never early: three requests, each given arp_retry
  REQUIRE(kcont_test::wait_until([&] { return requests.load() == 3; }));
  std::this_thread::sleep_for(3 * cfg.arp_retry);
  CHECK(requests.load() == 3);  // and then no more
  CHECK(send(*p.sa, kIpPeer, 9, {}) == EHOSTDOWN);
  p.down_and_count_buffers();
}

TEST_CASE("stopping a stack with an ARP retry pending is clean") {
  pair_rig p;
  inet_config cfg = config_of(kMacA, kIpA);
  cfg.arp_retry = 30ms;
  p.sa.emplace(p.a, p.pool, cfg);
  p.a.up();
  p.b.up();
  CHECK(send(*p.sa, kIpPeer, 9, pattern(10, 0)) == 0);
  CHECK(p.sa->stats().arp_requests_sent == 1);
  p.sa->stop();  // the callout is pending: halted, the held packet freed
  CHECK(p.sa->stats().dropped(inet_drop::if_down) == 1);
  std::this_thread::sleep_for(4 * cfg.arp_retry);
  CHECK(p.sa->stats().arp_requests_sent == 1);  // the timer never ran again
  CHECK(send(*p.sa, kIpPeer, 9, {}) == ENETDOWN);

  // Many times, with the callout due every tick and a second sender racing stop(): whatever
  // is running when stop() comes, it returns with no timer left and every buffer home (the
  // destructor does the rest with the NIC down; TSan and ASan watch).
  cfg.arp_retry = 1ms;
  cfg.arp_max_tries = 255;
  for (int round = 0; round < 100; ++round) {
    p.a.down();
    p.sa.reset();
    p.sa.emplace(p.a, p.pool, cfg);
    p.a.up();
    std::atomic<bool> go{true};
    std::thread racer([&] {
      for (std::uint8_t host = 20; go.load(); host = host == 60 ? 20 : host + 1)
        send(*p.sa, ipv4(10, 0, 0, host), 9, {});
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(round % 5));
    if (round % 4 == 2) {  // the timer alone (busy: 41 addresses due every tick)
      go = false;
      racer.join();
    }
    if (round % 2 == 0) {
      p.sa->stop();
      // Nothing runs for the stack once stop() has returned and no send_udp is in flight: a
      // timer handler that was running (asking, giving up) has finished, and none comes after.
      std::optional<inet_stats> at_stop;
      if (round % 4 == 2) at_stop = p.sa->stats();
      go = false;
      if (racer.joinable()) racer.join();
      if (!at_stop) at_stop = p.sa->stats();
      std::this_thread::sleep_for(3ms);
      CHECK(delta(*at_stop, p.sa->stats()) == "");
      continue;
    }
    go = false;
    racer.join();
  }
  p.a.down();
  p.sa.reset();  // destructor: stop, halt, free
  p.b.down();
  CHECK(p.pool.available() == p.pool.size());
}

TEST_CASE(
    "the NIC's input hook: set before up(), foreign frames counted either way, freed without one") {
  kcont::runtime rt(kcont_test::cpus(1));
  pkt_pool pool(1024);
  sim_nic nic(rt, {}, pool);
  memory_wire w;
  w.connect(nic);
  nic.up();
  CHECK_THROWS_AS(nic.set_input([](pkt*) {}), std::logic_error);
  CHECK_THROWS_AS(inet_stack(nic, pool, inet_config{}), std::logic_error);
  const bytes f = ip_frame(kIpPeer, kIpA, 1, icmp_message(8, 0, 1, 1, {}));
  CHECK(nic.hw_receive(f.data(), f.size()) == sim_nic::rx_result::accepted);
  REQUIRE(kcont_test::wait_until([&] { return nic.stats().rx_foreign == 1; }));
  nic.down();
  CHECK(pool.available() == pool.size());  // freed, as before the hook existed
  std::atomic<int> taken{0};
  nic.set_input([&](pkt* m) {
    ++taken;
    pool.put(m);
  });
  nic.up();
  CHECK(nic.hw_receive(f.data(), f.size()) == sim_nic::rx_result::accepted);
  REQUIRE(kcont_test::wait_until([&] { return taken.load() == 1; }));
  CHECK(nic.stats().rx_foreign == 2);
  nic.down();
  CHECK(pool.available() == pool.size());
}

// The misuse case runs in a child process (this binary again, only that case): it must die of
// SIGABRT with the message.
TEST_CASE("misuse child: an attached stack destroyed while its NIC is up") {
  if (std::getenv("KCONT_INET_MISUSE_CHILD") == nullptr) return;  // only in the child
  // Die of the abort itself: doctest's handler would report it (not async-signal-safe, which
  // TSan reports, and with halt_on_error the child would exit instead).
  std::signal(SIGABRT, SIG_DFL);
  kcont::runtime rt(kcont_test::cpus(1));
  pkt_pool pool(1024);
  sim_nic nic(rt, {}, pool);
  memory_wire w;
  w.connect(nic);
  auto* st = new inet_stack(nic, pool, inet_config{});
  nic.up();
  delete st;
  std::fprintf(stderr, "test_inet: the misuse was not caught\n");
}

TEST_CASE("destroying an attached stack while its NIC is up is a misuse: a message and an abort") {
  int pipefd[2];
  REQUIRE(::pipe(pipefd) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&fa, pipefd[0]);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);  // its report
  std::string filter = "--test-case=misuse child: *";
  char arg0[] = "test_inet";
  std::vector<char*> argv{arg0, filter.data(), nullptr};
  std::vector<std::string> env_store{"KCONT_INET_MISUSE_CHILD=1"};
  for (char** e = environ; *e != nullptr; ++e) env_store.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t child = 0;
  const int rc = posix_spawn(&child, "/proc/self/exe", &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(pipefd[1]);
  REQUIRE(rc == 0);
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;)
    err.append(buf, static_cast<std::size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  CAPTURE(err);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
  CHECK(err.find("kcont: inet_stack misuse: inet_stack destroyed while its NIC is up") !=
        std::string::npos);
}
