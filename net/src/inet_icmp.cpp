// ICMP (RFC 792) input: an echo request becomes its echo reply in the same buffer, as BSD's
// icmp_input and icmp_reflect do (type changed, addresses swapped, a fresh IPv4 header with
// the request's TOS and DF, the ICMP checksum computed anew). Nothing else is answered.
#include "inet_impl.h"

namespace kcont::net {

void inet_stack::impl::icmp_input(pkt* m, bool to_group) {
  std::uint8_t* ip = m->data + wire_format::ether_header;
  const std::uint16_t total = get_be<std::uint16_t>(ip + 2);  // ip_input: fits in m->len
  std::uint8_t* icp = ip + wire_format::ip_header;
  const std::size_t icmp_len = total - wire_format::ip_header;
  if (icmp_len < wire_format::icmp_header) return drop(m, inet_drop::icmp_short);
  if (wire_format::in_cksum(icp, icmp_len) != 0) return drop(m, inet_drop::icmp_checksum);
  if (icp[0] != ICMP_ECHO) return drop(m, inet_drop::icmp_unsupported);
  // Smurf amplification: BSD (icmpbmcastecho 0) and Linux (icmp_echo_ignore_broadcasts 1)
  // do not answer an echo sent to a broadcast or multicast address.
  if (to_group) return drop(m, inet_drop::icmp_broadcast);

  icp[0] = ICMP_ECHOREPLY;
  put_be<std::uint16_t>(icp + 2, 0);
  put_be<std::uint16_t>(icp + 2, wire_format::in_cksum(icp, icmp_len));
  const auto src = get_be<ipv4_addr>(ip + 12);
  ip_header(ip, ip[1], total, get_be<std::uint16_t>(ip + 6) & IP_DF, IPPROTO_ICMP, cfg.addr, src);
  ether_header(m, m->data + 6, ETHERTYPE_IP);
  if (transmit(m, st.tx_icmp) == 0) st.icmp_echoes_answered.add();
}

}  // namespace kcont::net
