#include "nicsim_report.h"

#include <cinttypes>
#include <cstdio>

#include "json_records.h"

namespace kcont::net {
namespace {

double us(std::uint64_t ns) {
  return static_cast<double>(ns) / 1000.0;
}

}  // namespace

live_totals take_totals(const nic_list& nics, const traffic_source& src) {
  live_totals t;
  for (const auto& n : nics) {
    nic_stats s = n->stats();
    t.tx += s.tx_frames;
    t.tx_bytes += s.tx_bytes;
    t.rx += s.rx_delivered;
    t.oactive += s.oactive_sets;
    t.stalls += s.stalls;
    t.drops += s.rx_overruns + s.tx_wire_drops;
  }
  t.drops += src.dropped();
  t.restart = nics[0]->restart_latency().take();
  return t;
}

void print_live_line(unsigned second, const live_totals& now, const live_totals& before,
                     double dt) {
  const auto restart = now.restart - before.restart;
  std::printf("[%3us] tx %7.3f Mpps %8.1f Mbit/s  rx %7.3f Mpps  drops %-8" PRIu64
              " oactive %-6" PRIu64 " stalls %" PRIu64 "  restart p50/p99 %.1f/%.1f us\n",
              second, static_cast<double>(now.tx - before.tx) / dt / 1e6,
              static_cast<double>(now.tx_bytes - before.tx_bytes) * 8 / dt / 1e6,
              static_cast<double>(now.rx - before.rx) / dt / 1e6, now.drops - before.drops,
              now.oactive - before.oactive, now.stalls, us(restart.percentile(0.5)),
              us(restart.percentile(0.99)));
  std::fflush(stdout);
}

void print_summary(const nicsim_options& o, const nic_list& nics, const traffic_source& src,
                   double seconds, const std::string& wire_text) {
  std::printf("\n== kcont-nicsim summary: mode %s, %s, %.1f s ==\n", start_mode_name(o.nic.mode),
              wire_text.c_str(), seconds);
  for (const auto& n : nics) {
    const nic_stats s = n->stats();
    std::printf("%s: tx %" PRIu64 " frames (%.3f Mpps, %.1f Mbit/s), rx delivered %" PRIu64
                " (%.3f Mpps)\n",
                n->config().name.c_str(), s.tx_frames,
                static_cast<double>(s.tx_frames) / seconds / 1e6,
                static_cast<double>(s.tx_bytes) * 8 / seconds / 1e6, s.rx_delivered,
                static_cast<double>(s.rx_delivered) / seconds / 1e6);
    std::printf("  oactive transitions %" PRIu64 ", restarts %" PRIu64 ", stalls %" PRIu64
                ", interrupts %" PRIu64 "\n",
                s.oactive_sets, s.restarts, s.stalls, s.interrupts);
    std::printf("  send queue full (refused) %" PRIu64 ", wire drops %" PRIu64
                ", rx overruns %" PRIu64 ", runts %" PRIu64 ", oversized %" PRIu64
                ", malformed %" PRIu64 ", foreign %" PRIu64 ", out of order %" PRIu64
                ", gaps %" PRIu64 ", RX refills that found the pool empty %" PRIu64 "\n",
                s.tx_queue_drops, s.tx_wire_drops, s.rx_overruns, s.rx_runts, s.rx_oversized,
                s.rx_malformed, s.rx_foreign, s.rx_out_of_order, s.rx_gaps, s.rx_starved);
    const auto r = n->restart_latency().take();
    if (r.total() != 0)
      std::printf("  TX completion -> next start: p50 %.1f us, p99 %.1f us, p99.9 %.1f us (%" PRIu64
                  " restarts)\n",
                  us(r.percentile(0.5)), us(r.percentile(0.99)), us(r.percentile(0.999)),
                  r.total());
    const auto d = n->delivery_latency().take();
    if (d.total() != 0)
      std::printf("  stack -> delivery: p50 %.1f us, p99 %.1f us, p99.9 %.1f us\n",
                  us(d.percentile(0.5)), us(d.percentile(0.99)), us(d.percentile(0.999)));
  }
  std::printf("producers: %" PRIu64 " sent, %" PRIu64 " dropped at a full send queue\n", src.sent(),
              src.dropped());
}

bool write_json(const std::string& path, const nicsim_options& o, const nic_list& nics,
                const traffic_source& src, double seconds) {
  json_records out(path);
  if (!out.ok()) return false;
  auto rec = [&](const std::string& name, double value, const char* unit) {
    out.add(name, value, unit);
  };
  const std::string mode = start_mode_name(o.nic.mode);
  rec("nicsim." + mode + ".seconds", seconds, "s");
  rec("nicsim." + mode + ".sent", static_cast<double>(src.sent()), "frames");
  for (const auto& n : nics) {
    const nic_stats s = n->stats();
    const std::string p = "nicsim." + mode + "." + n->config().name;
    rec(p + ".tx_pps", static_cast<double>(s.tx_frames) / seconds, "frames/s");
    rec(p + ".rx_pps", static_cast<double>(s.rx_delivered) / seconds, "frames/s");
    rec(p + ".oactive_sets", static_cast<double>(s.oactive_sets), "count");
    rec(p + ".stalls", static_cast<double>(s.stalls), "count");
    rec(p + ".rx_out_of_order", static_cast<double>(s.rx_out_of_order), "count");
    const auto r = n->restart_latency().take();
    if (r.total() != 0) {
      rec(p + ".restart.p50", static_cast<double>(r.percentile(0.5)), "ns");
      rec(p + ".restart.p99", static_cast<double>(r.percentile(0.99)), "ns");
      rec(p + ".restart.p99.9", static_cast<double>(r.percentile(0.999)), "ns");
    }
  }
  return out.finish();
}

}  // namespace kcont::net
