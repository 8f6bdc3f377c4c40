// The context every area measures through: progress, tables, records, the shared floor and
// cross-core peers, and the machine object of --json.
#include <sys/utsname.h>
#ifdef KCONT_HAVE_LIBEVENT
#include <event2/event.h>
#include <event2/thread.h>
#endif

#include <ctime>
#include <fstream>

#include "kcont_bench.h"

#ifndef KCONT_BENCH_GIT_COMMIT
#define KCONT_BENCH_GIT_COMMIT ""
#endif
#ifndef KCONT_BENCH_BUILD_TYPE
#define KCONT_BENCH_BUILD_TYPE ""
#endif

namespace kcont_bench {

namespace {

// The mutex+condvar peer: a std::deque behind a mutex, consumer blocked in wait on core 1.
std::vector<double> bench_condvar(const latency_options& o) {
  probe pr;
  condvar_queue q(1, [&] { pr.hit(); });
  return one_way(o, pr, [&] { q.push(); });
}

#ifdef KCONT_HAVE_LIBEVENT
// The libevent peer: event_active from this thread on an event of a base dispatched by an idle
// thread on core 1 (libevent wakes it through its own notification fd).
std::vector<double> bench_libevent_active(const latency_options& o) {
  evthread_use_pthreads();
  probe pr;
  event_base* base = event_base_new();
  event* ev = event_new(
      base, -1, EV_PERSIST, [](evutil_socket_t, short, void* a) { static_cast<probe*>(a)->hit(); },
      &pr);
  event* keep = event_new(
      base, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr);
  timeval hour{3600, 0};
  event_add(keep, &hour);  // keeps the loop from exiting
  std::thread rx([&] {
    pin_this_thread(1);
    event_base_dispatch(base);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto v = one_way(o, pr, [&] { event_active(ev, EV_READ, 0); });
  event_base_loopbreak(base);
  rx.join();
  event_free(keep);
  event_free(ev);
  event_base_free(base);
  return v;
}
#endif

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("g++ ") + __VERSION__;
#else
  return "unknown";
#endif
}

}  // namespace

context::context(bool quick, kcont::backend_kind backend, latency_options lat, bool observe,
                 bool watchdog)
    : quick_(quick),
      backend_(backend),
      lat_(lat),
      observe_(observe),
      watchdog_(watchdog),
      t0_(now_ns()) {}

std::vector<kcont::backend_kind> context::loop_backends() const {
  std::vector<kcont::backend_kind> v{backend_};
  for (auto b : {kcont::backend_kind::asio, kcont::backend_kind::libevent})
    if (b != backend_ && kcont::backend_available(b)) v.push_back(b);
  return v;
}

kcont::runtime_config context::runtime_cfg(kcont::backend_kind b) const {
  kcont::runtime_config cfg;
  cfg.ncpu = 2;
  cfg.backend = b;
  if (observe_) {
    cfg.export_stats = true;
    if (watchdog_) cfg.stuck_handler_threshold = std::chrono::seconds(1);
  }
  return cfg;
}

void context::begin_area(unsigned index, unsigned count, const std::string& name,
                         const std::string& left) {
  area_index_ = index;
  area_count_ = count;
  area_ = name;
  std::fprintf(stderr, "[%u/%u] %s: start (elapsed %.0f s; left after this: %s)\n", index, count,
               name.c_str(), elapsed_s(), left.empty() ? "nothing" : left.c_str());
}

void context::step(const std::string& what) {
  std::fprintf(stderr, "[%u/%u] %s: %s ... (elapsed %.0f s)\n", area_index_, area_count_,
               area_.c_str(), what.c_str(), elapsed_s());
}

double context::elapsed_s() const {
  return static_cast<double>(now_ns() - t0_) / 1e9;
}

const latency_summary& context::floor() {
  if (!floor_) {
    step("eventfd floor (measured once per run)");
    auto v = bench_eventfd_floor(lat_);
    floor_ = summarize_blocks(v);
    rep_.add_latency("floor.eventfd", *floor_);
    std::sort(v.begin(), v.end());
    plots_.cdfs.insert(plots_.cdfs.begin(), {"eventfd floor", std::move(v)});
  }
  return *floor_;
}

const latency_summary& context::peer_asio_post() {
  if (!asio_post_) {
    step("peer asio::post (measured once per run)");
    auto v = bench_asio_post(lat_);
    asio_post_ = summarize_blocks(v);
    rep_.add_latency("peer.asio_post", *asio_post_);
    auto s = v;
    std::sort(s.begin(), s.end());
    plots_.cdfs.push_back({"asio::post", std::move(s)});
  }
  return *asio_post_;
}

const latency_summary& context::peer_condvar() {
  if (!condvar_) {
    step("peer mutex+condvar queue (measured once per run)");
    auto v = bench_condvar(lat_);
    condvar_ = summarize_blocks(v);
    rep_.add_latency("peer.mutex_condvar", *condvar_);
    auto s = v;
    std::sort(s.begin(), s.end());
    plots_.cdfs.push_back({"mutex+condvar", std::move(s)});
  }
  return *condvar_;
}

const latency_summary* context::peer_libevent_active() {
#ifdef KCONT_HAVE_LIBEVENT
  if (!libevent_active_) {
    step("peer libevent event_active (measured once per run)");
    auto v = bench_libevent_active(lat_);
    libevent_active_ = summarize_blocks(v);
    rep_.add_latency("peer.libevent_event_active", *libevent_active_);
    auto s = v;
    std::sort(s.begin(), s.end());
    plots_.cdfs.push_back({"libevent event_active", std::move(s)});
  }
  return &*libevent_active_;
#else
  return nullptr;
#endif
}

void context::latency_header(const std::string& title) {
  std::printf("\n%s\n", title.c_str());
  std::printf("  %-58s %9s %9s %9s %9s %9s\n", "mechanism", "p50 ns", "p99 ns", "p99.9 ns",
              "max ns", "p50/floor");
}

void context::latency_header_with_references(const std::string& title, unsigned peers) {
  const latency_summary& fl = floor();  // each measured (once per run) before the table starts
  const latency_summary* asio = (peers & peer_asio) ? &peer_asio_post() : nullptr;
  const latency_summary* cv = (peers & peer_condvar_queue) ? &peer_condvar() : nullptr;
  const latency_summary* ev = (peers & peer_libevent) ? peer_libevent_active() : nullptr;
  latency_header(title);
  latency_ref_row("eventfd ping, idle thread (floor)", fl);
  if (asio) latency_ref_row("peer: asio::post, idle io_context thread", *asio);
  if (cv) latency_ref_row("peer: mutex+condvar queue, idle consumer", *cv);
  if (ev) latency_ref_row("peer: libevent event_active, idle event_base", *ev);
}

void context::latency_ref_row(const std::string& label, const latency_summary& s) {
  // Without the eventfd floor (an --only run that never asked for it) the column says so.
  const double f = floor_ ? floor_->all.p50 : 0;
  char ratio[32] = "        -";
  if (f > 0) std::snprintf(ratio, sizeof ratio, "%8.2fx", s.all.p50 / f);
  std::printf("  %-58s %9.0f %9.0f %9.0f %9.0f %s\n", label.c_str(), s.all.p50, s.all.p99,
              s.all.p999, s.all.max, ratio);
  std::fflush(stdout);
}

latency_summary context::latency_row(const std::string& name, const std::string& label,
                                     const std::vector<double>& samples,
                                     const std::string& cdf_label) {
  latency_summary s = summarize_blocks(samples);
  rep_.add_latency(name, s);
  latency_ref_row(label, s);
  if (!cdf_label.empty()) {
    auto sorted = samples;
    std::sort(sorted.begin(), sorted.end());
    plots_.cdfs.push_back({cdf_label, std::move(sorted)});
  }
  return s;
}

void context::cost_header(const std::string& title, const std::string& unit) {
  std::printf("\n%s\n", title.c_str());
  std::printf("  %-64s %10s  %-21s %6s\n", "operation", unit.c_str(), "min..max", "allocs");
}

spread context::cost_row(const std::string& name, const std::string& label,
                         const std::vector<double>& reps, const std::string& unit,
                         std::optional<std::uint64_t> allocs) {
  spread s = spread_of(reps);
  rep_.add(name, s, unit);
  char range[64];
  std::snprintf(range, sizeof range, "%.4g..%.4g", s.min, s.max);
  std::string a = "-";
  if (allocs) {
    a = std::to_string(*allocs);
    rep_.add(name + ".allocs", static_cast<double>(*allocs), "count");
  }
  std::printf("  %-64s %10.4g  %-21s %6s\n", label.c_str(), s.value, range, a.c_str());
  std::fflush(stdout);
  return s;
}

void context::ratio(const std::string& name, const std::string& label, double value) {
  rep_.add(name, value, "ratio");
  std::printf("  %-64s %9.2fx\n", label.c_str(), value);
}

void context::ratio(const std::string& name, const std::string& label, const spread& value) {
  rep_.add(name, value, "ratio");
  if (value.reps > 1)
    std::printf("  %-64s %9.2fx  (%.2f..%.2f, %d)\n", label.c_str(), value.value, value.min,
                value.max, value.reps);
  else
    std::printf("  %-64s %9.2fx\n", label.c_str(), value.value);
}

std::string machine_line() {
  utsname u{};
  ::uname(&u);
  return cpu_model() + ", " + std::to_string(std::thread::hardware_concurrency()) + " cores, " +
         u.sysname + " " + u.release + ", " + compiler() + ", " + KCONT_BENCH_BUILD_TYPE;
}

std::string machine_json(const context& ctx, const std::vector<std::string>& areas_run) {
  utsname u{};
  ::uname(&u);
  char date[64];
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::string backends;
  for (auto b : ctx.loop_backends()) {
    if (!backends.empty()) backends += ", ";
    backends += std::string("\"") + kcont::backend_name(b) + "\"";
  }
  std::string areas;
  for (const auto& a : areas_run) {
    if (!areas.empty()) areas += ", ";
    areas += "\"" + json_escape(a) + "\"";
  }
  std::string s = "{";
  s += "\"cpu\": \"" + json_escape(cpu_model()) + "\", ";
  s += "\"cores\": " + std::to_string(std::thread::hardware_concurrency()) + ", ";
  s += "\"kernel\": \"" +
       json_escape(std::string(u.sysname) + " " + u.release + " " + u.version + " " + u.machine) +
       "\", ";
  s += "\"compiler\": \"" + json_escape(compiler()) + "\", ";
  s += "\"build_type\": \"" + json_escape(KCONT_BENCH_BUILD_TYPE) + "\", ";
  s += std::string("\"backend\": \"") + kcont::backend_name(ctx.backend()) + "\", ";
  s += "\"loop_backends\": [" + backends + "], ";
  s += std::string("\"mode\": \"") + (ctx.quick() ? "quick" : "full") + "\", ";
  s += "\"latency_samples\": " + std::to_string(ctx.lat().samples) + ", ";
  s += "\"areas\": [" + areas + "], ";
  s += std::string("\"date\": \"") + date + "\", ";
  s += "\"git_commit\": \"" + json_escape(KCONT_BENCH_GIT_COMMIT) + "\"";
  for (const auto& [key, value] : ctx.machine_extra())
    s += ", \"" + json_escape(key) + "\": \"" + json_escape(value) + "\"";
  s += "}";
  return s;
}

bool write_json(const std::string& path, const std::string& machine, const report& rep) {
  std::ofstream out(path);
  if (!out) {
    std::fprintf(stderr, "kcont-bench: cannot write %s\n", path.c_str());
    return false;
  }
  out << "{\n  \"machine\": " << machine << ",\n  \"records\": [\n";
  const auto& rs = rep.records();
  for (std::size_t i = 0; i < rs.size(); ++i) {
    const record& r = rs[i];
    out << "    {\"name\": \"" << json_escape(r.name) << "\", \"value\": " << json_number(r.value)
        << ", \"unit\": \"" << json_escape(r.unit) << "\"";
    if (r.has_spread)
      out << ", \"min\": " << json_number(r.min) << ", \"max\": " << json_number(r.max)
          << ", \"reps\": " << r.reps;
    out << "}" << (i + 1 < rs.size() ? "," : "") << "\n";
  }
  out << "  ]\n}\n";
  return static_cast<bool>(out);
}

}  // namespace kcont_bench
