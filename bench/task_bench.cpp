// Thread-context work, beside the peers a user would pick instead, in the same run:
// - task_dispatch (taskctx) cost, uncontended and with 2 threads contending, against
//   asio::strand dispatch (from a foreign thread, and from a thread running the io_context,
//   where it runs inline) and a plain std::mutex;
// - enqueue -> run latency to an idle worker of another CPU (workqueue_enqueue on a WQ_PERCPU
//   queue), against asio::post to an idle io_context thread and the eventfd floor.
#include <kcont/runtime.h>
#include <kcont/task.h>
#include <kcont/workqueue.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <cstdlib>
#include <mutex>

#include "alloc_count.h"
#include "bench_util.h"
#include "latency_harness.h"

using namespace kcont_bench;
namespace asio = boost::asio;

namespace {

constexpr int kReps = 9;

struct result {
  std::vector<double> ns;  // ns per op, one per repetition
  std::uint64_t allocs = 0;
  double median() const { return summarize(ns).p50; }
};

template <class F>
result repeat(int ops, F&& run_ops) {  // run_ops(ops) performs `ops` operations
  result r;
  for (int i = 0; i < kReps; ++i) {
    std::uint64_t a0 = allocations();
    std::int64_t t0 = now_ns();
    run_ops(ops);
    std::int64_t t1 = now_ns();
    r.allocs += allocations() - a0;
    r.ns.push_back(static_cast<double>(t1 - t0) / ops);
  }
  return r;
}

long g_counter = 0;  // the protected resource
void bump(void*) {
  ++g_counter;
}

result bench_dispatch_uncontended(int ops) {
  taskctx tc;
  taskctx_init(&tc, 0);
  task t = TASK_INITIALIZER(bump, nullptr);
  return repeat(ops, [&](int n) {
    for (int i = 0; i < n; ++i) task_dispatch(&tc, &t);
  });
}

result bench_mutex_uncontended(int ops) {
  std::mutex mu;
  return repeat(ops, [&](int n) {
    for (int i = 0; i < n; ++i) {
      std::lock_guard<std::mutex> lk(mu);
      ++g_counter;
    }
  });
}

// From a thread that does not run the io_context: every dispatch is queued and run by the
// io_context thread; cost = wall time until all have run / ops.
result bench_strand_foreign(int ops) {
  asio::io_context ioc(1);
  auto guard = asio::make_work_guard(ioc);
  std::thread runner([&] {
    pin_this_thread(1);
    ioc.run();
  });
  auto strand = asio::make_strand(ioc);
  std::atomic<long> done{0};
  result r = repeat(ops, [&](int n) {
    long target = done.load() + n;
    for (int i = 0; i < n; ++i)
      asio::dispatch(strand, [&] {
        ++g_counter;
        done.fetch_add(1, std::memory_order_relaxed);
      });
    while (done.load() < target) {
    }
  });
  guard.reset();
  runner.join();
  return r;
}

// From inside a handler on the io_context thread: dispatch enters the strand and runs inline.
result bench_strand_pool_thread(int ops) {
  asio::io_context ioc(1);
  auto strand = asio::make_strand(ioc);
  result r;
  asio::post(ioc, [&] {
    r = repeat(ops, [&](int n) {
      for (int i = 0; i < n; ++i) asio::dispatch(strand, [] { ++g_counter; });
    });
  });
  ioc.run();
  return r;
}

template <class Op>
result contended(int ops, Op op) {  // 2 threads, ops each; ns per op over both
  result r;
  for (int rep = 0; rep < kReps; ++rep) {
    std::atomic<int> ready{0};
    std::int64_t t0 = 0, t1 = 0;
    std::thread other([&] {
      pin_this_thread(1);
      ++ready;
      while (ready.load() < 2) {
      }
      for (int i = 0; i < ops; ++i) op();
    });
    ++ready;
    while (ready.load() < 2) {
    }
    t0 = now_ns();
    for (int i = 0; i < ops; ++i) op();
    other.join();
    t1 = now_ns();
    r.ns.push_back(static_cast<double>(t1 - t0) / (2.0 * ops));
  }
  return r;
}

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

int main(int argc, char** argv) {
  common_options opts;
  if (int rc = parse_common_options(argc, argv, "bench_task", opts); rc >= 0) return rc;
  const bool quick = opts.quick;
  const std::string json = opts.json;
  bench_start("kcont task benchmark");
  const int ops = quick ? 200000 : 2000000;
  report rep;

  result d = bench_dispatch_uncontended(ops);
  result m = bench_mutex_uncontended(ops);
  result sf = bench_strand_foreign(ops / 4);
  result sp = bench_strand_pool_thread(ops);
  taskctx tc;
  taskctx_init(&tc, 0);
  // Contended: each thread cycles through 1024 tasks of its own, so that a dispatch is rarely
  // absorbed by the same task still being queued.
  struct task_ring {
    task tasks[1024];
    unsigned next = 0;
    task_ring() {
      for (task& t : tasks) task_set(&t, bump, nullptr);
    }
  };
  result dc = contended(ops / 4, [&] {
    thread_local task_ring ring;
    task_dispatch(&tc, &ring.tasks[ring.next++ % 1024]);
  });
  std::mutex mu;
  result mc = contended(ops / 4, [&] {
    std::lock_guard<std::mutex> lk(mu);
    ++g_counter;
  });

  std::printf("\nns per operation (median of %d repetitions)\n", kReps);
  std::printf("  %-58s %8.1f  allocs %llu\n", "task_dispatch, uncontended", d.median(),
              static_cast<unsigned long long>(d.allocs));
  std::printf("  %-58s %8.1f\n", "peer: std::mutex lock+unlock, uncontended", m.median());
  std::printf("  %-58s %8.1f\n", "peer: asio::strand dispatch from a foreign thread", sf.median());
  std::printf("  %-58s %8.1f\n", "peer: asio::strand dispatch from the io_context thread",
              sp.median());
  std::printf("  %-58s %8.1f\n", "task_dispatch, 2 threads contending", dc.median());
  std::printf("  %-58s %8.1f\n", "peer: std::mutex, 2 threads contending", mc.median());
  std::printf("\n  strand(foreign) / task_dispatch: %.1fx   (bar >= 2x)\n",
              sf.median() / d.median());
  std::printf("  task_dispatch / mutex pair:      %.2fx  (bar <= 3x)\n", d.median() / m.median());
  rep.add("taskctx.dispatch.uncontended", d.median(), "ns/op");
  rep.add("taskctx.dispatch.uncontended.allocs", static_cast<double>(d.allocs), "count");
  rep.add("taskctx.mutex_pair.uncontended", m.median(), "ns/op");
  rep.add("taskctx.asio_strand.foreign", sf.median(), "ns/op");
  rep.add("taskctx.asio_strand.pool_thread", sp.median(), "ns/op");
  rep.add("taskctx.dispatch.contended2", dc.median(), "ns/op");
  rep.add("taskctx.mutex.contended2", mc.median(), "ns/op");
  rep.add("taskctx.strand_foreign_over_dispatch", sf.median() / d.median(), "ratio");
  rep.add("taskctx.dispatch_over_mutex", d.median() / m.median(), "ratio");

  // Latency to an idle worker on another CPU.
  latency_options lo;
  lo.samples = quick ? 2000 : 10000;
  kcont::runtime_config cfg;
  cfg.ncpu = 2;
  kcont::parse_backend(opts.backend, cfg.backend);
  if (!kcont::backend_available(cfg.backend)) {
    std::fprintf(stderr, "the %s backend is not built into this kcont\n", opts.backend.c_str());
    return 2;
  }
  kcont::runtime rt(cfg);
  auto floor = summarize(bench_eventfd_floor(lo));
  auto wql = summarize(bench_workqueue_latency(lo, rt));
  auto apl = summarize(bench_asio_post(lo));
  print_latency_header("enqueue -> run on an idle worker of another CPU (one-way, ns)");
  print_latency_row("eventfd ping, idle thread (floor)", floor, floor.p50);
  print_latency_row("workqueue_enqueue(WQ_PERCPU, ci = CPU 1)", wql, floor.p50);
  print_latency_row("peer: asio::post, idle io_context thread", apl, floor.p50);
  rep.add_latency("task.latency.floor_eventfd", floor);
  rep.add_latency("task.latency.workqueue_cross_cpu", wql);
  rep.add_latency("task.latency.asio_post", apl);
  rep.add("task.latency.workqueue_cross_cpu.p50_over_floor", wql.p50 / floor.p50, "ratio");

  const int items = quick ? 400 : 2000;
  bench_elastic_throughput(rt, WQ_MPSAFE | WQ_PERCPU | WQ_ELASTIC, 100);  // warm the pools
  double fixed = bench_elastic_throughput(rt, WQ_MPSAFE | WQ_PERCPU, items);
  double elastic = bench_elastic_throughput(rt, WQ_MPSAFE | WQ_PERCPU | WQ_ELASTIC, items);
  std::printf("\nthroughput, %d items, half sleeping 1 ms in kpause, half computing 50 us\n",
              items);
  std::printf("  fixed: one worker per CPU per queue   %9.0f items/s\n", fixed);
  std::printf("  WQ_ELASTIC (blocking-aware)           %9.0f items/s   %.2fx  (bar >= 2x)\n",
              elastic, elastic / fixed);
  rep.add("task.elastic.fixed", fixed, "items/s");
  rep.add("task.elastic.elastic", elastic, "items/s");
  rep.add("task.elastic.ratio", elastic / fixed, "ratio");
  if (g_counter == 0) std::printf("(counter %ld)\n", g_counter);
  if (!json.empty() && !rep.write_json(json)) return 1;
  return 0;
}
