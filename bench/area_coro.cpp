// coro area (issue 20): coroutines on kcont beside Asio's, same run.
//   hop cycle: a coroutine on CPU 1 hopping onto the same kcont queue again and again
//     (co_await kcont::on(wq, cpu1)), ns per hop, beside a continuation re-scheduled from its
//     own func on that queue (the same cycle without a coroutine; bar: hop <= 1.5x), and beside
//     Asio's hop as its users write it: co_await asio::post(executor, use_awaitable) in an
//     awaitable, onto an io_context and onto a strand, each run by one thread;
//   sleep + cancel at 10^5 pending: a coroutine sleeping and cut short, then sleeping again:
//     with sleep_for and a std::stop_token (a stop_source each time), and with a kcont::timer
//     and cancel() (the steady_timer equivalent), beside an awaitable waiting on a steady_timer
//     (async_wait with redirect_error, resumed by cancel + io_context::run_one), 10^5 other
//     timers pending in each, the new deadline among them (bar: Asio >= 10x kcont::timer).
#include <kcont/coro.h>
#include <kcont/kcont.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <stop_token>
#include <thread>
#include <vector>

#include "alloc_count.h"
#include "kcont_bench.h"

namespace kcont_bench {
namespace {

namespace asio = boost::asio;

int kReps = 9;
constexpr int kHops = 20000;

// ---- hop cycle ---------------------------------------------------------------------------

struct hop_result {
  std::atomic<bool> done{false};
  double ns_per_hop = 0;
  std::uint64_t allocs = 0;
};

kcont::co_task<void> hop_loop(kcont::runtime& rt, kcont_wq_t* wq, hop_result& out) {
  cpu_info* ci = rt.cpu(1);
  co_await kcont::on(rt, wq, ci);
  const std::uint64_t a0 = allocations();
  const std::int64_t t0 = now_ns();
  for (int i = 0; i < kHops; ++i) co_await kcont::on(rt, wq, ci);
  out.ns_per_hop = static_cast<double>(now_ns() - t0) / kHops;
  out.allocs = allocations() - a0;
  out.done.store(true, std::memory_order_release);
}

std::vector<double> bench_hop(kcont::runtime& rt, kcont_wq_t* wq, std::uint64_t& allocs) {
  std::vector<double> ns;
  allocs = 0;
  for (int r = 0; r < kReps; ++r) {
    hop_result out;
    kcont::spawn(hop_loop(rt, wq, out));
    while (!out.done.load(std::memory_order_acquire))
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ns.push_back(out.ns_per_hop);
    allocs += out.allocs;
  }
  return ns;
}

// Asio's hop: one thread runs the io_context; the awaitable posts itself to its executor.
std::vector<double> bench_asio_hop(bool strand) {
  std::vector<double> ns;
  for (int r = 0; r < kReps; ++r) {
    asio::io_context ioc(1);
    double per = 0;
    auto body = [&per]() -> asio::awaitable<void> {
      auto ex = co_await asio::this_coro::executor;
      co_await asio::post(ex, asio::use_awaitable);
      const std::int64_t t0 = now_ns();
      for (int i = 0; i < kHops; ++i) co_await asio::post(ex, asio::use_awaitable);
      per = static_cast<double>(now_ns() - t0) / kHops;
    };
    if (strand)
      asio::co_spawn(asio::make_strand(ioc), body(), asio::detached);
    else
      asio::co_spawn(ioc, body(), asio::detached);
    ioc.run();
    ns.push_back(per);
  }
  return ns;
}

// ---- sleep + cancel ----------------------------------------------------------------------

constexpr int kPending = 100000;

// Pending delays uniform over 20..120 s, the sleeps at 60 s: among them (as area_callout's
// "among" case).
std::vector<std::int64_t> pending_delays_ms() {
  std::mt19937 rng(1);
  std::uniform_int_distribution<std::int64_t> d(20000, 120000);
  std::vector<std::int64_t> v(kPending);
  for (auto& x : v) x = d(rng);
  return v;
}
constexpr std::chrono::seconds kSleep{60};

// kPending callouts armed at pending_delays_ms() on the caller's CPU (halted when destroyed).
std::vector<std::unique_ptr<kcont::callout>> pending_callouts(kcont::runtime& rt) {
  std::vector<std::unique_ptr<kcont::callout>> bg;
  bg.reserve(kPending);
  for (std::int64_t ms : pending_delays_ms()) {
    bg.push_back(std::make_unique<kcont::callout>(rt, [] {}));
    bg.back()->schedule(std::chrono::milliseconds(ms));
  }
  return bg;
}

struct sleep_state {
  std::stop_source* current = nullptr;  // the stop source of the sleep in progress
  int left = 0;
  int fired = 0;
};

kcont::co_task<void> sleep_loop(kcont::runtime& rt, sleep_state& s) {
  for (;;) {
    std::stop_source src;
    s.current = &src;
    const bool came = co_await kcont::sleep_for(rt, kSleep, src.get_token());  // see kcont_coro(3)
    if (came) ++s.fired;
    if (--s.left == 0) break;
  }
  s.current = nullptr;
}

std::vector<double> bench_sleep_cancel(kcont::runtime& rt, int n, std::uint64_t& allocs,
                                       int& fired) {
  kcont::runtime_scope scope(rt);
  const auto bg = pending_callouts(rt);
  std::vector<double> ns;
  allocs = 0;
  fired = 0;
  for (int r = 0; r < kReps; ++r) {
    sleep_state s;
    s.left = n + 1;
    kcont::spawn(sleep_loop(rt, s));  // returns once it sleeps
    const std::uint64_t a0 = allocations();
    const std::int64_t t0 = now_ns();
    for (int i = 0; i < n; ++i) s.current->request_stop();  // resumes it here; it sleeps again
    const std::int64_t t1 = now_ns();
    allocs += allocations() - a0;
    s.current->request_stop();  // the last one: it ends
    fired += s.fired;
    ns.push_back(static_cast<double>(t1 - t0) / n);
  }
  return ns;
}

kcont::co_task<void> timer_loop(kcont::timer& t, int& left, int& fired) {
  while (left > 0) {
    const bool came = co_await t.sleep_for(kSleep);  // not in the if: see kcont_coro(3), BUGS
    if (came) ++fired;
    --left;
  }
}

// The same with a kcont::timer (one callout made once, cancel() as steady_timer::cancel).
std::vector<double> bench_timer_cancel(kcont::runtime& rt, int n, std::uint64_t& allocs,
                                       int& fired) {
  kcont::runtime_scope scope(rt);
  const auto bg = pending_callouts(rt);
  std::vector<double> ns;
  allocs = 0;
  fired = 0;
  kcont::timer t(rt);
  for (int r = 0; r < kReps; ++r) {
    int left = n + 1;
    kcont::spawn(timer_loop(t, left, fired));  // returns once it waits
    const std::uint64_t a0 = allocations();
    const std::int64_t t0 = now_ns();
    for (int i = 0; i < n; ++i) t.cancel();  // resumes it here; it waits again
    const std::int64_t t1 = now_ns();
    allocs += allocations() - a0;
    t.cancel();  // the last one: it ends
    ns.push_back(static_cast<double>(t1 - t0) / n);
  }
  return ns;
}

std::vector<double> bench_asio_sleep_cancel(int n, std::uint64_t& allocs, int& fired) {
  asio::io_context ioc(1);
  const auto delays = pending_delays_ms();
  std::vector<std::unique_ptr<asio::steady_timer>> bg;
  bg.reserve(delays.size());
  for (std::int64_t ms : delays) {
    bg.push_back(std::make_unique<asio::steady_timer>(ioc, std::chrono::milliseconds(ms)));
    bg.back()->async_wait([](const boost::system::error_code&) {});
  }
  std::vector<double> ns;
  allocs = 0;
  fired = 0;
  for (int r = 0; r < kReps; ++r) {
    asio::steady_timer t(ioc);
    int left = n + 1;
    int timer_fired = 0;
    auto body = [&]() -> asio::awaitable<void> {
      for (;;) {
        t.expires_after(kSleep);
        boost::system::error_code ec;
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (!ec) ++timer_fired;
        if (--left == 0) co_return;
      }
    };
    asio::co_spawn(ioc, body(), asio::detached);
    while (ioc.poll_one() != 0) {
    }  // up to its first wait
    const std::uint64_t a0 = allocations();
    const std::int64_t t0 = now_ns();
    for (int i = 0; i < n; ++i) {
      t.cancel();
      ioc.run_one();  // the aborted wait's completion: the awaitable resumes and waits again
    }
    const std::int64_t t1 = now_ns();
    allocs += allocations() - a0;
    t.cancel();
    while (ioc.poll_one() != 0) {
    }  // it ends
    fired += timer_fired;
    ns.push_back(static_cast<double>(t1 - t0) / n);
  }
  for (auto& b : bg) b->cancel();
  ioc.poll();
  return ns;
}

}  // namespace

void area_coro(context& ctx) {
  kReps = ctx.pick(5, 9);
  kcont::runtime rt(ctx.runtime_cfg());

  ctx.cost_header("coroutine hop onto a queue on the same CPU, full cycle", "ns/hop");
  double softnet_hop = 0;
  for (kcont_wq_t* wq : {wq_softnet, wq_prihigh}) {
    const std::string q = wq == wq_softnet ? "softnet" : "prihigh";
    ctx.step("hop cycle, wq_" + q);
    std::uint64_t allocs = 0;
    const std::vector<double> hops = bench_hop(rt, wq, allocs);  // before allocs is read
    spread hop = ctx.cost_row("coro.cost.hop_cycle." + q,
                              "co_await kcont::on(wq_" + q + ", cpu1), from cpu1's queue", hops,
                              "ns/hop", allocs);
    spread cyc =
        ctx.cost_row("coro.cost.hop_cycle." + q + ".ref.resched_cycle",
                     "reference: continuation re-scheduled from its own func (wq_" + q + ")",
                     bench_resched_cycle(rt, wq, kReps), "ns/cycle");
    if (wq == wq_softnet) softnet_hop = hop.value;
    ctx.ratio("coro.cost.hop_cycle." + q + ".over_resched_cycle",
              "hop / re-schedule cycle (wq_" + q + "; bar <= 1.5)", hop.value / cyc.value);
  }
  ctx.step("Asio hop: post onto an io_context and onto a strand");
  spread ap = ctx.cost_row("coro.cost.hop_cycle.peer.asio_post",
                           "peer: co_await asio::post(ioc executor, use_awaitable), 1 thread",
                           bench_asio_hop(false), "ns/hop");
  spread as = ctx.cost_row("coro.cost.hop_cycle.peer.asio_strand",
                           "peer: co_await asio::post(strand, use_awaitable), 1 thread",
                           bench_asio_hop(true), "ns/hop");
  ctx.ratio("coro.cost.hop_cycle.peer.asio_post_over_softnet", "asio post / kcont hop (wq_softnet)",
            ap.value / softnet_hop);
  ctx.ratio("coro.cost.hop_cycle.peer.asio_strand_over_softnet",
            "asio strand / kcont hop (wq_softnet)", as.value / softnet_hop);

  const int n = ctx.pick(20000, 100000);
  ctx.cost_header("sleep + cancel with 10^5 pending (deadline among them), full cycle", "ns/cycle");
  ctx.step("sleep_for + request_stop, 10^5 pending");
  std::uint64_t kallocs = 0, aallocs = 0;
  int kfired = 0, afired = 0;
  const std::vector<double> kns = bench_sleep_cancel(rt, n, kallocs, kfired);
  spread ks = ctx.cost_row("coro.cost.sleep_cancel.P1e5",
                           "co_await sleep_for(60 s, token) resumed by request_stop, re-armed "
                           "(a std::stop_source each)",
                           kns, "ns/cycle", kallocs);
  ctx.step("kcont::timer sleep_for + cancel, 10^5 pending");
  std::uint64_t tallocs = 0;
  int tfired = 0;
  const std::vector<double> tns = bench_timer_cancel(rt, n, tallocs, tfired);
  spread kt = ctx.cost_row("coro.cost.timer_cancel.P1e5",
                           "co_await timer.sleep_for(60 s) resumed by timer.cancel(), re-armed",
                           tns, "ns/cycle", tallocs);
  ctx.step("asio::steady_timer async_wait + cancel, 10^5 pending");
  spread as2 =
      ctx.cost_row("coro.cost.sleep_cancel.P1e5.peer.asio_steady_timer",
                   "peer: co_await timer.async_wait (redirect_error) resumed by cancel + run_one",
                   bench_asio_sleep_cancel(n, aallocs, afired), "ns/cycle", aallocs);
  ctx.ratio("coro.cost.sleep_cancel.P1e5.asio_over_kcont",
            "asio / kcont sleep_for with a stop token", as2.value / ks.value);
  ctx.ratio("coro.cost.timer_cancel.P1e5.asio_over_kcont",
            "asio / kcont::timer (the steady_timer equivalent; bar >= 10)", as2.value / kt.value);
  if (kfired != 0 || tfired != 0 || afired != 0)
    std::printf("  (a 60 s sleep fired during the run: kcont %d + %d, asio %d; not comparable)\n",
                kfired, tfired, afired);
}

}  // namespace kcont_bench
