// A real tap device as a simulated NIC's wire: the NIC's frames go to the host (tcpdump -i
// NAME sees them), frames the host sends to the interface land in the NIC's RX ring. The
// NIC's interrupt CPU watches the tap's fd through its loop backend while the RX ring has
// room; runts, oversized frames and
// anything else that is not the simulator's are dropped and counted, never delivered.
//
// Locks used to protect the fields of tap_wire:
//   [I] immutable after construction
//   [C] the connected NIC's interrupt CPU (pull_rx runs in its rx_ready, one call at a time)
#pragma once

#include <kcont/nicsim.h>
#include <kcont/tap.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace kcont::net {

class tap_wire final : public wire {
 public:
  // nullptr with `why` set when no tap can be made (no /dev/net/tun, no permission, ...).
  static std::unique_ptr<tap_wire> create(const std::string& name_pattern, unsigned mtu,
                                          std::string& why);
  void connect(sim_nic& nic);  // one NIC per tap
  tx_result transmit(sim_nic& from, const std::uint8_t* frame, std::size_t len) override;
  int rx_fd(const sim_nic&) const override;
  bool pull_rx(sim_nic& nic) override;
  bool transmits_from_start() const override { return true; }  // a tap write never waits
  std::string describe() const override;
  tap_device& device() { return *tap_; }
  std::uint64_t read_errors() const { return read_errors_.load(std::memory_order_relaxed); }

 private:
  explicit tap_wire(std::unique_ptr<tap_device> tap) : tap_(std::move(tap)) {}
  std::unique_ptr<tap_device> tap_;             // [I]
  std::atomic<std::uint64_t> read_errors_{0};   // [a] written [C] by pull_rx, read by any thread
  alignas(64) std::uint8_t buf_[pkt_capacity];  // [C] pull_rx's frame buffer
};

}  // namespace kcont::net
