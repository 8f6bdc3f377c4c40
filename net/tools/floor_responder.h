// The floor: the same ARP, ICMP echo and UDP echo answers the kcont stack gives, from one
// thread that waits in epoll on a tap's fd and answers each frame in place with read(2) and
// write(2). No kcont, no rings, no interrupts, no queues: whatever the host's ping and UDP
// socket measure against it is the cost of the tap and the host's stack on this machine, the
// physical limit the kcont path is compared with (kcont-nicsim --serve's floor phase).
//
// It answers like inet_stack (<kcont/inet.h>): ARP requests for its address; ICMP echo
// requests to it (type changed, addresses swapped, TTL 64, checksums recomputed); UDP to its
// echo port (ports and addresses swapped, checksum recomputed, trailing bytes cut). Anything
// else is counted under one reason and dropped.
//
// Standard C++ and Linux system calls only: it must not include or link kcont.
//
// Locks used to protect the fields of floor_responder:
//   [I] immutable after construction
//   [R] the responder's thread only
//   [a] atomic, relaxed: written by the responder's thread, read by stats() from any thread
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>

namespace nicsim_floor {

struct floor_config {
  std::array<std::uint8_t, 6> mac{};  // our MAC (unicast)
  std::uint32_t addr = 0;             // our IPv4 address, host byte order
  std::uint16_t echo_port = 7;
};

enum class floor_drop {
  short_frame,   // shorter than the headers it claims
  not_for_us,    // another MAC or IPv4 address, an ARP request for someone else
  unsupported,   // another EtherType or protocol, IP options or fragments, ICMP but echo, a port
  bad_checksum,  // IPv4 header, ICMP or UDP checksum wrong
  write_failed,  // the tap refused the answer
};
inline constexpr std::size_t floor_drop_reasons = 5;
const char* floor_drop_name(floor_drop why);

struct floor_stats {
  std::uint64_t rx = 0, tx = 0, arp_answered = 0, icmp_answered = 0, udp_echoed = 0;
  std::array<std::uint64_t, floor_drop_reasons> drops{};
};

class floor_responder {
 public:
  // Starts answering on `tap_fd` (non-blocking; the caller keeps it open until stop()).
  // Throws std::system_error when epoll or the stop eventfd cannot be made.
  floor_responder(int tap_fd, floor_config cfg);
  ~floor_responder();  // stop()
  floor_responder(const floor_responder&) = delete;
  floor_responder& operator=(const floor_responder&) = delete;

  void stop();  // wakes the thread and joins it; idempotent
  floor_stats stats() const;
  bool tap_gone() const { return gone_.load(std::memory_order_relaxed); }

 private:
  void run();
  void answer(std::uint8_t* f, std::size_t len);  // [R]
  void drop(floor_drop why) {
    drops_[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
  }
  bool send(const std::uint8_t* f, std::size_t len);  // [R]

  const int fd_;                   // [I]
  const floor_config cfg_;         // [I]
  int epfd_ = -1;                  // [I]
  int stopfd_ = -1;                // [I] an eventfd: written by stop()
  std::atomic<bool> gone_{false};  // [a]
  std::atomic<std::uint64_t> rx_{0}, tx_{0}, arp_{0}, icmp_{0}, udp_{0};  // [a]
  std::array<std::atomic<std::uint64_t>, floor_drop_reasons> drops_{};    // [a]
  std::thread thread_;  // [I] joined by stop() (the control thread)
};

}  // namespace nicsim_floor
