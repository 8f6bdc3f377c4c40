// <kcont/asio_coro.h>: kcont::async_sleep_for on a kcont::timer from Asio code: a callback and
// an asio::awaitable, the time coming (never early) and timer.cancel() from another thread
// (operation_aborted, delivered on the io_context's thread), every wait completed once.
#include <doctest/doctest.h>

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <kcont/asio_coro.h>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "test_util.h"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kcont_test::require_or_exit;
using kcont_test::wait_until;

TEST_CASE("async_sleep_for: a callback through its executor, after the time, never early") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::timer t(rt);
  asio::io_context ioc;
  std::atomic<int> calls{0};
  boost::system::error_code got = asio::error::would_block;
  std::thread::id on;
  const auto t0 = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration took{};
  // The handler runs through its associated executor: ioc here (a plain lambda would run on
  // Asio's system executor, as with any Asio operation).
  kcont::async_sleep_for(t, 5ms, asio::bind_executor(ioc, [&](boost::system::error_code ec) {
                           got = ec;
                           on = std::this_thread::get_id();
                           took = std::chrono::steady_clock::now() - t0;
                           ++calls;
                         }));
  CHECK(calls == 0);  // never inside the initiating call
  ioc.run();          // the work guard keeps it running until the handler ran
  CHECK(calls == 1);
  CHECK_FALSE(got);
  CHECK(took >= 5ms);
  CHECK(on == std::this_thread::get_id());
}

TEST_CASE("async_sleep_for from an asio::awaitable, cut short by timer.cancel() elsewhere") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::timer t(rt);
  asio::io_context ioc;
  std::atomic<int> aborted{0}, fired{0}, done{0};
  constexpr int kWaits = 200;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < kWaits; ++i) {
          boost::system::error_code ec;
          co_await kcont::async_sleep_for(t, (i % 2) ? 1h : 1ms,
                                          asio::redirect_error(asio::use_awaitable, ec));
          (ec == asio::error::operation_aborted ? aborted : fired)++;
        }
        ++done;
      },
      asio::detached);
  std::thread canceller([&] {
    while (done.load() == 0) {
      t.cancel();  // the 1 h waits end only this way
      std::this_thread::sleep_for(200us);
    }
  });
  ioc.run();
  canceller.join();
  CHECK(done == 1);
  CHECK(aborted + fired == kWaits);
  CHECK(aborted >= kWaits / 2);  // every 1 h wait was cancelled (some 1 ms ones may be too)
}
