// The frames the simulator sends: an Ethernet header with a local experimental EtherType,
// then a small header that lets the receiver check every frame (flow, sequence number,
// length, checksum) and measure its one-way time.
#pragma once

#include <kcont/pkt.h>

#include <cstddef>
#include <cstdint>

namespace kcont::net {

inline constexpr std::uint16_t sim_ethertype = 0x88b5;  // IEEE 802 local experimental 1
inline constexpr std::uint32_t sim_magic = 0x6b636f6e;  // "kcon"
inline constexpr std::size_t sim_header_len = 14 + 28;  // Ethernet + sim header
inline constexpr std::size_t sim_frame_min = 64;        // the minimum Ethernet frame (no FCS)
inline constexpr unsigned max_flows = 64;

struct frame_info {
  std::uint16_t flow = 0;
  std::uint64_t seq = 0;
  std::int64_t sent_ns = 0;  // when the producer built it
};

// Fills p with a frame of `len` bytes (clamped to sim_frame_min..frame_max) for (flow, seq).
void build_frame(pkt& p, std::size_t len, std::uint16_t flow, std::uint64_t seq,
                 std::int64_t sent_ns, const std::uint8_t src_mac[6]);

enum class frame_check {
  ok,         // a simulator frame, intact
  runt,       // shorter than an Ethernet header
  oversized,  // longer than frame_max
  foreign,    // a well-formed Ethernet frame that is not ours (host traffic on a tap)
  malformed,  // our EtherType, but bad magic, length, flow or checksum
};
frame_check check_frame(const std::uint8_t* data, std::size_t len, frame_info* out);
const char* frame_check_name(frame_check c);

}  // namespace kcont::net
