// A simulated NIC and its driver, written the way myx(4) is after OpenBSD's 2015 taskctx diff.
//
// The hardware: a TX descriptor ring and an RX descriptor ring (power-of-two sizes, default
// 256), and a DMA engine (one thread per NIC: the device is not a CPU) that takes frames off
// the TX ring at a configurable rate, puts them on a wire, and raises a completion interrupt;
// frames from the wire land in the RX ring's posted buffers and raise an RX interrupt.
// Interrupts are delivered on one chosen CPU at interrupt level (SOFTINT_HARDINTR).
//
// The driver: start (in the ifqueue's serialiser) moves packets from the send queue to the TX
// ring and sets oactive when the ring is full; the interrupt handler runs txeof (reclaims
// descriptors outside the serialiser, and clears oactive only inside it, via ifq_restart) and
// rxeof (hands received frames to input processing on a wq_softnet continuation and posts fresh
// buffers). Start modes (see kcont/ifq.h): taskctx (the fix), taskq (start deferred to a task
// queue), naive (txeof clears oactive itself and calls if_start: the race the diff closed).
//
// A stall detector (a callout watchdog on the interrupt CPU) reports an interface that has had
// queued packets, oactive set and an empty TX ring for longer than a threshold; it then
// restarts the interface, as a kernel watchdog resets a hung NIC.
//
// Locks used to protect the fields of memory_wire and sim_nic (sim_nic::impl has its own
// legend, in src/nic_impl.h; nic_config and nic_stats are values, not shared):
//   [I] immutable after construction
//   [U] set by connect() on the control thread while the NICs it joins are down; read by
//       their DMA engines (transmit), which up() starts afterwards
#pragma once

#include <kcont/frame.h>
#include <kcont/histogram.h>
#include <kcont/ifq.h>
#include <kcont/pkt.h>
#include <kcont/runtime.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace kcont::net {

enum class start_mode { taskctx, taskq, naive };
bool parse_start_mode(const std::string& name, start_mode& out);
const char* start_mode_name(start_mode m);

struct nic_config {
  std::string name = "sim0";
  unsigned tx_ring = 256;     // descriptors, a power of two in 4..65536
  unsigned rx_ring = 256;     // likewise
  unsigned ifq_maxlen = 256;  // send queue length (IFQ_MAXLEN)
  std::uint64_t dma_pps = 0;  // TX DMA rate in frames per second; 0: as fast as it can
  unsigned intr_cpu = 0;      // CPU the completion interrupts (and RX input) run on
  start_mode mode = start_mode::taskctx;
  // taskctx/taskq start: after setting oactive, look at the ring once more and carry on if
  // txeof freed space meanwhile (naive never does). Off only to show why it is needed.
  bool oactive_recheck = true;
  // Test knob widening the race: a start running off the interrupt CPU spins this long
  // between finding the ring full and setting oactive (a slow register write).
  std::int64_t race_delay_ns = 0;
  unsigned stall_ms = 200;       // stall detector threshold
  bool watchdog_recover = true;  // restart a stalled interface after reporting it
};

struct nic_stats {
  // send side
  std::uint64_t tx_enqueued = 0;     // packets the stack queued
  std::uint64_t tx_queue_drops = 0;  // ifq full: packets refused
  std::uint64_t tx_frames = 0;       // put on the wire by the DMA engine
  std::uint64_t tx_bytes = 0;
  std::uint64_t tx_wire_drops = 0;  // the wire refused them (tap queue full, link gone)
  // Of tx_frames + tx_wire_drops: those the driver's start put on the wire itself while the
  // engine slept (a wire that transmits_from_start; a few frames per start at most)
  std::uint64_t tx_from_start = 0;
  std::uint64_t oactive_sets = 0;  // transitions to oactive
  std::uint64_t restarts = 0;      // ifq_restart calls from txeof
  std::uint64_t stalls = 0;        // stall detector reports
  std::uint64_t interrupts = 0;
  // receive side
  std::uint64_t rx_frames = 0;  // landed in the RX ring
  // Frames a wire lost for want of a posted RX buffer. Neither wire loses one today, so it
  // stays 0: the memory wire holds the frame until a buffer is posted (flow control), and the
  // tap wire reads only while the ring has room (the host's queue drops the excess, unseen).
  std::uint64_t rx_overruns = 0;
  std::uint64_t rx_runts = 0;      // dropped by the hardware: shorter than 14 bytes
  std::uint64_t rx_oversized = 0;  // dropped by the hardware: longer than frame_max
  std::uint64_t rx_delivered = 0;  // simulator frames that passed every check
  std::uint64_t rx_bytes = 0;
  // Frames that are not simulator traffic (the host's on a tap, an attached stack's IPv4 and
  // ARP): counted, then handed to the input handler (set_input) if there is one, else freed.
  std::uint64_t rx_foreign = 0;
  std::uint64_t rx_malformed = 0;     // our EtherType but failing a check
  std::uint64_t rx_out_of_order = 0;  // a flow's sequence number went backwards or repeated
  std::uint64_t rx_gaps = 0;          // sequence numbers skipped (frames lost before us)
  std::uint64_t rx_starved = 0;       // RX refills that found the packet pool empty (retried later)
};

class sim_nic;

// Where a NIC's frames go, and where its received frames come from.
class wire {
 public:
  enum class tx_result { sent, busy, dropped };
  virtual ~wire() = default;
  // The transmitting NIC's DMA thread. busy: try again later (flow control of the in-memory
  // wire; the wire rings from's doorbell when it may succeed).
  virtual tx_result transmit(sim_nic& from, const std::uint8_t* frame, std::size_t len) = 0;
  // A file descriptor to watch for received frames, or -1. The NIC's interrupt CPU watches
  // it through its loop backend (machine::watch_fd) while the RX ring has room.
  virtual int rx_fd(const sim_nic&) const { return -1; }
  // rx_fd readable (interrupt context): move frames into the NIC (sim_nic::hw_receive) while
  // it has room. false: the wire is gone.
  virtual bool pull_rx(sim_nic&) { return true; }
  // true: transmit may also be called from the driver's start, on the thread that posted the
  // frames, while the DMA engine sleeps (a doorbell that starts the transfer at once, as
  // hardware does, instead of waking the engine thread). Only a wire whose transmit never
  // waits and never answers busy may say so.
  virtual bool transmits_from_start() const { return false; }
  virtual std::string describe() const = 0;
};

// The in-memory wire: one NIC loops back to itself; two are connected back to back. A frame
// waits (flow control) while the receiver has no posted RX buffer, so nothing is lost.
class memory_wire final : public wire {
 public:
  void connect(sim_nic& a, sim_nic* b = nullptr);
  tx_result transmit(sim_nic& from, const std::uint8_t* frame, std::size_t len) override;
  std::string describe() const override;

 private:
  sim_nic* a_ = nullptr;  // [U]
  sim_nic* b_ = nullptr;  // [U] nullptr: a_ is looped back
};

class sim_nic {
 public:
  // Throws std::invalid_argument for a bad config (ring sizes, intr_cpu >= rt.ncpu()).
  sim_nic(kcont::runtime& rt, nic_config cfg, pkt_pool& pool);
  ~sim_nic();  // down()
  sim_nic(const sim_nic&) = delete;
  sim_nic& operator=(const sim_nic&) = delete;

  void attach(wire& w);  // before up()
  // Called on the RX input continuation (softnet context) for every valid simulator frame,
  // before its buffer returns to the pool. Set before up().
  void set_rx_handler(std::function<void(const frame_info&, const pkt&)> fn);
  // Called on the RX input continuation for every frame that is not simulator traffic (counted
  // as rx_foreign first), which it takes with ownership: the handler returns it to the pool or
  // hands it on (output). Without one, such frames are freed. A network stack attaches here
  // (<kcont/inet.h>). Set before up() (std::logic_error after); an empty function detaches.
  void set_input(std::function<void(pkt*)> fn);
  // Called (from the watchdog's CPU) with a one-line report when a stall is detected. Set
  // before up().
  void set_event_handler(std::function<void(const std::string&)> fn);
  void up();    // posts RX buffers, starts the DMA engine, sets IFF_RUNNING
  void down();  // stops output and the engine, waits for handlers, returns every buffer

  // The stack's output path: ifq_enqueue, then if_start. ENOBUFS when the send queue is full
  // (counted), ENETDOWN when the interface is not running; either way the packet stays the
  // caller's. Any thread.
  int output(pkt* m);

  ifnet* ifp();
  const nic_config& config() const;
  kcont::runtime& rt() const;  // the runtime the NIC's interrupts and input run on
  nic_stats stats() const;
  // From a TX-completion interrupt that found the interface oactive to the first descriptor
  // the next start posts.
  const latency_histogram& restart_latency() const;
  // From build_frame (producer) to delivery on the receiving NIC's input continuation.
  const latency_histogram& delivery_latency() const;
  // True once the wire reported itself gone (a deleted tap); the engine then idles.
  bool wire_gone() const;

  // ---- hardware side, for wires ----
  enum class rx_result { accepted, no_buffer, runt, oversized, down };
  // Copies one frame into the next posted RX buffer and raises the RX interrupt. Called by
  // one thread at a time (the wire's receiving side). down: the NIC is not up.
  rx_result hw_receive(const std::uint8_t* frame, std::size_t len);
  bool hw_rx_has_room() const;
  // Wakes the DMA engine if it sleeps (also used by wires when a busy receiver has room).
  void doorbell();
  // The wire may succeed now for this NIC's pending transmit: ring when `receiver` gets room.
  void wait_for_rx_room(sim_nic& receiver);

  struct impl;

 private:
  std::unique_ptr<impl> d_;  // [I]
};

}  // namespace kcont::net
