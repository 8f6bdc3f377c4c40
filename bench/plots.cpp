// --plots DIR: the data files for bench/plots.gp and the gnuplot run that renders them.
//   callout_arm_cancel.dat  pending, then kcont, asio (poll per 64), asio (poll per pair),
//                           libevent for the 'earliest' case, then the same for 'among' (ns per
//                           arm+cancel; NaN: not run)
//   latency_cdf.dat         one block per mechanism ("label" header, then ns and fraction)
//   nic_pps.dat             mode, Mpps at TX ring 32, Mpps at TX ring 256
//   net_rtt_cdf.dat         one block per UDP echo row ("label" header, then RTT in us and
//                           the fraction of echoes at or below it), the floor's first
// Without gnuplot (or without data for a plot) the data files are still written and the line
// returned says what was skipped and why.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "kcont_bench.h"

#ifndef KCONT_BENCH_SOURCE_DIR
#define KCONT_BENCH_SOURCE_DIR "."
#endif

namespace kcont_bench {

namespace {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string find_script() {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && fs::exists(exe.parent_path() / "plots.gp")) return exe.parent_path() / "plots.gp";
  fs::path src = fs::path(KCONT_BENCH_SOURCE_DIR) / "plots.gp";
  if (fs::exists(src)) return src;
  return "";
}

std::string num(double v) {
  return std::isfinite(v) ? json_number(v) : "NaN";
}

}  // namespace

std::string write_plots(const std::string& dir, const plot_data& data) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return "plots skipped: cannot create " + dir + ": " + ec.message();
  {
    std::ofstream f(fs::path(dir) / "callout_arm_cancel.dat");
    f << "# pending, then kcont asio asio_poll_each libevent for 'earliest', then the same for "
         "'among' (ns per arm+cancel pair, median; asio: one poll() per 64 pairs)\n";
    for (const auto& r : data.arm_cancel) {
      f << num(r.pending);
      for (const auto* c : {&r.earliest, &r.among})
        f << ' ' << num(c->kcont) << ' ' << num(c->asio) << ' ' << num(c->asio_poll_each) << ' '
          << num(c->libevent);
      f << '\n';
    }
  }
  {
    std::ofstream f(fs::path(dir) / "latency_cdf.dat");
    bool first = true;
    for (const auto& s : data.cdfs) {
      if (s.sorted.empty()) continue;
      if (!first) f << "\n\n";
      first = false;
      f << '"' << s.label << "\" \"fraction\"\n";
      std::vector<double> qs;
      for (int k = 0; k < 198; ++k) qs.push_back(k * 0.005);
      for (int k = 0; k < 10; ++k) qs.push_back(0.99 + k * 0.001);
      qs.push_back(0.9995);
      for (double q : qs) f << num(quantile_sorted(s.sorted, q)) << ' ' << num(q) << '\n';
      f << num(s.sorted.back()) << " 1\n";
    }
  }
  {
    std::ofstream f(fs::path(dir) / "nic_pps.dat");
    f << "mode \"TX ring 32\" \"TX ring 256\"\n";
    for (const char* mode : {"taskctx", "taskq", "naive"}) {
      double r32 = NAN, r256 = NAN;
      for (const auto& r : data.nic) {
        if (r.mode != mode) continue;
        (r.tx_ring == 32 ? r32 : r256) = r.mpps;
      }
      f << mode << ' ' << num(r32) << ' ' << num(r256) << '\n';
    }
  }
  std::size_t rtt_closed = 0;  // which blocks are the closed-loop rows, for the dash style
  {
    std::ofstream f(fs::path(dir) / "net_rtt_cdf.dat");
    for (std::size_t i = 0; i < data.rtt_cdfs.size(); ++i) {
      const auto& s = data.rtt_cdfs[i];
      if (i != 0) f << "\n\n";
      f << '"' << s.label << "\" \"fraction\"\n";
      for (const auto& [us, fraction] : s.points) f << num(us) << ' ' << num(fraction) << '\n';
      if (s.closed_loop) rtt_closed |= std::size_t{1} << i;
    }
  }
  std::string skipped;
  if (data.arm_cancel.empty()) skipped += " callout_arm_cancel (callout area not run)";
  if (data.cdfs.empty()) skipped += " latency_cdf (no cross-core latency row run)";
  if (data.nic.empty()) skipped += " nic_pps (net area not run)";
  if (data.rtt_cdfs.empty()) skipped += " net_rtt_cdf (net area not run)";

  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    return "plots skipped: gnuplot not found (install gnuplot-nox); data files written to " + dir;
  const std::string script = find_script();
  if (script.empty())
    return "plots skipped: plots.gp not found next to kcont-bench or in " +
           std::string(KCONT_BENCH_SOURCE_DIR) + "; data files written to " + dir;
  std::string cmd = "gnuplot -e " +
                    shell_quote("datadir='" + dir + "'; ncdf=" + std::to_string(data.cdfs.size()) +
                                "; have_callout=" + (data.arm_cancel.empty() ? "0" : "1") +
                                "; have_nic=" + (data.nic.empty() ? "0" : "1") +
                                "; nrtt=" + std::to_string(data.rtt_cdfs.size()) +
                                "; rtt_closed=" + std::to_string(rtt_closed) +
                                "; rtt_loads=" + std::to_string(data.rtt_loads) +
                                "; rtt_floor=" + (data.rtt_floor ? "1" : "0") + "; rtt_wire='" +
                                data.rtt_wire + "'") +
                    " " + shell_quote(script);
  const int rc = std::system(cmd.c_str());
  if (rc != 0)
    return "plots: gnuplot failed (status " + std::to_string(rc) + "); data files in " + dir;
  std::string out = "plots written to " + dir + " (PNG, rendered by " + script + ")";
  if (!skipped.empty()) out += "; not drawn:" + skipped;
  return out;
}

}  // namespace kcont_bench
