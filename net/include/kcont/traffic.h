// The "stack" side of the simulator: producer threads that build frames and hand them to a
// NIC's output path (ifq_enqueue + if_start), as ip_output would from many CPUs at once.
//
// Locks used to protect the fields of traffic_source (traffic_config is a value):
//   [I] immutable after construction
//   [U] the owner's thread (start, join, the destructor: one at a time)
//   [a] atomic; stop_ and the counters are relaxed, running_ is release (a producer's exit)
//       / acquire (done())
#pragma once

#include <kcont/nicsim.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace kcont::net {

struct traffic_config {
  unsigned producers = 2;       // threads, one flow each (flow ids 0..producers-1)
  std::uint64_t packets = 0;    // in total; 0 = until stop()
  std::size_t frame_len = 128;  // bytes, clamped to 64..1518
  // true: a producer that finds the send queue full yields and tries again (the test's
  // "nothing lost" mode); false: the packet is dropped and counted, as a real stack does.
  bool retry_when_full = false;
};

class traffic_source {
 public:
  traffic_source(sim_nic& nic, pkt_pool& pool, traffic_config cfg);
  ~traffic_source();  // stop() and join
  void start();
  void stop();        // producers finish the packet in hand and exit
  void join();        // waits until every producer has exited (count reached or stopped)
  bool done() const;  // every producer has exited
  std::uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  std::uint64_t pool_waits() const { return pool_waits_.load(std::memory_order_relaxed); }

 private:
  void run(unsigned flow, std::uint64_t count);
  sim_nic& nic_;                      // [I] (output() may be called from any thread)
  pkt_pool& pool_;                    // [I] (the pool locks itself)
  const traffic_config cfg_;          // [I]
  std::vector<std::thread> threads_;  // [U]
  std::atomic<bool> stop_{false};     // [a] set by stop() (any thread) or a producer on ENETDOWN
  std::atomic<unsigned> running_{0};  // [a] set by start(), counted down by each producer
  std::atomic<std::uint64_t> sent_{0}, dropped_{0}, pool_waits_{0};  // [a] relaxed counters
};

}  // namespace kcont::net
