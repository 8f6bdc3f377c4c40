// kcont-nicsim's output: the live line, the summary, and the JSON records.
#pragma once

#include "nicsim_options.h"

#include <kcont/nicsim.h>
#include <kcont/traffic.h>

#include <memory>
#include <string>
#include <vector>

namespace kcont::net {

using nic_list = std::vector<std::unique_ptr<sim_nic>>;

// Running totals over every NIC, for the once-a-second line.
struct live_totals {
  std::uint64_t tx = 0, tx_bytes = 0, rx = 0, drops = 0, oactive = 0, stalls = 0;
  latency_histogram::snapshot restart;
};
live_totals take_totals(const nic_list& nics, const traffic_source& src);
void print_live_line(unsigned second, const live_totals& now, const live_totals& before,
                     double dt_seconds);

void print_summary(const nicsim_options& o, const nic_list& nics, const traffic_source& src,
                   double seconds, const std::string& wire_text);
// Returns false (after a message) when the file cannot be written.
bool write_json(const std::string& path, const nicsim_options& o, const nic_list& nics,
                const traffic_source& src, double seconds);

}  // namespace kcont::net
