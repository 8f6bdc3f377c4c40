// Network byte order (big-endian) loads and stores at any alignment, for the frame formats
// net/ reads and writes (the simulator's own header, Ethernet, ARP, IPv4, ICMP, UDP).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kcont::net {

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

}  // namespace kcont::net
