// workqueue area: workqueue_enqueue -> run latency to an idle worker of another CPU (a
// WQ_PERCPU queue), against asio::post and a mutex+condvar queue to an idle thread and the
// eventfd floor; and the blocking-aware elasticity run: throughput of an elastic queue
// (WQ_ELASTIC: another worker takes over while one sleeps) against the same queue fixed at one
// worker per CPU, when half the items sleep.
#include <kcont/runtime.h>
#include <kcont/workqueue.h>

#include "kcont_bench.h"

namespace kcont_bench {

namespace {

// workqueue_enqueue from core 0 to an idle worker of CPU 1 (pinned to core 1).
std::vector<double> bench_workqueue_latency(const latency_options& o, kcont::runtime& rt) {
  kcont::runtime_scope scope(rt);
  struct ctx {
    work wk;
    probe* pr;
  };
  probe pr;
  ctx x{{}, &pr};
  workqueue* wq = nullptr;
  workqueue_create(
      &wq, "bench", [](work* wk, void*) { reinterpret_cast<ctx*>(wk)->pr->hit(); }, nullptr,
      PRI_HIGH, 0, WQ_MPSAFE | WQ_PERCPU);
  cpu_info* target = rt.cpu(1);
  auto v = one_way(o, pr, [&] { workqueue_enqueue(wq, &x.wk, target); });
  workqueue_destroy(wq);
  return v;
}

// Throughput when half the items sleep 1 ms (kpause, 1 tick) and half compute 50 us, spread
// over both CPUs: an elastic queue (another worker takes over while one sleeps) against the
// same queue fixed at one worker per CPU.
double bench_elastic_throughput(kcont::runtime& rt, int flags, int items) {
  kcont::runtime_scope scope(rt);
  struct item {
    work wk;
    bool sleeps;
  };
  std::vector<item> v(items);
  workqueue* wq = nullptr;
  workqueue_create(
      &wq, "elastic",
      [](work* wk, void*) {
        if (reinterpret_cast<item*>(wk)->sleeps)
          kpause("bench", false, 1, nullptr);
        else
          spin_for(50'000);
      },
      nullptr, PRI_MEDHIGH, 0, flags);
  std::int64_t t0 = now_ns();
  for (int i = 0; i < items; ++i) {
    v[i].sleeps = (i / 2) % 2 == 0;
    workqueue_enqueue(wq, &v[i].wk, rt.cpu(i % 2));
  }
  workqueue_destroy(wq);  // returns when every item has run
  return items / (static_cast<double>(now_ns() - t0) / 1e9);
}

}  // namespace

void area_workqueue(context& ctx) {
  const latency_options& o = ctx.lat();
  // The references are measured before the runtime's threads exist.
  ctx.latency_header_with_references(
      "enqueue -> run on an idle worker of another CPU (one-way, ns)",
      context::peer_asio | context::peer_condvar_queue);
  const latency_summary floor = ctx.floor();
  const latency_summary asio = ctx.peer_asio_post();
  kcont::runtime rt(ctx.runtime_cfg());
  ctx.step("workqueue_enqueue cross-CPU latency");
  auto wql = ctx.latency_row("workqueue.latency.enqueue_cross_cpu",
                             "workqueue_enqueue(WQ_PERCPU, ci = CPU 1)",
                             bench_workqueue_latency(o, rt), "workqueue_enqueue cross-CPU");
  ctx.ratio("workqueue.latency.enqueue_cross_cpu.p50_over_floor", "enqueue p50 / floor",
            wql.all.p50 / floor.all.p50);
  ctx.ratio("workqueue.latency.enqueue_cross_cpu.p50_over_asio_post", "enqueue p50 / asio::post",
            wql.all.p50 / asio.all.p50);

  const int items = ctx.pick(400, 2000);
  const int reps = ctx.pick(3, 5);
  ctx.step("elasticity: warm-up");
  bench_elastic_throughput(rt, WQ_MPSAFE | WQ_PERCPU | WQ_ELASTIC, 100);  // warm the pools
  std::vector<double> fixed, elastic;
  for (int r = 0; r < reps; ++r) {
    ctx.step("elasticity: fixed vs WQ_ELASTIC, repetition " + std::to_string(r + 1) + "/" +
             std::to_string(reps));
    fixed.push_back(bench_elastic_throughput(rt, WQ_MPSAFE | WQ_PERCPU, items));
    elastic.push_back(bench_elastic_throughput(rt, WQ_MPSAFE | WQ_PERCPU | WQ_ELASTIC, items));
  }
  rt.stop();
  ctx.cost_header("throughput, " + std::to_string(items) +
                      " items, half sleeping 1 ms in kpause, half computing 50 us (" +
                      std::to_string(reps) + " reps)",
                  "items/s");
  spread fs = ctx.cost_row("workqueue.elastic.fixed", "fixed: one worker per CPU per queue", fixed,
                           "items/s");
  spread es =
      ctx.cost_row("workqueue.elastic.elastic", "WQ_ELASTIC (blocking-aware)", elastic, "items/s");
  ctx.ratio("workqueue.elastic.elastic_over_fixed", "WQ_ELASTIC / fixed", es.value / fs.value);
}

}  // namespace kcont_bench
