// UDP (RFC 768): input (length and checksum checks as BSD's udp_input, then the echo port,
// answered in the same buffer, and the discard port, counted) and send_udp, which builds a
// datagram from our address and hands it to ARP for its link address.
#include <cerrno>
#include <cstring>

#include "inet_impl.h"

namespace kcont::net {
void inet_stack::impl::udp_input(pkt* m) {
  std::uint8_t* ip = m->data + wire_format::ether_header;
  const std::uint16_t total = get_be<std::uint16_t>(ip + 2);  // ip_input: fits in m->len
  std::uint8_t* uh = ip + wire_format::ip_header;
  const std::size_t ip_payload = total - wire_format::ip_header;
  if (ip_payload < wire_format::udp_header) return drop(m, inet_drop::udp_short);
  const std::uint16_t ulen = get_be<std::uint16_t>(uh + 4);
  if (ulen < wire_format::udp_header || ulen > ip_payload)
    return drop(m, inet_drop::udp_bad_length);
  m->len = static_cast<std::uint32_t>(wire_format::ether_header + wire_format::ip_header +
                                      ulen);  // trailing bytes go
  const auto src = get_be<ipv4_addr>(ip + 12);
  const auto dst = get_be<ipv4_addr>(ip + 16);
  if (!wire_format::udp_cksum_ok(src, dst, uh, ulen)) return drop(m, inet_drop::udp_checksum);
  const std::uint16_t sport = get_be<std::uint16_t>(uh);
  const std::uint16_t dport = get_be<std::uint16_t>(uh + 2);
  const std::size_t data_len = ulen - wire_format::udp_header;

  if (cfg.sink_port != 0 && dport == cfg.sink_port) {
    st.udp_sunk.add();
    st.udp_sunk_bytes.add(data_len);
    pool.put(m);
    return;
  }
  if (cfg.echo_port == 0 || dport != cfg.echo_port) return drop(m, inet_drop::udp_no_port);
  // inetd's echo refuses these: no reply can go to port 0, and two echo services answering
  // each other would loop for ever.
  if (sport == 0 || sport == cfg.echo_port) return drop(m, inet_drop::udp_bad_port);
  put_be<std::uint16_t>(uh, dport);
  put_be<std::uint16_t>(uh + 2, sport);
  put_be<std::uint16_t>(uh + 6, 0);
  // A new datagram from our address, as the echo service's socket would send it (TOS 0, DF
  // clear), even when the request went to a broadcast address.
  ip_header(ip, 0, static_cast<std::uint16_t>(wire_format::ip_header + ulen), 0, IPPROTO_UDP,
            cfg.addr, src);
  put_be<std::uint16_t>(uh + 6, wire_format::udp_cksum(cfg.addr, src, uh, ulen));
  ether_header(m, m->data + 6, ETHERTYPE_IP);
  if (transmit(m, st.tx_udp) == 0) {
    st.udp_echoed.add();
    st.udp_echoed_bytes.add(data_len);
  }
}

int inet_stack::impl::udp_output(pkt* m) {
  const std::uint8_t* uh = m->data + wire_format::ether_header + wire_format::ip_header;
  const std::uint64_t data_len = get_be<std::uint16_t>(uh + 4) - wire_format::udp_header;
  const int e = transmit(m, st.tx_udp);
  if (e == 0) {
    st.udp_sent.add();
    st.udp_sent_bytes.add(data_len);
  }
  return e;
}

int inet_stack::send_udp(ipv4_addr dst, std::uint16_t dst_port, std::uint16_t src_port,
                         std::span<const std::uint8_t> payload) {
  impl& d = *d_;
  if (payload.size() > kUdpMaxPayload) return EMSGSIZE;
  const unsigned net = dst >> 24;
  const bool limited_broadcast = dst == 0xffffffffu;
  if (net == 0 || net == 127 || (dst >= ipv4(224, 0, 0, 0) && !limited_broadcast) ||
      d.is_ours(dst) || dst_port == 0 || src_port == 0)
    return EINVAL;
  const bool to_broadcast = d.is_broadcast(dst);
  if (!to_broadcast && !d.on_link(dst)) return ENETUNREACH;
  if (d.stopped.load(std::memory_order_acquire)) return ENETDOWN;
  pkt* m = d.pool.get();
  if (m == nullptr) {
    d.st.drops[static_cast<std::size_t>(inet_drop::no_buffer)].add();
    return ENOBUFS;
  }
  const auto ulen = static_cast<std::uint16_t>(wire_format::udp_header + payload.size());
  std::uint8_t* ip = m->data + wire_format::ether_header;
  std::uint8_t* uh = ip + wire_format::ip_header;
  put_be<std::uint16_t>(uh, src_port);
  put_be<std::uint16_t>(uh + 2, dst_port);
  put_be<std::uint16_t>(uh + 4, ulen);
  put_be<std::uint16_t>(uh + 6, 0);
  if (!payload.empty()) std::memcpy(uh + wire_format::udp_header, payload.data(), payload.size());
  put_be<std::uint16_t>(uh + 6, wire_format::udp_cksum(d.cfg.addr, dst, uh, ulen));
  d.ip_header(ip, 0, static_cast<std::uint16_t>(wire_format::ip_header + ulen), 0, IPPROTO_UDP,
              d.cfg.addr, dst);
  m->len = static_cast<std::uint32_t>(wire_format::ether_header + wire_format::ip_header + ulen);
  if (to_broadcast) {
    d.ether_header(m, kEtherBroadcast.data(), ETHERTYPE_IP);
    return d.udp_output(m);
  }
  return d.arp_resolve_and_send(m, dst);
}

}  // namespace kcont::net
