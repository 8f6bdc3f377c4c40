// inet_stack's state (<kcont/inet.h>), shared by the files of the stack, one job each:
//   inet_stack.cpp  the face: construction (attached or detached), stop, stats, drop names
//   inet_ether.cpp  input's entry and the Ethernet demux; output of a finished frame
//   inet_arp.cpp    ARP input and replies, the cache, resolution with a held packet, the timer
//   inet_ip.cpp     IPv4 input checks and the header of every datagram the stack sends
//   inet_icmp.cpp   ICMP input: echo request -> echo reply, in place
//   inet_udp.cpp    UDP input (echo, sink) and send_udp
// Header sizes, byte order and the Internet checksum come from <kcont/wire_format.h>.
//
// Frames are read through their length only: each layer checks that what it reads lies
// within m->len (capped at frame_max by the Ethernet layer) before reading it.
//
// Locks used to protect the fields of inet_stack::impl and arp_entry:
//   [I] immutable after construction
//   [a] atomic (the counters are relaxed shared_counters, read by stats() from any thread)
//   [A] arp_mu
//   [T] the ARP timer: arp_timer() only (the callout runs one handler at a time; a detached
//       stack's owner calls it one call at a time)
//   [K] the callout layer's (the callout's own state)
// Lock order: arp_mu -> the callout's wheel lock (send_udp and the timer arm the callout while
// holding arp_mu). Nothing else is called under arp_mu: packets leave after it is dropped.
#pragma once

#include <kcont/callout.h>
#include <kcont/inet.h>
#include <kcont/internal/counters.h>
#include <kcont/wire_format.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

namespace kcont::net {

// The kernels' names for the protocol values, so the code reads side by side with BSD's
// netinet/. The system headers that define them as macros (<net/ethernet.h>, <net/if_arp.h>,
// <netinet/in.h>, <netinet/ip.h>, <netinet/ip_icmp.h>) must not meet this header.
#if defined(ETHERTYPE_IP) || defined(ARPOP_REQUEST) || defined(IPPROTO_UDP) || defined(IP_DF) || \
    defined(ICMP_ECHO)
#error "inet_impl.h: a system network header defines the protocol names declared here"
#endif

using wire_format::get_be;
using wire_format::put_be;

// Aliases of <kcont/wire_format.h>'s values, which the floor responder and the in-memory peer
// use too.
inline constexpr std::size_t kUdpMaxPayload =
    1500 - wire_format::ip_header - wire_format::udp_header;  // MTU 1500
inline constexpr std::uint16_t ETHERTYPE_IP = wire_format::ethertype_ip;
inline constexpr std::uint16_t ETHERTYPE_ARP = wire_format::ethertype_arp;
inline constexpr std::uint16_t ARPHRD_ETHER = wire_format::arp_hrd_ether;
inline constexpr std::uint16_t ARPOP_REQUEST = wire_format::arp_op_request;
inline constexpr std::uint16_t ARPOP_REPLY = wire_format::arp_op_reply;
inline constexpr std::uint8_t IPPROTO_ICMP = wire_format::proto_icmp;
inline constexpr std::uint8_t IPPROTO_UDP = wire_format::proto_udp;
inline constexpr std::uint16_t IP_DF = wire_format::ip_df;
inline constexpr std::uint16_t IP_MF = wire_format::ip_mf;
inline constexpr std::uint16_t IP_OFFMASK = wire_format::ip_offmask;
inline constexpr std::uint8_t ICMP_ECHOREPLY = wire_format::icmp_echoreply;
inline constexpr std::uint8_t ICMP_ECHO = wire_format::icmp_echo;
inline constexpr ether_addr kEtherBroadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

inline bool ether_is_group(const std::uint8_t* mac) {
  return (mac[0] & 1) != 0;
}

// ARP cache entry states (BSD's llentry flags, reduced to what this stack needs).
inline constexpr std::uint8_t LLE_FREE = 0;
inline constexpr std::uint8_t LLE_INCOMPLETE = 1;  // asked, no answer yet; may hold a packet
inline constexpr std::uint8_t LLE_VALID = 2;       // resolved until `expire`
inline constexpr std::uint8_t LLE_DOWN = 3;        // gave up: sends fail until `expire`

struct arp_entry {
  ipv4_addr ip = 0;               // [A]
  ether_addr mac{};               // [A] LLE_VALID
  std::uint8_t state = LLE_FREE;  // [A]
  std::uint8_t asked = 0;         // [A] LLE_INCOMPLETE: requests sent so far
  // [A] LLE_VALID, LLE_DOWN: end of life; LLE_INCOMPLETE: when to ask again or give up
  std::int64_t expire = 0;
  std::int64_t used = 0;  // [A] last resolved or used: the least recently used is evicted
  pkt* hold = nullptr;    // [A] LLE_INCOMPLETE: the one packet waiting (la_hold)
};

using inet_counter = kcont::internal::shared_counter;

struct inet_stack::impl {
  impl(pkt_pool& pool, const inet_config& cfg, output_fn out, clock_fn clock, sim_nic* nic);
  ~impl();

  pkt_pool& pool;             // [I]
  const inet_config cfg;      // [I]
  const output_fn out;        // [I]
  const clock_fn clock;       // [I]
  sim_nic* const nic;         // [I] attached: the NIC; detached: nullptr
  const ipv4_addr netmask;    // [I]
  const ipv4_addr broadcast;  // [I] our network's directed broadcast (none below /31: 0)

  std::atomic<bool> stopped{false};     // [a] set once by stop(), under arp_mu
  std::atomic<std::uint16_t> ip_id{1};  // [a] IPv4 identification of the next datagram

  // ARP
  std::mutex arp_mu;
  std::unique_ptr<arp_entry[]> arp_cache;  // [I] the array (cfg.arp_cache_size); entries [A]
  bool timer_armed = false;                // [A] the callout is armed or its handler will arm it
  std::unique_ptr<ipv4_addr[]> asking;     // [I] the array; [T] addresses to ask again
  ::callout timer{};                       // [K] attached stacks only
  bool has_timer = false;                  // [I]

  // [a] The counters inet_stats reports under the same names, listed once.
// clang-format off
#define KCONT_INET_COUNTERS(X)                                                                  \
  X(rx_frames) X(rx_arp) X(rx_ipv4) X(rx_icmp) X(rx_udp) X(tx_frames) X(tx_arp) X(tx_icmp)     \
  X(tx_udp) X(arp_requests_answered) X(arp_replies_learned) X(arp_requests_sent)               \
  X(arp_resolution_failures) X(icmp_echoes_answered) X(udp_echoed) X(udp_echoed_bytes)         \
  X(udp_sunk) X(udp_sunk_bytes) X(udp_sent) X(udp_sent_bytes)
// clang-format on
#define KCONT_INET_DECLARE_COUNTER(name) inet_counter name;
  struct {
    KCONT_INET_COUNTERS(KCONT_INET_DECLARE_COUNTER)
    inet_counter drops[inet_drop_reasons];
  } st;
#undef KCONT_INET_DECLARE_COUNTER

  std::int64_t now() const {
    return clock();
  }
  bool is_ours(ipv4_addr a) const {
    return a == cfg.addr;
  }
  bool is_broadcast(ipv4_addr a) const {
    return a == 0xffffffffu || (broadcast != 0 && a == broadcast);
  }
  bool on_link(ipv4_addr a) const {
    return (a & netmask) == (cfg.addr & netmask);
  }

  // Frees a packet the stack will not send, counted under `why`.
  void drop(pkt* m, inet_drop why) {
    st.drops[static_cast<std::size_t>(why)].add();
    pool.put(m);
  }
  // inet_ether.cpp: hands a finished frame to the interface; counts it (tx_frames and
  // `proto`) when taken, else frees and counts the drop. Returns output's answer.
  int transmit(pkt* m, inet_counter& proto);
  // Writes the Ethernet header: to `dst`, from us, of `type`.
  void ether_header(pkt* m, const std::uint8_t* dst, std::uint16_t type) const;

  // Input by layer; each takes the packet.
  void ether_input(pkt* m);
  void arp_input(pkt* m);
  void ip_input(pkt* m, bool link_broadcast);
  void icmp_input(pkt* m, bool to_group);  // to_group: a broadcast or multicast destination
  void udp_input(pkt* m);

  // inet_ip.cpp: the IPv4 header of a datagram we send (no options; `off` its flags), with a
  // fresh identification and our TTL.
  void ip_header(std::uint8_t* ip, std::uint8_t tos, std::uint16_t total_len, std::uint16_t off,
                 std::uint8_t proto, ipv4_addr src, ipv4_addr dst);
  // inet_udp.cpp: a datagram send_udp built (perhaps held for ARP), its Ethernet header
  // written: transmitted and counted (udp_sent).
  int udp_output(pkt* m);

  // inet_arp.cpp
  // The link address of `dst` for a finished IPv4 packet `m` (Ethernet header still to write):
  // sends it when resolved, holds it and asks otherwise. Returns send_udp's answer.
  int arp_resolve_and_send(pkt* m, ipv4_addr dst);
  void arp_request(ipv4_addr target);                     // sends one ARP request for `target`
  arp_entry* arp_lookup(ipv4_addr ip, std::int64_t now);  // [A] expires lazily
  arp_entry* arp_alloc(std::int64_t now);                 // [A] a free or evicted entry
  void arp_arm(std::int64_t now);                         // [A] the earliest retry
  void arp_tick();                      // [T] the timer's work (inet_stack::arp_timer)
  void arp_stop();                      // stop(): halts the timer and frees held packets
  static void arp_timer_fn(void* arg);  // the callout's handler; arg: the impl
};

}  // namespace kcont::net
