// The driver of the simulated NIC, written the way myx(4) is after the 2015 taskctx diff:
// start fills the TX ring inside the ifqueue's serialiser and sets oactive when it is full;
// the interrupt handler's txeof reclaims descriptors outside the serialiser and clears oactive
// only inside it (ifq_restart). In naive mode txeof clears oactive itself, outside, and calls
// if_start: the race the diff fixed (start finds the ring full, txeof empties it and clears
// oactive, then start sets oactive: nothing will ever clear it again).
#include "nic_impl.h"

#include <kcont/internal/machine_hooks.h>
#include <kcont/softint.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <system_error>

namespace kcont::net {
namespace {

bool power_of_two_in(unsigned v, unsigned lo, unsigned hi) {
  return v >= lo && v <= hi && (v & (v - 1)) == 0;
}

const nic_config& checked(const nic_config& cfg, kcont::runtime& rt) {
  if (!power_of_two_in(cfg.tx_ring, 4, 65536) || !power_of_two_in(cfg.rx_ring, 4, 65536))
    throw std::invalid_argument("kcont-net: ring sizes must be powers of two in 4..65536 (tx " +
                                std::to_string(cfg.tx_ring) + ", rx " +
                                std::to_string(cfg.rx_ring) + ")");
  if (cfg.intr_cpu >= rt.ncpu())
    throw std::invalid_argument("kcont-net: intr_cpu " + std::to_string(cfg.intr_cpu) +
                                " is not a CPU of the runtime (it has " +
                                std::to_string(rt.ncpu()) + ")");
  if (cfg.ifq_maxlen == 0) throw std::invalid_argument("kcont-net: ifq_maxlen must be >= 1");
  return cfg;
}

void spin_for(std::int64_t ns) {
  const std::int64_t until = machine::now_ns() + ns;
  while (machine::now_ns() < until) {
  }
}

void txeof(sim_nic::impl& d) {
  const std::uint32_t hw = d.tx_hw.load(std::memory_order_acquire);
  std::uint32_t cons = d.tx_cons.load(std::memory_order_relaxed);
  if (cons == hw) return;
  while (cons != hw) {
    pkt*& slot = d.tx_ring[cons & d.tx_mask];
    d.pool.put(slot);
    slot = nullptr;
    ++cons;
  }
  // seq_cst: pairs with start's ifq_set_oactive followed by its second look at tx_cons.
  d.tx_cons.store(cons, std::memory_order_seq_cst);
  ifqueue* ifq = &d.ifn.if_snd;
  if (d.cfg.mode == start_mode::naive) {
    if (ifq_is_oactive(ifq)) d.restart_stamp.store(machine::now_ns(), std::memory_order_relaxed);
    ifq_clr_oactive(ifq);  // outside the serialiser: the race
    if (!ifq_empty(ifq)) if_start(&d.ifn);
    return;
  }
  if (ifq_is_oactive(ifq)) {
    d.restart_stamp.store(machine::now_ns(), std::memory_order_relaxed);
    d.st.restarts.add();
    ifq_restart(ifq);
  }
}

void rxeof(sim_nic::impl& d) {
  const std::uint32_t fill = d.rx_fill.load(std::memory_order_acquire);
  pkt* head = nullptr;
  pkt** tail = &head;
  while (d.rx_cons != fill) {
    pkt*& slot = d.rx_ring[d.rx_cons & d.rx_mask];
    *tail = slot;
    tail = &slot->next;
    slot->next = nullptr;
    slot = nullptr;
    ++d.rx_cons;
  }
  if (head != nullptr) {
    std::lock_guard<std::mutex> lk(d.in_mu);
    if (d.in_tail != nullptr)
      d.in_tail->next = head;
    else
      d.in_head = head;
    d.in_tail = reinterpret_cast<pkt*>(reinterpret_cast<char*>(tail) - offsetof(pkt, next));
  }
  d.refill_rx();
  // EBUSY: already queued and not yet started; it will see these frames.
  if (head != nullptr) kcont_schedule(&d.input_kc, d.intr_ci, 0);
}

}  // namespace

void simx_start(ifnet* ifp) {
  auto& d = *static_cast<sim_nic::impl*>(ifp->if_softc);
  ifqueue* ifq = &ifp->if_snd;
  std::uint32_t prod = d.tx_prod.load(std::memory_order_relaxed);  // only start writes it
  unsigned posted = 0;
  for (;;) {
    if (prod - d.tx_cons.load(std::memory_order_acquire) == d.tx_size) {
      // The injected delay widens the window only where the race lives: a start running
      // off the interrupt CPU (on it, txeof cannot run meanwhile; a delay there would only
      // slow the interface down).
      if (d.cfg.race_delay_ns > 0 && machine::this_thread_cpu() != d.intr_ci)
        spin_for(d.cfg.race_delay_ns);
      ifq_set_oactive(ifq);
      // The diff leaves one window: txeof may empty the ring and find oactive still clear
      // between our look at the ring and the line above. Look again (seq_cst, paired with
      // txeof's store of tx_cons) and carry on if it did.
      if (d.cfg.mode != start_mode::naive && d.cfg.oactive_recheck &&
          prod - d.tx_cons.load(std::memory_order_seq_cst) != d.tx_size) {
        ifq_clr_oactive(ifq);
        continue;
      }
      break;
    }
    pkt* m = ifq_dequeue(ifq);
    if (m == nullptr) break;
    d.tx_ring[prod & d.tx_mask] = m;
    ++prod;
    d.tx_prod.store(prod, std::memory_order_release);
    if (++posted == 1) {
      if (std::int64_t t = d.restart_stamp.exchange(0, std::memory_order_relaxed); t != 0)
        d.restart_lat.record(static_cast<std::uint64_t>(machine::now_ns() - t));
    }
  }
  if (posted != 0) d.post_transmit();
}

void simx_intr(void* arg) {
  auto& d = *static_cast<sim_nic::impl*>(arg);
  const unsigned status = d.intr_status.exchange(0, std::memory_order_acq_rel);
  d.st.interrupts.add();
  if (status & INTR_TX) txeof(d);
  if (status & INTR_RX) rxeof(d);
}

void sim_nic::impl::refill_rx() {
  std::uint32_t post = rx_post.load(std::memory_order_relaxed);
  const std::uint32_t before = post;
  while (post - rx_cons < rx_size) {
    pkt* m = pool.get();
    if (m == nullptr) {
      st.rx_starved.add();  // input processing returns buffers and refills again
      break;
    }
    rx_ring[post & rx_mask] = m;
    ++post;
  }
  if (post == before) return;
  rx_post.store(post, std::memory_order_seq_cst);
  if (rx_paused) {
    rx_paused = false;
    // down() withdraws the watch (rx_resumable false) before it unwatches it, and the unwatch
    // cannot complete while this handler runs on the interrupt CPU: a watch seen here is alive.
    if (rx_resumable.load(std::memory_order_seq_cst))
      machine::fd_watch_resume(rx_watch.load(std::memory_order_acquire));
  }
  if (sim_nic* waiter = rx_room_waiter.exchange(nullptr, std::memory_order_seq_cst))
    waiter->doorbell();
}

void simx_input(void* arg, kcont_t* kc) {
  auto& d = *static_cast<sim_nic::impl*>(arg);
  kcont_ack(kc);  // from here on a new rxeof schedules us again
  pkt* m;
  {
    std::lock_guard<std::mutex> lk(d.in_mu);
    m = d.in_head;
    d.in_head = d.in_tail = nullptr;
  }
  while (m != nullptr) {
    pkt* next = m->next;
    frame_info fi;
    const frame_check verdict = check_frame(m->data, m->len, &fi);
    switch (verdict) {
      case frame_check::ok: {
        std::uint64_t& expect = d.next_seq[fi.flow];
        if (fi.seq < expect) {
          d.st.rx_out_of_order.add();
        } else {
          if (fi.seq > expect) d.st.rx_gaps.add(fi.seq - expect);
          expect = fi.seq + 1;
        }
        d.st.rx_delivered.add();
        d.st.rx_bytes.add(m->len);
        d.delivery_lat.record(static_cast<std::uint64_t>(machine::now_ns() - fi.sent_ns));
        if (d.rx_handler) d.rx_handler(fi, *m);
        break;
      }
      case frame_check::foreign:
        d.st.rx_foreign.add();
        if (d.input_handler) {
          m->next = nullptr;  // the handler's now: it may queue it elsewhere
          d.input_handler(m);
          m = next;
          continue;
        }
        break;
      default:  // dropped: counted by reason
        d.drop_counter(verdict).add();
        break;
    }
    d.pool.put(m);
    m = next;
  }
  d.refill_rx();  // the pool may have run dry while these were in flight
}

void simx_watchdog(void* arg) {
  auto& d = *static_cast<sim_nic::impl*>(arg);
  ifqueue* ifq = &d.ifn.if_snd;
  // A restart already queued (taskq mode, on a busy machine) is slow, not stuck.
  const bool stuck =
      (d.ifn.if_flags.load() & IFF_RUNNING) && ifq_is_oactive(ifq) && !ifq_empty(ifq) &&
      !task_pending(&ifq->ifq_restart_task) &&
      d.tx_cons.load(std::memory_order_acquire) == d.tx_prod.load(std::memory_order_acquire);
  const std::int64_t now = machine::now_ns();
  if (!stuck) {
    d.stuck_since = 0;
  } else if (d.stuck_since == 0) {
    d.stuck_since = now;
  } else if (now - d.stuck_since >= std::int64_t(d.cfg.stall_ms) * 1'000'000) {
    d.st.stalls.add();
    char line[200];
    std::snprintf(
        line, sizeof line, "%s: stall: %u packets queued, oactive set, TX ring empty for %lld ms%s",
        d.cfg.name.c_str(), ifq_len(ifq), static_cast<long long>((now - d.stuck_since) / 1'000'000),
        d.cfg.watchdog_recover ? "; restarting" : "");
    d.report(line);
    d.stuck_since = 0;
    if (d.cfg.watchdog_recover) ifq_restart(ifq);
  }
  callout_schedule(&d.watchdog, std::max(1, mstohz(static_cast<int>(d.cfg.stall_ms / 4))));
}

void sim_nic::impl::report(const std::string& line) {
  if (event_handler)
    event_handler(line);
  else
    std::fprintf(stderr, "kcont-nicsim: %s\n", line.c_str());
}

// ---- construction, up/down, output ---------------------------------------------------------

sim_nic::impl::impl(sim_nic* f, kcont::runtime& r, nic_config c, pkt_pool& p)
    : face(f),
      rt(r),
      cfg(checked(c, r)),
      pool(p),
      tx_size(cfg.tx_ring),
      tx_mask(cfg.tx_ring - 1),
      tx_ring(new pkt*[cfg.tx_ring]()),
      rx_size(cfg.rx_ring),
      rx_mask(cfg.rx_ring - 1),
      rx_ring(new pkt*[cfg.rx_ring]()) {
  kcont::runtime_scope scope(rt);
  intr_ci = rt.cpu(cfg.intr_cpu);
  std::snprintf(ifn.if_xname, sizeof ifn.if_xname, "%s", cfg.name.c_str());
  ifq_init(&ifn.if_snd, cfg.ifq_maxlen);
  ifn.if_start = simx_start;
  ifn.if_softc = this;
  if (cfg.mode == start_mode::taskq) {
    tq = taskq_create("simtx", 1, 0, TASKQ_MPSAFE);
    if (tq == nullptr) throw std::runtime_error("kcont-net: taskq_create failed");
  }
  if_attach(&ifn, tq);
  if (kcont::internal::queue_timing(rt)) {
    ifq_stats_name = cfg.name + " ifq";
    ifq_stats.emplace(rt, &ifn.if_snd.ifq_serializer, ifq_stats_name.c_str());
  }
  bell_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (bell_fd < 0) throw std::system_error(errno, std::generic_category(), "kcont-net: eventfd");
  if (kcont_init(&input_kc, wq_softnet, nullptr, simx_input, this, 0) != 0)
    throw std::runtime_error("kcont-net: kcont_init failed");
  input_ready = true;
  callout_init(&watchdog, CALLOUT_MPSAFE);
  callout_setfunc(&watchdog, simx_watchdog, this);
  callout_bind(&watchdog, intr_ci);
}

sim_nic::impl::~impl() {
  kcont::runtime_scope scope(rt);
  ifq_stats.reset();
  callout_destroy(&watchdog);
  if (input_ready) kcont_destroy(&input_kc);
  if (tq != nullptr) taskq_destroy(tq);
  ::close(bell_fd);
}

sim_nic::sim_nic(kcont::runtime& rt, nic_config cfg, pkt_pool& pool)
    : d_(std::make_unique<impl>(this, rt, std::move(cfg), pool)) {}

sim_nic::~sim_nic() {
  down();
}

void sim_nic::attach(wire& w) {
  if (d_->is_up) throw std::logic_error("kcont-net: attach a wire before up()");
  d_->w = &w;
}

void sim_nic::set_rx_handler(std::function<void(const frame_info&, const pkt&)> fn) {
  d_->rx_handler = std::move(fn);
}

void sim_nic::set_input(std::function<void(pkt*)> fn) {
  if (d_->is_up) throw std::logic_error("kcont-net: set_input before up()");
  d_->input_handler = std::move(fn);
}

void sim_nic::set_event_handler(std::function<void(const std::string&)> fn) {
  d_->event_handler = std::move(fn);
}

void sim_nic::up() {
  impl& d = *d_;
  if (d.is_up) return;
  if (d.w == nullptr) throw std::logic_error("kcont-net: up() without a wire");
  kcont::runtime_scope scope(d.rt);
  d.intr_si = softint_establish_rt(d.rt, SOFTINT_HARDINTR | SOFTINT_MPSAFE, simx_intr, &d);
  d.rx_paused = false;  // nothing else runs on this NIC yet
  d.rx_resumable.store(true, std::memory_order_seq_cst);
  d.refill_rx();  // later refills run on the interrupt CPU
  d.rx_enabled.store(true, std::memory_order_seq_cst);
  d.engine_stop.store(false);
  d.gone.store(false);
  d.inline_tx = d.w->transmits_from_start() && d.cfg.dma_pps == 0;
  d.engine = std::thread([&d] { d.engine_main(); });
  if (int fd = d.w->rx_fd(*this); fd >= 0)
    d.rx_watch.store(machine::watch_fd(d.intr_ci, fd, impl::rx_ready, &d),
                     std::memory_order_release);
  d.ifn.if_flags.fetch_or(IFF_UP | IFF_RUNNING);
  callout_schedule(&d.watchdog, std::max(1, mstohz(static_cast<int>(d.cfg.stall_ms / 4))));
  d.is_up = true;
}

namespace {

// Everything is quiet (no engine, interrupt, start or input runs): every buffer goes back.
void reclaim_all(sim_nic::impl& d) {
  while (pkt* m = ifq_dequeue(&d.ifn.if_snd)) d.pool.put(m);
  const std::uint32_t tx_prod = d.tx_prod.load();
  for (std::uint32_t i = d.tx_cons.load(); i != tx_prod; ++i) {
    d.pool.put(d.tx_ring[i & d.tx_mask]);
    d.tx_ring[i & d.tx_mask] = nullptr;
  }
  d.tx_cons.store(tx_prod);
  d.tx_hw.store(tx_prod);
  const std::uint32_t rx_post = d.rx_post.load();
  for (std::uint32_t i = d.rx_cons; i != rx_post; ++i) {
    d.pool.put(d.rx_ring[i & d.rx_mask]);
    d.rx_ring[i & d.rx_mask] = nullptr;
  }
  d.rx_cons = rx_post;
  d.rx_fill.store(rx_post);
  for (pkt* m = d.in_head; m != nullptr;) {
    pkt* next = m->next;
    d.pool.put(m);
    m = next;
  }
  d.in_head = d.in_tail = nullptr;
  d.intr_status.store(0);
  d.restart_stamp.store(0);
  d.rx_room_waiter.store(nullptr);
  ifq_clr_oactive(&d.ifn.if_snd);
}

}  // namespace

void sim_nic::down() {
  impl& d = *d_;
  if (!d.is_up) return;
  kcont::runtime_scope scope(d.rt);
  d.ifn.if_flags.fetch_and(~IFF_RUNNING);  // start does nothing from now on
  if_start_barrier(&d.ifn);
  d.engine_stop.store(true, std::memory_order_seq_cst);
  d.ring_doorbell();
  d.engine.join();
  // rx_ready waits for the watch to be published, so it stays published until unwatched.
  if (machine::fd_watch* watch = d.rx_watch.load(std::memory_order_acquire)) {
    d.rx_resumable.store(false, std::memory_order_seq_cst);  // refill_rx leaves it alone
    machine::unwatch_fd(watch);                              // no rx_ready runs or will run
    d.rx_watch.store(nullptr, std::memory_order_release);
  }
  d.rx_enabled.store(false, std::memory_order_seq_cst);  // a peer's engine stops delivering
  while (d.rx_users.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  softint_disestablish(d.intr_si);  // waits for a running interrupt, drops a pending one
  d.intr_si = nullptr;
  callout_halt(&d.watchdog, nullptr);
  kcont_halt(&d.input_kc);
  if_start_barrier(&d.ifn);  // a last txeof may have queued a restart
  reclaim_all(d);
  d.ifn.if_flags.fetch_and(~IFF_UP);
  d.is_up = false;
}

int sim_nic::output(pkt* m) {
  impl& d = *d_;
  if (!(d.ifn.if_flags.load(std::memory_order_acquire) & IFF_RUNNING)) return ENETDOWN;
  m->stamp_ns = machine::now_ns();
  if (int e = ifq_enqueue(&d.ifn.if_snd, m); e != 0) {
    d.st.tx_queue_drops.add();
    return e;
  }
  d.st.tx_enqueued.add();
  if_start(&d.ifn);
  return 0;
}

ifnet* sim_nic::ifp() {
  return &d_->ifn;
}

const nic_config& sim_nic::config() const {
  return d_->cfg;
}

kcont::runtime& sim_nic::rt() const {
  return d_->rt;
}

nic_stats sim_nic::stats() const {
  const impl& d = *d_;
  nic_stats s;
#define KCONT_NIC_COPY_COUNTER(name) s.name = d.st.name.get();
  KCONT_NIC_REPORTED_COUNTERS(KCONT_NIC_COPY_COUNTER)
#undef KCONT_NIC_COPY_COUNTER
  s.oactive_sets = d.ifn.if_snd.ifq_oactive_sets.load(std::memory_order_relaxed);
  return s;
}

const latency_histogram& sim_nic::restart_latency() const {
  return d_->restart_lat;
}

const latency_histogram& sim_nic::delivery_latency() const {
  return d_->delivery_lat;
}

bool parse_start_mode(const std::string& name, start_mode& out) {
  if (name == "taskctx")
    out = start_mode::taskctx;
  else if (name == "taskq")
    out = start_mode::taskq;
  else if (name == "naive")
    out = start_mode::naive;
  else
    return false;
  return true;
}

const char* start_mode_name(start_mode m) {
  static constexpr const char* kNames[] = {"taskctx", "taskq", "naive"};
  const auto i = static_cast<std::size_t>(m);
  return i < std::size(kNames) ? kNames[i] : "?";
}

}  // namespace kcont::net
