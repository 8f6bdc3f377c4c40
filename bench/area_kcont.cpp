// kcont area: the cost of kcont_schedule when no wake-up is needed, schedule -> func latency (same
// CPU and cross-CPU, on wq_softnet and wq_prihigh), and the timer path (schedule with a delay
// + stop) at 10^5 pending, beside Asio (post, steady_timer) and the eventfd floor, same run;
// and lock-associated ordering under contention: three lock groups on one queue, one lock held
// by an outside thread half of the time, against the same run without the outsider and
// against a mutex+condvar FIFO whose worker blocks on each item's lock.
#include <kcont/kcont.h>
#include <kcont/softint.h>
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <kcont/histogram.h>
#include <kcont/mutex.h>

#include <condition_variable>
#include <deque>
#include <mutex>

#include "alloc_count.h"
#include "asio_timer_peer.h"
#include "kcont_bench.h"

namespace kcont_bench {

namespace {

int kReps = 9;

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

// An uncontended std::mutex lock+unlock, with a second thread alive (glibc skips its atomics in
// a single-threaded process), median of kReps repetitions.
std::vector<double> bench_mutex_pair_kcont_area() {
  std::atomic<bool> stop{false};
  std::thread other([&] {
    while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  std::mutex mu;
  std::vector<double> ns;
  constexpr int n = 1000000;
  for (int r = 0; r < kReps; ++r) {
    const std::int64_t t0 = now_ns();
    for (int i = 0; i < n; ++i) {
      mu.lock();
      mu.unlock();
    }
    ns.push_back(static_cast<double>(now_ns() - t0) / n);
  }
  stop = true;
  other.join();
  return ns;
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

// Lock release -> func start: kc (lock L) is runnable on CPU 1 but L is held by this thread,
// so its drain registers it on L's waiters and the CPU goes to sleep; then mutex_exit(L) at
// t0 must wake the queue and run func (the turnstile path: no polling).
std::vector<double> bench_lock_release(const latency_options& o, kcont::runtime& rt,
                                       kcont_wq_t* wq) {
  kcont::runtime_scope scope(rt);
  probe pr;
  kmutex_t lock;
  mutex_init(&lock, MUTEX_DEFAULT, IPL_NONE);
  kcont_t kc;
  kcont_init(
      &kc, wq, &lock, [](void* a, kcont_t*) { static_cast<probe*>(a)->hit(); }, &pr, 0);
  cpu_info* target = rt.cpu(1);
  const std::int64_t settle_ns = std::int64_t{o.gap_us} * 1000;  // the target CPU asleep
  std::vector<double> v;
  v.reserve(o.samples);
  for (int i = 0; i < o.samples + o.samples / 10; ++i) {
    mutex_enter(&lock);
    while (kcont_schedule(&kc, target, 0) == EBUSY) {  // the previous run is still returning
      mutex_exit(&lock);
      mutex_enter(&lock);
    }
    spin_for(settle_ns);
    pr.done.store(false, std::memory_order_relaxed);
    const std::int64_t t0 = now_ns();
    mutex_exit(&lock);
    while (!pr.done.load(std::memory_order_acquire)) {
    }
    if (i >= o.samples / 10) v.push_back(static_cast<double>(pr.t1.load() - t0));
  }
  kcont_destroy(&kc);
  mutex_destroy(&lock);
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
std::vector<double> bench_timer_kcont(kcont::runtime& rt, int pairs, std::uint64_t& allocs) {
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
  allocs = 0;
  for (int r = 0; r < kReps; ++r) {
    const std::uint64_t a0 = allocations();
    std::int64_t t0 = now_ns();
    for (int i = 0; i < pairs; ++i) {
      kcont_schedule(&kc, nullptr, 1000 + (i & 0xffff));
      kcont_stop(&kc);
    }
    const std::int64_t t1 = now_ns();
    allocs += allocations() - a0;
    v.push_back(static_cast<double>(t1 - t0) / pairs);
  }
  kcont_destroy(&kc);
  for (auto& b : bg) {
    kcont_stop(&b);
    kcont_destroy(&b);
  }
  return v;
}

// ---- lock-associated ordering under contention -------------------------------------------------

constexpr int kGroups = 3;     // lock groups on one queue; group 0's lock is the contended one
constexpr int kPerGroup = 8;   // continuations per group, each rescheduling itself
constexpr int kHoldUs = 1000;  // the outsider holds group 0's lock this long ...
constexpr int kFreeUs = 1000;  // ... then leaves it free this long

struct lock_result {
  double held_rate = 0;                                // runs/s of the contended group
  double others_rate = 0;                              // runs/s of the other groups together
  kcont::net::latency_histogram::snapshot others_lat;  // schedule -> run of the other groups
};

struct lock_run_shared {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> runs[kGroups] = {};
  kcont::net::latency_histogram others_lat;
  cpu_info* cpu = nullptr;
};

struct lock_item {
  kcont_t kc;
  lock_run_shared* sh;
  int group;
  std::int64_t scheduled_at;
};

void lock_item_run(void* a, kcont_t* kc) {
  auto* it = static_cast<lock_item*>(a);
  const std::int64_t now = now_ns();
  if (it->group != 0) it->sh->others_lat.record(static_cast<std::uint64_t>(now - it->scheduled_at));
  it->sh->runs[it->group].fetch_add(1, std::memory_order_relaxed);
  if (!it->sh->stop.load(std::memory_order_relaxed)) {
    it->scheduled_at = now_ns();
    kcont_schedule(kc, it->sh->cpu, 0);
  }
}

// The outsider: holds `lock(i)` for kHoldUs, leaves it for kFreeUs, until told to stop.
template <class Lock, class Unlock>
std::thread start_outsider(std::atomic<bool>& quit, Lock lock, Unlock unlock) {
  return std::thread([&quit, lock, unlock] {
    pin_this_thread(0);
    while (!quit.load()) {
      lock();
      std::this_thread::sleep_for(std::chrono::microseconds(kHoldUs));
      unlock();
      std::this_thread::sleep_for(std::chrono::microseconds(kFreeUs));
    }
  });
}

lock_result measure_window(std::atomic<std::uint64_t>* runs,
                           const kcont::net::latency_histogram& lat, int window_ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // settle
  std::uint64_t r0[kGroups];
  for (int g = 0; g < kGroups; ++g) r0[g] = runs[g].load();
  auto l0 = lat.take();
  const std::int64_t t0 = now_ns();
  std::this_thread::sleep_for(std::chrono::milliseconds(window_ms));
  const double dt = static_cast<double>(now_ns() - t0) / 1e9;
  lock_result r;
  r.held_rate = static_cast<double>(runs[0].load() - r0[0]) / dt;
  for (int g = 1; g < kGroups; ++g)
    r.others_rate += static_cast<double>(runs[g].load() - r0[g]) / dt;
  r.others_lat = lat.take() - l0;
  return r;
}

// kcont: 3 x 8 continuations on CPU 1 of `wq`, each with its group's kmutex_t.
lock_result bench_lock_groups(kcont::runtime& rt, kcont_wq_t* wq, bool contended, int window_ms) {
  kcont::runtime_scope scope(rt);
  auto sh = std::make_unique<lock_run_shared>();
  sh->cpu = rt.cpu(1);
  kmutex_t locks[kGroups];
  for (auto& l : locks) mutex_init(&l, MUTEX_DEFAULT, IPL_NONE);
  std::vector<lock_item> items(kGroups * kPerGroup);
  for (int i = 0; i < kGroups * kPerGroup; ++i) {
    items[i].sh = sh.get();
    items[i].group = i % kGroups;
    kcont_init(&items[i].kc, wq, &locks[i % kGroups], lock_item_run, &items[i], 0);
  }
  std::atomic<bool> quit{false};
  std::thread outsider;
  if (contended)
    outsider = start_outsider(
        quit, [&] { mutex_enter(&locks[0]); }, [&] { mutex_exit(&locks[0]); });
  for (auto& it : items) {
    it.scheduled_at = now_ns();
    kcont_schedule(&it.kc, sh->cpu, 0);
  }
  lock_result r = measure_window(sh->runs, sh->others_lat, window_ms);
  quit = true;
  if (outsider.joinable()) outsider.join();
  sh->stop = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // in-flight runs see stop
  for (auto& it : items) {
    kcont_halt(&it.kc);
    kcont_destroy(&it.kc);
  }
  for (auto& l : locks) mutex_destroy(&l);
  return r;
}

// The peer: one worker thread on core 1 serving a mutex+condvar FIFO; each item takes its
// group's std::mutex (blocking) around its work and is queued again at the tail.
lock_result bench_lock_fifo_peer(bool contended, int window_ms) {
  std::mutex qmu;
  std::condition_variable qcv;
  std::deque<int> q;
  std::mutex locks[kGroups];
  std::atomic<std::uint64_t> runs[kGroups] = {};
  kcont::net::latency_histogram lat;
  std::vector<std::int64_t> scheduled_at(kGroups * kPerGroup);
  std::atomic<bool> stop{false};
  for (int i = 0; i < kGroups * kPerGroup; ++i) {
    scheduled_at[i] = now_ns();
    q.push_back(i);
  }
  std::thread worker([&] {
    pin_this_thread(1);
    for (;;) {
      int i;
      {
        std::unique_lock<std::mutex> lk(qmu);
        qcv.wait(lk, [&] { return stop.load() || !q.empty(); });
        if (stop.load()) return;
        i = q.front();
        q.pop_front();
      }
      const int g = i % kGroups;
      {
        std::lock_guard<std::mutex> lk(locks[g]);
        const std::int64_t now = now_ns();
        if (g != 0) lat.record(static_cast<std::uint64_t>(now - scheduled_at[i]));
        runs[g].fetch_add(1, std::memory_order_relaxed);
      }
      scheduled_at[i] = now_ns();
      std::lock_guard<std::mutex> lk(qmu);
      q.push_back(i);
    }
  });
  std::atomic<bool> quit{false};
  std::thread outsider;
  if (contended)
    outsider = start_outsider(
        quit, [&] { locks[0].lock(); }, [&] { locks[0].unlock(); });
  lock_result r = measure_window(runs, lat, window_ms);
  quit = true;
  if (outsider.joinable()) outsider.join();
  {
    std::lock_guard<std::mutex> lk(qmu);
    stop = true;
  }
  qcv.notify_all();
  worker.join();
  return r;
}

void report_lock(context& ctx, const std::string& name, const std::string& label,
                 const lock_result& base, const lock_result& cont) {
  report& rep = ctx.rep();
  auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  std::printf("  %-44s %12.0f %12.0f %8.2fx %12.0f %10.1f %10.1f\n", label.c_str(),
              base.others_rate, cont.others_rate, cont.others_rate / base.others_rate,
              cont.held_rate, us(base.others_lat.percentile(0.99)),
              us(cont.others_lat.percentile(0.99)));
  rep.add(name + ".baseline.others_runs_per_s", base.others_rate, "runs/s");
  rep.add(name + ".contended.others_runs_per_s", cont.others_rate, "runs/s");
  rep.add(name + ".contended.held_group_runs_per_s", cont.held_rate, "runs/s");
  rep.add(name + ".others_rate_contended_over_baseline", cont.others_rate / base.others_rate,
          "ratio");
  for (auto& [tag, r] :
       {std::pair<const char*, const lock_result*>{"baseline", &base}, {"contended", &cont}}) {
    rep.add(name + "." + tag + ".others_latency.p50",
            static_cast<double>(r->others_lat.percentile(0.5)), "ns");
    rep.add(name + "." + tag + ".others_latency.p99",
            static_cast<double>(r->others_lat.percentile(0.99)), "ns");
  }
}

}  // namespace

// Issue 18, item 4: a continuation re-scheduled from its own func, the full cycle (schedule ->
// the next run of func) on CPU 1, per cycle over n cycles, one figure per repetition. Also the coro
// area's reference.
std::vector<double> bench_resched_cycle(kcont::runtime& rt, kcont_wq_t* wq, int reps) {
  kcont::runtime_scope scope(rt);
  constexpr int n = 20000;
  struct state {
    int runs = 0;
    std::int64_t t0 = 0, t1 = 0;
    std::atomic<bool> done{false};
  } st;
  kcont_t kc;
  kcont_init(
      &kc, wq, nullptr,
      [](void* a, kcont_t* self) {
        auto* s = static_cast<state*>(a);
        if (++s->runs == 1) s->t0 = now_ns();
        if (s->runs < n) {
          kcont_schedule(self, nullptr, 0);
        } else {
          s->t1 = now_ns();
          s->done.store(true, std::memory_order_release);
        }
      },
      &st, 0);
  std::vector<double> ns;
  for (int r = 0; r < reps; ++r) {
    st.runs = 0;
    st.done = false;
    kcont_schedule(&kc, rt.cpu(1), 0);
    while (!st.done.load(std::memory_order_acquire))
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ns.push_back(static_cast<double>(st.t1 - st.t0) / (n - 1));
  }
  kcont_destroy(&kc);
  return ns;
}

void area_kcont(context& ctx) {
  kReps = ctx.pick(5, 9);
  report& rep = ctx.rep();
  kcont::runtime rt(ctx.runtime_cfg());

  ctx.step("kcont_schedule cost, no wake-up");
  std::uint64_t allocs = 0;
  auto sched = bench_schedule_no_wakeup(rt, allocs);
  ctx.cost_header("cost (median of " + std::to_string(kReps) + " reps, min..max)");
  ctx.cost_row("kcont.cost.schedule_no_wakeup",
               "kcont_schedule(kc, NULL, 0), no wake-up (handler on the CPU)", sched, "ns/op",
               allocs);
  ctx.step("re-schedule from its own func, full cycle");
  spread soft_cycle =
      ctx.cost_row("kcont.cost.resched_cycle.softnet",
                   "re-scheduled from its own func, schedule -> next run (wq_softnet)",
                   bench_resched_cycle(rt, wq_softnet, kReps), "ns/cycle");
  spread thread_cycle =
      ctx.cost_row("kcont.cost.resched_cycle.prihigh",
                   "re-scheduled from its own func, schedule -> next run (wq_prihigh)",
                   bench_resched_cycle(rt, wq_prihigh, kReps), "ns/cycle");
  spread pair = ctx.cost_row("kcont.cost.peer.mutex_pair",
                             "peer: uncontended std::mutex lock+unlock (second thread alive)",
                             bench_mutex_pair_kcont_area(), "ns/op");
  ctx.ratio("kcont.cost.resched_cycle.softnet_over_mutex_pair",
            "re-schedule cycle / mutex pair (wq_softnet; bar <= 2)", soft_cycle.value / pair.value);
  ctx.ratio("kcont.cost.resched_cycle.prihigh_over_mutex_pair",
            "re-schedule cycle / mutex pair (wq_prihigh)", thread_cycle.value / pair.value);

  ctx.step("timer path at 10^5 pending: kcont");
  const int pairs = ctx.pick(20000, 200000);
  std::uint64_t timer_allocs = 0;
  auto tk = bench_timer_kcont(rt, pairs, timer_allocs);
  ctx.step("timer path at 10^5 pending: asio::steady_timer");
  auto ta = asio_timer_arm_cancel(100000, pairs, kReps);
  spread tks = ctx.cost_row("kcont.cost.timer_schedule_stop.P1e5",
                            "kcont_schedule(kc, NULL, delay) + kcont_stop, 10^5 pending", tk,
                            "ns/op", timer_allocs);
  spread tas = ctx.cost_row("kcont.cost.timer_schedule_stop.P1e5.peer.asio_steady_timer",
                            "peer: asio::steady_timer arm + cancel, 10^5 pending", ta);
  ctx.ratio("kcont.cost.timer_schedule_stop.P1e5.asio_over_kcont", "asio / kcont (timer path)",
            tas.value / tks.value);

  const latency_options& o = ctx.lat();
  ctx.latency_header_with_references("kcont_schedule(kc, ci, 0) -> func start (one-way, ns)",
                                     context::peer_asio | context::peer_libevent);
  const latency_summary floor = ctx.floor();
  const latency_summary asio = ctx.peer_asio_post();
  ctx.step("wq_prihigh cross-CPU and same CPU");
  auto thr = ctx.latency_row("kcont.latency.prihigh_cross", "wq_prihigh, cross-CPU, idle worker",
                             bench_cross(o, rt, wq_prihigh), "kcont wq_prihigh cross-CPU");
  ctx.latency_row("kcont.latency.prihigh_same", "wq_prihigh, same CPU",
                  bench_same(o, rt, wq_prihigh));
  ctx.ratio("kcont.latency.prihigh_cross.p50_over_floor", "wq_prihigh cross-CPU p50 / floor",
            thr.all.p50 / floor.all.p50);
  // The lock-release rows let the target CPU fall asleep after its drain found the lock held
  // (200 us at least); a longer idle makes a wake-up dearer on a VM, so they are compared with
  // an eventfd floor measured with the same idle gap.
  latency_options ro = o;
  ro.gap_us = std::max(o.gap_us, 200);
  ctx.step("eventfd floor at the lock-release rows' idle gap");
  const latency_summary rfloor = ctx.latency_row(
      "kcont.latency.lock_release.floor",
      "eventfd floor, " + std::to_string(ro.gap_us) + " us idle (lock-release reference)",
      bench_eventfd_floor(ro));
  ctx.step("lock release -> func, wq_prihigh");
  auto rel = ctx.latency_row("kcont.latency.lock_release.prihigh",
                             "mutex_exit(L) -> waiting func (L) starts, wq_prihigh, idle",
                             bench_lock_release(ro, rt, wq_prihigh));
  ctx.ratio("kcont.latency.lock_release.prihigh.p50_over_floor",
            "lock release -> func p50 / floor at the same idle gap (wq_prihigh)",
            rel.all.p50 / rfloor.all.p50);
  // The soft queues run on the CPU loops: their rows on every loop backend.
  for (auto b : ctx.loop_backends()) {
    const std::string loop = kcont::backend_name(b);
    const std::string tag = "." + loop + "_loop";
    kcont::runtime rtl(ctx.runtime_cfg(b));
    ctx.step("wq_softnet cross-CPU and same CPU, " + loop + " loop");
    auto cross = ctx.latency_row(
        "kcont.latency.softnet_cross" + tag, "wq_softnet, cross-CPU, idle (" + loop + " loop)",
        bench_cross(o, rtl, wq_softnet), "kcont wq_softnet cross-CPU (" + loop + ")");
    ctx.latency_row("kcont.latency.softnet_same" + tag, "wq_softnet, same CPU (" + loop + " loop)",
                    bench_same(o, rtl, wq_softnet));
    ctx.step("lock release -> func, wq_softnet, " + loop + " loop");
    auto srel = ctx.latency_row(
        "kcont.latency.lock_release.softnet" + tag,
        "mutex_exit(L) -> waiting func (L) starts, wq_softnet, idle (" + loop + " loop)",
        bench_lock_release(ro, rtl, wq_softnet));
    ctx.ratio(
        "kcont.latency.lock_release.softnet" + tag + ".p50_over_floor",
        "lock release -> func p50 / floor at the same idle gap (wq_softnet, " + loop + " loop)",
        srel.all.p50 / rfloor.all.p50);
    rtl.stop();
    ctx.ratio("kcont.latency.softnet_cross" + tag + ".p50_over_floor",
              "wq_softnet cross-CPU p50 / floor (" + loop + " loop)",
              cross.all.p50 / floor.all.p50);
    ctx.ratio("kcont.latency.softnet_cross" + tag + ".p50_over_asio_post",
              "wq_softnet cross-CPU p50 / asio::post (" + loop + " loop)",
              cross.all.p50 / asio.all.p50);
  }

  const int window_ms = ctx.pick(300, 1500);
  std::printf(
      "\nlock-associated ordering: %d lock groups x %d self-rescheduling continuations on CPU 1;\n"
      "group 0's lock held by an outside thread %d us of every %d us (contended) or never\n"
      "(baseline); %d ms windows. others = groups 1 and 2 together.\n",
      kGroups, kPerGroup, kHoldUs, kHoldUs + kFreeUs, window_ms);
  std::printf("  %-44s %12s %12s %9s %12s %10s %10s\n", "queue", "others/s base", "others/s cont",
              "cont/base", "held grp/s", "p99 us base", "p99 us cont");
  for (auto [wq, qname] :
       {std::pair<kcont_wq_t*, const char*>{wq_softnet, "softnet"}, {wq_prihigh, "prihigh"}}) {
    ctx.step(std::string("lock groups on wq_") + qname + ": baseline");
    lock_result base = bench_lock_groups(rt, wq, false, window_ms);
    ctx.step(std::string("lock groups on wq_") + qname + ": one lock held part of the time");
    lock_result cont = bench_lock_groups(rt, wq, true, window_ms);
    report_lock(ctx, std::string("kcont.lock_order.") + qname, std::string("kcont wq_") + qname,
                base, cont);
  }
  ctx.step("lock groups: peer mutex+condvar FIFO");
  lock_result pbase = bench_lock_fifo_peer(false, window_ms);
  lock_result pcont = bench_lock_fifo_peer(true, window_ms);
  report_lock(ctx, "kcont.lock_order.peer.mutex_condvar_fifo",
              "peer: mutex+condvar FIFO, blocking item lock", pbase, pcont);
  rt.stop();
  (void)rep;
}

}  // namespace kcont_bench
