// The built-in peer of --serve where no tap or namespace can be had: a second simulated NIC
// on the in-memory wire, driven by this object instead of a network stack. It plays the host:
// resolves the responder's MAC through ARP, sends ICMP echo requests at ping's pace and UDP
// datagrams to the echo port (windowed, as udp_load does), checks every answer byte for byte
// (and its checksums), answers ARP requests for its own address (the responder's send_udp)
// and counts the datagrams that arrive on its discard port.
//
// Locks used to protect the fields of mem_peer:
//   [I] immutable after construction
//   [M] mu_ (the sender thread and the NIC's input continuation)
//   [a] atomic, relaxed
#pragma once

#include <kcont/inet.h>
#include <kcont/nicsim.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "echo_tracker.h"

namespace kcont::net {

struct mem_peer_config {
  ether_addr mac{0x02, 0x6b, 0x63, 0x00, 0x00, 0x0e};
  ipv4_addr addr = 0, target = 0;
  std::uint64_t ping_count = 1000;
  unsigned ping_interval_us = 1000;
  std::size_t ping_payload = 56;  // as ping's default
  std::size_t udp_window = 16, udp_payload = 64;
  std::uint64_t udp_pps = 0, udp_count = 0;  // 0: as fast as the window allows / until stop
  std::uint16_t udp_port = 40007, echo_port = 7, sink_port = 9;
  std::int64_t timeout_ns = 1'000'000'000;
};

class mem_peer {
 public:
  // Takes `nic`'s input (set_input; the NIC must be down).
  mem_peer(sim_nic& nic, pkt_pool& pool, const mem_peer_config& cfg);
  ~mem_peer();  // stop()
  mem_peer(const mem_peer&) = delete;
  mem_peer& operator=(const mem_peer&) = delete;

  void start();  // the sender thread (the NIC must be up)
  void stop();   // stops sending, waits up to the timeout for answers, counts the rest lost
  // Every ping sent and settled, and the UDP count (if any) sent and settled.
  bool done() const { return done_.load(std::memory_order_acquire); }
  bool resolved() const { return resolved_.load(std::memory_order_acquire); }

  const echo_tracker& ping() const { return ping_; }
  const echo_tracker& udp() const { return udp_; }
  std::uint64_t arp_answered() const { return arp_answered_.load(std::memory_order_relaxed); }
  std::uint64_t sunk() const { return sunk_.load(std::memory_order_relaxed); }
  std::uint64_t bad_checksums() const { return bad_cksum_.load(std::memory_order_relaxed); }
  std::uint64_t send_failures() const { return send_fail_.load(std::memory_order_relaxed); }

 private:
  void input(pkt* m);  // the NIC's input continuation
  void run();          // the sender thread
  bool send_arp_request();
  bool send_echo(bool icmp, const std::uint8_t* payload, std::size_t len, std::uint64_t seq);
  void wake();

  sim_nic& nic_;               // [I]
  pkt_pool& pool_;             // [I]
  const mem_peer_config cfg_;  // [I]
  echo_tracker ping_, udp_;    // their own legends
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;                 // [M]
  ether_addr target_mac_{};            // written once before resolved_ (release)
  std::atomic<bool> resolved_{false};  // [a] release/acquire
  std::atomic<bool> stop_{false}, done_{false};
  std::atomic<std::uint64_t> arp_answered_{0}, sunk_{0}, bad_cksum_{0}, send_fail_{0};  // [a]
  std::thread thread_;                                                                  // [I]
};

}  // namespace kcont::net
