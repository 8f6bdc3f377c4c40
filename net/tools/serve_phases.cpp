// The phases of --serve (serve_phases.h): kcont on the tap, the floor on the same tap, kcont on
// the in-memory wire, and what they share (the load in the namespace, the pusher, the live
// loop, the samples).
#include "serve_phases.h"

#include <kcont/inet.h>
#include <kcont/nicsim.h>
#include <kcont/tap_wire.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <thread>

#include "floor_responder.h"
#include "mem_peer.h"
#include "netns.h"
#include "ping_runner.h"
#include "udp_load.h"

namespace kcont::net {
namespace {

constexpr ether_addr kNicMac{0x02, 0x6b, 0x63, 0x00, 0x00, 0x02};
constexpr std::uint16_t kEchoPort = 7, kSinkPort = 9;
// After --seconds, a phase still waits this long for ping and the UDP count to finish.
constexpr double kGraceSeconds = 120;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// --push-pps: the stack sends datagrams of its own to the host's discard port from a thread
// that is not a CPU of the runtime (send_udp resolves the host through ARP first, and its
// start runs off the interrupt CPU, where --race-delay-us widens the oactive race).
//
// Locks used to protect the fields of pusher:
//   [I] immutable after construction
//   [M] mu_
//   [a] atomic, relaxed
class pusher {
 public:
  pusher(inet_stack& stack, ipv4_addr dst, std::uint64_t pps) : stack_(stack), dst_(dst) {
    if (pps != 0) thread_ = std::thread([this, pps] { run(pps); });
  }
  ~pusher() { stop(); }
  void stop() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }
  std::uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }

 private:
  void run(std::uint64_t pps) {
    const std::uint8_t payload[32] = {'k', 'c', 'o', 'n', 't', '-', 'n', 'i', 'c', 's', 'i', 'm'};
    const auto gap = std::chrono::nanoseconds(1'000'000'000 / static_cast<std::int64_t>(pps));
    auto next = std::chrono::steady_clock::now();
    std::unique_lock lk(mu_);
    while (!stop_) {
      lk.unlock();
      if (stack_.send_udp(dst_, kSinkPort, kSinkPort, payload) == 0)
        sent_.fetch_add(1, std::memory_order_relaxed);
      lk.lock();
      next = std::max(next + gap, std::chrono::steady_clock::now() - gap);
      cv_.wait_until(lk, next, [this] { return stop_; });
    }
  }

  inet_stack& stack_;    // [I]
  const ipv4_addr dst_;  // [I]
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                   // [M]
  std::atomic<std::uint64_t> sent_{0};  // [a]
  std::thread thread_;                  // [I]
};

// What a load has seen so far: its UDP echoes and its pings.
void fill_load(serve_sample& s, const echo_tracker& udp, std::uint64_t ping_answered,
               const latency_histogram& ping_rtt) {
  s.udp = udp.counts();
  s.udp_rtt = udp.rtt().take();
  s.ping_answered = ping_answered;
  s.ping_rtt = ping_rtt.take();
}

// Stock ping and the UDP load, in the namespace.
struct ns_load {
  explicit ns_load(const nicsim_options& o)
      : udp(udp_load_config{serve_host, serve_nic, kEchoPort, kSinkPort, o.udp_window, o.udp_size,
                            o.udp_pps, o.udp_count, 1'000'000'000}) {}
  void start(const netns_handle& ns, const nicsim_options& o) {
    udp.start(ns);
    if (const std::uint64_t n = serve_ping_count(o); n != 0)
      pinging = ping.start(ns, serve_nic_text, n, o.ping_interval_us, ping_why);
  }
  bool finished(const nicsim_options& o, bool time_up) const {
    const bool udp_end = udp.done() || (o.udp_count == 0 && time_up);
    return udp_end && (!pinging || ping.done());
  }
  void stop() {
    ping.stop();
    udp.stop();
  }
  void fill(serve_sample& s) const { fill_load(s, udp.tracker(), ping.answered(), ping.rtt()); }
  void finish(serve_phase& p) const {
    const ping_result r = ping.result();
    p.ping_ran = pinging && r.ran;
    p.ping_sent = r.transmitted;
    p.ping_received = r.received;
    p.ping_problem = pinging ? r.problem : ping_why;
    p.push_sunk = udp.sunk();
    if (!udp.error().empty()) p.notes.push_back("UDP load: " + udp.error());
    if (!udp.reached()) p.notes.push_back("UDP load: no echo in the 5 s warm-up");
  }

  udp_load udp;
  ping_runner ping;
  bool pinging = false;
  std::string ping_why;
};

// Prints the live line once a second until `finished(time_up)` (or Ctrl-C, or the grace
// period is over); returns the phase's length in seconds.
double run_phase(const nicsim_options& o, const std::string& label,
                 const std::function<serve_sample()>& sample,
                 const std::function<bool(bool)>& finished,
                 const volatile std::sig_atomic_t& interrupted) {
  const auto t0 = std::chrono::steady_clock::now();
  serve_sample before = sample();
  double last = 0;
  for (unsigned second = 1;; ++second) {
    bool end = false;
    for (int i = 0; i < 10 && !end; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const double t = seconds_since(t0);
      end = interrupted != 0 || finished(t >= o.seconds) || t >= o.seconds + kGraceSeconds;
    }
    const double now = seconds_since(t0);
    const serve_sample s = sample();
    if (!o.quiet) print_serve_live(label, second, s, before, now - last);
    before = s;
    last = now;
    if (end) return now;
  }
}

void add_nic_drops(serve_sample& s, const nic_stats& n) {
  const std::pair<const char*, std::uint64_t> hw[] = {{"nic_send_queue_full", n.tx_queue_drops},
                                                      {"nic_wire_refused", n.tx_wire_drops},
                                                      {"nic_rx_runt", n.rx_runts},
                                                      {"nic_rx_oversized", n.rx_oversized},
                                                      {"nic_rx_overrun", n.rx_overruns}};
  for (const auto& [why, count] : hw)
    if (count != 0) s.drops.emplace_back(why, count);
}

void add_inet_drops(serve_sample& s, const inet_stats& st) {
  for (std::size_t i = 0; i < inet_drop_reasons; ++i)
    if (st.drops[i] != 0)
      s.drops.emplace_back(inet_drop_name(static_cast<inet_drop>(i)), st.drops[i]);
}

// The kcont responder's side of a sample: its NIC's frames and stalls, drops by reason.
serve_sample kcont_sample(const sim_nic& nic, const inet_stack& stack) {
  serve_sample s;
  const nic_stats n = nic.stats();
  s.rx = n.rx_frames;
  s.tx = n.tx_frames;
  s.stalls = n.stalls;
  add_inet_drops(s, stack.stats());
  add_nic_drops(s, n);
  return s;
}

std::string arp_note(const inet_stats& st) {
  return "ARP: answered " + std::to_string(st.arp_requests_answered) +
         " request(s) for our address, sent " + std::to_string(st.arp_requests_sent) +
         ", learned " + std::to_string(st.arp_replies_learned) + " reply(ies); ICMP echoes " +
         std::to_string(st.icmp_echoes_answered) + ", UDP echoed " + std::to_string(st.udp_echoed);
}

inet_config stack_config() {
  inet_config ic;
  ic.mac = kNicMac;
  ic.addr = serve_nic;
  ic.prefix_len = serve_prefix_len;
  ic.echo_port = kEchoPort;
  ic.sink_port = kSinkPort;
  return ic;
}

// Leaves a note and returns false when buffers did not come back.
bool pool_whole(const pkt_pool& pool, serve_phase& p) {
  if (pool.available() == pool.size()) return true;
  p.notes.push_back("LEAK: " + std::to_string(pool.size() - pool.available()) +
                    " packet buffers were not returned");
  return false;
}

std::string kcont_label(const nicsim_options& o) {
  return std::string("kcont ") + start_mode_name(o.nic.mode);
}

}  // namespace

serve_phase serve_kcont_on_tap(const nicsim_options& o, kcont::runtime& rt, tap_wire& tap,
                               const netns_handle& ns,
                               const volatile std::sig_atomic_t& interrupted, bool& ok) {
  serve_phase p;
  p.name = kcont_label(o);
  pkt_pool pool(nicsim_pool_packets(o));
  nic_config c = o.nic;
  c.name = tap.device().name();
  sim_nic nic(rt, c, pool);
  nic.set_event_handler([](const std::string& l) { std::printf("kcont-nicsim: %s\n", l.c_str()); });
  tap.connect(nic);
  inet_stack stack(nic, pool, stack_config());
  nic.up();
  ns_load load(o);
  load.start(ns, o);
  pusher push(stack, serve_host, o.push_pps);
  const auto sample = [&] {
    serve_sample s = kcont_sample(nic, stack);
    load.fill(s);
    return s;
  };
  p.seconds = run_phase(
      o, p.name, sample, [&](bool t) { return load.finished(o, t); }, interrupted);
  push.stop();
  load.stop();
  p.total = sample();
  p.pushed = push.sent();
  load.finish(p);
  p.notes.push_back(arp_note(stack.stats()));
  nic.down();
  stack.stop();
  ok = pool_whole(pool, p) && ok;
  return p;
}

serve_phase serve_floor_on_tap(const nicsim_options& o, tap_wire& tap, const netns_handle& ns,
                               const volatile std::sig_atomic_t& interrupted) {
  using namespace nicsim_floor;
  serve_phase p;
  p.name = "floor";
  floor_config fc;
  fc.mac = kNicMac;
  fc.addr = serve_nic;
  fc.echo_port = kEchoPort;
  floor_responder floor(tap.device().fd(), fc);
  ns_load load(o);
  load.start(ns, o);
  const auto sample = [&] {
    serve_sample s;
    const floor_stats f = floor.stats();
    s.rx = f.rx;
    s.tx = f.tx;
    load.fill(s);
    for (std::size_t i = 0; i < floor_drop_reasons; ++i)
      if (f.drops[i] != 0)
        s.drops.emplace_back(floor_drop_name(static_cast<floor_drop>(i)), f.drops[i]);
    return s;
  };
  p.seconds = run_phase(
      o, p.name, sample, [&](bool t) { return load.finished(o, t) || floor.tap_gone(); },
      interrupted);
  load.stop();
  floor.stop();
  p.total = sample();
  load.finish(p);
  const floor_stats f = floor.stats();
  p.notes.push_back("answered " + std::to_string(f.arp_answered) + " ARP request(s), " +
                    std::to_string(f.icmp_answered) + " ICMP echo(es), " +
                    std::to_string(f.udp_echoed) + " UDP echo(es)");
  return p;
}

serve_phase serve_kcont_in_memory(const nicsim_options& o, kcont::runtime& rt,
                                  const volatile std::sig_atomic_t& interrupted, bool& ok) {
  serve_phase p;
  p.name = kcont_label(o) + " (in memory)";
  pkt_pool pool(nicsim_pool_packets(o));
  memory_wire w;
  nic_config ca = o.nic, cb = o.nic;
  ca.name = "sim0";
  cb.name = "peer0";
  cb.mode = start_mode::taskctx;  // the peer's NIC is the test equipment, not under test
  cb.race_delay_ns = 0;
  cb.intr_cpu = (o.nic.intr_cpu + 1) % rt.ncpu();
  sim_nic a(rt, ca, pool), b(rt, cb, pool);
  a.set_event_handler([](const std::string& l) { std::printf("kcont-nicsim: %s\n", l.c_str()); });
  w.connect(a, &b);
  inet_stack stack(a, pool, stack_config());
  mem_peer_config pc;
  pc.addr = serve_host;
  pc.target = serve_nic;
  pc.ping_count = serve_ping_count(o);
  pc.ping_interval_us = o.ping_interval_us;
  pc.udp_window = o.udp_window;
  pc.udp_payload = o.udp_size;
  pc.udp_pps = o.udp_pps;
  pc.udp_count = o.udp_count;
  pc.echo_port = kEchoPort;
  pc.sink_port = kSinkPort;
  mem_peer peer(b, pool, pc);
  a.up();
  b.up();
  peer.start();
  pusher push(stack, serve_host, o.push_pps);
  const auto sample = [&] {
    serve_sample s = kcont_sample(a, stack);
    fill_load(s, peer.udp(), peer.ping().counts().answered, peer.ping().rtt());
    return s;
  };
  const std::uint64_t pings = pc.ping_count;
  p.seconds = run_phase(
      o, p.name, sample,
      [&](bool time_up) {
        return peer.done() || (o.udp_count == 0 && time_up && peer.ping().counts().sent >= pings);
      },
      interrupted);
  push.stop();
  peer.stop();
  p.total = sample();
  const echo_counts pc_counts = peer.ping().counts();
  p.ping_ran = pings != 0;
  p.ping_sent = pc_counts.sent;
  p.ping_received = pc_counts.answered;
  if (pc_counts.corrupt != 0)
    p.ping_problem = std::to_string(pc_counts.corrupt) + " echo repl(ies) not as sent";
  p.pushed = push.sent();
  p.push_sunk = peer.sunk();
  p.notes.push_back(
      std::string("the built-in peer ") + (peer.resolved() ? "resolved" : "could NOT resolve") +
      " the stack through ARP; it answered " + std::to_string(peer.arp_answered()) +
      " ARP request(s) from the stack; bad checksums " + std::to_string(peer.bad_checksums()) +
      ", send failures " + std::to_string(peer.send_failures()));
  p.notes.push_back(arp_note(stack.stats()));
  a.down();
  b.down();
  stack.stop();
  ok = pool_whole(pool, p) && ok;
  if (pc_counts.corrupt != 0) ok = false;
  return p;
}

}  // namespace kcont::net
