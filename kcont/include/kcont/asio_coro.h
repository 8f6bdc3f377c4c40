// kcont's coroutine sleeps for Asio code (<kcont/coro.h> is Asio-free; this is the bridge):
//
//   kcont::async_sleep_for(timer, d, token)
//       an Asio asynchronous operation, void(boost::system::error_code), on a kcont::timer: the
//       completion handler is called through its associated executor (never inside this call)
//       with no error when the time came, or with asio::error::operation_aborted when
//       timer.cancel() cut the wait short. Any completion token: a callback,
//       asio::use_awaitable (co_await from an asio::awaitable), asio::use_future.
//
// Cancellation is timer.cancel(), as steady_timer::cancel is with Boost 1.74 (Debian 12's),
// which predates Asio's per-operation cancellation slots (1.77). The wait is a callout of the
// timer's runtime, never early, as kcont::sleep_for. One wait per timer at a time.
#pragma once

#include <kcont/coro.h>

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange unincluded

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>

namespace kcont {
namespace detail {

// Waits on the timer in a coroutine of its own, then posts the handler to its executor (kept
// alive meanwhile by a work guard, as an Asio operation keeps its executor busy).
template <class Handler>
co_task<> timer_wait(timer& t, std::int64_t ns, Handler handler) {
  auto ex = boost::asio::get_associated_executor(handler);
  auto busy = boost::asio::make_work_guard(ex);
  const bool came = co_await t.sleep_for(std::chrono::nanoseconds(ns));
  const boost::system::error_code ec =
      came ? boost::system::error_code{} : make_error_code(boost::asio::error::operation_aborted);
  boost::asio::post(ex, [h = std::move(handler), ec]() mutable { h(ec); });
}

}  // namespace detail

template <class Rep, class Period, class Token>
auto async_sleep_for(timer& t, std::chrono::duration<Rep, Period> d, Token&& token) {
  return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
      [&t](auto handler, std::int64_t ns) { spawn(detail::timer_wait(t, ns, std::move(handler))); },
      token, detail::duration_to_ns(d));
}

}  // namespace kcont
