// taskctx area: task_dispatch (the 2015 taskctx serialiser) cost, uncontended and with 2
// threads contending (per call, and per task that actually ran: a dispatch of a task still
// queued runs nothing more), against asio::strand dispatch (from a foreign thread, and from a
// thread running the io_context, where it runs inline) and a plain std::mutex, in the same run.
#include <kcont/runtime.h>
#include <kcont/taskctx.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <memory>
#include <mutex>
#include <vector>

#include "alloc_count.h"
#include "kcont_bench.h"

namespace kcont_bench {

namespace asio = boost::asio;

namespace {

int kReps = 9;

struct result {
  std::vector<double> ns;  // ns per op, one per repetition
  std::uint64_t allocs = 0;
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

// 2 threads, ops each. ns per call over both; when `runs` is given (a counter every run of the
// protected work bumps, under the serialisation), also ns per run: a task_dispatch of a task
// still queued runs nothing more, so per call and per run differ.
struct contended_result {
  result per_call;
  std::vector<double> per_run;        // ns per run, one per repetition (with `runs`)
  std::vector<double> runs_per_call;  // runs / calls, one per repetition (with `runs`)
};

template <class Op>
contended_result contended(int ops, Op op, const long* runs = nullptr) {
  contended_result r;
  for (int rep = 0; rep < kReps; ++rep) {
    std::atomic<int> ready{0};
    std::int64_t t0 = 0, t1 = 0;
    const long runs0 = runs ? *runs : 0;
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
    other.join();  // both calls returned: whoever was inside ran everything queued before leaving
    t1 = now_ns();
    const double calls = 2.0 * ops;
    r.per_call.ns.push_back(static_cast<double>(t1 - t0) / calls);
    if (runs) {
      const double ran = static_cast<double>(*runs - runs0);
      r.per_run.push_back(ran > 0 ? static_cast<double>(t1 - t0) / ran : std::nan(""));
      r.runs_per_call.push_back(ran / calls);
    }
  }
  return r;
}

}  // namespace

void area_taskctx(context& ctx) {
  kReps = ctx.pick(5, 9);
  const int ops = ctx.pick(200000, 2000000);
  ctx.step("task_dispatch and std::mutex, uncontended");
  result d = bench_dispatch_uncontended(ops);
  result m = bench_mutex_uncontended(ops);
  ctx.step("asio::strand dispatch");
  result sf = bench_strand_foreign(ops / 4);
  result sp = bench_strand_pool_thread(ops);
  ctx.step("task_dispatch and std::mutex, 2 threads contending");
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
  // Runs are counted by g_counter (bump()), which only these tasks touch meanwhile. The rings
  // outlive the threads: a thread's last tasks may still be queued in the taskctx (run by the
  // other thread) when it exits, so they are freed only after taskctx_barrier.
  std::vector<std::unique_ptr<task_ring>> rings;
  std::mutex rings_mu;
  contended_result dc = contended(
      ops / 4,
      [&] {
        thread_local task_ring* ring = nullptr;
        thread_local const void* ring_owner = nullptr;  // the rings of this run, not a past one
        if (ring_owner != &rings) {
          std::lock_guard<std::mutex> lk(rings_mu);
          rings.push_back(std::make_unique<task_ring>());
          ring = rings.back().get();
          ring_owner = &rings;
        }
        task_dispatch(&tc, &ring->tasks[ring->next++ % 1024]);
      },
      &g_counter);
  taskctx_barrier(&tc);  // every queued task has run: the rings may go
  std::mutex mu;
  contended_result mc = contended(ops / 4, [&] {  // every lock+unlock runs the work once
    std::lock_guard<std::mutex> lk(mu);
    ++g_counter;
  });
  const double run_share = median_of(dc.runs_per_call);

  ctx.cost_header("ns per operation (median of " + std::to_string(kReps) + " reps, min..max)");
  spread ds = ctx.cost_row("taskctx.cost.dispatch_uncontended", "task_dispatch, uncontended", d.ns,
                           "ns/op", d.allocs);
  spread ms = ctx.cost_row("taskctx.cost.peer.mutex_uncontended",
                           "peer: std::mutex lock+unlock, uncontended", m.ns);
  spread sfs = ctx.cost_row("taskctx.cost.peer.asio_strand_foreign",
                            "peer: asio::strand dispatch from a foreign thread", sf.ns);
  ctx.cost_row("taskctx.cost.peer.asio_strand_inline",
               "peer: asio::strand dispatch from the io_context thread", sp.ns);
  char share[32];
  std::snprintf(share, sizeof share, "%.0f%%", 100 * run_share);
  ctx.cost_row("taskctx.cost.dispatch_contended2",
               std::string("task_dispatch, 2 threads contending, per call (") + share + " ran)",
               dc.per_call.ns);
  spread dcr = ctx.cost_row("taskctx.cost.dispatch_contended2.per_run",
                            "task_dispatch, 2 threads contending, per task that ran", dc.per_run);
  spread mcs =
      ctx.cost_row("taskctx.cost.peer.mutex_contended2",
                   "peer: std::mutex, 2 threads contending, per lock+unlock", mc.per_call.ns);
  ctx.rep().add("taskctx.cost.dispatch_contended2.runs_per_call", run_share, "ratio");
  ctx.ratio("taskctx.strand_foreign_over_dispatch", "asio::strand (foreign) / task_dispatch",
            sfs.value / ds.value);
  ctx.ratio("taskctx.dispatch_over_mutex", "task_dispatch / std::mutex pair", ds.value / ms.value);
  ctx.ratio("taskctx.dispatch_contended2_per_run_over_mutex",
            "contended: task_dispatch per task that ran / std::mutex", dcr.value / mcs.value);
  if (g_counter == 0) std::printf("(counter %ld)\n", g_counter);
}

}  // namespace kcont_bench
