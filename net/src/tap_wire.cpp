#include <kcont/tap_wire.h>

#include <cerrno>

namespace kcont::net {

std::unique_ptr<tap_wire> tap_wire::create(const std::string& name_pattern, unsigned mtu,
                                           std::string& why) {
  std::unique_ptr<tap_device> tap = tap_device::create(name_pattern, mtu, why);
  if (!tap) return nullptr;
  return std::unique_ptr<tap_wire>(new tap_wire(std::move(tap)));
}

void tap_wire::connect(sim_nic& nic) {
  nic.attach(*this);
}

wire::tx_result tap_wire::transmit(sim_nic&, const std::uint8_t* frame, std::size_t len) {
  // A tap never pushes back; a refused frame (queue full, link down or gone) is a drop.
  return tap_->write_frame(frame, len) ? tx_result::sent : tx_result::dropped;
}

int tap_wire::rx_fd(const sim_nic&) const {
  return tap_->fd();
}

bool tap_wire::pull_rx(sim_nic& nic) {
  // A bounded batch: this runs in interrupt context on the NIC's interrupt CPU.
  for (int i = 0; i < 64 && nic.hw_rx_has_room(); ++i) {
    std::size_t len = 0;
    switch (tap_->read_frame(buf_, sizeof buf_, &len)) {
      case tap_device::read_status::frame:
        nic.hw_receive(buf_, len);  // runts are counted there
        break;
      case tap_device::read_status::truncated:
        // len is the frame's full length (> our buffer): hw_receive counts it as oversized
        // from the length alone, before it would copy anything.
        nic.hw_receive(buf_, len);
        break;
      case tap_device::read_status::none:
        return true;
      case tap_device::read_status::gone:
        return false;
      case tap_device::read_status::error:
        read_errors_.fetch_add(1, std::memory_order_relaxed);
        return true;
    }
  }
  return true;
}

std::string tap_wire::describe() const {
  return "tap device " + tap_->name();
}

}  // namespace kcont::net
