// kcont::queue_executor (<kcont/asio_queue_executor.h>): Asio's post, dispatch and co_spawn onto
// kcont queues of an explicit runtime: where they run, FIFO and exactly once per CPU queue,
// errors, and no thread added in attach mode on the soft queues.
#include <doctest/doctest.h>

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <kcont/asio_queue_executor.h>
#include <kcont/attach.h>
#include <kcont/runtime.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "test_util.h"

namespace asio = boost::asio;
using kcont_test::require_or_exit;
using kcont_test::wait_until;

static_assert(asio::execution::is_executor<kcont::queue_executor>::value);

TEST_CASE("queue_executor: soft queues run in softint context on their CPU, thread queues not") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::queue_executor soft(rt, wq_softnet, rt.cpu(1));
  kcont::queue_executor thread(rt, wq_prihigh, rt.cpu(0));
  std::atomic<int> runs{0}, wrong{0};
  for (int i = 0; i < 100; ++i) {
    asio::post(soft, [&] {
      if (!kcont::in_interrupt_context() || curcpu() != rt.cpu(1)) ++wrong;
      ++runs;
    });
    asio::post(thread, [&] {
      if (kcont::in_interrupt_context()) ++wrong;
      ++runs;
    });
  }
  const auto me = std::this_thread::get_id();
  std::atomic<bool> inline_dispatch{false};
  asio::dispatch(soft, [&] {
    inline_dispatch = std::this_thread::get_id() == me;  // never inline: blocking.never
    ++runs;
  });
  asio::defer(thread, [&] { ++runs; });  // defer: as post
  require_or_exit(wait_until([&] { return runs == 202; }), "posts ran");
  CHECK(wrong == 0);
  CHECK_FALSE(inline_dispatch);
}

TEST_CASE("queue_executor: posts to one CPU's queue run once each, in the order posted") {
  kcont::runtime rt(kcont_test::cpus(2));
  for (kcont_wq_t* wq : {wq_softclock, wq_primedlow}) {
    kcont::queue_executor ex(rt, wq, rt.cpu(0));
    constexpr int kPosts = 20000;
    std::vector<int> seen;  // appended only by the queue's drain: one at a time per CPU queue
    seen.reserve(kPosts);
    std::mutex mu;  // only for the final read from this thread
    std::atomic<int> done{0};
    for (int i = 0; i < kPosts; ++i)
      asio::post(ex, [&, i] {
        std::lock_guard<std::mutex> lk(mu);
        seen.push_back(i);
        ++done;
      });
    require_or_exit(wait_until([&] { return done.load() == kPosts; }), "posts ran");
    std::lock_guard<std::mutex> lk(mu);
    REQUIRE(seen.size() == static_cast<std::size_t>(kPosts));
    int out_of_order = 0;
    for (int i = 0; i < kPosts; ++i) out_of_order += seen[static_cast<std::size_t>(i)] != i;
    CHECK(out_of_order == 0);
  }
}

TEST_CASE("queue_executor: co_spawn an awaitable that hops through the queue and returns") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::queue_executor ex(rt, wq_softnet, rt.cpu(0));
  std::atomic<int> result{0};
  std::atomic<int> off_cpu{0};
  asio::co_spawn(
      ex,
      [&]() -> asio::awaitable<int> {
        auto self = co_await asio::this_coro::executor;
        int sum = 0;
        for (int i = 1; i <= 10; ++i) {
          co_await asio::post(self, asio::use_awaitable);
          if (curcpu() != rt.cpu(0)) ++off_cpu;
          sum += i;
        }
        co_return sum;
      },
      [&](std::exception_ptr e, int v) { result = e ? -1 : v; });
  require_or_exit(wait_until([&] { return result.load() != 0; }), "co_spawn finished");
  CHECK(result == 55);
  CHECK(off_cpu == 0);
}

TEST_CASE("queue_executor: a CPU on a queue without per-CPU queues is refused") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont_wq_t* shared;
  {
    kcont::runtime_scope scope(rt);
    shared = kcont_workqueue_acquire(PRI_NONE, 0);
  }
  REQUIRE(shared != nullptr);
  bool ran = false;
  try {
    asio::post(kcont::queue_executor(rt, shared, rt.cpu(1)), [&] { ran = true; });
    FAIL("no exception");
  } catch (const std::system_error& e) {
    CHECK(e.code().value() == ENOENT);
  }
  std::atomic<bool> fine{false};
  asio::post(kcont::queue_executor(rt, shared), [&] { fine = true; });
  require_or_exit(wait_until([&] { return fine.load(); }), "shared queue post");
  CHECK_FALSE(ran);
  kcont::runtime_scope scope(rt);
  CHECK(kcont_workqueue_release(shared) == 0);
}

TEST_CASE("queue_executor: attach mode, a soft queue runs posts on the server's thread") {
  asio::io_context ioc;
  auto guard = asio::make_work_guard(ioc);
  std::thread server([&] { ioc.run(); });
  // Threads of the earlier cases' runtimes may still be on their way out: count once settled.
  int before = kcont_test::process_threads();
  for (int stable = 0; stable < 5; std::this_thread::sleep_for(std::chrono::milliseconds(20))) {
    const int now = kcont_test::process_threads();
    stable = now == before ? stable + 1 : 0;
    before = now;
  }
  {
    kcont::runtime rt(kcont::attached(ioc, 1));
    kcont::queue_executor ex(rt, wq_softnet, rt.cpu(0));
    std::atomic<int> runs{0}, elsewhere{0};
    for (int i = 0; i < 100; ++i)
      asio::post(ex, [&] {
        if (std::this_thread::get_id() != server.get_id()) ++elsewhere;
        ++runs;
      });
    CHECK(wait_until([&] { return runs == 100; }));
    CHECK(elsewhere == 0);
    CHECK(kcont_test::process_threads() == before);
    CHECK(rt.stop().drained);
  }
  guard.reset();
  ioc.stop();
  server.join();
}
