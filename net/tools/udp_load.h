// The project's own UDP load generator for --serve: a thread that enters our namespace, sends
// datagrams from an ordinary UDP socket to the responder's echo port, checks every echo byte
// for byte (echo_tracker) and measures its round trip. A second socket on the discard port
// counts the datagrams the responder sends us on its own (the kcont stack's send_udp, which
// must resolve our address through ARP first).
//
// Locks used to protect the fields of udp_load:
//   [I] immutable after start()
//   [a] atomic (stop_ and done_: release/acquire; counters relaxed)
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "echo_tracker.h"

namespace kcont::net {

class netns_handle;

struct udp_load_config {
  std::uint32_t local = 0, remote = 0;  // IPv4, host byte order
  std::uint16_t echo_port = 7;
  std::uint16_t sink_port = 9;  // ours: where the responder's own datagrams arrive; 0: none
  std::size_t window = 16;      // outstanding datagrams
  std::size_t payload = 64;     // bytes, >= echo_tracker::min_payload
  std::uint64_t pps = 0;        // 0: as fast as the window allows
  std::uint64_t count = 0;      // datagrams to send; 0: until stop()
  std::int64_t timeout_ns = 1'000'000'000;  // an echo later than this is lost
};

class udp_load {
 public:
  explicit udp_load(const udp_load_config& cfg);
  ~udp_load();  // stop()
  udp_load(const udp_load&) = delete;
  udp_load& operator=(const udp_load&) = delete;

  // Starts the thread in `ns`. Its setup errors (socket, bind) end it: see error().
  void start(const netns_handle& ns);
  // Stops sending; waits up to the timeout for the echoes still out, then counts them lost.
  void stop();
  bool done() const { return done_.load(std::memory_order_acquire); }  // count sent and settled
  std::string error() const;  // after done() or stop(): what went wrong, or ""
  const echo_tracker& tracker() const { return tracker_; }
  std::uint64_t sunk() const { return sunk_.load(std::memory_order_relaxed); }
  bool reached() const { return reached_.load(std::memory_order_relaxed); }

 private:
  void run(const netns_handle* ns);

  const udp_load_config cfg_;  // [I]
  echo_tracker tracker_;       // its own legend
  std::atomic<bool> stop_{false}, done_{false}, reached_{false};
  std::atomic<std::uint64_t> sunk_{0};  // [a]
  std::string error_;                   // written by the thread before done_ (release)
  std::thread thread_;                  // [I]
};

}  // namespace kcont::net
