// The Internet checksum (RFC 1071): the 16-bit one's-complement of the one's-complement sum of
// the data taken as big-endian 16-bit words, an odd last byte padded with zero. Sums are kept
// in 32 bits and folded as they go, so any length and any number of pieces add up correctly
// (a piece must start on an even offset of the whole, which every header here does).
#include "inet_impl.h"

namespace kcont::net {
namespace {

std::uint32_t fold(std::uint32_t sum) {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  return sum;
}

}  // namespace

std::uint32_t in_cksum_add(std::uint32_t sum, const std::uint8_t* p, std::size_t len) {
  // 32-bit words into a 64-bit accumulator: no carry is lost for any frame a pkt holds.
  std::uint64_t acc = sum;
  std::size_t i = 0;
  for (; i + 4 <= len; i += 4) acc += get_be<std::uint32_t>(p + i);
  for (; i + 2 <= len; i += 2) acc += get_be<std::uint16_t>(p + i);
  if (i < len) acc += std::uint32_t{p[i]} << 8;
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffffffffu) + (acc >> 32);
  return fold(static_cast<std::uint32_t>(acc));
}

std::uint16_t in_cksum_finish(std::uint32_t sum) {
  return static_cast<std::uint16_t>(~fold(sum) & 0xffff);
}

std::uint32_t in_pseudo(ipv4_addr src, ipv4_addr dst, std::uint8_t proto, std::uint16_t len) {
  const std::uint64_t acc =
      std::uint64_t{src >> 16} + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
  return fold(static_cast<std::uint32_t>((acc & 0xffffffffu) + (acc >> 32)));
}

}  // namespace kcont::net
