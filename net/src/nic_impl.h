// sim_nic's state, shared by the hardware model (nic_engine.cpp) and the driver
// (nic_driver.cpp).
//
// Ring indices are free-running 32-bit counters (slot = index & mask), each written by one
// side only:
//   TX: tx_prod   driver start (inside the serialiser)   -> DMA engine reads
//       tx_hw     DMA engine (frames on the wire)        -> txeof reads
//       tx_cons   driver txeof (interrupt CPU)           -> start reads (free = size - (prod -
//       cons))
//   RX: rx_post   driver (interrupt CPU: rxeof, input)   -> hardware reads (slots it may fill)
//       rx_fill   hardware (the wire's receiving side)   -> rxeof reads
//       rx_cons   driver rxeof (interrupt CPU only)
// A slot's pointer is written before the index that publishes it (release) and read after
// loading that index (acquire).
#pragma once

#include <kcont/callout.h>
#include <kcont/internal/counters.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/kcont.h>
#include <kcont/nicsim.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace kcont::net {

inline constexpr unsigned INTR_TX = 1u << 0;
inline constexpr unsigned INTR_RX = 1u << 1;

using counter = kcont::internal::shared_counter;

struct sim_nic::impl {
  impl(sim_nic* face, kcont::runtime& rt, nic_config cfg, pkt_pool& pool);
  ~impl();

  sim_nic* const face;
  kcont::runtime& rt;
  const nic_config cfg;
  pkt_pool& pool;
  wire* w = nullptr;
  cpu_info* intr_ci = nullptr;

  ifnet ifn;
  taskq* tq = nullptr;  // taskq start mode

  // TX ring
  const std::uint32_t tx_size, tx_mask;
  std::unique_ptr<pkt*[]> tx_ring;
  alignas(64) std::atomic<std::uint32_t> tx_prod{0};
  alignas(64) std::atomic<std::uint32_t> tx_hw{0};
  alignas(64) std::atomic<std::uint32_t> tx_cons{0};
  // RX ring
  const std::uint32_t rx_size, rx_mask;
  std::unique_ptr<pkt*[]> rx_ring;
  alignas(64) std::atomic<std::uint32_t> rx_post{0};
  alignas(64) std::atomic<std::uint32_t> rx_fill{0};
  std::uint32_t rx_cons = 0;
  std::atomic<bool> rx_enabled{false};
  std::atomic<unsigned> rx_users{0};  // hw_receive calls in progress (down() waits for 0)
  std::atomic<sim_nic*> rx_room_waiter{nullptr};
  // The wire's receive fd, if it has one. Atomic: the first callback may run before up() has
  // stored what watch_fd returned.
  std::atomic<machine::fd_watch*> rx_watch{nullptr};
  bool rx_paused = false;  // interrupt CPU only
  static void rx_ready(void* arg);

  // Interrupts
  void* intr_si = nullptr;
  std::atomic<unsigned> intr_status{0};
  void raise(unsigned bits);

  // DMA engine
  std::thread engine;
  int bell_fd = -1;
  std::atomic<bool> bell{false};
  std::atomic<int> engine_sleeping{0};
  std::atomic<bool> engine_stop{false};
  std::atomic<bool> gone{false};
  void engine_main();
  void ring_doorbell();

  // RX input (wq_softnet continuation on intr_ci)
  kcont_t input_kc{};
  bool input_ready = false;
  std::mutex in_mu;
  pkt* in_head = nullptr;
  pkt* in_tail = nullptr;
  std::uint64_t next_seq[max_flows] = {};  // input context only
  std::function<void(const frame_info&, const pkt&)> rx_handler;
  std::function<void(const std::string&)> event_handler;
  void refill_rx();  // interrupt CPU only

  // Stall detector
  ::callout watchdog{};
  std::int64_t stuck_since = 0;

  std::atomic<std::int64_t> restart_stamp{0};
  latency_histogram restart_lat, delivery_lat;

  bool is_up = false;

  struct {
    counter tx_enqueued, tx_queue_drops, tx_frames, tx_bytes, tx_wire_drops, restarts, stalls,
        interrupts, rx_frames, rx_overruns, rx_runts, rx_oversized, rx_delivered, rx_bytes,
        rx_foreign, rx_malformed, rx_out_of_order, rx_gaps, rx_starved;
  } st;

  void report(const std::string& line);
};

// The driver's entry points (nic_driver.cpp).
void simx_start(ifnet* ifp);
void simx_intr(void* arg);
void simx_input(void* arg, kcont_t* kc);
void simx_watchdog(void* arg);

}  // namespace kcont::net
