// The simulated hardware: the DMA engine thread, RX reception, doorbell and interrupts.
//
// The engine sleeps in ppoll on an eventfd (the doorbell). A tap's received frames come in on
// the interrupt CPU instead (rx_ready, below).
// Doorbell protocol (Dekker, seq_cst): a ringer sets `bell`, then wakes the engine only if it
// announced sleep; the engine announces sleep, then takes `bell` once more before polling. So
// a ring is never lost, and a busy engine costs the ringer no system call.
// Transmit from start: on a wire that allows it (a tap), start finding the engine asleep with
// at most kInlineFrames posted takes the transmitting side (tx_busy) and puts them on the wire
// itself, as a doorbell write starts a real NIC's DMA at once: a reply costs no wake of the
// engine thread (one cross-thread wake, 10-45 us on a small VM, was most of what the stack's
// round trip added to the floor's). More frames, or tx_busy held (the engine just woke), ring
// the doorbell as before: under load the engine thread still transmits beside the CPUs.
// models/nic_tx.pml checks the protocol: each frame once, in ring order, no doorbell lost.
#include "nic_impl.h"

#include <kcont/internal/machine_hooks.h>
#include <kcont/softint.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <thread>

namespace kcont::net {

namespace {
// The most frames start transmits itself: a reply or two; a burst is the engine's.
constexpr std::uint32_t kInlineFrames = 4;
}  // namespace

void sim_nic::impl::raise(unsigned bits) {
  intr_status.fetch_or(bits, std::memory_order_release);
  softint_schedule_cpu(intr_si, intr_ci);
}

void sim_nic::impl::ring_doorbell() {
  bell.store(true, std::memory_order_seq_cst);
  if (engine_sleeping.load(std::memory_order_seq_cst) == 0) return;
  wake_engine();
}

void sim_nic::impl::wake_engine() {
  int expected = 1;
  if (engine_sleeping.compare_exchange_strong(expected, 0, std::memory_order_seq_cst)) {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(bell_fd, &one, sizeof one);
  }
}

void sim_nic::impl::post_transmit() {
  // The engine asleep: it announced so after its last pass, with tx_busy given back, and only
  // the doorbell wakes it (no rate limit with inline_tx). The bell set first keeps the
  // protocol: an engine about to sleep sees it and makes one more (empty) pass.
  if (!inline_tx) return ring_doorbell();
  bell.store(true, std::memory_order_seq_cst);
  if (engine_sleeping.load(std::memory_order_seq_cst) == 0) return;
  std::uint32_t hw = tx_hw.load(std::memory_order_relaxed);
  const std::uint32_t prod = tx_prod.load(std::memory_order_relaxed);  // ours: we are start
  if (prod - hw > kInlineFrames || tx_busy.exchange(true, std::memory_order_acquire))
    return wake_engine();                      // the bell is set and the engine was seen asleep
  hw = tx_hw.load(std::memory_order_relaxed);  // the engine may have moved it before we took it
  const std::uint32_t first = hw;
  while (hw != prod && transmit_slot(hw)) ++hw;
  tx_busy.store(false, std::memory_order_release);
  st.tx_from_start.add(hw - first);
  if (hw != first) raise(INTR_TX);
  if (hw != prod) ring_doorbell();  // cannot happen on a wire that never answers busy
}

bool sim_nic::impl::transmit_slot(std::uint32_t hw) {
  pkt* m = tx_ring[hw & tx_mask];
  const auto r = gone.load(std::memory_order_relaxed) ? wire::tx_result::dropped
                                                      : w->transmit(*face, m->data, m->len);
  if (r == wire::tx_result::busy) return false;
  if (r == wire::tx_result::sent) {
    st.tx_frames.add();
    st.tx_bytes.add(m->len);
  } else {
    st.tx_wire_drops.add();
  }
  tx_hw.store(hw + 1, std::memory_order_release);
  return true;
}

void sim_nic::impl::engine_main() {
  const std::int64_t interval = cfg.dma_pps == 0 ? 0 : 1'000'000'000 / std::int64_t(cfg.dma_pps);
  std::int64_t next_slot = 0;  // rate limit: earliest time of the next frame
  while (!engine_stop.load(std::memory_order_acquire)) {
    // Start holds the transmitting side only for a few frames' writes.
    while (tx_busy.exchange(true, std::memory_order_acquire)) std::this_thread::yield();
    bell.store(false, std::memory_order_relaxed);
    unsigned done = 0;
    bool busy = false;
    std::int64_t wait_until = -1;
    std::uint32_t hw = tx_hw.load(std::memory_order_relaxed);
    std::uint32_t prod = tx_prod.load(std::memory_order_acquire);
    while (hw != prod && done < 64) {
      if (interval != 0) {
        const std::int64_t now = machine::now_ns();
        if (now < next_slot) {
          wait_until = next_slot;
          break;
        }
        // No credit for idle time beyond one frame: the rate is a ceiling, not an average.
        next_slot = (next_slot + interval < now ? now : next_slot) + interval;
      }
      if (!transmit_slot(hw)) {
        busy = true;
        break;
      }
      ++hw;
      ++done;
      if (hw == prod) prod = tx_prod.load(std::memory_order_acquire);
    }
    tx_busy.store(false, std::memory_order_release);
    if (done != 0) raise(INTR_TX);
    if (done != 0 && !busy && wait_until < 0) continue;  // there may be more

    // Nothing to do now: sleep until the doorbell or the rate limit's next slot.
    engine_sleeping.store(1, std::memory_order_seq_cst);
    if (bell.exchange(false, std::memory_order_seq_cst) ||
        engine_stop.load(std::memory_order_seq_cst)) {
      engine_sleeping.store(0, std::memory_order_relaxed);
      continue;
    }
    pollfd fd{bell_fd, POLLIN, 0};
    timespec ts{};
    timespec* timeout = nullptr;
    if (wait_until >= 0) {
      std::int64_t d = wait_until - machine::now_ns();
      if (d < 0) d = 0;
      ts = {static_cast<time_t>(d / 1'000'000'000), static_cast<long>(d % 1'000'000'000)};
      timeout = &ts;
    }
    ::ppoll(&fd, 1, timeout, nullptr);
    engine_sleeping.store(0, std::memory_order_seq_cst);
    if (fd.revents & POLLIN) {
      std::uint64_t count;
      [[maybe_unused]] ssize_t r = ::read(bell_fd, &count, sizeof count);
    }
  }
}

// The wire's receive fd (a tap) is watched by the interrupt CPU's loop (machine::watch_fd):
// readiness is the NIC's RX line. The callback moves frames into the RX ring in interrupt
// context; with the ring full it pauses the watch, and refill_rx resumes it. Both run on the
// interrupt CPU, so rx_paused needs no ordering beyond that thread (up() resets it before either
// can run; down() withdraws the watch from refill_rx with rx_resumable before unwatching it).
void sim_nic::impl::rx_ready(void* arg) {
  auto& d = *static_cast<impl*>(arg);
  machine::fd_watch* watch;
  while ((watch = d.rx_watch.load(std::memory_order_acquire)) == nullptr)
    std::this_thread::yield();  // up() is about to publish it
  if (!d.w->pull_rx(*d.face)) {
    machine::fd_watch_pause(watch);
    if (!d.gone.exchange(true, std::memory_order_acq_rel))
      d.report(d.cfg.name + ": the wire is gone (" + d.w->describe() +
               "); transmit drops from now on");
    return;
  }
  if (!d.face->hw_rx_has_room()) {
    d.rx_paused = true;
    machine::fd_watch_pause(watch);
  }
}

bool sim_nic::hw_rx_has_room() const {
  return d_->rx_fill.load(std::memory_order_relaxed) != d_->rx_post.load(std::memory_order_seq_cst);
}

sim_nic::rx_result sim_nic::hw_receive(const std::uint8_t* frame, std::size_t len) {
  impl& d = *d_;
  d.rx_users.fetch_add(1, std::memory_order_seq_cst);
  struct leave {
    impl& d;
    ~leave() { d.rx_users.fetch_sub(1, std::memory_order_release); }
  } guard{d};
  if (!d.rx_enabled.load(std::memory_order_seq_cst)) return rx_result::down;
  if (len < 14) {
    d.st.rx_runts.add();
    return rx_result::runt;
  }
  if (len > frame_max) {
    d.st.rx_oversized.add();
    return rx_result::oversized;
  }
  const std::uint32_t fill = d.rx_fill.load(std::memory_order_relaxed);
  if (fill == d.rx_post.load(std::memory_order_acquire)) return rx_result::no_buffer;
  pkt* m = d.rx_ring[fill & d.rx_mask];
  std::memcpy(m->data, frame, len);
  m->len = static_cast<std::uint32_t>(len);
  d.rx_fill.store(fill + 1, std::memory_order_release);
  d.st.rx_frames.add();
  d.raise(INTR_RX);
  return rx_result::accepted;
}

void sim_nic::doorbell() {
  d_->ring_doorbell();
}

void sim_nic::wait_for_rx_room(sim_nic& receiver) {
  receiver.d_->rx_room_waiter.store(this, std::memory_order_seq_cst);
}

bool sim_nic::wire_gone() const {
  return d_->gone.load(std::memory_order_acquire);
}

// ---- the in-memory wire ---------------------------------------------------------------------

void memory_wire::connect(sim_nic& a, sim_nic* b) {
  a_ = &a;
  b_ = b;
  a.attach(*this);
  if (b != nullptr) b->attach(*this);
}

wire::tx_result memory_wire::transmit(sim_nic& from, const std::uint8_t* frame, std::size_t len) {
  sim_nic* peer = b_ == nullptr ? a_ : (&from == a_ ? b_ : a_);
  auto r = peer->hw_receive(frame, len);
  if (r == sim_nic::rx_result::no_buffer) {
    // Flow control: ask to be rung when the receiver posts buffers, then look once more
    // (the receiver posts, then takes the waiter: one of us sees the other).
    from.wait_for_rx_room(*peer);
    r = peer->hw_receive(frame, len);
    if (r == sim_nic::rx_result::no_buffer) return tx_result::busy;
  }
  return r == sim_nic::rx_result::down ? tx_result::dropped : tx_result::sent;
}

std::string memory_wire::describe() const {
  return b_ == nullptr ? "in-memory wire, looped back" : "in-memory wire, two NICs back to back";
}

}  // namespace kcont::net
