// Packet buffers for the simulated network: fixed-size, caller-visible, allocated once.
//
// A pkt plays the mbuf's part: it sits on at most one list at a time (an ifqueue, a ring slot,
// an input queue, the pool's free list) through `next`. A pkt_pool hands out buffers from a
// free list filled at construction, so the packet path allocates nothing; an empty pool is an
// answer (nullptr), never an allocation.
//
// Locks used to protect the fields of pkt and pkt_pool:
//   [I] immutable after construction
//   [p] pkt_pool::mu_
//   [O] the packet's owner: the thread holding it, else whatever guards the list it sits on
//       (a pool's free list [p]; an ifqueue, its ifq_mtx; a NIC ring slot, the ring indices'
//       release/acquire (src/nic_impl.h); a NIC's input queue, its in_mu). Handing a packet on
//       through one of these hands its fields on with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace kcont::net {

inline constexpr std::size_t pkt_capacity = 2048;  // largest frame a buffer holds
inline constexpr std::size_t frame_min = 14;       // an Ethernet header
inline constexpr std::size_t frame_max = 1518;     // Ethernet frame without FCS, VLAN tag

struct pkt {
  pkt* next = nullptr;        // [O]
  std::uint32_t len = 0;      // [O] bytes of data in use
  std::int64_t stamp_ns = 0;  // [O] when the stack handed it to the interface (ifq_enqueue)
  alignas(64) std::uint8_t data[pkt_capacity];  // [O]
};

class pkt_pool {
 public:
  explicit pkt_pool(std::size_t count);
  pkt_pool(const pkt_pool&) = delete;
  pkt_pool& operator=(const pkt_pool&) = delete;

  pkt* get() noexcept;        // nullptr when empty
  void put(pkt* p) noexcept;  // p must come from this pool
  std::size_t size() const noexcept { return count_; }
  std::size_t available() const noexcept;
  bool owns(const pkt* p) const noexcept {
    return p >= storage_.get() && p < storage_.get() + count_;
  }

 private:
  std::unique_ptr<pkt[]> storage_;  // [I] the array; each pkt's fields are [O]
  std::size_t count_;               // [I]
  mutable std::mutex mu_;
  pkt* free_ = nullptr;         // [p] linked through pkt::next
  std::size_t free_count_ = 0;  // [p]
};

}  // namespace kcont::net
