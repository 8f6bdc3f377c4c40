#include "serve_report.h"

#include <cinttypes>
#include <cstdio>

#include "json_records.h"

namespace kcont::net {
namespace {

double us(std::uint64_t ns) {
  return static_cast<double>(ns) / 1e3;
}

std::string drops_text(const std::vector<std::pair<std::string, std::uint64_t>>& drops) {
  std::string s;
  for (const auto& [why, n] : drops) s += (s.empty() ? "" : ", ") + why + " " + std::to_string(n);
  return s.empty() ? "none" : s;
}

std::uint64_t answered_pps_base(const serve_phase& p) {
  return p.total.udp.answered;
}

double ratio(double a, double b) {
  return b > 0 ? a / b : 0.0;
}

// "  udp RTT p50 1.20x (120.0 / 100.0 us), p99 ...": one load's RTT over the floor's.
void print_rtt_ratios(const char* load, const latency_histogram::snapshot& k,
                      const latency_histogram::snapshot& f) {
  std::printf("  %s RTT", load);
  for (double q : {0.5, 0.99}) {
    const std::uint64_t kq = k.percentile(q), fq = f.percentile(q);
    std::printf("%s p%g %.2fx (%.1f / %.1f us)", q == 0.5 ? "" : ",", q * 100,
                ratio(static_cast<double>(kq), static_cast<double>(fq)), us(kq), us(fq));
  }
  std::printf("\n");
}

}  // namespace

void print_serve_live(const std::string& phase, unsigned second, const serve_sample& now,
                      const serve_sample& before, double dt) {
  const auto rate = [dt](std::uint64_t a, std::uint64_t b) {
    return dt > 0 ? static_cast<double>(a - b) / dt : 0.0;
  };
  const latency_histogram::snapshot rtt = now.udp_rtt - before.udp_rtt;
  // Drops in this second, by reason (non-zero only).
  std::string drops;
  for (const auto& [why, n] : now.drops) {
    std::uint64_t was = 0;
    for (const auto& [w, m] : before.drops)
      if (w == why) was = m;
    if (n != was) drops += " " + why + " " + std::to_string(n - was);
  }
  std::printf(
      "[%s] %3us: rx %.0f pps, tx %.0f pps, answered %.0f udp/s + %.0f ping/s, lost %" PRIu64
      ", udp RTT p50 %.1f us p99 %.1f us%s%s%s\n",
      phase.c_str(), second, rate(now.rx, before.rx), rate(now.tx, before.tx),
      rate(now.udp.answered, before.udp.answered), rate(now.ping_answered, before.ping_answered),
      now.udp.lost - before.udp.lost, us(rtt.percentile(0.5)), us(rtt.percentile(0.99)),
      now.stalls != before.stalls ? ", STALLS " : "",
      now.stalls != before.stalls ? std::to_string(now.stalls - before.stalls).c_str() : "",
      drops.empty() ? "" : (", drops:" + drops).c_str());
  std::fflush(stdout);
}

void print_serve_phase(const serve_phase& p) {
  const serve_sample& t = p.total;
  std::printf("--- %s: %.2f s\n", p.name.c_str(), p.seconds);
  std::printf("  frames: rx %" PRIu64 " (%.0f pps), tx %" PRIu64 " (%.0f pps)\n", t.rx,
              static_cast<double>(t.rx) / p.seconds, t.tx, static_cast<double>(t.tx) / p.seconds);
  std::printf("  udp echo: sent %" PRIu64 ", answered %" PRIu64 " (%.0f/s), lost %" PRIu64
              ", late %" PRIu64 ", duplicate %" PRIu64 ", corrupt %" PRIu64 "\n",
              t.udp.sent, t.udp.answered, static_cast<double>(t.udp.answered) / p.seconds,
              t.udp.lost, t.udp.late, t.udp.duplicate, t.udp.corrupt);
  if (t.udp_rtt.total() != 0)
    std::printf("  udp RTT: p50 %.1f us, p99 %.1f us, p99.9 %.1f us\n",
                us(t.udp_rtt.percentile(0.5)), us(t.udp_rtt.percentile(0.99)),
                us(t.udp_rtt.percentile(0.999)));
  if (p.ping_ran)
    std::printf("  ping: %" PRIu64 " transmitted, %" PRIu64 " received, %" PRIu64
                " lost; RTT p50 %.1f us, p99 %.1f us\n",
                p.ping_sent, p.ping_received,
                p.ping_sent > p.ping_received ? p.ping_sent - p.ping_received : 0,
                us(t.ping_rtt.percentile(0.5)), us(t.ping_rtt.percentile(0.99)));
  if (!p.ping_problem.empty()) std::printf("  ping: %s\n", p.ping_problem.c_str());
  if (p.pushed != 0 || p.push_sunk != 0)
    std::printf("  responder -> host (send_udp to the discard port): sent %" PRIu64
                ", received %" PRIu64 "\n",
                p.pushed, p.push_sunk);
  std::printf("  stalls %" PRIu64 "; drops by reason: %s\n", t.stalls, drops_text(t.drops).c_str());
  for (const auto& n : p.notes) std::printf("  %s\n", n.c_str());
}

void print_serve_ratios(const serve_phase& k, const serve_phase& f) {
  std::printf("--- %s over the floor (same load, same tap, same run)\n", k.name.c_str());
  print_rtt_ratios("udp", k.total.udp_rtt, f.total.udp_rtt);
  if (k.total.ping_rtt.total() != 0 && f.total.ping_rtt.total() != 0)
    print_rtt_ratios("ping", k.total.ping_rtt, f.total.ping_rtt);
  const double kp = static_cast<double>(answered_pps_base(k)) / k.seconds;
  const double fp = static_cast<double>(answered_pps_base(f)) / f.seconds;
  std::printf("  udp answered pps %.2fx (%.0f / %.0f)\n", ratio(kp, fp), kp, fp);
}

bool write_serve_json(const std::string& path, const std::vector<serve_phase>& phases) {
  json_records out(path);
  if (!out.ok()) return false;
  auto rec = [&](const std::string& name, double value, const char* unit) {
    out.add(name, value, unit);
  };
  for (const serve_phase& p : phases) {
    // "kcont taskctx (in memory)" -> nicsim.serve.kcont_taskctx_in_memory
    std::string n = "nicsim.serve.";
    for (char c : p.name) {
      const bool word = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
      if (word)
        n += c;
      else if (n.back() != '_' && n.back() != '.')
        n += '_';
    }
    if (n.back() == '_') n.pop_back();
    const serve_sample& t = p.total;
    rec(n + ".udp_answered_pps", static_cast<double>(t.udp.answered) / p.seconds, "frames/s");
    rec(n + ".udp_lost", static_cast<double>(t.udp.lost), "count");
    rec(n + ".udp_rtt.p50", static_cast<double>(t.udp_rtt.percentile(0.5)), "ns");
    rec(n + ".udp_rtt.p99", static_cast<double>(t.udp_rtt.percentile(0.99)), "ns");
    if (p.ping_ran) {
      rec(n + ".ping_lost", static_cast<double>(p.ping_sent - p.ping_received), "count");
      rec(n + ".ping_rtt.p50", static_cast<double>(t.ping_rtt.percentile(0.5)), "ns");
      rec(n + ".ping_rtt.p99", static_cast<double>(t.ping_rtt.percentile(0.99)), "ns");
    }
    rec(n + ".stalls", static_cast<double>(t.stalls), "count");
  }
  return out.finish();
}

}  // namespace kcont::net
