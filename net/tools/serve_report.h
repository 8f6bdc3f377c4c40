// kcont-nicsim --serve's output: the live line of a phase, each phase's summary, and the
// ratios of the kcont phase to the floor's.
#pragma once

#include <kcont/histogram.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "echo_tracker.h"

namespace kcont::net {

// What a phase's load and responder have done so far (running totals).
struct serve_sample {
  std::uint64_t rx = 0, tx = 0;  // frames the responder received and sent
  echo_counts udp;               // the UDP echo load
  latency_histogram::snapshot udp_rtt;
  std::uint64_t ping_answered = 0;
  latency_histogram::snapshot ping_rtt;
  std::uint64_t stalls = 0;
  std::vector<std::pair<std::string, std::uint64_t>> drops;  // by reason, non-zero only
};

struct serve_phase {
  std::string name;  // "kcont taskctx", "floor", "kcont taskctx (in memory)"
  double seconds = 0;
  serve_sample total;
  bool ping_ran = false;  // ping (or the peer's pinger) ran to its summary
  std::uint64_t ping_sent = 0, ping_received = 0;
  std::string ping_problem;                 // why ping did not run, or what it complained of
  std::uint64_t pushed = 0, push_sunk = 0;  // responder -> host datagrams (send_udp), received
  std::vector<std::string> notes;           // one line each (ARP, stack counters)
};

void print_serve_live(const std::string& phase, unsigned second, const serve_sample& now,
                      const serve_sample& before, double dt);
void print_serve_phase(const serve_phase& p);
// The kcont phase over the floor: RTT p50/p99 (UDP and ping) and answered pps.
void print_serve_ratios(const serve_phase& kcont, const serve_phase& floor);
bool write_serve_json(const std::string& path, const std::vector<serve_phase>& phases);

}  // namespace kcont::net
