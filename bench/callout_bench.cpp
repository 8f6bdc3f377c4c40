// callout arm+cancel cost with P callouts already pending, beside boost::asio::steady_timer
// (expires_after + async_wait + cancel, the cancelled handler processed by poll()) and libevent
// (evtimer_add + evtimer_del), in the same run; bytes per pending timer; and firing lateness
// (fire time - deadline) of 10^4 callouts spread over 1-100 ms.
#include <kcont/callout.h>
#include <kcont/machine_hooks.h>
#include <kcont/runtime.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#ifdef KCONT_HAVE_LIBEVENT
#include <event2/event.h>
#endif

#include <sys/prctl.h>
#include <sys/timerfd.h>

#include <cstdlib>
#include <memory>
#include <new>
#include <random>

#include "alloc_count.h"
#include "asio_timer_peer.h"
#include "bench_util.h"

using namespace kcont_bench;

namespace {

constexpr int kReps = 7;

struct cost {
  std::vector<double> ns;  // per repetition, ns per arm+cancel pair
  std::uint64_t allocs = 0;
  double median() const { return summarize(ns).p50; }
};

template <class F>
cost time_pairs(int pairs, F&& pair) {
  cost c;
  for (int r = 0; r < kReps; ++r) {
    std::uint64_t a0 = allocations();
    std::int64_t t0 = now_ns();
    for (int i = 0; i < pairs; ++i) pair(i);
    std::int64_t t1 = now_ns();
    c.allocs += allocations() - a0;
    c.ns.push_back(static_cast<double>(t1 - t0) / pairs);
  }
  return c;
}

void noop(void*) {}

cost bench_kcont(kcont::runtime& rt, std::size_t pending, int pairs) {
  kcont::runtime_scope scope(rt);
  std::vector<callout> bg(pending);
  std::mt19937 rng(1);
  for (auto& c : bg) {
    callout_init(&c, CALLOUT_MPSAFE);
    callout_reset(&c, 3'600'000 + static_cast<int>(rng() % 3'600'000), noop, nullptr);
  }
  callout c;
  callout_init(&c, CALLOUT_MPSAFE);
  cost r = time_pairs(pairs, [&](int i) {
    callout_reset(&c, 1000 + (i & 0xffff), noop, nullptr);  // 1-66 s out: levels 1 and 2
    callout_stop(&c);
  });
  callout_destroy(&c);
  for (auto& b : bg) {
    callout_stop(&b);
    callout_destroy(&b);
  }
  return r;
}

cost bench_asio(std::size_t pending, int pairs) {
  cost r;
  r.ns = asio_timer_arm_cancel(pending, pairs, kReps);
  return r;
}

#ifdef KCONT_HAVE_LIBEVENT
void ev_noop(evutil_socket_t, short, void*) {}

cost bench_libevent(std::size_t pending, int pairs) {
  event_base* base = event_base_new();
  std::vector<event*> bg(pending);
  std::mt19937 rng(1);
  for (auto& e : bg) {
    e = evtimer_new(base, ev_noop, nullptr);
    timeval tv{static_cast<time_t>(3600 + rng() % 3600), 0};
    evtimer_add(e, &tv);
  }
  event* t = evtimer_new(base, ev_noop, nullptr);
  cost r = time_pairs(pairs, [&](int i) {
    timeval tv{1 + (i & 0xffff) / 1000, ((i & 0xffff) % 1000) * 1000};
    evtimer_add(t, &tv);
    evtimer_del(t);
  });
  event_free(t);
  for (auto* e : bg) event_free(e);
  event_base_free(base);
  return r;
}
#endif

// 10^4 callouts with deadlines spread over 1-100 ms; lateness = fire time - deadline.
// `beyond_tick` gets fire time - start of the tick the callout was due in (hz 1000 only): the
// part of the lateness that is not tick rounding, i.e. the wake-up and the dispatch.
std::vector<double> bench_lateness(kcont::runtime& rt, int n, std::int64_t& early,
                                   std::vector<double>& beyond_tick) {
  kcont::runtime_scope scope(rt);
  struct item {
    callout c;
    std::int64_t deadline = 0;
    std::atomic<std::int64_t> fired{0};
  };
  std::vector<item> items(n);
  std::mt19937 rng(7);
  for (auto& it : items) {
    callout_init(&it.c, CALLOUT_MPSAFE);
    callout_bind(&it.c, rt.cpu(1));  // core 1: the arming thread keeps core 0 busy meanwhile
    int ms = 1 + static_cast<int>(rng() % 100);
    it.deadline = now_ns() + ms * 1'000'000LL;
    callout_reset(
        &it.c, mstohz(ms), [](void* a) { static_cast<item*>(a)->fired.store(now_ns()); }, &it);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::vector<double> late;
  early = 0;
  for (auto& it : items) {
    std::int64_t f = it.fired.load();
    if (f == 0) continue;
    if (f < it.deadline) ++early;
    late.push_back(static_cast<double>(f - it.deadline));
    const std::int64_t epoch = kcont::machine::epoch_ns(rt), tick = 1'000'000'000 / rt.hz();
    std::int64_t boundary = epoch + (it.deadline - epoch + tick - 1) / tick * tick;
    beyond_tick.push_back(static_cast<double>(f - boundary));
    callout_halt(&it.c, nullptr);
    callout_destroy(&it.c);
  }
  return late;
}

// The floor for a timer: a thread on core 1 blocked in read(2) on a timerfd armed for an
// absolute time 1 ms ahead; lateness = wake time - expiry. On a VM a timer interrupt costs more
// than a cross-core eventfd wake, so this, not the eventfd ping, is the idle wake a callout pays.
std::vector<double> bench_timerfd_floor(int samples) {
  std::vector<double> v;
  std::thread t([&] {
    pin_this_thread(1);
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    for (int i = 0; i < samples; ++i) {
      std::int64_t due = now_ns() + 1'000'000;
      itimerspec its{};
      its.it_value.tv_sec = due / 1'000'000'000;
      its.it_value.tv_nsec = due % 1'000'000'000;
      ::timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, nullptr);
      std::uint64_t n;
      if (::read(fd, &n, sizeof n) == sizeof n) v.push_back(static_cast<double>(now_ns() - due));
    }
    ::close(fd);
  });
  t.join();
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  common_options opts;
  if (int rc = parse_common_options(argc, argv, "bench_callout", opts); rc >= 0) return rc;
  const bool quick = opts.quick;
  const std::string json = opts.json;
  bench_start("kcont callout benchmark");
  kcont::runtime_config cfg;
  cfg.ncpu = 2;
  kcont::parse_backend(opts.backend, cfg.backend);
  if (!kcont::backend_available(cfg.backend)) {
    std::fprintf(stderr, "the %s backend is not built into this kcont\n", opts.backend.c_str());
    return 2;
  }
  kcont::runtime rt(cfg);
  report rep;
  const int pairs = quick ? 20000 : 200000;
  std::vector<std::size_t> sizes = {1000, 100000, 1000000};
  std::printf("\narm+cancel pair, ns (median of %d reps of %d pairs), P already pending\n", kReps,
              pairs);
  std::printf("  %-10s %10s %10s %10s %12s %12s\n", "P", "kcont", "asio", "libevent", "asio/kcont",
              "kcont allocs");
  double kcont_small = 0;
  for (std::size_t p : sizes) {
    cost k = bench_kcont(rt, p, pairs);
    cost a = bench_asio(p, pairs);
    double ev = 0;
#ifdef KCONT_HAVE_LIBEVENT
    ev = bench_libevent(p, pairs).median();
#endif
    if (p == sizes.front()) kcont_small = k.median();
    std::printf("  %-10zu %10.1f %10.1f %10.1f %11.1fx %12llu\n", p, k.median(), a.median(), ev,
                a.median() / k.median(), static_cast<unsigned long long>(k.allocs));
    std::string base = "callout.arm_cancel.P" + std::to_string(p);
    rep.add(base + ".kcont", k.median(), "ns/op");
    rep.add(base + ".asio", a.median(), "ns/op");
    rep.add(base + ".libevent", ev, "ns/op");
    rep.add(base + ".asio_over_kcont", a.median() / k.median(), "ratio");
    rep.add(base + ".kcont_allocs", static_cast<double>(k.allocs), "count");
    if (p == sizes.back())
      std::printf("  kcont at P=10^6 vs P=10^3: %.2fx\n", k.median() / kcont_small);
  }
  std::printf(
      "\nbytes per pending timer: struct callout %zu (plus a fixed 16 KiB wheel per CPU); "
      "asio::steady_timer %zu + its wait operation on the heap",
      sizeof(callout), sizeof(boost::asio::steady_timer));
#ifdef KCONT_HAVE_LIBEVENT
  std::printf("; libevent struct event %zu", event_get_struct_event_size());
#endif
  std::printf("\n");
  rep.add("callout.bytes_per_pending", static_cast<double>(sizeof(callout)), "bytes");

  std::int64_t early = 0;
  std::vector<double> beyond_v;
  auto late = summarize(bench_lateness(rt, 10000, early, beyond_v));
  auto beyond = summarize(beyond_v);
  auto floor = summarize(bench_timerfd_floor(quick ? 500 : 3000));
  const double tick_us = 1e6 / rt.hz();
  std::printf("\nfiring lateness, 10^4 callouts over 1-100 ms (hz=%u, tick %.0f us):\n", rt.hz(),
              tick_us);
  std::printf("  fire - deadline:        p50 %6.0f us  p99 %6.0f us  max %6.0f us  early: %lld\n",
              late.p50 / 1000, late.p99 / 1000, late.max / 1000, static_cast<long long>(early));
  std::printf("  fire - tick boundary:   p50 %6.0f us  p99 %6.0f us  max %6.0f us\n",
              beyond.p50 / 1000, beyond.p99 / 1000, beyond.max / 1000);
  std::printf("  idle timer wake (raw timerfd, the floor): p50 %4.0f us  p99 %4.0f us\n",
              floor.p50 / 1000, floor.p99 / 1000);
  std::printf("  bar: p99 %.0f us <= tick + idle-wake p99 = %.0f us: %s\n", late.p99 / 1000,
              tick_us + floor.p99 / 1000,
              late.p99 <= tick_us * 1000 + floor.p99 ? "met" : "NOT met");
  rep.add("callout.lateness.beyond_tick.p50", beyond.p50, "ns");
  rep.add("callout.lateness.beyond_tick.p99", beyond.p99, "ns");
  rep.add("callout.floor_timerfd.p50", floor.p50, "ns");
  rep.add("callout.floor_timerfd.p99", floor.p99, "ns");
  rep.add("callout.lateness.p50", late.p50, "ns");
  rep.add("callout.lateness.p99", late.p99, "ns");
  rep.add("callout.lateness.max", late.max, "ns");
  rep.add("callout.lateness.early", static_cast<double>(early), "count");
  rt.stop();

  // The same lateness run on the libevent loop backend, when it is built.
  kcont::runtime_config ev_cfg = cfg;
  ev_cfg.backend = kcont::backend_kind::libevent;
  if (kcont::backend_available(ev_cfg.backend)) {
    kcont::runtime rt_ev(ev_cfg);
    std::int64_t ev_early = 0;
    std::vector<double> ev_beyond_v;
    auto ev_late = summarize(bench_lateness(rt_ev, 10000, ev_early, ev_beyond_v));
    auto ev_beyond = summarize(ev_beyond_v);
    std::printf(
        "  libevent backend, fire - deadline: p50 %6.0f us  p99 %6.0f us  max %6.0f us  "
        "early: %lld; fire - tick boundary p50 %.0f us (asio backend: %.0f us)\n",
        ev_late.p50 / 1000, ev_late.p99 / 1000, ev_late.max / 1000,
        static_cast<long long>(ev_early), ev_beyond.p50 / 1000, beyond.p50 / 1000);
    rep.add("callout.lateness.libevent_backend.p50", ev_late.p50, "ns");
    rep.add("callout.lateness.libevent_backend.p99", ev_late.p99, "ns");
    rep.add("callout.lateness.libevent_backend.early", static_cast<double>(ev_early), "count");
    rt_ev.stop();
  }
  if (!json.empty() && !rep.write_json(json)) return 1;
  return 0;
}
