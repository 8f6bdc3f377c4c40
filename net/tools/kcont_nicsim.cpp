// kcont-nicsim: simulated NICs driven by kcont, with live statistics once a second and a
// summary at the end. See --help (nicsim_options.cpp).
#include <kcont/internal/machine_hooks.h>
#include <kcont/nicsim.h>
#include <kcont/traffic.h>

#include "nicsim_options.h"
#include "nicsim_report.h"
#include "nicsim_runtime.h"
#include "nicsim_tap.h"
#include "nicsim_wires.h"
#include "serve.h"

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

using namespace kcont::net;

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void on_signal(int) {
  g_interrupted = 1;
}

double seconds_since(std::int64_t t0) {
  return static_cast<double>(kcont::machine::now_ns() - t0) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  nicsim_options o;
  if (int rc = parse_nicsim_options(argc, argv, o); rc >= 0) return rc;

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  if (o.serve) return run_serve(o, g_interrupted);

  // The tap, inside a namespace of our own, before the runtime starts any thread (the
  // namespace's reaper is forked then). Never one in the host's default namespace.
  std::unique_ptr<nicsim_tap> net;
  std::string no_tap_why;
  if (o.wire == wire_choice::tap || o.wire == wire_choice::automatic) {
    net = open_nicsim_tap(o.tap_name, std::nullopt, no_tap_why);
    if (!net && o.wire == wire_choice::tap) {
      std::fprintf(stderr, "kcont-nicsim: --wire tap: %s\n", no_tap_why.c_str());
      return 2;
    }
  }
  const unsigned nnics = o.wire == wire_choice::pair ? 2 : 1;
  std::unique_ptr<kcont::runtime> rt;
  nic_list nics;
  pkt_pool pool(nicsim_pool_packets(o));  // bounded by parse_nicsim_options
  try {
    // A bad KCONT_* variable is refused (std::invalid_argument) like a bad option.
    rt = make_nicsim_runtime(o);
    for (unsigned i = 0; i < nnics; ++i) {
      nic_config c = o.nic;
      c.name = nnics == 1 ? "sim0" : (i == 0 ? "simA" : "simB");
      c.intr_cpu = (o.nic.intr_cpu + i) % rt->ncpu();
      nics.push_back(std::make_unique<sim_nic>(*rt, c, pool));
      nics.back()->set_event_handler(
          [](const std::string& line) { std::printf("kcont-nicsim: %s\n", line.c_str()); });
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kcont-nicsim: %s\n", e.what());
    return 2;
  }
  std::unique_ptr<wire> w = make_wire(o, nics, net.get(), no_tap_why);
  const std::string wire_text = w->describe();
  std::printf(
      "kcont-nicsim: %s, mode %s, %u CPUs, backend %s, TX ring %u, RX ring %u, send "
      "queue %u, %u producer(s), %zu-byte frames\n",
      wire_text.c_str(), start_mode_name(o.nic.mode), rt->ncpu(), kcont::backend_name(o.backend),
      o.nic.tx_ring, o.nic.rx_ring, o.nic.ifq_maxlen, o.producers, o.frame_len);
  for (auto& n : nics) n->up();

  traffic_source src(*nics[0], pool, {o.producers, o.packets, o.frame_len, !o.drop_when_full});
  const std::int64_t t0 = kcont::machine::now_ns();
  src.start();

  live_totals before = take_totals(nics, src);
  std::int64_t last = t0;
  for (unsigned second = 1;; ++second) {
    bool finished = false;  // checked every 100 ms: Ctrl-C, count reached, time up, tap gone
    for (int i = 0; i < 10 && !finished; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      finished = g_interrupted != 0 || (o.packets != 0 && src.done()) ||
                 (o.packets == 0 && seconds_since(t0) >= o.seconds) || nics[0]->wire_gone();
    }
    const std::int64_t now = kcont::machine::now_ns();
    live_totals totals = take_totals(nics, src);
    if (!o.quiet) print_live_line(second, totals, before, static_cast<double>(now - last) / 1e9);
    before = totals;
    last = now;
    if (finished) break;
  }
  src.stop();
  src.join();
  if (g_interrupted != 0) std::printf("kcont-nicsim: interrupted; shutting down cleanly\n");
  if (nics[0]->wire_gone()) std::printf("kcont-nicsim: the wire went away; shutting down\n");
  // On the in-memory wire every sent frame arrives: give the ones in flight a moment.
  if (o.wire != wire_choice::tap && !nics[0]->wire_gone()) {
    const std::int64_t until = kcont::machine::now_ns() + 2'000'000'000;
    while (kcont::machine::now_ns() < until) {
      const live_totals t = take_totals(nics, src);
      if (t.rx + t.drops >= src.sent()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  const double seconds = seconds_since(t0);
  for (auto& n : nics) n->down();
  print_summary(o, nics, src, seconds, wire_text);
  if (!o.json_path.empty() && !write_json(o.json_path, o, nics, src, seconds)) return 1;
  if (pool.available() != pool.size()) {
    std::fprintf(stderr, "kcont-nicsim: %zu packet buffers were not returned\n",
                 pool.size() - pool.available());
    return 1;
  }
  return 0;
}
