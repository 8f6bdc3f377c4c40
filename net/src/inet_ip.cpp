// IPv4 (RFC 791) as a host without options or reassembly: input's checks in BSD's ip_input
// order (version, header length, checksum, total length, then options, addresses, fragments),
// and the header of every datagram the stack sends.
#include "inet_impl.h"

namespace kcont::net {
namespace {

// Nothing may be sent back to these (RFC 1122 3.2.1.3; BSD's icmp_reflect refuses them).
bool bad_source(ipv4_addr a, ipv4_addr subnet_broadcast) {
  const unsigned net = a >> 24;
  return net == 0 || net == 127 || a >= ipv4(224, 0, 0, 0) ||
         (subnet_broadcast != 0 && a == subnet_broadcast);
}

}  // namespace

void inet_stack::impl::ip_input(pkt* m, bool link_broadcast) {
  std::uint8_t* ip = m->data + wire_format::ether_header;
  const std::size_t avail = m->len - wire_format::ether_header;
  if (avail < wire_format::ip_header) return drop(m, inet_drop::ip_short);
  if ((ip[0] >> 4) != 4) return drop(m, inet_drop::ip_version);
  const std::size_t hlen = (ip[0] & 0x0fu) * 4u;
  if (hlen < wire_format::ip_header) return drop(m, inet_drop::ip_header_length);
  if (avail < hlen) return drop(m, inet_drop::ip_short);
  if (wire_format::in_cksum(ip, hlen) != 0) return drop(m, inet_drop::ip_checksum);
  const std::size_t total = get_be<std::uint16_t>(ip + 2);
  if (total < hlen || total > avail) return drop(m, inet_drop::ip_bad_length);
  m->len = static_cast<std::uint32_t>(wire_format::ether_header + total);  // Ethernet padding goes
  // Options are checked after the checksum and length, as ip_dooptions runs after them.
  if (hlen != wire_format::ip_header) return drop(m, inet_drop::ip_options);
  const auto src = get_be<ipv4_addr>(ip + 12);
  const auto dst = get_be<ipv4_addr>(ip + 16);
  if (bad_source(src, broadcast)) return drop(m, inet_drop::ip_bad_source);
  const bool to_broadcast = is_broadcast(dst);
  if (!is_ours(dst) && !to_broadcast) return drop(m, inet_drop::ip_not_for_us);
  if ((get_be<std::uint16_t>(ip + 6) & (IP_MF | IP_OFFMASK)) != 0)
    return drop(m, inet_drop::ip_fragment);
  switch (ip[9]) {
    case IPPROTO_ICMP:
      st.rx_icmp.add();
      return icmp_input(m, to_broadcast || link_broadcast);
    case IPPROTO_UDP:
      st.rx_udp.add();
      return udp_input(m);
    default:
      return drop(m, inet_drop::ip_no_protocol);
  }
}

void inet_stack::impl::ip_header(std::uint8_t* ip, std::uint8_t tos, std::uint16_t total_len,
                                 std::uint16_t off, std::uint8_t proto, ipv4_addr src,
                                 ipv4_addr dst) {
  ip[0] = 0x45;  // version 4, 5 words
  ip[1] = tos;
  put_be<std::uint16_t>(ip + 2, total_len);
  // A fresh identification per datagram, as BSD's ip_output gives one (ip_newid).
  put_be<std::uint16_t>(ip + 4, ip_id.fetch_add(1, std::memory_order_relaxed));
  put_be<std::uint16_t>(ip + 6, off);
  ip[8] = cfg.ttl;
  ip[9] = proto;
  put_be<std::uint16_t>(ip + 10, 0);
  put_be<ipv4_addr>(ip + 12, src);
  put_be<ipv4_addr>(ip + 16, dst);
  put_be<std::uint16_t>(ip + 10, wire_format::in_cksum(ip, wire_format::ip_header));
}

}  // namespace kcont::net
