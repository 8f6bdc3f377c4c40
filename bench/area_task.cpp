// task area: task(9) task queues (taskq_create / task_add), beside the peers in the same run.
// task_add queues on the adding CPU's own worker pool, so its hand-off is a same-core one:
//   latency  a driver on core 1 (a softint handler on CPU 1 for kcont) stamps t0 and hands the
//            work over; it then returns to its idle loop, and the receiver on core 1 stamps
//            t1. Peers: asio::post from an io_context thread to another io_context thread, and
//            a mutex+condvar queue whose consumer sleeps, all on core 1.
//   cost     the producer (core 0) adds N distinct tasks and yields until all have run: ns
//            per task, add and run on one core; peers: asio::post to an io_context thread
//            and a mutex+condvar queue, consumers on core 0 too. And task_add of a task that
//            is already queued (returns 0), against an uncontended std::mutex pair.
#include <kcont/mutex.h>
#include <kcont/runtime.h>
#include <kcont/softint.h>
#include <kcont/task.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <mutex>

#include "alloc_count.h"
#include "kcont_bench.h"

namespace kcont_bench {

namespace {

namespace asio = boost::asio;

// Drives `samples` same-core hand-offs: trigger() makes the driver stamp x.t0 and hand over;
// the receiver calls x.pr.hit().
struct handoff {
  probe pr;
  std::atomic<std::int64_t> t0{0};
};

template <class Trigger>
std::vector<double> handoff_samples(const latency_options& o, handoff& x, Trigger trigger) {
  std::vector<double> v;
  v.reserve(o.samples);
  for (int i = 0; i < o.samples + o.samples / 10; ++i) {
    x.pr.done.store(false, std::memory_order_relaxed);
    trigger();
    while (!x.pr.done.load(std::memory_order_acquire)) {
    }
    if (i >= o.samples / 10) v.push_back(static_cast<double>(x.pr.t1.load() - x.t0.load()));
    spin_for(o.gap_us * 1000LL);
  }
  return v;
}

std::vector<double> bench_task_add_latency(const latency_options& o, kcont::runtime& rt) {
  kcont::runtime_scope scope(rt);
  struct ctx {
    handoff x;
    taskq* tq;
    task t;
  } c;
  c.tq = taskq_create("bench", 1, IPL_NONE, TASKQ_MPSAFE);
  task_set(
      &c.t, [](void* a) { static_cast<ctx*>(a)->x.pr.hit(); }, &c);
  void* driver = softint_establish_rt(
      rt, SOFTINT_NET | SOFTINT_MPSAFE,
      [](void* a) {
        auto* p = static_cast<ctx*>(a);
        p->x.t0.store(now_ns(), std::memory_order_relaxed);
        task_add(p->tq, &p->t);
      },
      &c);
  auto v = handoff_samples(o, c.x, [&] { softint_schedule_cpu(driver, rt.cpu(1)); });
  softint_disestablish(driver);
  taskq_destroy(c.tq);
  return v;
}

// Two io_context threads on core 1: the driver posts to the receiver.
std::vector<double> bench_asio_same_core(const latency_options& o) {
  handoff x;
  asio::io_context a(1), b(1);
  auto ga = asio::make_work_guard(a);
  auto gb = asio::make_work_guard(b);
  std::thread ta([&] {
    pin_this_thread(1);
    a.run();
  });
  std::thread tb([&] {
    pin_this_thread(1);
    b.run();
  });
  auto v = handoff_samples(o, x, [&] {
    asio::post(a, [&] {
      x.t0.store(now_ns(), std::memory_order_relaxed);
      asio::post(b, [&] { x.pr.hit(); });
    });
  });
  ga.reset();
  gb.reset();
  ta.join();
  tb.join();
  return v;
}

// An io_context thread on core 1 (the driver) pushes to a mutex+condvar queue whose consumer
// sleeps on core 1.
std::vector<double> bench_condvar_same_core(const latency_options& o) {
  handoff x;
  condvar_queue q(1, [&] { x.pr.hit(); });
  asio::io_context a(1);
  auto ga = asio::make_work_guard(a);
  std::thread ta([&] {
    pin_this_thread(1);
    a.run();
  });
  auto v = handoff_samples(o, x, [&] {
    asio::post(a, [&] {
      x.t0.store(now_ns(), std::memory_order_relaxed);
      q.push();
    });
  });
  ga.reset();
  ta.join();
  return v;
}

// ---- costs ------------------------------------------------------------------------------------

struct cost {
  std::vector<double> ns;  // per repetition
  std::uint64_t allocs = 0;
};

std::atomic<long> g_ran{0};

// One repetition: `n` enqueues (allocations counted around them), then yield until all ran.
template <class Enqueue>
cost add_and_run(int n, int reps, Enqueue enqueue) {
  cost c;
  for (int r = -1; r < reps; ++r) {  // repetition -1 warms up (workers, caches)
    const long target = g_ran.load() + n;
    const std::int64_t t0 = now_ns();
    const std::uint64_t a0 = allocations();
    for (int i = 0; i < n; ++i) enqueue(i);
    const std::uint64_t a1 = allocations();
    while (g_ran.load(std::memory_order_acquire) < target) std::this_thread::yield();
    if (r < 0) continue;
    c.allocs += a1 - a0;
    c.ns.push_back(static_cast<double>(now_ns() - t0) / n);
  }
  return c;
}

cost bench_task_add_cost(kcont::runtime& rt, int n, int reps) {
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("bench", 1, IPL_NONE, TASKQ_MPSAFE);
  std::vector<task> tasks(n);
  for (auto& t : tasks)
    task_set(
        &t, [](void*) { g_ran.fetch_add(1, std::memory_order_release); }, nullptr);
  cost c = add_and_run(n, reps, [&](int i) { task_add(tq, &tasks[i]); });
  taskq_destroy(tq);
  return c;
}

cost bench_asio_post_cost(int n, int reps) {
  asio::io_context ioc(1);
  auto guard = asio::make_work_guard(ioc);
  std::thread t([&] {
    pin_this_thread(0);
    ioc.run();
  });
  cost c = add_and_run(n, reps, [&](int) {
    asio::post(ioc, [] { g_ran.fetch_add(1, std::memory_order_release); });
  });
  guard.reset();
  t.join();
  return c;
}

cost bench_condvar_cost(int n, int reps) {
  condvar_queue q(0, [] { g_ran.fetch_add(1, std::memory_order_release); });
  return add_and_run(n, reps, [&](int i) { q.push(i); });
}

// task_add of a task already queued behind a running one (returns 0 every time).
cost bench_task_add_coalesced(kcont::runtime& rt, int ops, int reps) {
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("bench", 1, IPL_NONE, TASKQ_MPSAFE);
  struct hold_t {
    std::atomic<bool> inside{false}, release{false};
  } h;
  task holder, queued;
  task_set(
      &holder,
      [](void* a) {
        auto* p = static_cast<hold_t*>(a);
        p->inside = true;
        while (!p->release.load()) std::this_thread::sleep_for(std::chrono::microseconds(100));
      },
      &h);
  task_set(
      &queued, [](void*) {}, nullptr);
  task_add(tq, &holder);
  while (!h.inside.load()) std::this_thread::yield();
  task_add(tq, &queued);
  for (int i = 0; i < ops; ++i) task_add(tq, &queued);  // warm-up
  cost c;
  for (int r = 0; r < reps; ++r) {
    const std::uint64_t a0 = allocations();
    const std::int64_t t0 = now_ns();
    for (int i = 0; i < ops; ++i) task_add(tq, &queued);
    const std::int64_t t1 = now_ns();
    c.allocs += allocations() - a0;  // before push_back, which may allocate
    c.ns.push_back(static_cast<double>(t1 - t0) / ops);
  }
  h.release = true;
  taskq_destroy(tq);
  return c;
}

cost bench_mutex_pair(int ops, int reps) {
  std::mutex mu;
  cost c;
  for (int r = 0; r < reps; ++r) {
    const std::int64_t t0 = now_ns();
    for (int i = 0; i < ops; ++i) {
      mu.lock();
      mu.unlock();
    }
    c.ns.push_back(static_cast<double>(now_ns() - t0) / ops);
  }
  return c;
}

}  // namespace

void area_task(context& ctx) {
  const latency_options& o = ctx.lat();
  const latency_summary floor = ctx.floor();
  kcont::runtime rt(ctx.runtime_cfg());
  ctx.latency_header("hand-off on one core: driver on core 1 -> receiver on core 1 (ns)");
  ctx.latency_ref_row("eventfd ping, idle thread, cross-core (floor)", floor);
  ctx.step("task_add -> run latency");
  auto ta = ctx.latency_row("task.latency.task_add_same_cpu",
                            "task_add from a softint on CPU 1 -> task on CPU 1",
                            bench_task_add_latency(o, rt), "task_add (same CPU)");
  ctx.step("peer: asio::post io_context -> io_context, same core");
  auto pa = ctx.latency_row("task.latency.peer.asio_post_same_core",
                            "peer: asio::post, io_context -> io_context, core 1",
                            bench_asio_same_core(o));
  ctx.step("peer: mutex+condvar queue, same core");
  auto pc = ctx.latency_row("task.latency.peer.mutex_condvar_same_core",
                            "peer: mutex+condvar queue, core 1", bench_condvar_same_core(o));
  ctx.ratio("task.latency.task_add_same_cpu.p50_over_asio_post",
            "task_add p50 / asio::post (same core)", ta.all.p50 / pa.all.p50);
  ctx.ratio("task.latency.task_add_same_cpu.p50_over_mutex_condvar",
            "task_add p50 / mutex+condvar (same core)", ta.all.p50 / pc.all.p50);

  const int n = 1000;
  const int reps = ctx.pick(30, 200);
  ctx.step("task_add + run cost and peers");
  cost tk = bench_task_add_cost(rt, n, reps);
  cost ap = bench_asio_post_cost(n, reps);
  cost cv = bench_condvar_cost(n, reps);
  ctx.cost_header("add + run, " + std::to_string(n) + " items per repetition, " +
                  std::to_string(reps) + " reps, producer and consumer on core 0 (ns/item)");
  spread tks = ctx.cost_row("task.cost.task_add_run", "task_add + run (taskq, 1 thread)", tk.ns,
                            "ns/op", tk.allocs);
  spread aps = ctx.cost_row("task.cost.peer.asio_post_run", "peer: asio::post + run", ap.ns,
                            "ns/op", ap.allocs);
  spread cvs = ctx.cost_row("task.cost.peer.mutex_condvar_run",
                            "peer: mutex+condvar queue push + run", cv.ns, "ns/op", cv.allocs);
  ctx.ratio("task.cost.asio_post_over_task_add", "asio::post / task_add (add + run)",
            aps.value / tks.value);
  ctx.ratio("task.cost.mutex_condvar_over_task_add", "mutex+condvar / task_add (add + run)",
            cvs.value / tks.value);
  ctx.step("task_add of an already-queued task");
  const int ops = ctx.pick(200000, 2000000);
  const int creps = ctx.pick(5, 9);
  cost co = bench_task_add_coalesced(rt, ops, creps);
  cost mu = bench_mutex_pair(ops, creps);
  ctx.cost_header("task_add of a task already queued (returns 0), " + std::to_string(creps) +
                  " reps");
  ctx.cost_row("task.cost.task_add_queued", "task_add, task already queued", co.ns, "ns/op",
               co.allocs);
  ctx.cost_row("task.cost.peer.mutex_pair", "peer: uncontended std::mutex lock+unlock", mu.ns);
  rt.stop();
}

}  // namespace kcont_bench
