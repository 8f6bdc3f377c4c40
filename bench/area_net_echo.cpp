// net area, UDP echo rows (issue 17): the IPv4 stack on the simulated NIC (<kcont/inet.h>)
// answering a UDP echo load, per start mode (taskctx, taskq, naive), beside the floor (one
// thread, epoll, read/write on the same tap, no kcont: what the tap itself costs). The load is
// kcont-nicsim --serve's (serve_phases.h): a thread in a network namespace of our own,
// kcont-bench-<pid>, sending from an ordinary UDP socket through a tap and checking every echo
// byte for byte. Two loads per responder: closed loop (as fast as a window of datagrams allows:
// saturation) and open loop (a fixed rate well below it: latency). Where no tap or namespace
// can be made, the same load runs on the in-memory wire against the built-in peer, and the
// figures are named by wire (net.echo.tap.* / net.echo.memory.*; machine.net_wire says which).
#include <kcont/histogram.h>

#include <csignal>
#include <cstdio>
#include <memory>

#include "kcont_bench.h"
#include "nicsim_tap.h"
#include "serve_phases.h"

namespace kcont_bench {

namespace {

using namespace kcont::net;

struct echo_load {
  const char* name;  // in the figures' names
  const char* what;  // in the table
  std::size_t window;
  std::uint64_t pps;  // 0: as fast as the window allows
};
constexpr echo_load kLoads[] = {
    {"closed", "closed loop, window 32", 32, 0},
    {"open", "open loop, 20000/s", 256, 20000},
};
constexpr const echo_load& kClosed = kLoads[0];
constexpr const echo_load& kOpen = kLoads[1];

// The bars of issue 17, item 6: reported, never asserted.
constexpr double kBarRttP50 = 1.3, kBarRttP99 = 2.0, kBarPpsOverTaskq = 1.3;

const volatile std::sig_atomic_t kNeverInterrupted = 0;

struct echo_row {
  std::string responder;  // "floor", "taskctx", "taskq", "naive"
  const echo_load* load = nullptr;
  serve_phase phase;
  double pps = 0;  // answered per second
};

// The wire the rows go through: a tap in our namespace, or nothing (in memory) and why.
struct echo_wire {
  std::unique_ptr<nicsim_tap> net;
  std::string why;
  bool tap() const { return net != nullptr; }
  const char* name() const { return tap() ? "tap" : "memory"; }
};

nicsim_options options_for(const context& ctx, const std::string& mode, const echo_load& l) {
  nicsim_options o;
  o.quiet = true;
  o.seconds = ctx.quick() ? 0.25 : 3;
  if (mode != "floor") parse_start_mode(mode, o.nic.mode);
  o.ping_count = 0;  // the UDP load alone (kcont-nicsim --serve adds stock ping)
  o.udp_window = l.window;
  o.udp_pps = l.pps;
  // o.push_pps stays at --serve's 100/s: the stack's own sends from a thread off the interrupt
  // CPU, where the oactive race lives (the floor has no such sender).
  return o;
}

echo_row run_row(const context& ctx, echo_wire& w, const std::string& responder,
                 const echo_load& l) {
  echo_row r;
  r.responder = responder;
  r.load = &l;
  const nicsim_options o = options_for(ctx, responder, l);
  bool ok = true;
  unpin_this_thread();  // the load's and the floor's threads may run on any core
  if (responder == "floor") {
    r.phase = serve_floor_on_tap(o, *w.net->tap, w.net->ns->handle(), kNeverInterrupted);
  } else {
    kcont::runtime rt(ctx.runtime_cfg());
    r.phase =
        w.tap() ? serve_kcont_on_tap(o, rt, *w.net->tap, w.net->ns->handle(), kNeverInterrupted, ok)
                : serve_kcont_in_memory(o, rt, kNeverInterrupted, ok);
    rt.stop();
  }
  pin_this_thread(0);
  r.pps =
      r.phase.seconds > 0 ? static_cast<double>(r.phase.total.udp.answered) / r.phase.seconds : 0;
  for (const std::string& n : r.phase.notes)
    if (!ok || n.rfind("UDP load", 0) == 0 || n.rfind("LEAK", 0) == 0)
      std::printf("  note (%s, %s): %s\n", responder.c_str(), l.name, n.c_str());
  return r;
}

double rtt(const echo_row& r, double q) {
  return static_cast<double>(r.phase.total.udp_rtt.percentile(q));
}

std::string base_name(const echo_wire& w, const echo_row& r) {
  return std::string("net.echo.") + w.name() + "." + r.responder + "." + r.load->name;
}

void record_row(context& ctx, const echo_wire& w, const echo_row& r) {
  report& rep = ctx.rep();
  const std::string base = base_name(w, r);
  const serve_sample& t = r.phase.total;
  rep.add(base + ".answered_pps", r.pps, "frames/s");
  rep.add(base + ".rtt.p50", rtt(r, 0.5), "ns");
  rep.add(base + ".rtt.p99", rtt(r, 0.99), "ns");
  rep.add(base + ".rtt.p99.9", rtt(r, 0.999), "ns");
  rep.add(base + ".lost", static_cast<double>(t.udp.lost + t.udp.corrupt), "count");
  if (r.responder != "floor") rep.add(base + ".stalls", static_cast<double>(t.stalls), "count");
  std::printf("  %-8s %-24s %11.0f %9.1f %9.1f %9.1f %8llu %7s\n", r.responder.c_str(),
              r.load->what, r.pps, rtt(r, 0.5) / 1e3, rtt(r, 0.99) / 1e3, rtt(r, 0.999) / 1e3,
              static_cast<unsigned long long>(t.udp.lost + t.udp.corrupt),
              r.responder == "floor" ? "-" : std::to_string(t.stalls).c_str());
  std::fflush(stdout);

  plot_data::rtt_cdf_series c;
  c.label = (r.responder == "floor" ? std::string("floor") : "kcont " + r.responder) + ", " +
            r.load->what;
  c.closed_loop = r.load == &kClosed;
  for (const auto& p : t.udp_rtt.cdf())
    c.points.emplace_back(static_cast<double>(p.ns) / 1e3, p.fraction);
  ctx.plots().rtt_cdfs.push_back(std::move(c));
}

const echo_row* find(const std::vector<echo_row>& rows, const std::string& responder,
                     const echo_load& l) {
  for (const auto& r : rows)
    if (r.responder == responder && r.load == &l) return &r;
  return nullptr;
}

double over(double a, double b) {
  return b > 0 ? a / b : std::nan("");
}

// Each mode over the floor, same load, same tap, same run.
void floor_ratios(context& ctx, const echo_wire& w, const std::vector<echo_row>& rows) {
  std::printf("\n  each mode over the floor (same load, same tap, same run)\n");
  for (const echo_load& l : kLoads) {
    const echo_row* f = find(rows, "floor", l);
    for (const echo_row& r : rows) {
      if (r.load != &l || r.responder == "floor" || f == nullptr) continue;
      const std::string base = base_name(w, r), who = r.responder + ", " + l.what;
      ctx.ratio(base + ".pps_over_floor", who + ": answered pps / floor", over(r.pps, f->pps));
      ctx.ratio(base + ".rtt_p50_over_floor", who + ": RTT p50 / floor",
                over(rtt(r, 0.5), rtt(*f, 0.5)));
      ctx.ratio(base + ".rtt_p99_over_floor", who + ": RTT p99 / floor",
                over(rtt(r, 0.99), rtt(*f, 0.99)));
    }
  }
}

const char* verdict(bool met) {
  return met ? "met" : "NOT met";
}

// The bars of issue 17, item 6, printed with the figures they judge.
void print_bars(const std::vector<echo_row>& rows) {
  const echo_row* tc_open = find(rows, "taskctx", kOpen);
  const echo_row* fl_open = find(rows, "floor", kOpen);
  const echo_row* tc = find(rows, "taskctx", kClosed);
  const echo_row* tq = find(rows, "taskq", kClosed);
  std::printf("\n  bars (reported, never asserted):\n");
  if (tc_open != nullptr && fl_open != nullptr) {
    const double p50 = over(rtt(*tc_open, 0.5), rtt(*fl_open, 0.5));
    const double p99 = over(rtt(*tc_open, 0.99), rtt(*fl_open, 0.99));
    std::printf("    taskctx RTT p50 <= %.1fx floor (%s): %.2fx, %s\n", kBarRttP50, kOpen.what, p50,
                verdict(p50 <= kBarRttP50));
    std::printf("    taskctx RTT p99 <= %.1fx floor (%s): %.2fx, %s\n", kBarRttP99, kOpen.what, p99,
                verdict(p99 <= kBarRttP99));
  } else {
    std::printf("    RTT over the floor: no floor without a tap\n");
  }
  if (tc != nullptr && tq != nullptr) {
    const double ratio = over(tc->pps, tq->pps);
    std::printf("    taskctx answered pps >= %.1fx taskq at saturation (%s): %.2fx, %s\n",
                kBarPpsOverTaskq, kClosed.what, ratio, verdict(ratio >= kBarPpsOverTaskq));
    std::printf("    taskctx stalls at saturation == 0: %llu, %s\n",
                static_cast<unsigned long long>(tc->phase.total.stalls),
                verdict(tc->phase.total.stalls == 0));
  }
}

}  // namespace

void net_echo_rows(context& ctx) {
  echo_wire w;
  ctx.step("UDP echo: a namespace and a tap of our own");
  unpin_this_thread();  // the namespace's reaper and the tap's helper threads
  w.net =
      open_nicsim_tap("", tap_host_side{serve_host, serve_prefix_len}, w.why, netns_prefix_bench);
  pin_this_thread(0);
  ctx.set_machine("net_wire", w.name());
  ctx.plots().rtt_wire = w.tap() ? "through a tap" : "in-memory wire, built-in peer";
  ctx.plots().rtt_loads = std::size(kLoads);
  ctx.plots().rtt_floor = w.tap();
  const double seconds = options_for(ctx, "taskctx", kClosed).seconds;
  if (w.tap())
    std::printf(
        "\nUDP echo, wire: tap %s in namespace %s (host side 10.77.0.1/24), 64-byte payloads,\n"
        "%.2f s per row; the load: an ordinary UDP socket in the namespace, every echo checked\n",
        w.net->tap->device().name().c_str(), w.net->ns->name().c_str(), seconds);
  else
    std::printf(
        "\nUDP echo, wire: IN MEMORY, the built-in peer playing the host; no floor (it needs a\n"
        "tap); 64-byte payloads, %.2f s per row. No tap in a namespace of our own:\n  %s\n",
        seconds, w.why.c_str());
  std::printf("  %-8s %-24s %11s %9s %9s %9s %8s %7s\n", "resp.", "load", "answered/s", "p50 us",
              "p99 us", "p99.9 us", "lost", "stalls");
  std::vector<echo_row> rows;
  std::vector<std::string> responders = {"taskctx", "taskq", "naive"};
  if (w.tap()) responders.insert(responders.begin(), "floor");
  for (const std::string& who : responders)
    for (const echo_load& l : kLoads) {
      ctx.step("UDP echo: " + who + ", " + l.what + " (" + w.name() + ")");
      rows.push_back(run_row(ctx, w, who, l));
      record_row(ctx, w, rows.back());
    }
  if (w.tap()) floor_ratios(ctx, w, rows);
  std::printf("\n  start modes at saturation (%s)\n", kClosed.what);
  const echo_row* tc = find(rows, "taskctx", kClosed);
  for (const char* m : {"taskq", "naive"})
    if (const echo_row* r = find(rows, m, kClosed); r != nullptr && tc != nullptr)
      ctx.ratio(std::string("net.echo.") + w.name() + ".closed.taskctx_over_" + m + "_pps",
                std::string("taskctx / ") + m + " answered pps", over(tc->pps, r->pps));
  print_bars(rows);
  w.net.reset();  // the tap, then the namespace, then its reaper
}

}  // namespace kcont_bench
