// The Asio executor adaptors: post, dispatch and co_spawn onto a taskq and a taskctx.
#include <doctest/doctest.h>

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <kcont/asio_executors.h>
#include <kcont/runtime.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "test_util.h"

namespace asio = boost::asio;
using kcont_test::wait_until;

TEST_CASE("asio::post onto a taskq runs on one of the engine's workers") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("asio", 1, 0, TASKQ_MPSAFE);
  kcont::taskq_executor ex(tq);
  std::atomic<int> runs{0};
  std::atomic<bool> other_thread{false};
  const auto me = std::this_thread::get_id();
  for (int i = 0; i < 10; ++i)
    asio::post(ex, [&] {
      other_thread = std::this_thread::get_id() != me;
      ++runs;
    });
  asio::dispatch(ex, [&] { ++runs; });  // a taskq never runs inline
  REQUIRE(wait_until([&] { return runs == 11; }));
  CHECK(other_thread);
  taskq_destroy(tq);
}

TEST_CASE("asio::dispatch onto a free taskctx runs inline; post goes through a worker") {
  kcont::runtime rt(kcont_test::cpus(2));
  taskctx tc;
  taskctx_init(&tc, 0);
  kcont::taskctx_executor ex(&tc);
  bool ran_inline = false;
  asio::dispatch(ex, [&] { ran_inline = true; });
  CHECK(ran_inline);
  std::atomic<bool> posted{false};
  std::atomic<bool> posted_inline{true};
  const auto me = std::this_thread::get_id();
  asio::post(ex, [&] {
    posted_inline = std::this_thread::get_id() == me;
    posted = true;
  });
  REQUIRE(wait_until([&] { return posted.load(); }));
  CHECK_FALSE(posted_inline);
  taskctx_barrier(&tc);  // the runner may still be leaving the context: wait before it dies
}

TEST_CASE("asio::co_spawn a coroutine onto a taskq") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("coro", 1, 0, TASKQ_MPSAFE);
  kcont::taskq_executor ex(tq);
  std::atomic<int> steps{0};
  asio::co_spawn(
      ex,
      [&]() -> asio::awaitable<void> {
        ++steps;
        auto inner = co_await asio::this_coro::executor;
        co_await asio::post(inner, asio::use_awaitable);  // hop through the queue again
        ++steps;
      },
      asio::detached);
  REQUIRE(wait_until([&] { return steps == 2; }));
  taskq_destroy(tq);
}

TEST_CASE("asio::post onto a taskctx executor hands off to a worker of the executor's runtime") {
  kcont::runtime rt(kcont_test::cpus(2));
  taskctx tc;
  taskctx_init(&tc, 0);
  kcont::taskctx_executor ex(&tc, rt);  // no runtime_scope: rt is named, not current
  CHECK(&ex.context_runtime() == &rt);
  constexpr int kPosts = 1000;
  std::atomic<int> runs{0}, wrong_runtime{0}, overlaps{0};
  std::atomic<bool> inside{false};
  for (int i = 0; i < kPosts; ++i)
    asio::post(ex, [&] {
      if (&kcont::runtime::current() != &rt) ++wrong_runtime;  // not systqmp's default runtime
      if (inside.exchange(true)) ++overlaps;
      inside = false;
      ++runs;
    });
  REQUIRE(wait_until([&] { return runs == kPosts; }));
  taskctx_barrier(&tc);
  CHECK(wrong_runtime == 0);
  CHECK(overlaps == 0);
}

TEST_CASE("taskctx executor: posts from one thread run in the order posted, as a strand's do") {
  kcont::runtime rt(kcont_test::cpus(2));
  taskctx tc;
  taskctx_init(&tc, 0);
  kcont::taskctx_executor ex(&tc, rt);
  constexpr int kPosts = 5000;
  std::vector<int> order;  // appended inside the context only
  order.reserve(kPosts);
  std::atomic<int> runs{0};
  for (int i = 0; i < kPosts; ++i)
    asio::post(ex, [&, i] {
      order.push_back(i);
      ++runs;
    });
  REQUIRE(wait_until([&] { return runs == kPosts; }));
  taskctx_barrier(&tc);
  int out_of_order = 0;
  for (int i = 0; i < kPosts; ++i) out_of_order += order[static_cast<std::size_t>(i)] != i;
  CHECK(out_of_order == 0);
}

TEST_CASE("workqueue_executor: posts onto a function workqueue's CPU queue, in order, each once") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::function_workqueue q(rt, "asio", PRI_NONE, WQ_MPSAFE | WQ_PERCPU);
  kcont::workqueue_executor ex(q, rt.cpu(1));
  constexpr int kPosts = 5000;
  std::vector<int> order;  // one queue runs one item at a time
  order.reserve(kPosts);
  std::atomic<int> runs{0}, wrong_runtime{0};
  const auto me = std::this_thread::get_id();
  std::atomic<int> inline_runs{0};
  for (int i = 0; i < kPosts; ++i)
    asio::post(ex, [&, i] {
      if (&kcont::runtime::current() != &rt) ++wrong_runtime;
      if (std::this_thread::get_id() == me) ++inline_runs;
      order.push_back(i);
      ++runs;
    });
  asio::dispatch(ex, [&] { ++runs; });  // never inline either
  REQUIRE(wait_until([&] { return runs == kPosts + 1; }));
  CHECK(wrong_runtime == 0);
  CHECK(inline_runs == 0);
  int out_of_order = 0;
  for (int i = 0; i < kPosts; ++i) out_of_order += order[static_cast<std::size_t>(i)] != i;
  CHECK(out_of_order == 0);
}
