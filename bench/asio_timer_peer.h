// The Asio timer peer shared by the callout and kcont benchmarks: arm + cancel of one
// boost::asio::steady_timer (expires_after + async_wait + cancel) with `pending` other timers
// waiting. The cancelled handler (operation_aborted) is queued on the io_context and run by a
// later poll(): either one poll() per `batch` pairs, as a real loop runs its ready handlers in
// batches, or one poll() after every pair (the older figure: each poll() is an epoll_wait or
// two, most of that row's cost).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "bench_util.h"

namespace kcont_bench {

struct asio_arm_cancel_result {
  std::vector<double> poll_batched;  // ns per pair, one poll() per `batch` pairs, per repetition
  std::vector<double> poll_each;     // ns per pair, one poll() after every pair, per repetition
  std::uint64_t fired = 0;  // pending timers that expired during the run (0, or the case is off)
};

// pending_us: the delay of each pending timer (microseconds from its arm); pair i arms the timer
// armed_us[i % armed_us.size()] microseconds out. Each repetition runs the batched variant
// (when batch > 0), then the per-pair one, on the same io_context and pending timers.
inline asio_arm_cancel_result asio_timer_arm_cancel(const std::vector<std::int64_t>& pending_us,
                                                    const std::vector<std::int64_t>& armed_us,
                                                    int pairs, int reps, int batch) {
  using std::chrono::microseconds;
  asio_arm_cancel_result res;
  boost::asio::io_context ioc(1);
  std::uint64_t fired = 0;
  auto count_fired = [&fired](const boost::system::error_code& ec) {
    if (!ec) ++fired;
  };
  std::vector<std::unique_ptr<boost::asio::steady_timer>> bg;
  bg.reserve(pending_us.size());
  for (std::int64_t us : pending_us) {
    bg.push_back(std::make_unique<boost::asio::steady_timer>(ioc));
    bg.back()->expires_after(microseconds(us));
    bg.back()->async_wait(count_fired);
  }
  boost::asio::steady_timer t(ioc);
  const std::size_t n = armed_us.size();
  for (int r = 0; r < reps; ++r) {
    if (batch > 0) {
      std::int64_t t0 = now_ns();
      for (int i = 0; i < pairs; ++i) {
        t.expires_after(microseconds(armed_us[static_cast<std::size_t>(i) % n]));
        t.async_wait(count_fired);
        t.cancel();
        if ((i + 1) % batch == 0) ioc.poll();  // runs the last `batch` cancelled handlers
      }
      ioc.poll();  // the rest, inside the timed region
      res.poll_batched.push_back(static_cast<double>(now_ns() - t0) / pairs);
    }
    std::int64_t t0 = now_ns();
    for (int i = 0; i < pairs; ++i) {
      t.expires_after(microseconds(armed_us[static_cast<std::size_t>(i) % n]));
      t.async_wait(count_fired);
      t.cancel();
      ioc.poll();  // runs the cancelled handler
    }
    res.poll_each.push_back(static_cast<double>(now_ns() - t0) / pairs);
  }
  res.fired = fired;
  for (auto& b : bg) b->cancel();
  ioc.poll();
  return res;
}

// The older figure (kcont area's timer path): `pending` timers waiting an hour or two, the armed
// one 1-66 s out (earlier than all of them), poll() after every pair; ns per pair, per
// repetition.
inline std::vector<double> asio_timer_arm_cancel(std::size_t pending, int pairs, int reps) {
  std::vector<std::int64_t> pending_us(pending), armed_us(65536);
  std::mt19937 rng(1);
  for (auto& us : pending_us) us = (3600 + static_cast<std::int64_t>(rng() % 3600)) * 1'000'000;
  for (std::size_t i = 0; i < armed_us.size(); ++i)
    armed_us[i] = (1000 + static_cast<std::int64_t>(i)) * 1000;
  return asio_timer_arm_cancel(pending_us, armed_us, pairs, reps, 0).poll_each;
}

}  // namespace kcont_bench
