// Input's entry and the Ethernet demux (BSD's ether_input): length, EtherType, destination
// and source checks, then ARP or IPv4. And the way out: a finished frame to the interface.
#include <cerrno>
#include <cstring>

#include "inet_impl.h"

namespace kcont::net {

void inet_stack::input(pkt* m) {
  impl& d = *d_;
  d.st.rx_frames.add();
  if (d.stopped.load(std::memory_order_acquire)) {
    d.drop(m, inet_drop::if_down);
    return;
  }
  d.ether_input(m);
}

void inet_stack::impl::ether_input(pkt* m) {
  if (m->len < wire_format::ether_header) return drop(m, inet_drop::ether_short);
  if (m->len > frame_max) return drop(m, inet_drop::ether_oversized);
  const std::uint8_t* eh = m->data;
  // The protocol first: a frame of a protocol we do not speak (the host's IPv6 chatter) is
  // unsupported whatever its addresses.
  const auto type = get_be<std::uint16_t>(eh + 12);
  if (type != ETHERTYPE_IP && type != ETHERTYPE_ARP) return drop(m, inet_drop::ether_unsupported);
  // Our address, broadcast, or any multicast group (the NIC filters none: an IPv4 multicast
  // datagram is then refused by IPv4, not here).
  const bool to_us = std::memcmp(eh, cfg.mac.data(), 6) == 0;
  if (!to_us && !ether_is_group(eh)) return drop(m, inet_drop::ether_not_for_us);
  // NetBSD's ether_input drops what comes from its own address: our broadcasts loop back on
  // a simplex wire, and answering them would talk to ourselves.
  if (std::memcmp(eh + 6, cfg.mac.data(), 6) == 0) return drop(m, inet_drop::ether_from_us);
  if (ether_is_group(eh + 6)) return drop(m, inet_drop::ether_bad_source);
  if (type == ETHERTYPE_ARP) {
    st.rx_arp.add();
    return arp_input(m);
  }
  st.rx_ipv4.add();
  ip_input(m, !to_us);
}

void inet_stack::impl::ether_header(pkt* m, const std::uint8_t* dst, std::uint16_t type) const {
  std::memmove(m->data, dst, 6);  // dst may be the frame's own source field
  std::memcpy(m->data + 6, cfg.mac.data(), 6);
  put_be<std::uint16_t>(m->data + 12, type);
}

int inet_stack::impl::transmit(pkt* m, inet_counter& proto) {
  m->next = nullptr;
  const int e = out(m);
  if (e == 0) {
    st.tx_frames.add();
    proto.add();
    return 0;
  }
  drop(m, e == ENOBUFS ? inet_drop::no_buffer : inet_drop::if_down);
  return e;
}

}  // namespace kcont::net
