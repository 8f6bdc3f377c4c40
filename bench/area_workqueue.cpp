// workqueue area: workqueue_enqueue -> run latency to an idle worker of another CPU (a
// WQ_PERCPU queue), against asio::post and a mutex+condvar queue to an idle thread and the
// eventfd floor; then the blocking rows (area_workqueue_blocking.cpp).
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

  rt.stop();
  workqueue_blocking_rows(ctx);  // area_workqueue_blocking.cpp
}

}  // namespace kcont_bench
