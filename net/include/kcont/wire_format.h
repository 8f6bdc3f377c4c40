// The wire formats net/ reads and writes by hand, in one place: big-endian loads and stores at
// any alignment, the header sizes and protocol values of Ethernet, ARP, IPv4, ICMP and UDP, and
// the Internet checksum (RFC 1071) with the UDP pseudo-header (RFC 768). The IPv4 stack
// (<kcont/inet.h>), the simulator's own frames and the tools that build or answer frames by
// hand (kcont-nicsim's floor responder and in-memory peer) all use it.
//
// Header-only and standard C++ only, on purpose: the floor responder includes it without
// linking any kcont library (it is what a tap answers at without kcont).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kcont::net::wire_format {

// Network byte order loads and stores of any integer type.
template <typename T>
inline void put_be(std::uint8_t* p, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i)
    p[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(v) >> (8 * (sizeof(T) - 1 - i)));
}

template <typename T>
inline T get_be(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v = (v << 8) | p[i];
  return static_cast<T>(v);
}

// Header sizes (offsets inside each header are counted from its start).
inline constexpr std::size_t ether_header = 14;
inline constexpr std::size_t arp_packet = 28;  // Ethernet/IPv4 ARP
inline constexpr std::size_t ip_header = 20;   // without options
inline constexpr std::size_t icmp_header = 8;
inline constexpr std::size_t udp_header = 8;

// Protocol values.
inline constexpr std::uint16_t ethertype_ip = 0x0800;
inline constexpr std::uint16_t ethertype_arp = 0x0806;
inline constexpr std::uint16_t arp_hrd_ether = 1;
inline constexpr std::uint16_t arp_op_request = 1;
inline constexpr std::uint16_t arp_op_reply = 2;
inline constexpr std::uint8_t proto_icmp = 1;
inline constexpr std::uint8_t proto_udp = 17;
inline constexpr std::uint16_t ip_df = 0x4000;
inline constexpr std::uint16_t ip_mf = 0x2000;
inline constexpr std::uint16_t ip_offmask = 0x1fff;
inline constexpr std::uint8_t icmp_echoreply = 0;
inline constexpr std::uint8_t icmp_echo = 8;

namespace detail {
inline std::uint32_t cksum_fold(std::uint32_t sum) {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  return sum;
}
}  // namespace detail

// The one's-complement sum of `len` bytes, taken as big-endian 16-bit words (an odd last byte
// padded with zero), added to `sum`; folded to 16 bits, not complemented. Sums of pieces add
// up to the sum of the whole as long as each piece starts on an even offset of it.
inline std::uint32_t in_cksum_add(std::uint32_t sum, const std::uint8_t* p, std::size_t len) {
  // 32-bit words into a 64-bit accumulator: no carry is lost for any frame a pkt holds.
  std::uint64_t acc = sum;
  std::size_t i = 0;
  for (; i + 4 <= len; i += 4) acc += get_be<std::uint32_t>(p + i);
  for (; i + 2 <= len; i += 2) acc += get_be<std::uint16_t>(p + i);
  if (i < len) acc += std::uint32_t{p[i]} << 8;
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffffffffu) + (acc >> 32);
  return detail::cksum_fold(static_cast<std::uint32_t>(acc));
}

// The checksum of a sum: its one's complement.
inline std::uint16_t in_cksum_finish(std::uint32_t sum) {
  return static_cast<std::uint16_t>(~detail::cksum_fold(sum) & 0xffff);
}

inline std::uint16_t in_cksum(const std::uint8_t* p, std::size_t len) {
  return in_cksum_finish(in_cksum_add(0, p, len));
}

// The sum of the UDP/TCP pseudo-header (RFC 768): addresses (IPv4, host byte order), protocol
// and length.
inline std::uint32_t in_pseudo(std::uint32_t src, std::uint32_t dst, std::uint8_t proto,
                               std::uint16_t len) {
  const std::uint64_t acc =
      std::uint64_t{src >> 16} + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
  return detail::cksum_fold(static_cast<std::uint32_t>((acc & 0xffffffffu) + (acc >> 32)));
}

// The UDP checksum of the datagram at `uh` (`len` bytes, its checksum field zeroed) from src to
// dst; 0 is sent as 0xffff, since 0 means "none" (RFC 768).
inline std::uint16_t udp_cksum(std::uint32_t src, std::uint32_t dst, const std::uint8_t* uh,
                               std::uint16_t len) {
  const std::uint16_t c =
      in_cksum_finish(in_cksum_add(in_pseudo(src, dst, proto_udp, len), uh, len));
  return c == 0 ? 0xffff : c;
}

// Whether a UDP datagram's checksum (its field non-zero) checks out; a zero field means none.
inline bool udp_cksum_ok(std::uint32_t src, std::uint32_t dst, const std::uint8_t* uh,
                         std::uint16_t len) {
  return get_be<std::uint16_t>(uh + 6) == 0 ||
         in_cksum_finish(in_cksum_add(in_pseudo(src, dst, proto_udp, len), uh, len)) == 0;
}

}  // namespace kcont::net::wire_format
