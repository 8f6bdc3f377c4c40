// net area: the simulated NIC (net/: kcont::net::sim_nic on a memory_wire looped back, fed by
// a traffic_source of 2 producer threads, 128-byte frames, interrupts on CPU 0), per start
// mode (taskctx: the 2015 diff's serialiser; taskq: start deferred to a task queue; naive:
// txeof calls if_start itself) and TX ring size: packets per second (with the spread over
// 100 ms intervals) and TX completion -> next start latency (a txeof that found the interface
// oactive to the first descriptor the next start posts). The modes are each other's peers.
// Then the UDP echo rows (area_net_echo.cpp): the IPv4 stack on the NIC per start mode, beside
// the floor.
#include <kcont/nicsim.h>
#include <kcont/traffic.h>

#include <cmath>
#include <memory>

#include "kcont_bench.h"

namespace kcont_bench {

namespace {

struct nic_result {
  std::vector<double> mpps;  // per 100 ms interval
  kcont::net::latency_histogram::snapshot restart;
  std::uint64_t stalls = 0, frames = 0;
  double seconds = 0;
};

nic_result run_nic(const context& ctx, kcont::net::start_mode mode, unsigned tx_ring, int millis) {
  using namespace kcont::net;
  unpin_this_thread();
  kcont::runtime rt(ctx.runtime_cfg());
  nic_config cfg;
  cfg.tx_ring = tx_ring;
  cfg.mode = mode;
  pkt_pool pool(4 * (cfg.tx_ring + cfg.rx_ring + cfg.ifq_maxlen));
  nic_result r;
  {
    sim_nic nic(rt, cfg, pool);
    memory_wire w;
    w.connect(nic);
    nic.attach(w);
    nic.up();
    traffic_source src(nic, pool, {2, 0, 128, true});  // retry when full, as kcont-nicsim
    src.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // warm up
    const auto restart0 = nic.restart_latency().take();
    std::uint64_t last = nic.stats().tx_frames;
    const std::uint64_t first = last;
    const std::int64_t t0 = now_ns();
    std::int64_t tl = t0;
    for (int i = 0; i < millis / 100; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const std::int64_t t = now_ns();
      const std::uint64_t f = nic.stats().tx_frames;
      r.mpps.push_back(static_cast<double>(f - last) / (static_cast<double>(t - tl) / 1e9) / 1e6);
      last = f;
      tl = t;
    }
    r.seconds = static_cast<double>(tl - t0) / 1e9;
    r.frames = last - first;
    r.restart = nic.restart_latency().take() - restart0;
    src.stop();
    src.join();
    // On the in-memory wire every sent frame arrives: let the ones in flight land.
    const std::int64_t until = now_ns() + 2'000'000'000;
    while (now_ns() < until) {
      const nic_stats s = nic.stats();
      if (s.rx_delivered + s.rx_overruns + s.tx_wire_drops + src.dropped() >= src.sent()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    r.stalls = nic.stats().stalls;
    nic.down();
  }
  rt.stop();
  pin_this_thread(0);
  return r;
}

}  // namespace

void area_net(context& ctx) {
  using kcont::net::start_mode;
  const int millis = ctx.pick(500, 2000);
  report& rep = ctx.rep();
  std::printf(
      "\nsimulated NIC, memory wire looped back, 2 producers, 128-byte frames, %d ms per row\n"
      "(Mpps: whole-run rate, min..max over 100 ms intervals; restart = TX completion that\n"
      "found the interface oactive -> first descriptor of the next start)\n",
      millis);
  std::printf("  %-8s %7s %8s %-17s %10s %10s %10s %9s %7s\n", "mode", "TX ring", "Mpps",
              "min..max", "restart p50", "p99 us", "p99.9 us", "restarts", "stalls");
  for (unsigned ring : {32u, 256u}) {
    double taskctx_mpps = 0;
    for (start_mode m : {start_mode::taskctx, start_mode::taskq, start_mode::naive}) {
      const std::string mode = kcont::net::start_mode_name(m);
      ctx.step("mode " + mode + ", TX ring " + std::to_string(ring));
      nic_result r = run_nic(ctx, m, ring, millis);
      spread s = spread_of(r.mpps);
      s.value = r.seconds > 0 ? static_cast<double>(r.frames) / r.seconds / 1e6 : 0;
      const std::string base = "net." + mode + ".ring" + std::to_string(ring);
      rep.add(base + ".mpps", s, "Mpps");
      const bool any = r.restart.total() != 0;
      const double nan = std::nan("");
      const double p50 = any ? static_cast<double>(r.restart.percentile(0.5)) : nan;
      const double p99 = any ? static_cast<double>(r.restart.percentile(0.99)) : nan;
      const double p999 = any ? static_cast<double>(r.restart.percentile(0.999)) : nan;
      if (any) {
        rep.add(base + ".restart.p50", p50, "ns");
        rep.add(base + ".restart.p99", p99, "ns");
        rep.add(base + ".restart.p99.9", p999, "ns");
      }
      rep.add(base + ".restarts", static_cast<double>(r.restart.total()), "count");
      rep.add(base + ".stalls", static_cast<double>(r.stalls), "count");
      char range[48];
      std::snprintf(range, sizeof range, "%.3f..%.3f", s.min, s.max);
      std::printf("  %-8s %7u %8.3f %-17s %10.1f %10.1f %10.1f %9llu %7llu\n", mode.c_str(), ring,
                  s.value, range, p50 / 1000, p99 / 1000, p999 / 1000,
                  static_cast<unsigned long long>(r.restart.total()),
                  static_cast<unsigned long long>(r.stalls));
      std::fflush(stdout);
      ctx.plots().nic.push_back({mode, ring, s.value});
      if (m == start_mode::taskctx)
        taskctx_mpps = s.value;
      else
        ctx.ratio(base + ".mpps_over_taskctx",
                  mode + " / taskctx pps, TX ring " + std::to_string(ring), s.value / taskctx_mpps);
    }
  }
  net_echo_rows(ctx);
}

}  // namespace kcont_bench
