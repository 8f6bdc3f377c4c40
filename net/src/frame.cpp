#include <kcont/frame.h>
#include <kcont/wire_format.h>

#include <cstring>
#include <iterator>

namespace kcont::net {
namespace {

using wire_format::get_be;
using wire_format::put_be;

// Sim header layout after the Ethernet header (big-endian on the wire, as a real protocol):
//   0 magic u32 | 4 flow u16 | 6 length u16 (whole frame) | 8 seq u64 | 16 sent_ns i64 |
//  24 checksum u32 (FNV-1a over everything after the sim header).

std::uint32_t fnv1a(const std::uint8_t* p, std::size_t n) {
  std::uint32_t h = 2166136261u;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619u;
  return h;
}

}  // namespace

void build_frame(pkt& p, std::size_t len, std::uint16_t flow, std::uint64_t seq,
                 std::int64_t sent_ns, const std::uint8_t src_mac[6]) {
  if (len < sim_frame_min) len = sim_frame_min;
  if (len > frame_max) len = frame_max;
  std::uint8_t* d = p.data;
  std::memset(d, 0xff, 6);  // broadcast: a tap delivers it to the host stack's capture
  std::memcpy(d + 6, src_mac, 6);
  put_be<std::uint16_t>(d + 12, sim_ethertype);
  std::uint8_t* h = d + 14;
  put_be<std::uint32_t>(h, sim_magic);
  put_be<std::uint16_t>(h + 4, flow);
  put_be<std::uint16_t>(h + 6, static_cast<std::uint16_t>(len));
  put_be<std::uint64_t>(h + 8, seq);
  put_be<std::int64_t>(h + 16, sent_ns);
  std::uint8_t* body = d + sim_header_len;
  const std::size_t body_len = len - sim_header_len;
  for (std::size_t i = 0; i < body_len; ++i) body[i] = static_cast<std::uint8_t>(seq + i);
  put_be<std::uint32_t>(h + 24, fnv1a(body, body_len));
  p.len = static_cast<std::uint32_t>(len);
}

frame_check check_frame(const std::uint8_t* d, std::size_t len, frame_info* out) {
  if (len < 14) return frame_check::runt;
  if (len > frame_max) return frame_check::oversized;
  if (get_be<std::uint16_t>(d + 12) != sim_ethertype) return frame_check::foreign;
  if (len < sim_header_len) return frame_check::malformed;
  const std::uint8_t* h = d + 14;
  if (get_be<std::uint32_t>(h) != sim_magic) return frame_check::malformed;
  const auto flow = get_be<std::uint16_t>(h + 4);
  if (get_be<std::uint16_t>(h + 6) != len || flow >= max_flows) return frame_check::malformed;
  if (get_be<std::uint32_t>(h + 24) != fnv1a(d + sim_header_len, len - sim_header_len))
    return frame_check::malformed;
  if (out != nullptr) {
    out->flow = flow;
    out->seq = get_be<std::uint64_t>(h + 8);
    out->sent_ns = get_be<std::int64_t>(h + 16);
  }
  return frame_check::ok;
}

const char* frame_check_name(frame_check c) {
  static constexpr const char* kNames[] = {"ok", "runt", "oversized", "foreign", "malformed"};
  const auto i = static_cast<std::size_t>(c);
  return i < std::size(kNames) ? kNames[i] : "?";
}

}  // namespace kcont::net
