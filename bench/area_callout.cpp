// callout area: arm+cancel cost with P callouts already pending, beside boost::asio::steady_timer
// (expires_after + async_wait + cancel, the cancelled handler processed by poll()) and libevent
// (evtimer_add + evtimer_del), in the same run; bytes per pending timer; and firing lateness
// (fire time - deadline) of 10^4 callouts spread over 1-100 ms.
#include <kcont/callout.h>
#include <kcont/internal/machine_hooks.h>
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
#include "kcont_bench.h"

namespace kcont_bench {

namespace {

int kReps = 7;

struct cost {
  std::vector<double> ns;  // per repetition, ns per arm+cancel pair
  std::uint64_t allocs = 0;
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

void area_callout(context& ctx) {
  kReps = ctx.pick(5, 7);
  const int pairs = ctx.pick(20000, 200000);
  report& rep = ctx.rep();
  kcont::runtime rt(ctx.runtime_cfg());
  const std::size_t sizes[] = {1000, 10000, 100000, 1000000};
  const char* names[] = {"P1e3", "P1e4", "P1e5", "P1e6"};
  ctx.cost_header("arm+cancel pair with P timers already pending (" + std::to_string(kReps) +
                  " reps of " + std::to_string(pairs) + " pairs)");
  double kcont_small = 0, kcont_large = 0;
  for (int i = 0; i < 4; ++i) {
    const std::size_t p = sizes[i];
    const std::string base = std::string("callout.arm_cancel.") + names[i];
    const std::string at = " (P = 10^" + std::to_string(3 + i) + ")";
    ctx.step(std::string("arm+cancel at 10^") + std::to_string(3 + i) + " pending: kcont");
    cost k = bench_kcont(rt, p, pairs);
    ctx.step(std::string("arm+cancel at 10^") + std::to_string(3 + i) +
             " pending: asio::steady_timer");
    cost a = bench_asio(p, pairs);
    spread ks =
        ctx.cost_row(base + ".kcont", "callout_reset + callout_stop" + at, k.ns, "ns/op", k.allocs);
    spread as = ctx.cost_row(base + ".peer.asio_steady_timer",
                             "peer: asio::steady_timer expires_after+async_wait+cancel" + at, a.ns);
    double ev = std::nan("");
#ifdef KCONT_HAVE_LIBEVENT
    ctx.step(std::string("arm+cancel at 10^") + std::to_string(3 + i) + " pending: libevent");
    spread es =
        ctx.cost_row(base + ".peer.libevent_evtimer",
                     "peer: libevent evtimer_add + evtimer_del" + at, bench_libevent(p, pairs).ns);
    ev = es.value;
#endif
    ctx.ratio(base + ".asio_over_kcont", "asio / kcont" + at, as.value / ks.value);
    if (std::isfinite(ev))
      ctx.ratio(base + ".libevent_over_kcont", "libevent / kcont" + at, ev / ks.value);
    ctx.plots().arm_cancel.push_back({static_cast<double>(p), ks.value, as.value, ev});
    if (i == 0) kcont_small = ks.value;
    if (i == 3) kcont_large = ks.value;
  }
  ctx.ratio("callout.arm_cancel.kcont_P1e6_over_P1e3", "kcont at P = 10^6 / at P = 10^3",
            kcont_large / kcont_small);
  std::printf(
      "\nbytes per pending timer: struct callout %zu (plus a fixed 16 KiB wheel per CPU); "
      "asio::steady_timer %zu + its wait operation on the heap",
      sizeof(callout), sizeof(boost::asio::steady_timer));
  rep.add("callout.bytes_per_pending.kcont", static_cast<double>(sizeof(callout)), "bytes");
  rep.add("callout.bytes_per_pending.peer.asio_steady_timer",
          static_cast<double>(sizeof(boost::asio::steady_timer)), "bytes");
#ifdef KCONT_HAVE_LIBEVENT
  std::printf("; libevent struct event %zu", event_get_struct_event_size());
  rep.add("callout.bytes_per_pending.peer.libevent_event",
          static_cast<double>(event_get_struct_event_size()), "bytes");
#endif
  std::printf("\n");
  rt.stop();

  ctx.step("idle timer wake floor (timerfd)");
  std::vector<double> floor_v = bench_timerfd_floor(ctx.pick(300, 3000));
  const double tick_us = 1e6 / 1000.0;
  ctx.latency_header("firing lateness, 10^4 callouts over 1-100 ms (hz 1000), ns");
  latency_summary floor = ctx.latency_row("callout.floor.timerfd",
                                          "floor: raw timerfd wake 1 ms ahead, core 1", floor_v);
  for (auto b : ctx.loop_backends()) {
    const std::string loop = kcont::backend_name(b);
    const std::string tag = "." + loop + "_loop";
    kcont::runtime rtl(ctx.runtime_cfg(b));
    ctx.step("firing lateness, " + loop + " loop");
    std::int64_t early = 0;
    std::vector<double> beyond_v;
    auto late_v = bench_lateness(rtl, 10000, early, beyond_v);
    rtl.stop();
    latency_summary late =
        ctx.latency_row("callout.lateness" + tag, "fire - deadline (" + loop + " loop)", late_v);
    ctx.latency_row("callout.lateness.beyond_tick" + tag,
                    "fire - start of the due tick (" + loop + " loop)", beyond_v);
    rep.add("callout.lateness" + tag + ".max", late.all.max, "ns");
    rep.add("callout.lateness" + tag + ".early", static_cast<double>(early), "count");
    std::printf("  %s loop: early %lld; bar p99 %.0f us <= tick + idle-wake p99 = %.0f us: %s\n",
                loop.c_str(), static_cast<long long>(early), late.all.p99 / 1000,
                tick_us + floor.all.p99 / 1000,
                late.all.p99 <= tick_us * 1000 + floor.all.p99 ? "met" : "NOT met");
  }
}

}  // namespace kcont_bench
