// sim_nic's state, shared by the hardware model (nic_engine.cpp) and the driver
// (nic_driver.cpp).
//
// Ring indices are free-running 32-bit counters (slot = index & mask), each written by one
// side only:
//   TX: tx_prod   driver start [S] (inside the serialiser) -> DMA engine reads
//       tx_hw     DMA engine [T] (frames on the wire)      -> txeof reads
//       tx_cons   driver txeof [C] (interrupt CPU)         -> start reads
//                 (free = size - (prod - cons))
//   RX: rx_post   driver [C] (interrupt CPU: rxeof, input) -> hardware reads (slots it may fill)
//       rx_fill   hardware [W] (the wire's receiving side) -> rxeof reads
//       rx_cons   driver rxeof [C] (interrupt CPU only)
// A slot's pointer is written before the index that publishes it (release) and read after
// loading that index (acquire).
//
// Locks used to protect the fields of sim_nic::impl:
//   [I] immutable after construction
//   [U] the control thread (constructor, attach, set_*_handler, up, down, destructor: one at
//       a time), written only while the interface is down; up() publishes them to what it
//       starts (the engine thread, the softint, the fd watch, the callout)
//   [a] atomic (the order is given at each use; `st` and the histograms are relaxed counters)
//   [S] inside the ifqueue's serialiser (the driver's start)
//   [D] the DMA engine thread only
//   [T] whoever holds tx_busy: the DMA engine thread, or start transmitting a few frames
//       itself while the engine sleeps (transmit_from_start, nic_engine.cpp)
//   [W] the wire's receiving side, hw_receive: one thread at a time (the transmitting NIC's
//       DMA engine on a memory wire, the interrupt CPU on a tap)
//   [C] the interrupt CPU's loop (intr_ci): simx_intr, rx_ready, simx_input (wq_softnet) and
//       the watchdog callout all run there, one at a time
//   [m] in_mu
// Quiet exceptions: up() runs refill_rx [C] on the control thread before any interrupt,
// input, engine or wire can run, and down()'s reclaim_all rewrites [S], [D], [W], [C] and [m]
// fields on the control thread after all of them have stopped.
// Lock order: in_mu is a leaf (rxeof and simx_input call nothing under it).
#pragma once

#include <kcont/callout.h>
#include <kcont/internal/counters.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/internal/queue_counters.h>
#include <kcont/kcont.h>
#include <kcont/nicsim.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace kcont::net {

inline constexpr unsigned INTR_TX = 1u << 0;
inline constexpr unsigned INTR_RX = 1u << 1;

using counter = kcont::internal::shared_counter;

struct sim_nic::impl {
  impl(sim_nic* face, kcont::runtime& rt, nic_config cfg, pkt_pool& pool);
  ~impl();

  sim_nic* const face;          // [I]
  kcont::runtime& rt;           // [I]
  const nic_config cfg;         // [I]
  pkt_pool& pool;               // [I] (the pool locks itself)
  wire* w = nullptr;            // [U] attach(); read [D] (transmit) and [C] (rx_ready)
  cpu_info* intr_ci = nullptr;  // [I]

  ifnet ifn;  // set up by the constructor; each of its fields carries its mark in kcont/ifq.h
  taskq* tq = nullptr;  // [I] taskq start mode
  // [I] The send queue's taskctx in the runtime's queue statistics, "<name> ifq", when the
  // runtime times its queues (export_stats): observing costs the start path's fast dispatch
  // two lock pairs, so only then.
  std::string ifq_stats_name;
  std::optional<kcont::taskctx_stats> ifq_stats;

  // TX ring
  const std::uint32_t tx_size, tx_mask;  // [I]
  // [I] the array; a slot is owned by the side the indices give it to (table above)
  std::unique_ptr<pkt*[]> tx_ring;
  alignas(64) std::atomic<std::uint32_t> tx_prod{0};  // [a] written [S]
  alignas(64) std::atomic<std::uint32_t> tx_hw{0};    // [a] written [T]
  // [a] The transmitting side is owned: taken (exchange, acquire) by the engine for each pass
  // and by start to transmit inline, given back with a release store.
  std::atomic<bool> tx_busy{false};
  bool inline_tx = false;  // [U] the wire transmits_from_start and the DMA rate is unlimited
  alignas(64) std::atomic<std::uint32_t> tx_cons{0};  // [a] written [C] (txeof)
  // RX ring
  const std::uint32_t rx_size, rx_mask;  // [I]
  // [I] the array; a slot is owned by the side the indices give it to (table above)
  std::unique_ptr<pkt*[]> rx_ring;
  alignas(64) std::atomic<std::uint32_t> rx_post{0};  // [a] written [C] (refill_rx)
  alignas(64) std::atomic<std::uint32_t> rx_fill{0};  // [a] written [W]
  std::uint32_t rx_cons = 0;                          // [C] written by rxeof, read by refill_rx
  std::atomic<bool> rx_enabled{false};                // [a] seq_cst; written [U], read [W]
  std::atomic<unsigned> rx_users{0};  // [a] hw_receive calls in progress (down() waits for 0)
  // [a] set by a transmitting NIC's engine (memory wire flow control), taken [C] by refill_rx
  std::atomic<sim_nic*> rx_room_waiter{nullptr};
  // [a] The wire's receive fd, if it has one: set by up(), cleared by down(), read [C]. Atomic:
  // the first callback may run before up() has stored what watch_fd returned.
  std::atomic<machine::fd_watch*> rx_watch{nullptr};
  // [C] (rx_ready sets it, refill_rx clears it); reset by up() before anything runs. Set only
  // by rx_ready after it saw rx_watch published, so refill_rx finding it set finds the watch.
  bool rx_paused = false;
  // [a] up() sets it; down() clears it before unwatching, so refill_rx (on the interrupt CPU,
  // which the unwatch waits for) never resumes a watch being freed.
  std::atomic<bool> rx_resumable{false};
  static void rx_ready(void* arg);

  // Interrupts
  // [U] set by up() before the engine starts and rx_enabled is set, cleared by down() after
  // both have stopped; read by raise() ([D], [W])
  void* intr_si = nullptr;
  std::atomic<unsigned> intr_status{0};  // [a] or-ed by raise(), taken [C] by simx_intr
  void raise(unsigned bits);

  // DMA engine
  std::thread engine;                    // [U]
  int bell_fd = -1;                      // [I]
  std::atomic<bool> bell{false};         // [a] seq_cst: the doorbell protocol
  std::atomic<int> engine_sleeping{0};   // [a] seq_cst: the doorbell protocol
  std::atomic<bool> engine_stop{false};  // [a] written [U], read [D]
  std::atomic<bool> gone{false};         // [a] reset by up(), set [C] by rx_ready
  void engine_main();
  void ring_doorbell();
  void wake_engine();  // the bell already set: wakes the engine if it still announces sleep
  // [S] start posted frames: transmits them on start's thread when the engine sleeps and
  // they are few (inline_tx), else rings the doorbell.
  void post_transmit();
  bool transmit_slot(std::uint32_t hw);  // [T]

  // RX input (wq_softnet continuation on intr_ci)
  kcont_t input_kc{};        // [I] set up by the constructor; its state is the kcont layer's
  bool input_ready = false;  // [I]
  std::mutex in_mu;
  pkt* in_head = nullptr;                                         // [m]
  pkt* in_tail = nullptr;                                         // [m]
  std::uint64_t next_seq[max_flows] = {};                         // [C] simx_input only
  std::function<void(const frame_info&, const pkt&)> rx_handler;  // [U] called [C]
  std::function<void(pkt*)> input_handler;                        // [U] called [C]
  std::function<void(const std::string&)> event_handler;          // [U] called [C] by report()
  void refill_rx();                                               // [C]

  // Stall detector
  ::callout watchdog{};          // [I] set up by the constructor; the callout layer's; runs [C]
  std::int64_t stuck_since = 0;  // [C] simx_watchdog only

  std::atomic<std::int64_t> restart_stamp{0};   // [a] relaxed; set [C] by txeof, taken [S]
  latency_histogram restart_lat, delivery_lat;  // [a] recorded [S] and [C] respectively

  bool is_up = false;  // [U]

  // [a] relaxed counters (shared_counter), read by stats() from any thread. Those that
  // nic_stats (<kcont/nicsim.h>) reports, under the same names, are listed once, here.
// clang-format off
#define KCONT_NIC_REPORTED_COUNTERS(X)                                                     \
  X(tx_enqueued) X(tx_queue_drops) X(tx_frames) X(tx_bytes) X(tx_wire_drops) X(restarts)  \
  X(stalls) X(interrupts) X(rx_frames) X(rx_overruns) X(rx_runts) X(rx_oversized)         \
  X(rx_delivered) X(rx_bytes) X(rx_foreign) X(rx_malformed) X(rx_out_of_order) X(rx_gaps)  \
  X(rx_starved) X(tx_from_start)
// clang-format on
#define KCONT_NIC_DECLARE_COUNTER(name) counter name;
  struct {
    KCONT_NIC_REPORTED_COUNTERS(KCONT_NIC_DECLARE_COUNTER)
  } st;
#undef KCONT_NIC_DECLARE_COUNTER
  // The counter of frames dropped for `why` (anything but ok and foreign, which simx_input
  // counts itself before it hands the frame on).
  counter& drop_counter(frame_check why) {
    switch (why) {
      case frame_check::runt:
        return st.rx_runts;
      case frame_check::oversized:
        return st.rx_oversized;
      default:
        return st.rx_malformed;
    }
  }

  void report(const std::string& line);
};

// The driver's entry points (nic_driver.cpp).
void simx_start(ifnet* ifp);
void simx_intr(void* arg);
void simx_input(void* arg, kcont_t* kc);
void simx_watchdog(void* arg);

}  // namespace kcont::net
