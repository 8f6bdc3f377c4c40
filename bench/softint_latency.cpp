// softint schedule→handler-start latency and the cost of a coalesced schedule, beside the peers
// a user would pick instead, measured in the same run:
//   floor      an eventfd write → a thread blocked in read(2) on another core
//   asio post  boost::asio::post to an io_context run by a thread on another core
//   condvar    a mutex+condition_variable queue, consumer on another core
// Latency is one-way: the sender stamps t0 just before the call, the receiver stamps t1 first
// thing in its handler; both use steady_clock. Between samples the sender spins --gap-us so the
// receiver is back asleep (an idle wake is what is measured). The sender runs on core 0, every
// receiver on core 1 (kcont CPU 1 is pinned to core 1).
#include <kcont/runtime.h>
#include <kcont/softint.h>
#ifdef KCONT_HAVE_LIBEVENT
#include <event2/event.h>
#include <event2/thread.h>
#endif
#include <sys/eventfd.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <new>

#include "alloc_count.h"
#include "bench_util.h"
#include "latency_harness.h"

using namespace kcont_bench;

namespace {

std::vector<double> bench_condvar(const latency_options& o) {
  probe pr;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<int> q;
  bool quit = false;
  std::thread rx([&] {
    pin_this_thread(1);
    std::unique_lock<std::mutex> lk(mu);
    for (;;) {
      cv.wait(lk, [&] { return quit || !q.empty(); });
      if (quit) return;
      q.pop_front();
      pr.hit();
    }
  });
  auto v = one_way(o, pr, [&] {
    {
      std::lock_guard<std::mutex> lk(mu);
      q.push_back(1);
    }
    cv.notify_one();
  });
  {
    std::lock_guard<std::mutex> lk(mu);
    quit = true;
  }
  cv.notify_one();
  rx.join();
  return v;
}

void hit_probe(void* a) {
  static_cast<probe*>(a)->hit();
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

constexpr int kCostReps = 30;
constexpr int kCostOps = 200000;

template <class F>
cost time_ops(F&& op) {
  cost c;
  for (int r = 0; r < kCostReps; ++r) {
    std::uint64_t a0 = allocations();
    std::int64_t t0 = now_ns();
    for (int i = 0; i < kCostOps; ++i) op();
    std::int64_t t1 = now_ns();
    c.allocations += allocations() - a0;
    c.ns_per_op.push_back(static_cast<double>(t1 - t0) / kCostOps);
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

void print_cost(const char* name, const cost& c) {
  auto p = summarize(c.ns_per_op);
  double lo = *std::min_element(c.ns_per_op.begin(), c.ns_per_op.end());
  std::printf("  %-56s %8.2f  (min %.2f, p99 %.2f over %d reps)  allocs: %llu\n", name, p.p50, lo,
              p.p99, kCostReps, static_cast<unsigned long long>(c.allocations));
}

void usage() {
  std::printf(
      "usage: bench_softint [--samples N] [--gap-us N] [--quick] [--json FILE]\n"
      "                     [--backend asio|libevent]\n"
      "  Measures softint schedule->handler latency (same CPU, cross-CPU idle and busy)\n"
      "  against an eventfd ping (the floor), Asio post and a mutex+condvar queue, and the\n"
      "  cost of scheduling an already-pending softint. --json writes every figure as\n"
      "  {name, value, unit} records.\n");
}

}  // namespace

int main(int argc, char** argv) {
  latency_options o;
  kcont::backend_kind backend = kcont::backend_kind::asio;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--samples")
      o.samples = std::max(100, std::atoi(next()));
    else if (a == "--gap-us")
      o.gap_us = std::max(0, std::atoi(next()));
    else if (a == "--quick")
      o.samples = 3000;
    else if (a == "--backend") {
      if (!kcont::parse_backend(next(), backend) || !kcont::backend_available(backend)) {
        std::fprintf(stderr, "--backend takes asio%s\n",
                     kcont::backend_available(kcont::backend_kind::libevent) ? " or libevent" : "");
        return 2;
      }
    } else if (a == "--json")
      o.json = next();
    else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      usage();
      return 2;
    }
  }
  if (std::thread::hardware_concurrency() < 2)
    std::printf("note: one core only: cross-core figures measure time slicing, not wake-ups\n");
  std::printf("kcont softint benchmark — %s, %d samples per row, %d us between samples\n",
              machine_description().c_str(), o.samples, o.gap_us);

  pin_this_thread(0);
  // glibc skips atomics in a single-threaded process: make sure we are not one.
  std::thread keepalive([] { std::this_thread::sleep_for(std::chrono::milliseconds(1)); });
  keepalive.join();

  report rep;
  kcont::runtime_config cfg;
  cfg.ncpu = 2;
  cfg.backend = backend;
  kcont::runtime rt(cfg);

  auto floor = summarize(bench_eventfd_floor(o));
  auto asio = summarize(bench_asio_post(o));
  auto cv = summarize(bench_condvar(o));
  auto cross = summarize(bench_softint_cross_idle(o, rt));
  auto busy = summarize(bench_softint_cross_busy(o, rt));
  auto same = summarize(bench_softint_same_cpu(o, rt));
#ifdef KCONT_HAVE_LIBEVENT
  // The same three on the libevent loop backend, and libevent's own cross-thread wake.
  kcont::runtime_config ev_cfg = cfg;
  ev_cfg.backend = kcont::backend_kind::libevent;
  kcont::runtime rt_ev(ev_cfg);
  auto ev_cross = summarize(bench_softint_cross_idle(o, rt_ev));
  auto ev_busy = summarize(bench_softint_cross_busy(o, rt_ev));
  auto ev_same = summarize(bench_softint_same_cpu(o, rt_ev));
  auto ev_active = summarize(bench_libevent_active(o));
  rt_ev.stop();
#endif

  print_latency_header("schedule -> handler start (one-way, ns)");
  print_latency_row("eventfd ping, idle thread (floor)", floor, floor.p50);
  print_latency_row("softint_schedule_cpu, cross-CPU, idle target", cross, floor.p50);
  print_latency_row("asio::post, idle io_context thread", asio, floor.p50);
  print_latency_row("mutex+condvar queue, idle consumer", cv, floor.p50);
  print_latency_row("softint_schedule_cpu, cross-CPU, busy target", busy, floor.p50);
  print_latency_row("softint_schedule, same CPU (from a handler)", same, floor.p50);
#ifdef KCONT_HAVE_LIBEVENT
  print_latency_row("peer: libevent event_active, idle event_base thread", ev_active, floor.p50);
  print_latency_row("libevent backend: softint cross-CPU, idle target", ev_cross, floor.p50);
  print_latency_row("libevent backend: softint cross-CPU, busy target", ev_busy, floor.p50);
  print_latency_row("libevent backend: softint same CPU", ev_same, floor.p50);
  std::printf("  backends, cross-CPU idle p50: libevent / asio = %.2fx\n",
              ev_cross.p50 / cross.p50);
  rep.add_latency("softint.latency.libevent_event_active", ev_active);
  rep.add_latency("softint.latency.libevent_backend.cross_idle", ev_cross);
  rep.add_latency("softint.latency.libevent_backend.cross_busy", ev_busy);
  rep.add_latency("softint.latency.libevent_backend.same_cpu", ev_same);
  rep.add("softint.latency.cross_idle.libevent_over_asio_backend", ev_cross.p50 / cross.p50,
          "ratio");
#endif
  std::printf("  cross-CPU idle softint vs asio::post p50: %.2fx\n", cross.p50 / asio.p50);
  rep.add_latency("softint.latency.floor_eventfd", floor);
  rep.add_latency("softint.latency.cross_idle", cross);
  rep.add_latency("softint.latency.asio_post", asio);
  rep.add_latency("softint.latency.mutex_condvar", cv);
  rep.add_latency("softint.latency.cross_busy", busy);
  rep.add_latency("softint.latency.same_cpu", same);
  rep.add("softint.latency.cross_idle.p50_over_floor", cross.p50 / floor.p50, "ratio");
  rep.add("softint.latency.cross_idle.p50_over_asio", cross.p50 / asio.p50, "ratio");

  std::printf("\ncost of softint_schedule on an already-pending softint (ns/op, median)\n");
  cost on_cpu = bench_coalesced_on_cpu(rt);
  cost explicit_cpu = bench_coalesced_foreign(rt, true);
  cost foreign = bench_coalesced_foreign(rt, false);
  cost mutex = bench_mutex_pair();
  print_cost("softint_schedule from a handler on the CPU", on_cpu);
  print_cost("softint_schedule_cpu from a foreign thread", explicit_cpu);
  print_cost("softint_schedule from a foreign thread (sched_getcpu)", foreign);
  print_cost("peer: uncontended std::mutex lock+unlock", mutex);
  for (auto& [name, c] : {std::pair<const char*, cost*>{"on_cpu", &on_cpu},
                          {"foreign_explicit_cpu", &explicit_cpu},
                          {"foreign_curcpu", &foreign},
                          {"mutex_pair", &mutex}}) {
    rep.add(std::string("softint.coalesced.") + name, summarize(c->ns_per_op).p50, "ns/op");
    rep.add(std::string("softint.coalesced.") + name + ".allocs",
            static_cast<double>(c->allocations), "count");
  }
  rt.stop();
  if (!o.json.empty()) {
    if (!rep.write_json(o.json)) return 1;
    std::printf("\nwrote %zu figures to %s\n", rep.records().size(), o.json.c_str());
  }
  return 0;
}
