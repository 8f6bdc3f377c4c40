// kcont-bench: one benchmark program for the whole runtime. Each area (softint, callout, task,
// taskctx, workqueue, kcont, net) is a function in its own area_*.cpp that measures kcont
// beside the peers a user would pick instead, in the same run, through the context below: it
// prints the tables, collects every figure for --json, the data for --plots, and reports
// progress on stderr.
#pragma once

#include <kcont/kcont.h>
#include <kcont/runtime.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "latency_harness.h"

namespace kcont_bench {

// What --plots draws (bench/plots.gp).
struct plot_data {
  struct arm_cancel_series {  // ns per arm+cancel pair; NaN: not run (libevent not built)
    double kcont = NAN, asio = NAN, asio_poll_each = NAN, libevent = NAN;  // asio: poll per 64
  };
  struct arm_cancel_row {
    double pending = 0;
    arm_cancel_series earliest, among;  // the two deadline cases (area_callout.cpp)
  };
  struct cdf_series {
    std::string label;
    std::vector<double> sorted;  // latency samples, ns, ascending
  };
  struct nic_row {
    std::string mode;
    unsigned tx_ring;
    double mpps;
  };
  struct rtt_cdf_series {  // a UDP echo load's round trips (area_net_echo.cpp)
    std::string label;
    bool closed_loop = false;                       // drawn dashed; the fixed-rate load solid
    std::vector<std::pair<double, double>> points;  // RTT in us, fraction of echoes at or below
  };
  std::vector<arm_cancel_row> arm_cancel;
  std::vector<cdf_series> cdfs;
  std::vector<nic_row> nic;
  // Per responder (the floor first, when there is one), one series per load, rtt_loads each.
  std::vector<rtt_cdf_series> rtt_cdfs;
  unsigned rtt_loads = 1;
  bool rtt_floor = false;
  std::string rtt_wire;  // what the echoes went through, for the plot's title
};

class context {
 public:
  // observe: every runtime exports its statistics and runs the stuck-handler watchdog (1 s),
  // as kcont-nicsim does (--observe), to measure what observability costs.
  // watchdog: observe with the watchdog too (--observe; --observe-stats leaves it off).
  context(bool quick, kcont::backend_kind backend, latency_options lat, bool observe = false,
          bool watchdog = false);

  bool quick() const { return quick_; }
  // The backend of the main runtime (--backend): rows that do not depend on the loop.
  kcont::backend_kind backend() const { return backend_; }
  // Every loop backend built in, the main one first: loop-dependent rows run on each.
  std::vector<kcont::backend_kind> loop_backends() const;
  kcont::runtime_config runtime_cfg(kcont::backend_kind b) const;
  kcont::runtime_config runtime_cfg() const { return runtime_cfg(backend_); }
  const latency_options& lat() const { return lat_; }
  report& rep() { return rep_; }
  plot_data& plots() { return plots_; }
  // Pick a count by mode.
  int pick(int quick_value, int full_value) const { return quick_ ? quick_value : full_value; }

  // Progress (stderr): "[i/n] area: what ... (elapsed N s)".
  void begin_area(unsigned index, unsigned count, const std::string& name, const std::string& left);
  void step(const std::string& what);
  double elapsed_s() const;

  // Shared references, measured once per run when first asked for and recorded once:
  // floor.eventfd (an eventfd write to a thread blocked in read(2) on core 1) and the
  // cross-core peers peer.asio_post, peer.mutex_condvar, peer.libevent_event_active.
  const latency_summary& floor();
  const latency_summary& peer_asio_post();
  const latency_summary& peer_condvar();
  const latency_summary* peer_libevent_active();  // nullptr without libevent

  // Tables. A latency table prints p50/p99/p99.9/max and p50 over the floor.
  void latency_header(const std::string& title);
  // A latency table's header followed by its reference rows: the floor and the chosen shared
  // peers (a bitmask of the peer_* values; libevent's row only where it is built).
  enum : unsigned { peer_asio = 1, peer_condvar_queue = 2, peer_libevent = 4 };
  void latency_header_with_references(const std::string& title, unsigned peers);
  // Records NAME.p50/.p99/.p99.9 (with the spread over 5 blocks of the run), prints the row,
  // and keeps the samples for the CDF plot when cdf_label is given.
  latency_summary latency_row(const std::string& name, const std::string& label,
                              const std::vector<double>& samples,
                              const std::string& cdf_label = "");
  // Prints a row for a figure already recorded (a shared peer or the floor).
  void latency_ref_row(const std::string& label, const latency_summary& s);
  void cost_header(const std::string& title, const std::string& unit = "ns/op");
  // Records NAME (median over the repetitions, with min/max) and NAME.allocs when given.
  spread cost_row(const std::string& name, const std::string& label,
                  const std::vector<double>& reps, const std::string& unit = "ns/op",
                  std::optional<std::uint64_t> allocs = std::nullopt);
  // Records and prints a ratio of two figures of this run.
  void ratio(const std::string& name, const std::string& label, double value);
  // Likewise a ratio taken once per repetition: the median, with its min..max.
  void ratio(const std::string& name, const std::string& label, const spread& value);
  // A string added to the machine object of --json (for example net_wire: what the net
  // area's UDP echo rows went through, which kcont-bench-check reads).
  void set_machine(const std::string& key, const std::string& value) {
    machine_extra_[key] = value;
  }
  const std::map<std::string, std::string>& machine_extra() const { return machine_extra_; }

 private:
  bool quick_;
  kcont::backend_kind backend_;
  latency_options lat_;
  bool observe_;
  bool watchdog_;
  report rep_;
  plot_data plots_;
  std::int64_t t0_;
  unsigned area_index_ = 0, area_count_ = 0;
  std::string area_;
  std::optional<latency_summary> floor_, asio_post_, condvar_, libevent_active_;
  std::map<std::string, std::string> machine_extra_;
};

// The areas (one file each).
void area_softint(context& ctx);
void area_callout(context& ctx);
void area_task(context& ctx);
void area_taskctx(context& ctx);
void area_workqueue(context& ctx);
// The workqueue area's blocking mix, non-blocking overhead and idle rows (issue 19;
// area_workqueue_blocking.cpp).
void workqueue_blocking_rows(context& ctx);
void area_kcont(context& ctx);
void area_net(context& ctx);
// The net area's UDP echo rows: the IPv4 stack per start mode beside the floor, through a tap
// in a namespace of our own, or on the in-memory wire where none can be made
// (area_net_echo.cpp).
void net_echo_rows(context& ctx);
void area_coro(context& ctx);

// A continuation re-scheduled from its own func on CPU 1's queue wq, the full cycle (schedule ->
// next run), ns per cycle, one figure per repetition (area_kcont.cpp; the coro area's reference).
std::vector<double> bench_resched_cycle(kcont::runtime& rt, kcont_wq_t* wq, int reps);

struct area {
  const char* name;
  const char* what;
  void (*run)(context&);
};
const std::vector<area>& all_areas();

// The machine object of --json: CPU, cores, kernel, compiler, build type, backends, date,
// git commit. As a JSON object text.
std::string machine_json(const context& ctx, const std::vector<std::string>& areas_run);
std::string machine_line();
bool write_json(const std::string& path, const std::string& machine, const report& rep);

// kcont-bench compare OLD NEW (compare.cpp). Returns the exit code.
int compare_main(const std::string& old_path, const std::string& new_path);

// --plots DIR (plots.cpp): writes the data files and runs gnuplot on plots.gp; returns a line
// saying what was written, or why the plots were skipped.
std::string write_plots(const std::string& dir, const plot_data& data);

}  // namespace kcont_bench
