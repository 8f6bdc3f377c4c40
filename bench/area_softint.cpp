// softint area: softint schedule→handler-start latency on every loop backend and the cost of a
// coalesced schedule, beside the peers a user would pick instead, measured in the same run:
//   floor      an eventfd write → a thread blocked in read(2) on another core
//   asio post  boost::asio::post to an io_context run by a thread on another core
//   condvar    a mutex+condition_variable queue, consumer on another core
//   libevent   event_active on an event_base dispatched by a thread on another core
// Latency is one-way: the sender stamps t0 just before the call, the receiver stamps t1 first
// thing in its handler; both use steady_clock. Between samples the sender spins --gap-us so the
// receiver is back asleep (an idle wake is what is measured). The sender runs on core 0, every
// receiver on core 1 (kcont CPU 1 is pinned to core 1).
#include <kcont/runtime.h>
#include <kcont/softint.h>

#include <time.h>

#include <chrono>
#include <mutex>

#include "alloc_count.h"
#include "kcont_bench.h"

namespace kcont_bench {

namespace {

void hit_probe(void* a) {
  static_cast<probe*>(a)->hit();
}

std::vector<double> bench_softint_cross_idle(const latency_options& o, kcont::runtime& rt) {
  probe pr;
  void* si = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, hit_probe, &pr);
  cpu_info* target = rt.cpu(1);
  auto v = one_way(o, pr, [&] { softint_schedule_cpu(si, target); });
  softint_disestablish(si);
  return v;
}

// CPU 1 is kept busy by a CLOCK-level softint that spins 2 µs and re-schedules itself; the
// measured NET softint runs as soon as the current busy handler returns (no wake-up needed).
std::vector<double> bench_softint_cross_busy(const latency_options& o, kcont::runtime& rt) {
  probe pr;
  struct busy_ctx {
    void* self;
    std::atomic<bool> on{true};
  } busy;
  busy.self = softint_establish_rt(
      rt, SOFTINT_CLOCK | SOFTINT_MPSAFE,
      [](void* a) {
        auto* b = static_cast<busy_ctx*>(a);
        spin_for(2000);
        if (b->on.load(std::memory_order_relaxed)) softint_schedule(b->self);
      },
      &busy);
  softint_schedule_cpu(busy.self, rt.cpu(1));
  void* si = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, hit_probe, &pr);
  latency_options busy_o = o;
  busy_o.gap_us = 5;
  auto v = one_way(busy_o, pr, [&] { softint_schedule_cpu(si, rt.cpu(1)); });
  busy.on = false;
  softint_disestablish(si);
  softint_disestablish(busy.self);
  return v;
}

// Runs f() and reports the process's CPU time per wall-clock second meanwhile (1.0: one core
// busy). Both the sender's spin between samples and the receiver's loop count.
template <class F>
auto with_cpu_use(F&& f, double& cpu_per_wall) {
  auto cpu_ns = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
  };
  const std::int64_t c0 = cpu_ns(), w0 = now_ns();
  auto r = f();
  cpu_per_wall = static_cast<double>(cpu_ns() - c0) / static_cast<double>(now_ns() - w0);
  return r;
}

// A driver softint on CPU 1 stamps t0 and schedules the measured softint on its own CPU.
std::vector<double> bench_softint_same_cpu(const latency_options& o, kcont::runtime& rt) {
  struct ctx {
    probe pr;
    void* measured;
    std::atomic<std::int64_t> t0{0};
  } x;
  x.measured = softint_establish_rt(
      rt, SOFTINT_NET | SOFTINT_MPSAFE, [](void* a) { static_cast<ctx*>(a)->pr.hit(); }, &x);
  void* driver = softint_establish_rt(
      rt, SOFTINT_NET | SOFTINT_MPSAFE,
      [](void* a) {
        auto* c = static_cast<ctx*>(a);
        c->t0.store(now_ns(), std::memory_order_relaxed);
        softint_schedule(c->measured);
      },
      &x);
  std::vector<double> v;
  for (int i = 0; i < o.samples + o.samples / 10; ++i) {
    x.pr.done = false;
    softint_schedule_cpu(driver, rt.cpu(1));
    while (!x.pr.done.load(std::memory_order_acquire)) {
    }
    if (i >= o.samples / 10) v.push_back(static_cast<double>(x.pr.t1.load() - x.t0.load()));
    spin_for(o.gap_us * 1000LL);
  }
  softint_disestablish(driver);
  softint_disestablish(x.measured);
  return v;
}

// ---- cost of scheduling an already-pending softint ---------------------------------------------

struct cost {
  std::vector<double> ns_per_op;  // one entry per repetition
  std::uint64_t allocations = 0;
};

int g_cost_reps = 30;
int g_cost_ops = 200000;

template <class F>
cost time_ops(F&& op) {
  cost c;
  for (int r = 0; r < g_cost_reps; ++r) {
    std::uint64_t a0 = allocations();
    std::int64_t t0 = now_ns();
    for (int i = 0; i < g_cost_ops; ++i) op();
    std::int64_t t1 = now_ns();
    c.allocations += allocations() - a0;
    c.ns_per_op.push_back(static_cast<double>(t1 - t0) / g_cost_ops);
  }
  return c;
}

// A handler that holds a CPU (sleeping, so the sender's core stays free) until released.
struct holder {
  std::atomic<bool> inside{false};
  std::atomic<bool> release{false};
  static void run(void* a) {
    auto* h = static_cast<holder*>(a);
    h->inside = true;
    h->inside.notify_all();
    while (!h->release.load()) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
};

cost bench_coalesced_foreign(kcont::runtime& rt, bool explicit_cpu) {
  holder h;
  void* hold = softint_establish_rt(rt, SOFTINT_SERIAL | SOFTINT_MPSAFE, holder::run, &h);
  void* si = softint_establish_rt(
      rt, SOFTINT_NET | SOFTINT_MPSAFE, [](void*) {}, nullptr);
  // The sender is pinned to core 0, so curcpu() is CPU 0: hold CPU 0 and CPU 1 both.
  holder h1;
  void* hold1 = softint_establish_rt(rt, SOFTINT_SERIAL | SOFTINT_MPSAFE, holder::run, &h1);
  softint_schedule_cpu(hold, rt.cpu(0));
  softint_schedule_cpu(hold1, rt.cpu(1));
  while (!h.inside || !h1.inside) std::this_thread::yield();
  softint_schedule_cpu(si, rt.cpu(0));
  softint_schedule_cpu(si, rt.cpu(1));
  cpu_info* target = rt.cpu(1);
  cost c = explicit_cpu ? time_ops([&] { softint_schedule_cpu(si, target); })
                        : time_ops([&] { softint_schedule(si); });
  h.release = true;
  h1.release = true;
  softint_disestablish(si);
  softint_disestablish(hold);
  softint_disestablish(hold1);
  return c;
}

// From a handler on CPU 1 (the kernel setting: curcpu() is a thread-local read).
cost bench_coalesced_on_cpu(kcont::runtime& rt) {
  struct ctx {
    void* pending;
    cost result;
    std::atomic<bool> done{false};
  } x;
  x.pending = softint_establish_rt(
      rt, SOFTINT_CLOCK | SOFTINT_MPSAFE, [](void*) {}, nullptr);
  void* driver = softint_establish_rt(
      rt, SOFTINT_NET | SOFTINT_MPSAFE,
      [](void* a) {
        auto* c = static_cast<ctx*>(a);
        softint_schedule(c->pending);  // now pending below us: every further schedule coalesces
        c->result = time_ops([&] { softint_schedule(c->pending); });
        c->done = true;
      },
      &x);
  softint_schedule_cpu(driver, rt.cpu(1));
  while (!x.done) std::this_thread::yield();
  softint_disestablish(driver);
  softint_disestablish(x.pending);
  return x.result;
}

cost bench_mutex_pair() {
  std::mutex mu;
  return time_ops([&] {
    mu.lock();
    mu.unlock();
  });
}

}  // namespace

void area_softint(context& ctx) {
  g_cost_reps = ctx.pick(15, 30);
  g_cost_ops = ctx.pick(100000, 200000);
  const latency_options& o = ctx.lat();
  ctx.latency_header_with_references(
      "schedule -> handler start (one-way, ns)",
      context::peer_asio | context::peer_condvar_queue | context::peer_libevent);
  const latency_summary floor = ctx.floor();
  const latency_summary asio = ctx.peer_asio_post();
  const latency_summary* ev_active = ctx.peer_libevent_active();
  std::map<std::string, double> cross_p50;
  for (auto b : ctx.loop_backends()) {
    const std::string loop = kcont::backend_name(b);
    const std::string tag = "." + loop + "_loop";
    kcont::runtime rt(ctx.runtime_cfg(b));
    ctx.step("cross-CPU idle, " + loop + " loop");
    double cpu_idle = 0;
    auto cross =
        ctx.latency_row("softint.latency.cross_idle" + tag,
                        "softint_schedule_cpu, cross-CPU, idle (" + loop + " loop)",
                        with_cpu_use([&] { return bench_softint_cross_idle(o, rt); }, cpu_idle),
                        "softint cross-CPU (" + loop + ")");
    cross_p50[loop] = cross.all.p50;
    // Spin-then-park (runtime_config::spin_before_sleep, off by default): the same row with a
    // window longer than the gap between samples, so the loop is still polling when the next
    // schedule comes. Asio and libevent have no such mode. The price is the CPU time.
    {
      kcont::runtime_config spin_cfg = ctx.runtime_cfg(b);
      spin_cfg.spin_before_sleep = std::chrono::microseconds(o.gap_us + 70);
      kcont::runtime spin_rt(spin_cfg);
      ctx.step("cross-CPU, spin-then-park, " + loop + " loop");
      double cpu_spin = 0;
      auto spun = ctx.latency_row(
          "softint.latency.cross_spin" + tag,
          "softint_schedule_cpu, cross-CPU, spin " + std::to_string(o.gap_us + 70) +
              " us before sleeping (" + loop + " loop)",
          with_cpu_use([&] { return bench_softint_cross_idle(o, spin_rt); }, cpu_spin));
      spin_rt.stop();
      ctx.ratio("softint.latency.cross_spin" + tag + ".p50_over_idle",
                "spin-then-park p50 / idle p50 (" + loop + " loop)", spun.all.p50 / cross.all.p50);
      ctx.ratio("softint.cpu.cross_idle" + tag,
                "process CPU per wall second, idle row (" + loop + " loop; sender spins too)",
                cpu_idle);
      ctx.ratio("softint.cpu.cross_spin" + tag,
                "process CPU per wall second, spin row (" + loop + " loop; sender spins too)",
                cpu_spin);
    }
    ctx.step("cross-CPU busy, " + loop + " loop");
    ctx.latency_row("softint.latency.cross_busy" + tag,
                    "softint_schedule_cpu, cross-CPU, busy (" + loop + " loop)",
                    bench_softint_cross_busy(o, rt));
    ctx.step("same CPU, " + loop + " loop");
    ctx.latency_row("softint.latency.same_cpu" + tag,
                    "softint_schedule, same CPU, from a handler (" + loop + " loop)",
                    bench_softint_same_cpu(o, rt));
    rt.stop();
  }
  for (const auto& [loop, p50] : cross_p50) {
    ctx.ratio("softint.latency.cross_idle." + loop + "_loop.p50_over_floor",
              "cross-CPU idle p50 / floor (" + loop + " loop)", p50 / floor.all.p50);
    ctx.ratio("softint.latency.cross_idle." + loop + "_loop.p50_over_asio_post",
              "cross-CPU idle p50 / asio::post (" + loop + " loop)", p50 / asio.all.p50);
    if (ev_active)
      ctx.ratio("softint.latency.cross_idle." + loop + "_loop.p50_over_libevent_active",
                "cross-CPU idle p50 / libevent event_active (" + loop + " loop)",
                p50 / ev_active->all.p50);
  }
  if (cross_p50.count("libevent") && cross_p50.count("asio"))
    ctx.ratio("softint.latency.cross_idle.libevent_loop_over_asio_loop",
              "cross-CPU idle p50, libevent loop / asio loop",
              cross_p50["libevent"] / cross_p50["asio"]);

  kcont::runtime rt(ctx.runtime_cfg());
  ctx.cost_header("cost of softint_schedule on an already-pending softint (" +
                  std::to_string(g_cost_reps) + " reps of " + std::to_string(g_cost_ops) + " ops)");
  ctx.step("coalesced schedule costs");
  cost on_cpu = bench_coalesced_on_cpu(rt);
  cost explicit_cpu = bench_coalesced_foreign(rt, true);
  cost foreign = bench_coalesced_foreign(rt, false);
  cost mutex = bench_mutex_pair();
  rt.stop();
  ctx.cost_row("softint.coalesced.on_cpu", "softint_schedule from a handler on the CPU",
               on_cpu.ns_per_op, "ns/op", on_cpu.allocations);
  ctx.cost_row("softint.coalesced.foreign_explicit_cpu",
               "softint_schedule_cpu from a foreign thread", explicit_cpu.ns_per_op, "ns/op",
               explicit_cpu.allocations);
  ctx.cost_row("softint.coalesced.foreign_curcpu",
               "softint_schedule from a foreign thread (sched_getcpu)", foreign.ns_per_op, "ns/op",
               foreign.allocations);
  ctx.cost_row("softint.coalesced.peer.mutex_pair", "peer: uncontended std::mutex lock+unlock",
               mutex.ns_per_op, "ns/op", mutex.allocations);
}

}  // namespace kcont_bench
