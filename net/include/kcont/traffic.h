// The "stack" side of the simulator: producer threads that build frames and hand them to a
// NIC's output path (ifq_enqueue + if_start), as ip_output would from many CPUs at once.
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
  sim_nic& nic_;
  pkt_pool& pool_;
  const traffic_config cfg_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<unsigned> running_{0};
  std::atomic<std::uint64_t> sent_{0}, dropped_{0}, pool_waits_{0};
};

}  // namespace kcont::net
