// A minimal IPv4 host stack on the simulated NIC's receive path (issue 17, first slice):
// Ethernet demux, ARP (RFC 826) with a small fixed cache, IPv4 (RFC 791) without options or
// fragments, ICMP echo (RFC 792), UDP (RFC 768) echo and discard ports, and send_udp, which
// resolves the destination through ARP first and holds one packet per address meanwhile.
//
// Frames are answered in place, as BSD's icmp_reflect does: the received buffer becomes the
// reply (addresses swapped, checksums recomputed) and goes to the NIC's output path; nothing is
// allocated or copied on the way. Every frame the stack does not answer or consume is counted
// under one drop reason (inet_drop) and returned to the pool; none is read past its length.
//
// Two ways to run one:
//   attached  inet_stack(nic, pool, cfg): the NIC hands it every non-simulator frame on its
//             RX input continuation (wq_softnet, the interrupt CPU; sim_nic::set_input), replies
//             go out through sim_nic::output, and ARP retries run on a callout on the NIC's
//             interrupt CPU. Build it while the NIC is down; take the NIC down before it is
//             destroyed (checked: a misuse abort).
//   detached  inet_stack(pool, cfg, output, clock): no runtime, no thread, no callout. input()
//             is called by hand, replies go to `output`, and the owner calls arp_timer() for
//             ARP retries. The fuzzer and the byte-exact tests use it.
//
// Ownership: input() takes the packet. output (the NIC's or the detached one) takes it when it
// returns 0; on an error the stack frees it to the pool and counts the drop (no_buffer for
// ENOBUFS, if_down for anything else).
//
// kcont-nicsim --serve runs one on a tap in a network namespace of its own, answering stock
// ping and a UDP echo load there (net/tools/serve.cpp), next to a floor responder without kcont.
//
// Not done yet: a ping sender of the stack's own, ICMP errors (port and protocol unreachable
// are counted, never sent), routing beyond the directly connected prefix, IP options and
// reassembly (counted and dropped).
//
// Locks used to protect the fields of inet_config, inet_stats and inet_stack:
//   [V] a value: it belongs to whoever holds it, and is not shared
//   [I] immutable after construction
#pragma once

#include <kcont/pkt.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

namespace kcont::net {

class sim_nic;

using ipv4_addr = std::uint32_t;  // host byte order: 10.0.0.1 is 0x0a000001
using ether_addr = std::array<std::uint8_t, 6>;

constexpr ipv4_addr ipv4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return (ipv4_addr{a} << 24) | (ipv4_addr{b} << 16) | (ipv4_addr{c} << 8) | ipv4_addr{d};
}

struct inet_config {
  ether_addr mac{0x02, 0x6b, 0x63, 0x00, 0x00, 0x01};  // [V] unicast (locally administered)
  ipv4_addr addr = ipv4(10, 0, 0, 1);                  // [V] a unicast address
  unsigned prefix_len = 24;                            // [V] 0..32; the directly connected network
  std::uint16_t echo_port = 7;                         // [V] UDP echo (RFC 862); 0: none
  std::uint16_t sink_port = 9;                // [V] UDP discard (RFC 863), counted; 0: none
  unsigned arp_cache_size = 64;               // [V] 1..1024 entries, allocated once
  std::uint8_t ttl = 64;                      // [V] of every datagram the stack sends (1..255)
  unsigned arp_max_tries = 5;                 // [V] requests before giving up (BSD's arp_maxtries)
  std::chrono::milliseconds arp_retry{1000};  // [V] between two requests for one address
  std::chrono::milliseconds arp_keep{1200000};  // [V] a resolved entry's life (BSD's arpt_keep)
  // [V] after giving up, sends to that address fail at once (EHOSTDOWN) this long (arpt_down)
  std::chrono::milliseconds arp_down{20000};
};

// Why a frame (or a packet the stack built) was dropped. One reason per packet.
enum class inet_drop {
  ether_short,        // shorter than an Ethernet header (only through a detached input)
  ether_oversized,    // longer than frame_max (likewise: the NIC drops these itself)
  ether_unsupported,  // neither IPv4 nor ARP: IPv6 (the host's ND and MLD on a tap), LLC, ...
  ether_not_for_us,   // destination neither our MAC, broadcast nor multicast
  ether_from_us,      // source is our MAC: our own frame came back (a looped wire)
  ether_bad_source,   // source is a group (multicast or broadcast) address
  arp_malformed,      // not Ethernet/IPv4 ARP, bad opcode, or a group sender address
  arp_not_for_us,     // target is not our address (an existing entry is still refreshed)
  arp_duplicate,      // the sender claims our address
  arp_off_link,       // a reply to us from a sender off our network (not learned)
  ip_short,           // shorter than its IPv4 header
  ip_version,         // version is not 4
  ip_header_length,   // IHL below 5
  ip_checksum,        // header checksum wrong
  ip_bad_length,      // total length below the header or beyond the frame
  ip_options,         // IHL above 5: options are not supported
  ip_bad_source,      // source is 0/8, loopback, multicast, class E/broadcast, or our subnet's
                      // broadcast address: nothing may be sent back to it
  ip_not_for_us,      // destination neither our address nor a broadcast address
  ip_fragment,        // MF set or a fragment offset: no reassembly
  ip_no_protocol,     // neither ICMP nor UDP (an ICMP protocol unreachable is not sent)
  icmp_short,         // shorter than the 8-byte ICMP header
  icmp_checksum,      // ICMP checksum wrong
  icmp_unsupported,   // any type but echo request
  icmp_broadcast,     // echo request to a broadcast address (ignored, as BSD and Linux do)
  udp_short,          // shorter than the 8-byte UDP header
  udp_bad_length,     // UDP length below 8 or beyond the IP payload
  udp_checksum,       // a non-zero checksum that is wrong (pseudo-header included)
  udp_bad_port,       // to the echo port from port 0 or from an echo port (no echo loops)
  udp_no_port,        // to any other port (an ICMP port unreachable is not sent)
  no_buffer,          // the packet pool was empty, or the send queue full (ENOBUFS)
  if_down,            // the interface refused it (ENETDOWN) or the stack had stopped
  arp_unresolved,     // its destination did not answer ARP (held and given up, or down)
  arp_hold_replaced,  // held for ARP and replaced by a newer packet to the same address
  arp_cache_full,     // no ARP entry to hold it: every one waits for a reply
};
inline constexpr std::size_t inet_drop_reasons =
    static_cast<std::size_t>(inet_drop::arp_cache_full) + 1;
const char* inet_drop_name(inet_drop why);

struct inet_stats {
  // input: every frame, and those that passed the layer below (Ethernet for ARP and IPv4,
  // IPv4 for ICMP and UDP)
  std::uint64_t rx_frames = 0, rx_arp = 0, rx_ipv4 = 0, rx_icmp = 0, rx_udp = 0;  // [V]
  // output: frames the interface accepted
  std::uint64_t tx_frames = 0, tx_arp = 0, tx_icmp = 0, tx_udp = 0;  // [V]
  std::uint64_t arp_requests_answered = 0;                           // [V]
  std::uint64_t arp_replies_learned = 0;      // [V] replies to us that made or updated an entry
  std::uint64_t arp_requests_sent = 0;        // [V] accepted by the interface
  std::uint64_t arp_resolution_failures = 0;  // [V] addresses given up after arp_max_tries
  std::uint64_t icmp_echoes_answered = 0;     // [V]
  std::uint64_t udp_echoed = 0, udp_echoed_bytes = 0;    // [V] payload bytes
  std::uint64_t udp_sunk = 0, udp_sunk_bytes = 0;        // [V]
  std::uint64_t udp_sent = 0, udp_sent_bytes = 0;        // [V] send_udp datagrams that went out
  std::array<std::uint64_t, inet_drop_reasons> drops{};  // [V] by reason

  std::uint64_t dropped(inet_drop why) const { return drops[static_cast<std::size_t>(why)]; }
  std::uint64_t drops_total() const;
};

class inet_stack {
 public:
  using output_fn = std::function<int(pkt*)>;      // 0: took the packet; else an errno value
  using clock_fn = std::function<std::int64_t()>;  // nanoseconds, never going back

  // Attached to `nic` (down; std::logic_error otherwise), with `pool` the pool its RX buffers
  // come from. Throws std::invalid_argument for a bad config.
  inet_stack(sim_nic& nic, pkt_pool& pool, inet_config cfg);
  // Detached. `clock` defaults to the steady clock.
  inet_stack(pkt_pool& pool, inet_config cfg, output_fn output, clock_fn clock = {});
  ~inet_stack();  // stop(); an attached stack's NIC must be down (checked)
  inet_stack(const inet_stack&) = delete;
  inet_stack& operator=(const inet_stack&) = delete;

  // One received frame, taken with ownership. Any thread; an attached stack's NIC calls it.
  void input(pkt* m);
  // A UDP datagram from our address, resolved through ARP first. 0: sent, or held until the
  // destination answers ARP (at most one held per address: a newer one replaces it); else
  // EMSGSIZE (payload above 1472 bytes), EINVAL (destination 0/8, loopback, multicast or our
  // own address), ENETUNREACH (off our network: no routes yet), EHOSTDOWN (ARP gave up on it
  // less than arp_down ago), ENOBUFS (no packet buffer, or no ARP entry free), ENETDOWN
  // (stopped, or the interface is down). Broadcast destinations need no ARP. Any thread.
  int send_udp(ipv4_addr dst, std::uint16_t dst_port, std::uint16_t src_port,
               std::span<const std::uint8_t> payload);
  // ARP's timer: asks again for addresses still unresolved and gives up on those asked
  // arp_max_tries times. An attached stack runs it on its callout; a detached one's owner
  // calls it (one call at a time).
  void arp_timer();
  // Stops the ARP timer (waiting for a running one) and frees held packets (counted if_down);
  // from then on input is dropped (if_down) and send_udp fails with ENETDOWN. Idempotent.
  void stop();

  inet_stats stats() const;  // any thread
  const inet_config& config() const;

  struct impl;

 private:
  std::unique_ptr<impl> d_;  // [I]
};

}  // namespace kcont::net
