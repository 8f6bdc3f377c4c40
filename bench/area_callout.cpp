// callout area: arm+cancel cost with P timers already pending, beside boost::asio::steady_timer
// (expires_after + async_wait + cancel, the cancelled handlers run by one poll() per 64 pairs,
// and, as a separate row, by one poll() after every pair) and libevent (evtimer_add +
// evtimer_del on a plain event_base), in the same run, in two deadline cases: "earliest" (the
// armed deadline is earlier than every pending one) and "among" (it falls at a random place
// among them); bytes per pending timer; and firing lateness (fire time - deadline) of 10^4
// callouts due at arbitrary nanoseconds, about one per tick, against a raw timerfd floor measured
// in slices between the lateness runs (so that both sample the same minutes).
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

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <random>

#include "alloc_count.h"
#include "asio_timer_peer.h"
#include "kcont_bench.h"

namespace kcont_bench {

namespace {

int kReps = 7;
constexpr int kAsioBatch = 64;  // cancelled Asio handlers run by one poll() per this many pairs

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

// The deadlines of one arm+cancel case, the same for every peer: each pending timer's delay,
// and the delay pair i arms (armed_us[i % 65536]); microseconds from the arm.
struct deadline_case {
  const char* name;    // "earliest" or "among"
  std::string prefix;  // of the record names: "callout.arm_cancel." (+ "among.")
  std::vector<std::int64_t> pending_us, armed_us;
};

constexpr std::int64_t kSecond = 1'000'000;
constexpr std::size_t kArmed = 65536;

// "earliest" (the only case before issue 18): pending timers 1-2 h out, the armed one 1-66 s
// out, earlier than all of them; with a timer heap it becomes the heap's top on every arm.
deadline_case earliest_case(std::size_t pending) {
  deadline_case c{"earliest", "callout.arm_cancel.", std::vector<std::int64_t>(pending),
                  std::vector<std::int64_t>(kArmed)};
  std::mt19937 rng(1);
  for (auto& us : c.pending_us) us = (3600 + static_cast<std::int64_t>(rng() % 3600)) * kSecond;
  for (std::size_t i = 0; i < kArmed; ++i)
    c.armed_us[i] = (1000 + static_cast<std::int64_t>(i)) * 1000;
  return c;
}

// "among": pending timers spread uniformly over 20-120 s, the armed one at a uniformly random
// point of the same span, so it falls among them. (The span starts at 20 s, not 1 s, so that
// no pending timer comes due while a peer is measured; each peer counts those that did.)
constexpr std::int64_t kAmongLo = 20 * kSecond, kAmongSpan = 100 * kSecond;
deadline_case among_case(std::size_t pending) {
  deadline_case c{"among", "callout.arm_cancel.among.", std::vector<std::int64_t>(pending),
                  std::vector<std::int64_t>(kArmed)};
  std::mt19937_64 rng(2);
  std::uniform_int_distribution<std::int64_t> d(kAmongLo, kAmongLo + kAmongSpan);
  for (auto& us : c.pending_us) us = d(rng);
  for (auto& us : c.armed_us) us = d(rng);
  return c;
}

int us_to_ticks(std::int64_t us, unsigned hz) {  // rounded up, as the chrono face does
  return static_cast<int>((us * hz + kSecond - 1) / kSecond);
}

void count_fire(void* a) {
  static_cast<std::atomic<std::uint64_t>*>(a)->fetch_add(1, std::memory_order_relaxed);
}
void noop(void*) {}

// From this (foreign) thread: callout_reset + callout_stop of one callout, P pending.
cost bench_kcont(kcont::runtime& rt, const deadline_case& dc, int pairs, std::uint64_t& fired) {
  kcont::runtime_scope scope(rt);
  const unsigned hz = rt.hz();
  std::vector<int> armed(kArmed);
  for (std::size_t i = 0; i < kArmed; ++i) armed[i] = us_to_ticks(dc.armed_us[i], hz);
  std::atomic<std::uint64_t> fires{0};
  std::vector<callout> bg(dc.pending_us.size());
  for (std::size_t i = 0; i < bg.size(); ++i) {
    callout_init(&bg[i], CALLOUT_MPSAFE);
    callout_reset(&bg[i], us_to_ticks(dc.pending_us[i], hz), count_fire, &fires);
  }
  callout c;
  callout_init(&c, CALLOUT_MPSAFE);
  cost r = time_pairs(pairs, [&](int i) {
    callout_reset(&c, armed[static_cast<std::size_t>(i) % kArmed], noop, nullptr);
    callout_stop(&c);
  });
  callout_destroy(&c);
  for (auto& b : bg) {
    callout_stop(&b);
    callout_destroy(&b);
  }
  fired = fires.load();
  return r;
}

#ifdef KCONT_HAVE_LIBEVENT
void ev_count(evutil_socket_t, short, void* a) {
  ++*static_cast<std::uint64_t*>(a);
}
void ev_noop(evutil_socket_t, short, void*) {}

timeval to_timeval(std::int64_t us) {
  return timeval{static_cast<time_t>(us / kSecond), static_cast<suseconds_t>(us % kSecond)};
}

// A plain event_base (no loop runs meanwhile, so nothing can fire): evtimer_add + evtimer_del.
cost bench_libevent(const deadline_case& dc, int pairs) {
  event_base* base = event_base_new();
  std::uint64_t fired = 0;
  std::vector<event*> bg(dc.pending_us.size());
  for (std::size_t i = 0; i < bg.size(); ++i) {
    bg[i] = evtimer_new(base, ev_count, &fired);
    timeval tv = to_timeval(dc.pending_us[i]);
    evtimer_add(bg[i], &tv);
  }
  std::vector<timeval> armed(kArmed);
  for (std::size_t i = 0; i < kArmed; ++i) armed[i] = to_timeval(dc.armed_us[i]);
  event* t = evtimer_new(base, ev_noop, nullptr);
  cost r = time_pairs(pairs, [&](int i) {
    evtimer_add(t, &armed[static_cast<std::size_t>(i) % kArmed]);
    evtimer_del(t);
  });
  event_free(t);
  for (auto* e : bg) event_free(e);
  event_base_free(base);
  return r;
}
#endif

void warn_fired(const char* who, const deadline_case& dc, std::uint64_t fired) {
  if (fired != 0)
    std::printf("  (%s, %s: %llu pending timers came due during the run: not comparable)\n", who,
                dc.name, static_cast<unsigned long long>(fired));
}

// One case at the four pending counts: rows, ratios (peer / kcont), plot data.
// Asio pays microseconds a pair where kcont and libevent pay ~100 ns: it runs `asio_pairs`
// (fewer, so that a full run stays in minutes) per repetition of each of its two variants.
void arm_cancel_case(context& ctx, kcont::runtime& rt, bool among, int pairs, int asio_pairs) {
  const std::size_t sizes[] = {1000, 10000, 100000, 1000000};
  const char* names[] = {"P1e3", "P1e4", "P1e5", "P1e6"};
  const char* label = among ? "among" : "earliest";
  ctx.cost_header(std::string("arm+cancel pair with P timers pending, '") + label + "': " +
                  (among ? "the new deadline at a random place among the pending ones (all "
                           "over 20-120 s)"
                         : "the new deadline (1-66 s) earlier than every pending one (1-2 h)") +
                  "; " + std::to_string(kReps) + " reps of " + std::to_string(pairs) +
                  " pairs (Asio " + std::to_string(asio_pairs) + ")");
  double kcont_small = 0, kcont_large = 0;
  std::string prefix;
  for (int i = 0; i < 4; ++i) {
    const std::size_t p = sizes[i];
    const deadline_case dc = among ? among_case(p) : earliest_case(p);
    prefix = dc.prefix;
    const std::string base = dc.prefix + names[i];
    const std::string at = " (P = 10^" + std::to_string(3 + i) + ")";
    const std::string step =
        std::string("arm+cancel, ") + label + ", at 10^" + std::to_string(3 + i) + " pending: ";
    ctx.step(step + "kcont");
    std::uint64_t kfired = 0;
    cost k = bench_kcont(rt, dc, pairs, kfired);
    ctx.step(step + "asio::steady_timer");
    asio_arm_cancel_result a =
        asio_timer_arm_cancel(dc.pending_us, dc.armed_us, asio_pairs, kReps, kAsioBatch);
    spread ks =
        ctx.cost_row(base + ".kcont", "callout_reset + callout_stop" + at, k.ns, "ns/op", k.allocs);
    spread ab =
        ctx.cost_row(base + ".peer.asio_steady_timer_poll64",
                     "peer: asio::steady_timer, one poll() per 64 pairs" + at, a.poll_batched);
    spread ae = ctx.cost_row(base + ".peer.asio_steady_timer",
                             "peer: asio::steady_timer, poll() after every pair" + at, a.poll_each);
    warn_fired("kcont", dc, kfired);
    warn_fired("asio", dc, a.fired);
    double ev = std::nan("");
#ifdef KCONT_HAVE_LIBEVENT
    ctx.step(step + "libevent");
    spread es =
        ctx.cost_row(base + ".peer.libevent_evtimer",
                     "peer: libevent evtimer_add + evtimer_del" + at, bench_libevent(dc, pairs).ns);
    ev = es.value;
#endif
    ctx.ratio(base + ".asio_poll64_over_kcont", "asio (one poll() per 64 pairs) / kcont" + at,
              ab.value / ks.value);
    ctx.ratio(base + ".asio_over_kcont", "asio (poll() after every pair) / kcont" + at,
              ae.value / ks.value);
    if (std::isfinite(ev))
      ctx.ratio(base + ".libevent_over_kcont", "libevent / kcont" + at, ev / ks.value);
    auto& rows = ctx.plots().arm_cancel;
    if (rows.size() <= static_cast<std::size_t>(i)) rows.push_back({});
    auto& row = rows[static_cast<std::size_t>(i)];
    row.pending = static_cast<double>(p);
    (among ? row.among : row.earliest) = {ks.value, ab.value, ae.value, ev};
    if (i == 0) kcont_small = ks.value;
    if (i == 3) kcont_large = ks.value;
  }
  ctx.ratio(prefix + "kcont_P1e6_over_P1e3",
            std::string("kcont at P = 10^6 / at P = 10^3 (") + label + ")",
            kcont_large / kcont_small);
}

// How busy other processes kept some cores over an interval, from /proc/stat: (busy jiffies of
// those cores - this process's CPU time meanwhile) / (wall time * cores), clamped to 0..1
// (jiffies are coarse), and the hypervisor's steal alone; NaN when /proc/stat cannot be read.
// What was not quiet, from outside the benchmark.
class others_busy_probe {
 public:
  explicit others_busy_probe(int cpu) : cpu_(cpu) { start_ = sample(); }  // cpu -1: all cores
  struct result {
    double busy = std::nan(""), steal = std::nan("");
  };
  result finish() const {
    const snapshot end = sample();
    result r;
    const double wall = static_cast<double>(end.wall_ns - start_.wall_ns) / 1e9;
    const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
    if (start_.busy < 0 || end.busy < 0 || hz <= 0 || wall <= 0) return r;
    const double cores =
        cpu_ >= 0 ? 1.0 : static_cast<double>(std::max(1u, std::thread::hardware_concurrency()));
    const double own = end.own_s - start_.own_s;
    r.busy = std::clamp((static_cast<double>(end.busy - start_.busy) / hz - own) / (wall * cores),
                        0.0, 1.0);
    r.steal = static_cast<double>(end.steal - start_.steal) / hz / (wall * cores);
    return r;
  }

 private:
  struct snapshot {
    long long busy = -1, steal = -1;  // jiffies: user nice system irq softirq steal; steal
    double own_s = 0;                 // this process's CPU time
    std::int64_t wall_ns = 0;
  };
  snapshot sample() const {
    snapshot sn;
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    sn.own_s = static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
    sn.wall_ns = now_ns();
    std::FILE* f = std::fopen("/proc/stat", "r");
    if (f == nullptr) return sn;
    const std::string want = cpu_ >= 0 ? "cpu" + std::to_string(cpu_) + " " : "cpu ";
    char line[512];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      if (std::strncmp(line, want.c_str(), want.size()) != 0) continue;
      long long v[8] = {};
      if (std::sscanf(line + want.size(), "%lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1],
                      &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
        sn.busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
        sn.steal = v[7];
      }
      break;
    }
    std::fclose(f);
    return sn;
  }
  int cpu_;
  snapshot start_;
};

// n callouts (the C++ face, kcont::callout, on core 1) due at arbitrary nanoseconds over 1..n
// ms (about one per tick, as the floor takes one wake per millisecond: a VM's occasional
// millisecond stall then weighs the same in both; with 100 callouts per tick one stall would
// move a whole percentile): lateness = fire time - the exact deadline asked for (arm time + delay);
// `early` counts those that fired before it (must be 0). schedule() fires at the first tick
// boundary at or after arm time + delay (callout.h), so up to one tick of the lateness is rounding
// by design. `beyond_tick` gets fire time - that boundary (computed from the time taken just before
// the arm, so never later than the real one): the wake-up and the dispatch.
std::vector<double> bench_lateness(kcont::runtime& rt, int n, std::int64_t& early,
                                   std::vector<double>& beyond_tick) {
  kcont::runtime_scope scope(rt);
  struct item {
    std::int64_t deadline = 0, due_tick_ns = 0;
    std::atomic<std::int64_t> fired{0};
    std::unique_ptr<kcont::callout> c;
  };
  const std::int64_t epoch = kcont::machine::epoch_ns(rt);
  const std::int64_t tick = 1'000'000'000 / static_cast<std::int64_t>(rt.hz());
  std::vector<item> items(static_cast<std::size_t>(n));
  for (auto& it : items) {
    it.c = std::make_unique<kcont::callout>(rt, [&it] { it.fired.store(now_ns()); });
    it.c->bind(rt.cpu(1));  // core 1: the arming thread keeps core 0 busy meanwhile
  }
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::int64_t> delay_d(1'000'000, n * 1'000'000LL);
  for (auto& it : items) {
    const std::int64_t delay = delay_d(rng);
    const std::int64_t t0 = now_ns();
    it.deadline = t0 + delay;
    it.due_tick_ns = epoch + (it.deadline - epoch + tick - 1) / tick * tick;  // first boundary
    it.c->schedule(std::chrono::nanoseconds(delay));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(n + 300));
  std::vector<double> late;
  early = 0;
  for (auto& it : items) {
    it.c->halt();
    std::int64_t f = it.fired.load();
    if (f == 0) continue;
    if (f < it.deadline) ++early;
    late.push_back(static_cast<double>(f - it.deadline));
    beyond_tick.push_back(static_cast<double>(f - it.due_tick_ns));
  }
  return late;
}

// The floor for a timer: a thread on core 1 blocked in read(2) on a timerfd armed, in turn, for
// the deadlines of the lateness run's pattern (n at random ns over 1..n ms from the start,
// sorted: the same idle gaps the loop sleeps through, some of several ms, whose wakes cost more
// on a VM than a steady 1 ms would); lateness = wake time - deadline (a deadline already passed
// when its turn comes counts as late as it is, as a callout due while its loop was late
// would). On a VM a timer interrupt costs more than a cross-core eventfd wake, so this, not the
// eventfd ping, is the idle wake a callout pays. Measured while the calling thread only waits in
// join() and the area's runtimes are idle (tickless: no wake-ups): nothing else of the
// benchmark runs on core 1 (or core 0) meanwhile. `seed` varies the pattern per slice.
// Appends to v.
void bench_timerfd_floor(int n, std::uint64_t seed, std::vector<double>& v) {
  std::thread t([&] {
    pin_this_thread(1);
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<std::int64_t> delay_d(1'000'000, n * 1'000'000LL);
    std::vector<std::int64_t> due(static_cast<std::size_t>(n));
    const std::int64_t start = now_ns();
    for (auto& d : due) d = start + delay_d(rng);
    std::sort(due.begin(), due.end());
    for (const std::int64_t d : due) {
      itimerspec its{};
      its.it_value.tv_sec = d / 1'000'000'000;
      its.it_value.tv_nsec = d % 1'000'000'000;
      ::timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, nullptr);
      std::uint64_t expirations;
      if (::read(fd, &expirations, sizeof expirations) == sizeof expirations)
        v.push_back(static_cast<double>(now_ns() - d));
    }
    ::close(fd);
  });
  t.join();
}

}  // namespace

void area_callout(context& ctx) {
  kReps = ctx.pick(5, 7);
  const int pairs = ctx.pick(20000, 200000);
  report& rep = ctx.rep();

  const int floor_samples = std::clamp(ctx.lat().samples, 2000, 10000);
  kcont::runtime rt(ctx.runtime_cfg());
  const int asio_pairs = ctx.pick(20000, 50000);
  arm_cancel_case(ctx, rt, false, pairs, asio_pairs);
  arm_cancel_case(ctx, rt, true, pairs, asio_pairs);
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
  const unsigned hz = rt.hz();
  rt.stop();

  const double tick_us = 1e6 / hz;
  // The floor and each loop's lateness in alternating slices, so that all of them sample the
  // same minutes: this VM's timer wakes have millisecond outliers at a rate that drifts from
  // ~0.1% to ~9% within minutes, and a floor measured once, before the lateness rows, could
  // not bound them (issue 18, session 8).
  constexpr int kSlices = 5;
  const int per_slice = floor_samples / kSlices;
  struct loop_run {
    std::string loop, tag;
    std::unique_ptr<kcont::runtime> rt;
    std::vector<double> late, beyond;
    std::int64_t early = 0;
    double busy = 0, steal = 0;
  };
  std::vector<loop_run> loops;
  for (auto b : ctx.loop_backends()) {
    const std::string loop = kcont::backend_name(b);
    loop_run l;
    l.loop = loop;
    l.tag = "." + loop + "_loop";
    l.rt = std::make_unique<kcont::runtime>(ctx.runtime_cfg(b));
    loops.push_back(std::move(l));
  }
  std::vector<double> floor_v;
  double floor_busy = 0, floor_steal = 0;
  for (int s = 0; s < kSlices; ++s) {
    const std::string of = " (slice " + std::to_string(s + 1) + "/" + std::to_string(kSlices) + ")";
    ctx.step("idle timer wake floor (timerfd)" + of);
    const others_busy_probe floor_probe(1);
    bench_timerfd_floor(per_slice, 100 + static_cast<std::uint64_t>(s), floor_v);
    const others_busy_probe::result fo = floor_probe.finish();
    floor_busy += fo.busy / kSlices;
    floor_steal += fo.steal / kSlices;
    for (auto& l : loops) {
      ctx.step("firing lateness, " + l.loop + " loop" + of);
      std::int64_t early = 0;
      const others_busy_probe probe(-1);
      auto late_v = bench_lateness(*l.rt, per_slice, early, l.beyond);
      const others_busy_probe::result others = probe.finish();
      l.late.insert(l.late.end(), late_v.begin(), late_v.end());
      l.early += early;
      l.busy += others.busy / kSlices;
      l.steal += others.steal / kSlices;
    }
  }
  for (auto& l : loops) l.rt->stop();

  ctx.latency_header("firing lateness, " + std::to_string(per_slice * kSlices) +
                     " callouts due at random ns over 1-" + std::to_string(per_slice) +
                     " ms in each of " + std::to_string(kSlices) +
                     " slices, the floor's slices between them (hz " + std::to_string(hz) +
                     "), ns");
  latency_summary floor =
      ctx.latency_row("callout.floor.timerfd",
                      "floor: raw timerfd, the same deadline pattern, core 1 (" +
                          std::to_string(floor_v.size()) + ")",
                      floor_v);
  std::printf(
      "  (the floor was measured in slices between the lateness runs, the runtimes idle, the\n"
      "   calling thread waiting in join(); core 1 was %.1f%% busy with other processes\n"
      "   meanwhile, %.1f%% stolen by the hypervisor)\n",
      100 * floor_busy, 100 * floor_steal);
  if (std::isfinite(floor_busy)) {
    rep.add("callout.floor.timerfd.core1_others_busy", floor_busy, "fraction");
    rep.add("callout.floor.timerfd.core1_steal", floor_steal, "fraction");
  }
  for (auto& l : loops) {
    latency_summary late = ctx.latency_row(
        "callout.lateness" + l.tag, "fire - exact ns deadline (" + l.loop + " loop)", l.late);
    ctx.latency_row("callout.lateness.beyond_tick" + l.tag,
                    "fire - start of the due tick (" + l.loop + " loop)", l.beyond);
    rep.add("callout.lateness" + l.tag + ".max", late.all.max, "ns");
    rep.add("callout.lateness" + l.tag + ".early", static_cast<double>(l.early), "count");
    const double limit = tick_us * 1000 + floor.all.p99;
    rep.add("callout.lateness" + l.tag + ".p99_over_limit", late.all.p99 / limit, "ratio");
    std::printf("  %s loop: early %lld; bar p99 %.0f us <= tick + idle-wake p99 = %.0f us: %s\n",
                l.loop.c_str(), static_cast<long long>(l.early), late.all.p99 / 1000, limit / 1000,
                late.all.p99 <= limit ? "met" : "NOT met");
    std::printf(
        "  %s loop: other processes kept the machine %.1f%% busy meanwhile (%.1f%% steal)\n",
        l.loop.c_str(), 100 * l.busy, 100 * l.steal);
    if (std::isfinite(l.busy))
      rep.add("callout.lateness" + l.tag + ".others_busy", l.busy, "fraction");
  }
  std::printf(
      "  (deadlines at arbitrary ns: the callout fires at the first tick boundary at or\n"
      "   after the deadline, so up to 1 tick of fire - deadline is rounding by design;\n"
      "   fire - start of the due tick is the wake-up and the dispatch alone)\n");
}

}  // namespace kcont_bench
