// kcont: the cost of kcont_schedule when no wake-up is needed, schedule -> func latency (same
// CPU and cross-CPU, on wq_softnet and wq_prihigh), and the timer path (schedule with a delay
// + stop) at 10^5 pending, beside Asio (post, steady_timer) and the eventfd floor, same run.
#include <kcont/kcont.h>
#include <kcont/softint.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <random>

#include "alloc_count.h"
#include "asio_timer_peer.h"
#include "bench_util.h"
#include "latency_harness.h"

using namespace kcont_bench;

namespace {

constexpr int kReps = 9;

void noop(void*, kcont_t*) {}

// kcont_schedule(kc, NULL, 0) from a softint handler on CPU 1 onto wq_softnet of CPU 1: the
// CPU is awake (it runs us), so no wake-up is needed. Distinct continuations, each scheduled
// once per repetition; they run after the handler returns.
std::vector<double> bench_schedule_no_wakeup(kcont::runtime& rt, std::uint64_t& allocs) {
  kcont::runtime_scope scope(rt);
  constexpr int n = 2000;
  struct ctx {
    std::vector<kcont_t> kcs = std::vector<kcont_t>(n);
    std::vector<double> ns;
    std::uint64_t allocs = 0;
    std::atomic<bool> done{false};
  } x;
  void* si = softint_establish_rt(
      rt, SOFTINT_SERIAL | SOFTINT_MPSAFE,
      [](void* a) {
        auto* c = static_cast<ctx*>(a);
        for (auto& kc : c->kcs) kcont_init(&kc, wq_softnet, nullptr, noop, nullptr, 0);
        for (int r = 0; r < kReps; ++r) {
          std::uint64_t a0 = allocations();
          std::int64_t t0 = now_ns();
          for (auto& kc : c->kcs) kcont_schedule(&kc, nullptr, 0);
          std::int64_t t1 = now_ns();
          c->allocs += allocations() - a0;
          c->ns.push_back(static_cast<double>(t1 - t0) / n);
          for (auto& kc : c->kcs) kcont_stop(&kc);  // not run: the next repetition starts afresh
        }
        for (auto& kc : c->kcs) kcont_destroy(&kc);
        c->done = true;
      },
      &x);
  softint_schedule_cpu(si, rt.cpu(1));
  while (!x.done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  softint_disestablish(si);
  allocs = x.allocs;
  return x.ns;
}

// One-way kcont_schedule(kc, ci, 0) -> func start, from this thread (core 0) to CPU 1.
std::vector<double> bench_cross(const latency_options& o, kcont::runtime& rt, kcont_wq_t* wq) {
  kcont::runtime_scope scope(rt);
  probe pr;
  kcont_t kc;
  kcont_init(
      &kc, wq, nullptr, [](void* a, kcont_t*) { static_cast<probe*>(a)->hit(); }, &pr, 0);
  cpu_info* target = rt.cpu(1);
  auto v = one_way(o, pr, [&] {
    while (kcont_schedule(&kc, target, 0) == EBUSY) {  // the previous run is still returning
    }
  });
  kcont_destroy(&kc);
  return v;
}

// Same CPU: a driver continuation on CPU 1 stamps t0 and schedules the measured one there.
std::vector<double> bench_same(const latency_options& o, kcont::runtime& rt, kcont_wq_t* wq) {
  kcont::runtime_scope scope(rt);
  struct ctx {
    probe pr;
    kcont_t measured, driver;
    std::atomic<std::int64_t> t0{0};
  } x;
  kcont_init(
      &x.measured, wq, nullptr, [](void* a, kcont_t*) { static_cast<ctx*>(a)->pr.hit(); }, &x, 0);
  kcont_init(
      &x.driver, wq, nullptr,
      [](void* a, kcont_t*) {
        auto* c = static_cast<ctx*>(a);
        c->t0.store(now_ns());
        while (kcont_schedule(&c->measured, nullptr, 0) == EBUSY) {
        }
      },
      &x, 0);
  std::vector<double> v;
  for (int i = 0; i < o.samples + o.samples / 10; ++i) {
    x.pr.done = false;
    while (kcont_schedule(&x.driver, rt.cpu(1), 0) == EBUSY) {
    }
    while (!x.pr.done.load(std::memory_order_acquire)) {
    }
    if (i >= o.samples / 10) v.push_back(static_cast<double>(x.pr.t1.load() - x.t0.load()));
    spin_for(o.gap_us * 1000LL);
  }
  kcont_halt(&x.driver);
  kcont_destroy(&x.driver);
  kcont_destroy(&x.measured);
  return v;
}

// Timer path: schedule with a delay + stop, 10^5 continuations already pending.
std::vector<double> bench_timer_kcont(kcont::runtime& rt, int pairs) {
  kcont::runtime_scope scope(rt);
  constexpr int pending = 100000;
  std::vector<kcont_t> bg(pending);
  std::mt19937 rng(1);
  for (auto& kc : bg) {
    kcont_init(&kc, wq_softclock, nullptr, noop, nullptr, 0);
    kcont_schedule(&kc, nullptr, 3'600'000 + static_cast<int>(rng() % 3'600'000));
  }
  kcont_t kc;
  kcont_init(&kc, wq_softclock, nullptr, noop, nullptr, 0);
  std::vector<double> v;
  for (int r = 0; r < kReps; ++r) {
    std::int64_t t0 = now_ns();
    for (int i = 0; i < pairs; ++i) {
      kcont_schedule(&kc, nullptr, 1000 + (i & 0xffff));
      kcont_stop(&kc);
    }
    v.push_back(static_cast<double>(now_ns() - t0) / pairs);
  }
  kcont_destroy(&kc);
  for (auto& b : bg) {
    kcont_stop(&b);
    kcont_destroy(&b);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  common_options opts;
  if (int rc = parse_common_options(argc, argv, "bench_kcont", opts); rc >= 0) return rc;
  const bool quick = opts.quick;
  const std::string json = opts.json;
  bench_start("kcont continuation benchmark");
  kcont::runtime_config cfg;
  cfg.ncpu = 2;
  kcont::parse_backend(opts.backend, cfg.backend);
  if (!kcont::backend_available(cfg.backend)) {
    std::fprintf(stderr, "the %s backend is not built into this kcont\n", opts.backend.c_str());
    return 2;
  }
  kcont::runtime rt(cfg);
  report rep;

  std::uint64_t allocs = 0;
  auto cost = summarize(bench_schedule_no_wakeup(rt, allocs));
  std::printf(
      "\nkcont_schedule(kc, NULL, 0) with no wake-up needed (from a handler on the CPU):"
      " %.1f ns/op median, %llu allocations   (bar <= 50 ns, 0 allocations)\n",
      cost.p50, static_cast<unsigned long long>(allocs));
  rep.add("kcont.schedule_no_wakeup", cost.p50, "ns/op");
  rep.add("kcont.schedule_no_wakeup.allocs", static_cast<double>(allocs), "count");

  latency_options o;
  o.samples = quick ? 2000 : 10000;
  auto floor = summarize(bench_eventfd_floor(o));
  auto asio = summarize(bench_asio_post(o));
  auto soft_cross = summarize(bench_cross(o, rt, wq_softnet));
  auto thr_cross = summarize(bench_cross(o, rt, wq_prihigh));
  auto soft_same = summarize(bench_same(o, rt, wq_softnet));
  auto thr_same = summarize(bench_same(o, rt, wq_prihigh));
  print_latency_header("kcont_schedule(kc, ci, 0) -> func start (one-way, ns)");
  print_latency_row("eventfd ping, idle thread (floor)", floor, floor.p50);
  print_latency_row("peer: asio::post, idle io_context thread", asio, floor.p50);
  print_latency_row("wq_softnet, cross-CPU, idle target", soft_cross, floor.p50);
  print_latency_row("wq_prihigh, cross-CPU, idle worker", thr_cross, floor.p50);
  print_latency_row("wq_softnet, same CPU", soft_same, floor.p50);
  print_latency_row("wq_prihigh, same CPU", thr_same, floor.p50);
  rep.add_latency("kcont.latency.floor_eventfd", floor);
  rep.add_latency("kcont.latency.asio_post", asio);
  rep.add_latency("kcont.latency.softnet_cross", soft_cross);
  rep.add_latency("kcont.latency.prihigh_cross", thr_cross);
  rep.add_latency("kcont.latency.softnet_same", soft_same);
  rep.add_latency("kcont.latency.prihigh_same", thr_same);
  // The soft queues run on the CPU loops: the same rows on the libevent loop backend. (Thread
  // queues wake workers through the engine, whichever loop backend the CPUs use.)
  kcont::runtime_config ev_cfg = cfg;
  ev_cfg.backend = kcont::backend_kind::libevent;
  if (kcont::backend_available(ev_cfg.backend)) {
    kcont::runtime rt_ev(ev_cfg);
    auto ev_cross = summarize(bench_cross(o, rt_ev, wq_softnet));
    auto ev_same = summarize(bench_same(o, rt_ev, wq_softnet));
    print_latency_row("libevent backend: wq_softnet, cross-CPU, idle", ev_cross, floor.p50);
    print_latency_row("libevent backend: wq_softnet, same CPU", ev_same, floor.p50);
    std::printf("  backends, wq_softnet cross-CPU p50: libevent / asio = %.2fx\n",
                ev_cross.p50 / soft_cross.p50);
    rep.add_latency("kcont.latency.libevent_backend.softnet_cross", ev_cross);
    rep.add_latency("kcont.latency.libevent_backend.softnet_same", ev_same);
    rt_ev.stop();
  }

  const int pairs = quick ? 20000 : 200000;
  auto tk = summarize(bench_timer_kcont(rt, pairs));
  auto ta = summarize(asio_timer_arm_cancel(100000, pairs, kReps));
  std::printf(
      "\ntimer path, schedule(delay) + stop, 10^5 pending: kcont %.1f ns, "
      "asio::steady_timer %.1f ns: %.1fx   (bar >= 10x)\n",
      tk.p50, ta.p50, ta.p50 / tk.p50);
  rep.add("kcont.timer_schedule_stop.P1e5", tk.p50, "ns/op");
  rep.add("kcont.timer_schedule_stop.P1e5.asio", ta.p50, "ns/op");
  rep.add("kcont.timer_schedule_stop.P1e5.asio_over_kcont", ta.p50 / tk.p50, "ratio");
  rt.stop();
  if (!json.empty() && !rep.write_json(json)) return 1;
  return 0;
}
