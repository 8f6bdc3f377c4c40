// Fuzzes the IPv4 stack's input path (<kcont/inet.h>): each input becomes one received frame
// for a detached inet_stack (no runtime, no thread), whose output checks that every frame it
// sends is well formed and frees it. Built as a libFuzzer target with clang (KCONT_FUZZ) and,
// with any compiler, with the standalone driver (standalone_main.cpp) as the CTest test
// test_fuzz_inet.
//
// Input: byte 0 is a control byte, the rest the frame or edits of one.
//   bits 0-2  0, 6, 7: the rest is the frame as received. 1..5: the rest edits a valid frame
//             to the stack (1 ARP request for it, 2 ARP reply to it, 3 ICMP echo request,
//             4 UDP to the echo port, 5 UDP to the sink port): a length change (a signed
//             byte, if bit 3 is set), then (offset, value) pairs, each setting one byte.
//   bit 4     recompute the IPv4 header checksum after the edits
//   bit 5     recompute the ICMP or UDP checksum after the edits
//   bit 6     send_udp to the peer first, so an ARP entry waits with a held packet
// Random bytes thus reach past the checksums, and the seed corpus (fuzz/corpus_inet) starts
// from real frames.
//
// Checks (a failure prints what and aborts):
//   - every frame sent: 14..frame_max bytes, from our MAC; ARP: 42 bytes, our addresses, a
//     reply (or our own request, bit 6); IPv4: version 4, IHL 5, a valid header checksum,
//     total length = frame length - 14, from our address with our TTL; ICMP: an echo reply
//     with a valid checksum; UDP: a valid non-zero checksum, a sane length, from the echo
//     port (or the held datagram, bit 6);
//   - every frame has exactly one fate (answered, learned, consumed or one drop reason);
//   - no buffer is lost (the pool is full again once the stack has stopped);
//   - nothing is read past the frame's length: under AddressSanitizer the rest of the buffer
//     is poisoned while the stack has it (a reply is never longer than its request, so the
//     stack has no business there); in any build the same input goes to two stacks whose
//     buffers hold different bytes after the frame, and what they do must be identical.
#include <kcont/inet.h>
#include <kcont/pkt.h>

#if defined(KCONT_SANITIZE_ADDRESS) || defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON_AFTER(m) \
  ASAN_POISON_MEMORY_REGION((m)->data + (m)->len, sizeof((m)->data) - (m)->len)
#define UNPOISON(m) ASAN_UNPOISON_MEMORY_REGION((m)->data, sizeof((m)->data))
#else
#define POISON_AFTER(m) ((void)(m))
#define UNPOISON(m) ((void)(m))
#endif

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

using kcont::net::ipv4;
using kcont::net::pkt;
using bytes = std::vector<std::uint8_t>;

constexpr kcont::net::ether_addr kOurMac{0x02, 0x6b, 0x63, 0x00, 0x00, 0x01};
constexpr kcont::net::ether_addr kPeerMac{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
constexpr std::uint32_t kOurIp = ipv4(10, 0, 0, 1);
constexpr std::uint32_t kPeerIp = ipv4(10, 0, 0, 9);
constexpr std::uint16_t kHeldSrcPort = 5000;
constexpr std::uint16_t kHeldDstPort = 9;
constexpr std::size_t kHeldPayload = 12;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_inet: %s\n", what);
  std::abort();
}

std::uint16_t get16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
std::uint32_t get32(const std::uint8_t* p) {
  return (std::uint32_t{get16(p)} << 16) | get16(p + 2);
}
void set16(std::uint8_t* p, unsigned v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

std::uint16_t cksum(const std::uint8_t* p, std::size_t n, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i < n; i += 2)
    sum += (std::uint32_t{p[i]} << 8) | (i + 1 < n ? p[i + 1] : 0);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum & 0xffff);
}
std::uint32_t pseudo(const std::uint8_t* ip, std::size_t l4_len) {
  return get16(ip + 12) + get16(ip + 14) + get16(ip + 16) + get16(ip + 18) + ip[9] +
         static_cast<std::uint32_t>(l4_len);
}

// ---- templates ---------------------------------------------------------------------------

void put(bytes& b, std::initializer_list<unsigned> v) {
  for (unsigned x : v) b.push_back(static_cast<std::uint8_t>(x));
}
void put16(bytes& b, unsigned v) {
  put(b, {v >> 8, v & 0xff});
}
void put32(bytes& b, std::uint32_t v) {
  put16(b, v >> 16);
  put16(b, v & 0xffff);
}
void put_mac(bytes& b, const kcont::net::ether_addr& m) {
  b.insert(b.end(), m.begin(), m.end());
}

bytes ether_to_us(unsigned type) {
  bytes b;
  put_mac(b, kOurMac);
  put_mac(b, kPeerMac);
  put16(b, type);
  return b;
}

bytes arp_template(unsigned op) {
  bytes b = ether_to_us(0x0806);
  if (op == 1) std::fill(b.begin(), b.begin() + 6, 0xff);
  put16(b, 1);
  put16(b, 0x0800);
  put(b, {6, 4});
  put16(b, op);
  put_mac(b, kPeerMac);
  put32(b, kPeerIp);
  if (op == 1)
    put(b, {0, 0, 0, 0, 0, 0});
  else
    put_mac(b, kOurMac);
  put32(b, kOurIp);
  return b;
}

bytes ip_template(std::uint8_t proto, const bytes& l4) {
  bytes b = ether_to_us(0x0800);
  put(b, {0x45, 0});
  put16(b, 20 + l4.size());
  put16(b, 0x1234);
  put16(b, 0);
  put(b, {64, proto, 0, 0});
  put32(b, kPeerIp);
  put32(b, kOurIp);
  set16(b.data() + 24, cksum(b.data() + 14, 20));
  b.insert(b.end(), l4.begin(), l4.end());
  return b;
}

bytes udp_template(std::uint16_t dport) {
  bytes u;
  put16(u, 40000);
  put16(u, dport);
  put16(u, 8 + 16);
  put16(u, 0);
  for (unsigned i = 0; i < 16; ++i) u.push_back(static_cast<std::uint8_t>(i * 11));
  bytes b = ip_template(17, u);
  std::uint8_t* ip = b.data() + 14;
  set16(ip + 26, cksum(ip + 20, u.size(), pseudo(ip, u.size())));
  return b;
}

bytes template_frame(unsigned kind) {
  switch (kind) {
    case 1:
      return arp_template(1);
    case 2:
      return arp_template(2);
    case 3: {
      bytes icmp;
      put(icmp, {8, 0, 0, 0, 0x12, 0x34, 0, 1});
      for (unsigned i = 0; i < 24; ++i) icmp.push_back(static_cast<std::uint8_t>(i));
      set16(icmp.data() + 2, cksum(icmp.data(), icmp.size()));
      return ip_template(1, icmp);
    }
    case 4:
      return udp_template(7);
    default:
      return udp_template(9);
  }
}

// Recomputes the checksums the control byte asks for, where the frame is long enough.
void fix_checksums(bytes& f, bool ip_sum, bool l4_sum) {
  if (f.size() < 34 || get16(f.data() + 12) != 0x0800) return;
  std::uint8_t* ip = f.data() + 14;
  const std::size_t hlen = (ip[0] & 0x0fu) * 4u;
  if (hlen < 20 || 14 + hlen > f.size()) return;
  if (ip_sum) {
    set16(ip + 10, 0);
    set16(ip + 10, cksum(ip, hlen));
  }
  const std::size_t total = get16(ip + 2);
  if (!l4_sum || total < hlen || 14 + total > f.size()) return;
  std::uint8_t* l4 = ip + hlen;
  const std::size_t l4_len = total - hlen;
  if (ip[9] == 1 && l4_len >= 4) {
    set16(l4 + 2, 0);
    set16(l4 + 2, cksum(l4, l4_len));
  } else if (ip[9] == 17 && l4_len >= 8) {
    const std::size_t ulen = std::min<std::size_t>(get16(l4 + 4), l4_len);
    set16(l4 + 6, 0);
    set16(l4 + 6, cksum(l4, ulen, pseudo(ip, ulen)));
  }
}

bytes frame_of(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return {};
  const std::uint8_t control = data[0];
  const std::uint8_t* rest = data + 1;
  std::size_t n = size - 1;
  const unsigned kind = control & 7;
  bytes f;
  if (kind == 0 || kind > 5) {
    f.assign(rest, rest + std::min(n, kcont::net::pkt_capacity));
  } else {
    f = template_frame(kind);
    if ((control & 8) && n > 0) {
      const int change = static_cast<std::int8_t>(rest[0]);
      f.resize(static_cast<std::size_t>(std::max(0, static_cast<int>(f.size()) + change)), 0);
      ++rest;
      --n;
    }
    for (std::size_t i = 0; i + 1 < n && !f.empty(); i += 2) f[rest[i] % f.size()] = rest[i + 1];
  }
  fix_checksums(f, control & 16, control & 32);
  return f;
}

// ---- the output's checks -----------------------------------------------------------------

struct sent_log {
  std::vector<bytes> frames;
  bool held_expected = false;  // bit 6: our ARP request and the held datagram are allowed
};

void check_sent(const pkt* m, const sent_log& log) {
  const std::uint8_t* f = m->data;
  const std::size_t len = m->len;
  if (len < 14 || len > kcont::net::frame_max) fail("sent a frame of a bad length");
  if (std::memcmp(f + 6, kOurMac.data(), 6) != 0) fail("sent a frame not from our MAC");
  const std::uint16_t type = get16(f + 12);
  if (type == 0x0806) {
    if (len != 42) fail("sent an ARP frame that is not 42 bytes");
    const std::uint8_t* a = f + 14;
    if (get16(a) != 1 || get16(a + 2) != 0x0800 || a[4] != 6 || a[5] != 4)
      fail("sent an ARP packet that is not Ethernet/IPv4");
    if (std::memcmp(a + 8, kOurMac.data(), 6) != 0 || get32(a + 14) != kOurIp)
      fail("sent ARP with a sender that is not us");
    const std::uint16_t op = get16(a + 6);
    if (op == 2 && std::memcmp(f, a + 18, 6) != 0) fail("ARP reply not sent to its target");
    if (op != 2 && !(op == 1 && log.held_expected && get32(a + 24) == kPeerIp))
      fail("sent an ARP packet that is neither a reply nor our own request");
    return;
  }
  if (type != 0x0800) fail("sent a frame that is neither IPv4 nor ARP");
  if (len < 34) fail("sent an IPv4 frame without a header");
  const std::uint8_t* ip = f + 14;
  if (ip[0] != 0x45) fail("sent IPv4 with options or a bad version");
  if (cksum(ip, 20) != 0) fail("sent IPv4 with a bad header checksum");
  const std::size_t total = get16(ip + 2);
  if (14 + total != len) fail("sent IPv4 whose total length is not the frame's");
  if (get32(ip + 12) != kOurIp) fail("sent IPv4 not from our address");
  if (ip[8] != 64) fail("sent IPv4 without our TTL");
  if ((get16(ip + 6) & 0x3fff) != 0) fail("sent a fragment");
  const std::uint8_t* l4 = ip + 20;
  const std::size_t l4_len = total - 20;
  if (ip[9] == 1) {
    if (l4_len < 8 || l4[0] != 0) fail("sent ICMP that is not an echo reply");
    if (cksum(l4, l4_len) != 0) fail("sent ICMP with a bad checksum");
    return;
  }
  if (ip[9] != 17) fail("sent IPv4 that is neither ICMP nor UDP");
  if (l4_len < 8 || get16(l4 + 4) != l4_len) fail("sent UDP with a bad length");
  if (get16(l4 + 6) == 0 || cksum(l4, l4_len, pseudo(ip, l4_len)) != 0)
    fail("sent UDP with a bad or missing checksum");
  const bool echo = get16(l4) == 7;
  const bool held = log.held_expected && get16(l4) == kHeldSrcPort &&
                    get16(l4 + 2) == kHeldDstPort && l4_len == 8 + kHeldPayload;
  if (!echo && !held) fail("sent UDP that is neither an echo nor the held datagram");
}

// One detached stack with its own pool; what follows the frame in the buffer is `fill`.
struct rig {
  kcont::net::pkt_pool pool{8};
  sent_log log;
  std::uint8_t fill;
  kcont::net::inet_stack st;

  explicit rig(std::uint8_t after)
      : fill(after),
        st(
            pool, kcont::net::inet_config{},
            [this](pkt* m) {
              UNPOISON(m);
              check_sent(m, log);
              log.frames.emplace_back(m->data, m->data + m->len);
              pool.put(m);
              return 0;
            },
            [] { return std::int64_t{1'000'000'000}; }) {}

  void feed(const bytes& f) {
    pkt* m = pool.get();
    if (m == nullptr) fail("the pool ran dry: a buffer was lost");
    UNPOISON(m);
    std::memset(m->data, fill, sizeof m->data);
    if (!f.empty()) std::memcpy(m->data, f.data(), f.size());
    m->len = static_cast<std::uint32_t>(f.size());
    POISON_AFTER(m);
    st.input(m);
  }
  // Every buffer back in the pool, unpoisoned; false if one is missing.
  bool all_home() {
    std::vector<pkt*> all;
    while (pkt* m = pool.get()) all.push_back(m);
    for (pkt* m : all) {
      UNPOISON(m);
      pool.put(m);
    }
    return all.size() == pool.size();
  }
};

// Every way a frame can end: one of these moves by exactly one per frame.
std::uint64_t fates(const kcont::net::inet_stats& s) {
  return s.arp_requests_answered + s.arp_replies_learned + s.icmp_echoes_answered + s.udp_echoed +
         s.udp_sunk + s.drops_total();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const bytes frame = frame_of(data, size);
  const bool hold_first = size > 0 && (data[0] & 64) != 0;
  rig zeros(0x00), ones(0xff);
  for (rig* r : {&zeros, &ones}) {
    r->log.held_expected = hold_first;
    if (hold_first) {
      const std::uint8_t payload[kHeldPayload] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
      if (r->st.send_udp(kPeerIp, kHeldDstPort, kHeldSrcPort, payload) != 0)
        fail("send_udp to the peer failed");
    }
    const auto before = r->st.stats();
    r->feed(frame);
    const auto after = r->st.stats();
    if (after.rx_frames != before.rx_frames + 1) fail("rx_frames did not count the frame");
    if (fates(after) != fates(before) + 1) fail("a frame had no fate, or more than one");
    r->st.stop();  // frees a packet still held
    if (!r->all_home()) fail("a buffer was lost");
  }
  // The bytes after the frame differ between the two: reading them would show.
  if (zeros.log.frames != ones.log.frames) fail("the stacks sent different frames");
  const auto a = zeros.st.stats(), b = ones.st.stats();
  if (a.drops != b.drops || fates(a) != fates(b) || a.tx_frames != b.tx_frames)
    fail("the stacks counted differently: something read past the frame");
  return 0;
}
