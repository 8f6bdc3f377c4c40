// <kcont/coro.h>: co_task values and exceptions, spawn, sleeps on callouts (never early,
// cancellation by a std::stop_token, exactly once under racing stops), hops onto a taskq and
// into a taskctx (serialised, direct when free), and frames destroyed while suspended in each.
#include <books.h>
#include <doctest/doctest.h>
#include <kcont/coro.h>
#include <kcont/kcont.h>
#include <kcont/runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "test_util.h"

using namespace std::chrono_literals;
using kcont_test::cpus;
using kcont_test::require_or_exit;
using kcont_test::wait_until;

namespace {

// A coroutine the test owns: it starts at once and stays until its handle is destroyed, so a
// test can destroy it while it is suspended.
struct owned {
  struct promise_type {
    owned get_return_object() {
      return owned{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() { std::terminate(); }
  };
  std::coroutine_handle<promise_type> h;
};

kcont::co_task<int> answer(int x) {
  co_return x * 2;
}
kcont::co_task<int> fails() {
  throw std::runtime_error("child failed");
  co_return 0;
}
kcont::co_task<void> parent(std::atomic<int>& out) {
  int a = co_await answer(20);
  int b = co_await answer(1);
  try {
    co_await fails();
    out = -1;
  } catch (const std::runtime_error&) {
    out = a + b;
  }
}

}  // namespace

TEST_CASE("co_task: values and exceptions pass to the awaiter; spawn runs it now, detached") {
  std::atomic<int> out{0};
  bool done = false;
  std::exception_ptr seen;
  kcont::spawn(parent(out), [&](std::exception_ptr e) {
    done = true;
    seen = e;
  });
  CHECK(done);  // nothing suspended: it ran to the end inside spawn
  CHECK(seen == nullptr);
  CHECK(out == 42);

  // done hears an exception that escaped.
  auto thrower = []() -> kcont::co_task<> {
    co_await answer(1);
    throw std::logic_error("escaped");
  };
  kcont::spawn(thrower(), [&](std::exception_ptr e) { seen = e; });
  REQUIRE(seen != nullptr);
  CHECK_THROWS_AS(std::rethrow_exception(seen), std::logic_error);
}

TEST_CASE("spawn without a done handler: an escaping exception is reported under the policy") {
  const auto before = kcont::handler_exceptions();
  kcont_test::stderr_capture err;
  auto thrower = []() -> kcont::co_task<> {
    throw std::runtime_error("nobody listens");
    co_return;
  };
  kcont::spawn(thrower());
  CHECK(kcont::handler_exceptions() == before + 1);
  CHECK(err.count("spawned coroutine") == 1);
}

TEST_CASE("co_task: a task never awaited frees its frame; awaiting a moved-from one throws") {
  { auto t = answer(3); }  // destroyed unstarted (ASan: no leak, no double free)
  auto t = answer(3);
  auto moved = std::move(t);
  CHECK_FALSE(t.valid());
  CHECK(moved.valid());
  std::atomic<bool> threw{false};
  auto await_moved = [](kcont::co_task<int>& from, std::atomic<bool>& flag) -> kcont::co_task<> {
    try {
      co_await from;
    } catch (const std::logic_error&) {
      flag = true;
    }
  };
  kcont::spawn(await_moved(t, threw));
  CHECK(threw);
}

namespace {

kcont::co_task<void> sleeper(kcont::runtime& rt, std::chrono::nanoseconds d, std::atomic<int>& woke,
                             std::atomic<int>& early, std::atomic<int>& elsewhere) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto sleeping_thread = std::this_thread::get_id();
  const bool slept = co_await kcont::sleep_for(rt, d);
  if (!slept || std::chrono::steady_clock::now() - t0 < d) ++early;
  // Resumed by the callout's softclock, or (the time came before the coroutine had finished
  // suspending: a short sleep on a slow machine) it went on at once on the sleeping thread.
  if (!kcont::in_interrupt_context() && std::this_thread::get_id() != sleeping_thread) ++elsewhere;
  ++woke;
}

}  // namespace

TEST_CASE("sleep_for: never early, each sleeper resumed once, by the callout's softclock") {
  kcont::runtime rt(cpus(2));
  std::atomic<int> woke{0}, early{0}, elsewhere{0};
  std::mt19937 rng(7);
  constexpr int kSleepers = 300;
  for (int i = 0; i < kSleepers; ++i) {
    const auto d = std::chrono::microseconds(rng() % 20000);
    kcont::spawn(sleeper(rt, d, woke, early, elsewhere));
  }
  require_or_exit(wait_until([&] { return woke.load() == kSleepers; }), "sleepers woke");
  std::this_thread::sleep_for(20ms);  // nothing resumes twice
  CHECK(woke == kSleepers);
  CHECK(early == 0);
  CHECK(elsewhere == 0);

  // sleep_until: the delay is the time point minus the clock's now.
  std::atomic<int> until_early{0}, until_done{0};
  auto until = [](kcont::runtime& r, std::atomic<int>& e, std::atomic<int>& d) -> kcont::co_task<> {
    const auto at = std::chrono::steady_clock::now() + 7ms;
    co_await kcont::sleep_until(r, at);
    if (std::chrono::steady_clock::now() < at) ++e;
    ++d;
  };
  kcont::spawn(until(rt, until_early, until_done));
  require_or_exit(wait_until([&] { return until_done.load() == 1; }), "sleep_until woke");
  CHECK(until_early == 0);
}

TEST_CASE("sleep_for with a stop token: stopped before, or while sleeping") {
  kcont::runtime rt(cpus(2));
  SUBCASE("already stopped: no suspension, yields false at once") {
    std::stop_source src;
    src.request_stop();
    int result = -1;
    auto f = [](kcont::runtime& r, std::stop_token st, int& out) -> kcont::co_task<> {
      out = (co_await kcont::sleep_for(r, 10s, st)) ? 1 : 0;
    };
    kcont::spawn(f(rt, src.get_token(), result));
    CHECK(result == 0);  // ran to the end inside spawn
  }
  SUBCASE("stopped while sleeping: resumes inside request_stop, on the stopping thread") {
    std::stop_source src;
    std::atomic<int> result{-1};
    std::thread::id resumed_on;
    auto f = [](kcont::runtime& r, std::stop_token st, std::atomic<int>& out,
                std::thread::id& on) -> kcont::co_task<> {
      const bool slept = co_await kcont::sleep_for(r, 10s, st);
      on = std::this_thread::get_id();
      out = slept ? 1 : 0;
    };
    kcont::spawn(f(rt, src.get_token(), result, resumed_on));
    CHECK(result == -1);
    src.request_stop();
    CHECK(result == 0);
    CHECK(resumed_on == std::this_thread::get_id());
  }
}

TEST_CASE("sleep_for: stops racing the timer, every sleeper resumed exactly once") {
  kcont::runtime rt(cpus(2));
  constexpr int kSleepers = 2000;
  std::vector<std::stop_source> sources(kSleepers);
  std::atomic<int> fired{0}, cancelled{0}, resumed{0};
  auto f = [](kcont::runtime& r, std::stop_token st, std::chrono::microseconds d,
              std::atomic<int>& fire, std::atomic<int>& cancel,
              std::atomic<int>& res) -> kcont::co_task<> {
    ((co_await kcont::sleep_for(r, d, st)) ? fire : cancel)++;
    res++;
  };
  // The stopper starts with the spawning and stops the sleepers in a random order over about
  // the span of their delays: some are stopped before they sleep, some while arming, some while
  // sleeping, some after their timer fired.
  std::thread stopper([&] {
    std::vector<int> order(kSleepers);
    for (int i = 0; i < kSleepers; ++i) order[static_cast<std::size_t>(i)] = i;
    std::shuffle(order.begin(), order.end(), std::mt19937(11));
    for (int i : order) {
      sources[static_cast<std::size_t>(i)].request_stop();
      const auto until = std::chrono::steady_clock::now() + 8us;  // sleep_for would take ~60us
      while (std::chrono::steady_clock::now() < until) {
      }
    }
  });
  std::mt19937 rng(5);
  for (int i = 0; i < kSleepers; ++i) {
    kcont::spawn(f(rt, sources[static_cast<std::size_t>(i)].get_token(),
                   std::chrono::microseconds(rng() % 20000), fired, cancelled, resumed));
  }
  stopper.join();
  require_or_exit(wait_until([&] { return resumed.load() == kSleepers; }), "every sleeper back");
  std::this_thread::sleep_for(20ms);
  torture::books b("sleep_for");
  b.scheduled = kSleepers;
  b.ran = static_cast<std::uint64_t>(fired.load());
  b.cancelled = static_cast<std::uint64_t>(cancelled.load());
  CHECK_MESSAGE(b.balanced(), b.summary());
  CHECK(resumed == kSleepers);
  MESSAGE("fired " << fired.load() << ", cancelled " << cancelled.load());
}

namespace {

owned sleep_then_mark(kcont::runtime& rt, std::atomic<int>& marked) {
  co_await kcont::sleep_for(rt, 20ms);
  ++marked;
}

kcont::co_task<int> sleepy_child(kcont::runtime& rt, std::atomic<int>& marked) {
  co_await kcont::sleep_for(rt, 20ms);
  ++marked;
  co_return 1;
}
owned await_sleepy_child(kcont::runtime& rt, std::atomic<int>& marked) {
  marked += co_await sleepy_child(rt, marked);
}

}  // namespace

TEST_CASE("sleep_for: destroying a frame suspended in it withdraws the callout") {
  kcont::runtime rt(cpus(2));
  std::atomic<int> marked{0};
  owned a = sleep_then_mark(rt, marked);
  owned b = await_sleepy_child(rt, marked);  // the child co_task's frame goes with it
  CHECK_FALSE(a.h.done());
  a.h.destroy();
  b.h.destroy();
  std::this_thread::sleep_for(60ms);
  CHECK(marked == 0);
}

namespace {

kcont::co_task<void> hopper(taskq* tq, int hops, std::atomic<int>& inline_hops,
                            std::atomic<int>& done) {
  for (int i = 0; i < hops; ++i) {
    const auto before = std::this_thread::get_id();
    co_await kcont::on(tq);
    if (std::this_thread::get_id() == before && i == 0) ++inline_hops;  // never inline
  }
  ++done;
}

struct gate {
  std::atomic<bool> inside{false}, release{false};
  static void run(void* self) {
    auto* g = static_cast<gate*>(self);
    g->inside = true;
    while (!g->release) std::this_thread::sleep_for(100us);
  }
};

owned hop_then_mark(taskq* tq, std::atomic<int>& marked) {
  co_await kcont::on(tq);
  ++marked;
}

}  // namespace

TEST_CASE("on(taskq): resumes as a task of the queue, never inline, each hop once") {
  kcont::runtime rt(cpus(2));
  taskq* tq;
  {
    kcont::runtime_scope scope(rt);
    tq = taskq_create("coro", 2, IPL_NET, TASKQ_MPSAFE);
  }
  REQUIRE(tq != nullptr);
  std::atomic<int> inline_hops{0}, done{0};
  constexpr int kCoroutines = 200, kHops = 50;
  for (int i = 0; i < kCoroutines; ++i) kcont::spawn(hopper(tq, kHops, inline_hops, done));
  require_or_exit(wait_until([&] { return done.load() == kCoroutines; }), "hoppers done");
  CHECK(inline_hops == 0);

  // A frame destroyed while its hop waits in the queue: the task leaves the queue.
  {
    kcont::runtime_scope scope(rt);
    taskq* one = taskq_create("coro1", 1, IPL_NET, TASKQ_MPSAFE);
    gate g;
    task blocker = TASK_INITIALIZER(&gate::run, &g);
    task_add(one, &blocker);
    require_or_exit(wait_until([&] { return g.inside.load(); }), "blocker started");
    std::atomic<int> marked{0};
    owned o = hop_then_mark(one, marked);
    o.h.destroy();
    g.release = true;
    taskq_barrier(one);
    CHECK(marked == 0);
    taskq_destroy(one);
  }
  {
    kcont::runtime_scope scope(rt);
    taskq_destroy(tq);
  }
}

namespace {

struct serial_state {
  taskctx tc = TASKCTX_INITIALIZER(tc, IPL_NET);
  std::atomic<bool> inside{false};
  std::atomic<int> overlaps{0};
  long plain_count = 0;  // only touched inside the context: TSan sees any overlap
  std::atomic<int> finished{0};
};

kcont::co_task<void> serialised(serial_state& s, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    co_await kcont::dispatch(&s.tc);
    if (s.inside.exchange(true)) ++s.overlaps;
    ++s.plain_count;
    s.inside = false;
  }
  ++s.finished;
}

owned dispatch_then_mark(taskctx* tc, std::atomic<int>& marked) {
  co_await kcont::dispatch(tc);
  ++marked;
}

}  // namespace

TEST_CASE("dispatch(taskctx): direct when free, never concurrent, each resumption once") {
  serial_state s;
  taskctx_init(&s.tc, IPL_NET);

  // Free context: the coroutine goes on inside the call, on this thread.
  std::thread::id ran_on;
  auto direct = [](taskctx* tc, std::thread::id& on) -> kcont::co_task<> {
    co_await kcont::dispatch(tc);
    on = std::this_thread::get_id();
  };
  kcont::spawn(direct(&s.tc, ran_on));
  CHECK(ran_on == std::this_thread::get_id());

  constexpr int kThreads = 4, kPerThread = 200, kRounds = 20;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) kcont::spawn(serialised(s, kRounds));
    });
  for (auto& t : threads) t.join();
  taskctx_barrier(&s.tc);
  CHECK(s.finished == kThreads * kPerThread);
  CHECK(s.overlaps == 0);
  CHECK(s.plain_count == static_cast<long>(kThreads) * kPerThread * kRounds);

  // A frame destroyed while its task waits in the busy context: withdrawn, never resumed.
  gate g;
  task blocker = TASK_INITIALIZER(&gate::run, &g);
  std::thread holder([&] { task_dispatch(&s.tc, &blocker); });
  require_or_exit(wait_until([&] { return g.inside.load(); }), "context held");
  std::atomic<int> marked{0};
  owned o = dispatch_then_mark(&s.tc, marked);
  o.h.destroy();
  g.release = true;
  holder.join();
  taskctx_barrier(&s.tc);
  CHECK(marked == 0);
}

namespace {

kcont::co_task<int> hop_sleep_dispatch(kcont::runtime& rt, taskq* tq, taskctx* tc) {
  co_await kcont::on(tq);
  co_await kcont::sleep_for(rt, 2ms);
  co_await kcont::dispatch(tc);
  co_return 7;
}
kcont::co_task<void> chain_parent(kcont::runtime& rt, taskq* tq, taskctx* tc,
                                  std::atomic<int>& sum) {
  sum += co_await hop_sleep_dispatch(rt, tq, tc);
}

}  // namespace

TEST_CASE("a chain across a taskq, a sleep and a taskctx returns its value to the awaiter") {
  kcont::runtime rt(cpus(2));
  taskq* tq;
  {
    kcont::runtime_scope scope(rt);
    tq = taskq_create("chain", 1, IPL_NET, TASKQ_MPSAFE);
  }
  taskctx tc = TASKCTX_INITIALIZER(tc, IPL_NET);
  taskctx_init(&tc, IPL_NET);
  std::atomic<int> sum{0};
  for (int i = 0; i < 100; ++i) kcont::spawn(chain_parent(rt, tq, &tc, sum));
  require_or_exit(wait_until([&] { return sum.load() == 700; }), "chains done");
  taskctx_barrier(&tc);
  {
    kcont::runtime_scope scope(rt);
    taskq_destroy(tq);
  }
}

namespace {

// Where a hop onto a kcont queue resumed.
struct landing {
  std::atomic<int> done{0}, wrong_cpu{0}, wrong_context{0};
};

kcont::co_task<void> hop_around(kcont::runtime& rt, landing& l, int hops, unsigned seed) {
  kcont_wq_t* const queues[] = {wq_softserial, wq_softnet,    wq_softbio,   wq_softclock,
                                wq_prihigh,    wq_primedhigh, wq_primedlow, wq_prilow};
  for (int i = 0; i < hops; ++i) {
    const unsigned k = (seed + static_cast<unsigned>(i) * 7u) % 8u;
    cpu_info* ci = rt.cpu((seed + static_cast<unsigned>(i)) % rt.ncpu());
    co_await kcont::on(rt, queues[k], ci);
    const bool soft = k < 4;
    if (kcont::in_interrupt_context() != soft) ++l.wrong_context;
    if (soft && curcpu() != ci) ++l.wrong_cpu;  // a soft queue runs on its CPU's loop
  }
  ++l.done;
}

struct self_rescheduler {
  std::atomic<bool> stop{false};
  std::atomic<int> runs{0};
  static void run(void* self, kcont_t* kc) {
    auto* s = static_cast<self_rescheduler*>(self);
    ++s->runs;
    if (!s->stop) kcont_schedule(kc, nullptr, 0);
  }
};

kcont::co_task<void> hop_loop(kcont::runtime& rt, cpu_info* ci, int hops, std::atomic<int>& done,
                              self_rescheduler& other, std::atomic<int>& other_runs_seen) {
  co_await kcont::on(rt, wq_softnet, ci);
  const int before = other.runs.load();
  for (int i = 0; i < hops; ++i) co_await kcont::on(rt, wq_softnet, ci);
  other_runs_seen = other.runs.load() - before;
  ++done;
}

owned hop_kqueue_then_mark(kcont::runtime& rt, cpu_info* ci, std::atomic<int>& marked) {
  co_await kcont::on(rt, wq_softclock, ci);
  ++marked;
}

struct spinner {
  std::atomic<bool> inside{false}, release{false};
  static void run(void* self, kcont_t*) {
    auto* s = static_cast<spinner*>(self);
    s->inside = true;
    while (!s->release) std::this_thread::yield();
  }
};

}  // namespace

TEST_CASE("on(wq, ci): every kcont queue, on the CPU asked for, each hop once") {
  kcont::runtime rt(cpus(2));
  landing l;
  constexpr int kCoroutines = 100, kHops = 40;
  for (int i = 0; i < kCoroutines; ++i)
    kcont::spawn(hop_around(rt, l, kHops, static_cast<unsigned>(i)));
  require_or_exit(wait_until([&] { return l.done.load() == kCoroutines; }), "hoppers landed");
  CHECK(l.wrong_context == 0);
  CHECK(l.wrong_cpu == 0);

  // A queue without per-CPU queues refuses a CPU: nothing queued, the coroutine gets the error.
  kcont_wq_t* shared;
  {
    kcont::runtime_scope scope(rt);
    shared = kcont_workqueue_acquire(PRI_NONE, 0);
  }
  REQUIRE(shared != nullptr);
  int err = 0;
  std::atomic<bool> after_shared{false};
  auto refuse = [](kcont::runtime& r, kcont_wq_t* wq, int& e,
                   std::atomic<bool>& after) -> kcont::co_task<> {
    try {
      co_await kcont::on(r, wq, r.cpu(1));
    } catch (const std::system_error& x) {
      e = x.code().value();
    }
    co_await kcont::on(r, wq);  // without a CPU it is fine
    after = true;
  };
  kcont::spawn(refuse(rt, shared, err, after_shared));
  require_or_exit(wait_until([&] { return after_shared.load(); }), "hop onto a shared queue");
  CHECK(err == ENOENT);
  {
    kcont::runtime_scope scope(rt);
    CHECK(kcont_workqueue_release(shared) == 0);
  }
}

TEST_CASE(
    "on(wq): a coroutine hopping in a loop and a continuation rescheduling itself take turns") {
  kcont::runtime rt(cpus(2));
  kcont::runtime_scope scope(rt);
  self_rescheduler other;
  kcont_t kc;
  REQUIRE(kcont_init(&kc, wq_softnet, nullptr, &self_rescheduler::run, &other, 0) == 0);
  REQUIRE(kcont_schedule(&kc, rt.cpu(0), 0) == 0);
  std::atomic<int> done{0}, seen{0};
  kcont::spawn(hop_loop(rt, rt.cpu(0), 2000, done, other, seen));
  require_or_exit(wait_until([&] { return done.load() == 1; }), "hop loop done");
  other.stop = true;
  kcont_halt(&kc);
  kcont_destroy(&kc);
  // Turns: the continuation ran about once per hop (at least half as often, with slack for the
  // bounded passes).
  CHECK(seen.load() >= 1000);
  MESSAGE("continuation runs during 2000 hops: " << seen.load());
}

TEST_CASE("on(wq): the runtime destroyed the moment the last hop lands, many times over") {
  // The last hop's run ends the coroutine while the drain that queued it may still be kicking
  // the queue it hopped onto: teardown must wait for every drain before freeing any queue.
  for (int round = 0; round < 40; ++round) {
    landing l;
    constexpr int kCoroutines = 8, kHops = 6;
    {
      kcont::runtime rt(cpus(2));
      for (int i = 0; i < kCoroutines; ++i)
        kcont::spawn(hop_around(rt, l, kHops, static_cast<unsigned>(round * kCoroutines + i)));
      while (l.done.load() != kCoroutines) std::this_thread::yield();
    }
    CHECK(l.wrong_context == 0);
    CHECK(l.wrong_cpu == 0);
  }
}

TEST_CASE("on(wq): destroying a frame whose hop waits withdraws the hop") {
  kcont::runtime rt(cpus(2));
  kcont::runtime_scope scope(rt);
  spinner s;
  kcont_t blocker;
  REQUIRE(kcont_init(&blocker, wq_softclock, nullptr, &spinner::run, &s, 0) == 0);
  REQUIRE(kcont_schedule(&blocker, rt.cpu(1), 0) == 0);
  require_or_exit(wait_until([&] { return s.inside.load(); }), "queue held");
  std::atomic<int> marked{0};
  owned o = hop_kqueue_then_mark(rt, rt.cpu(1), marked);
  o.h.destroy();
  s.release = true;
  kcont_halt(&blocker);
  // Anything still queued behind the blocker has run by the time a fresh continuation does.
  std::atomic<int> probe{0};
  kcont::continuation after(rt, wq_softclock, [&] { ++probe; });
  after.schedule(rt.cpu(1));
  require_or_exit(wait_until([&] { return probe.load() == 1; }), "queue drained");
  CHECK(marked == 0);
  kcont_destroy(&blocker);
}

namespace {

kcont::co_task<void> timer_waits(kcont::timer& t, std::chrono::microseconds d,
                                 std::atomic<int>& result, std::thread::id& on) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool came = co_await t.sleep_for(d);
  on = std::this_thread::get_id();
  result = came ? (std::chrono::steady_clock::now() - t0 >= d ? 1 : -2) : 0;
}

kcont::co_task<void> timer_loop(kcont::timer& t, int n, std::atomic<int>& fired,
                                std::atomic<int>& cancelled, std::atomic<int>& done) {
  std::mt19937 rng(3);
  for (int i = 0; i < n; ++i)
    ((co_await t.sleep_for(std::chrono::microseconds(rng() % 2000))) ? fired : cancelled)++;
  ++done;
}

owned wait_then_mark(kcont::timer& t, std::atomic<int>& marked) {
  co_await t.sleep_for(20ms);
  ++marked;
}

}  // namespace

TEST_CASE("kcont::timer: the time comes (never early) or cancel() cuts it short, on its caller") {
  kcont::runtime rt(cpus(2));
  kcont::timer t(rt);
  CHECK_FALSE(t.cancel());  // nobody waits
  std::atomic<int> result{99};
  std::thread::id on;
  kcont::spawn(timer_waits(t, 3000us, result, on));
  require_or_exit(wait_until([&] { return result.load() != 99; }), "timer wait");
  CHECK(result == 1);

  // The same timer again, cut short: the coroutine resumes inside cancel(), here.
  result = 99;
  kcont::spawn(timer_waits(t, std::chrono::microseconds(3'600'000'000LL), result, on));
  CHECK(result == 99);
  CHECK(t.cancel());
  CHECK(result == 0);
  CHECK(on == std::this_thread::get_id());
  CHECK_FALSE(t.cancel());  // a cancel reaches only the wait in progress

  // Destroying a timer with a waiter cancels the wait the same way.
  result = 99;
  {
    kcont::timer short_lived(rt);
    kcont::spawn(timer_waits(short_lived, 10s, result, on));
  }
  CHECK(result == 0);
}

TEST_CASE("kcont::timer: cancels racing the time, every wait ends once") {
  kcont::runtime rt(cpus(2));
  kcont::timer t(rt);
  constexpr int kWaits = 2000;
  std::atomic<int> fired{0}, cancelled{0}, done{0};
  std::atomic<bool> stop{false};
  std::thread canceller([&] {
    std::mt19937 rng(9);
    while (!stop.load()) {
      t.cancel();
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(rng() % 800);
      while (std::chrono::steady_clock::now() < until) {
      }
    }
  });
  kcont::spawn(timer_loop(t, kWaits, fired, cancelled, done));
  require_or_exit(wait_until([&] { return done.load() == 1; }), "timer loop done");
  stop = true;
  canceller.join();
  CHECK(fired + cancelled == kWaits);
  MESSAGE("timer: fired " << fired.load() << ", cancelled " << cancelled.load());
}

TEST_CASE("kcont::timer: a frame destroyed while it waits leaves the timer usable") {
  kcont::runtime rt(cpus(2));
  kcont::timer t(rt);
  std::atomic<int> marked{0};
  owned o = wait_then_mark(t, marked);
  o.h.destroy();
  std::this_thread::sleep_for(50ms);
  CHECK(marked == 0);
  CHECK_FALSE(t.cancel());
  std::atomic<int> result{99};
  std::thread::id on;
  kcont::spawn(timer_waits(t, 1000us, result, on));
  require_or_exit(wait_until([&] { return result.load() != 99; }), "timer reused");
  CHECK(result == 1);
}

TEST_CASE("sleep_for at the duration limits: negative is one tick, max saturates and stops") {
  kcont::runtime rt(cpus(2));
  std::atomic<int> result{99};
  auto neg = [](kcont::runtime& r, std::atomic<int>& out) -> kcont::co_task<> {
    const bool came = co_await kcont::sleep_for(r, std::chrono::seconds(-5));
    out = came ? 1 : 0;
  };
  kcont::spawn(neg(rt, result));
  require_or_exit(wait_until([&] { return result.load() != 99; }), "negative sleep");
  CHECK(result == 1);

  std::stop_source src;
  result = 99;
  auto huge = [](kcont::runtime& r, std::stop_token st, std::atomic<int>& out) -> kcont::co_task<> {
    const bool came = co_await kcont::sleep_for(r, std::chrono::hours::max(), st);
    out = came ? 1 : 0;
  };
  kcont::spawn(huge(rt, src.get_token(), result));
  std::this_thread::sleep_for(10ms);
  CHECK(result == 99);  // clamped to INT_MAX ticks, not wrapped into the past
  src.request_stop();
  CHECK(result == 0);

  kcont::co_task<> moved = neg(rt, result);
  kcont::co_task<> taken = std::move(moved);
  kcont::spawn(std::move(moved));  // a moved-from task: nothing happens
  CHECK_FALSE(moved.valid());
  CHECK(taken.valid());
}

namespace {

kcont::co_task<void> post_into(kcont::runtime& rt, serial_state& s, int rounds,
                               std::atomic<int>& inline_hops) {
  for (int i = 0; i < rounds; ++i) {
    co_await kcont::on(rt, &s.tc);
    // On a worker of rt, never inline on the spawning thread (a foreign thread, whose
    // runtime::current() is not rt; thread ids would not do: a joined thread's id is reused).
    if (&kcont::runtime::current() != &rt) ++inline_hops;
    if (s.inside.exchange(true)) ++s.overlaps;
    ++s.plain_count;
    s.inside = false;
  }
  ++s.finished;
}

owned post_then_mark(kcont::runtime& rt, taskctx* tc, std::atomic<int>& marked) {
  co_await kcont::on(rt, tc);
  ++marked;
}

}  // namespace

TEST_CASE("on(taskctx): handed to a worker, never inline, never concurrent, each once") {
  kcont::runtime rt(cpus(2));
  serial_state s;
  taskctx_init(&s.tc, IPL_NET);
  std::atomic<int> inline_hops{0};
  constexpr int kThreads = 3, kPerThread = 100, kRounds = 10;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) kcont::spawn(post_into(rt, s, kRounds, inline_hops));
    });
  for (auto& t : threads) t.join();
  require_or_exit(wait_until([&] { return s.finished.load() == kThreads * kPerThread; }),
                  "posted coroutines done");
  taskctx_barrier(&s.tc);
  CHECK(inline_hops == 0);
  CHECK(s.overlaps == 0);
  CHECK(s.plain_count == static_cast<long>(kThreads) * kPerThread * kRounds);

  // A frame destroyed while its task waits in the busy context: withdrawn, never resumed.
  gate g;
  task blocker = TASK_INITIALIZER(&gate::run, &g);
  std::thread holder([&] { task_dispatch(&s.tc, &blocker); });
  require_or_exit(wait_until([&] { return g.inside.load(); }), "context held");
  std::atomic<int> marked{0};
  owned o = post_then_mark(rt, &s.tc, marked);
  std::this_thread::sleep_for(20ms);  // the hand-off has put its task into the busy context
  o.h.destroy();
  g.release = true;
  holder.join();
  taskctx_barrier(&s.tc);

  // ... and while its hand-off waits behind another hand-off.
  gate g2;
  task slow_handoff = TASK_INITIALIZER(&gate::run, &g2);
  kcont::detail::runtime_handoff(rt, &slow_handoff);
  require_or_exit(wait_until([&] { return g2.inside.load(); }), "hand-off queue held");
  owned o2 = post_then_mark(rt, &s.tc, marked);
  o2.h.destroy();
  g2.release = true;
  std::this_thread::sleep_for(20ms);
  taskctx_barrier(&s.tc);
  CHECK(marked == 0);
}

namespace {

kcont::co_task<void> wq_hopper(kcont::runtime& rt, kcont::function_workqueue& q, int hops,
                               std::atomic<int>& wrong, std::atomic<int>& done) {
  for (int i = 0; i < hops; ++i) {
    cpu_info* ci = rt.cpu(static_cast<unsigned>(i) % rt.ncpu());
    co_await kcont::on(q, ci);
    // A worker of rt (thread context), never the spawning thread or a CPU loop.
    if (&kcont::runtime::current() != &rt || kcont::in_interrupt_context()) ++wrong;
  }
  ++done;
}

owned wq_hop_then_mark(kcont::function_workqueue& q, cpu_info* ci, std::atomic<int>& marked) {
  co_await kcont::on(q, ci);
  ++marked;
}

}  // namespace

TEST_CASE(
    "on(function_workqueue): a worker, per-CPU queues, each hop once; withdrawn if destroyed") {
  kcont::runtime rt(cpus(2));
  kcont::function_workqueue q(rt, "coro", PRI_NONE, WQ_MPSAFE | WQ_PERCPU);
  std::atomic<int> wrong{0}, done{0};
  constexpr int kCoroutines = 100, kHops = 20;
  for (int i = 0; i < kCoroutines; ++i) kcont::spawn(wq_hopper(rt, q, kHops, wrong, done));
  require_or_exit(wait_until([&] { return done.load() == kCoroutines; }), "workqueue hops");
  CHECK(wrong == 0);

  // CPU 1's queue held by a sleeping item: a hop queued behind it is withdrawn with its frame.
  struct blocker_item : kcont::function_workqueue::item {
    gate g;
  } b;
  b.fn = [](kcont::function_workqueue::item* it) { gate::run(&static_cast<blocker_item*>(it)->g); };
  q.enqueue(&b, rt.cpu(1));
  require_or_exit(wait_until([&] { return b.g.inside.load(); }), "queue held");
  std::atomic<int> marked{0};
  owned o = wq_hop_then_mark(q, rt.cpu(1), marked);
  o.h.destroy();
  b.g.release = true;
  workqueue_wait(q.get(), &b);
  CHECK(marked == 0);
  CHECK_FALSE(q.withdraw(&b));  // it ran: nothing to take back
}

TEST_CASE("on(cpu): the CPU's soft interrupt context") {
  kcont::runtime rt(cpus(2));
  std::atomic<int> done{0}, wrong{0};
  auto f = [](kcont::runtime& r, std::atomic<int>& w, std::atomic<int>& d) -> kcont::co_task<> {
    for (unsigned i = 0; i < 20; ++i) {
      cpu_info* ci = r.cpu(i % r.ncpu());
      co_await kcont::on(ci);
      if (!kcont::in_interrupt_context() || curcpu() != ci) ++w;
    }
    ++d;
  };
  kcont::spawn(f(rt, wrong, done));
  require_or_exit(wait_until([&] { return done.load() == 1; }), "on(cpu) hops");
  CHECK(wrong == 0);
}
