// The Asio timer peer shared by the callout and kcont benchmarks: arm + cancel of one
// boost::asio::steady_timer (expires_after + async_wait + cancel, the cancelled handler run by
// poll()) with `pending` other timers waiting an hour or two.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <random>
#include <vector>

#include "bench_util.h"

namespace kcont_bench {

// ns per arm+cancel pair, one figure per repetition.
inline std::vector<double> asio_timer_arm_cancel(std::size_t pending, int pairs, int reps) {
  boost::asio::io_context ioc(1);
  std::vector<std::unique_ptr<boost::asio::steady_timer>> bg;
  bg.reserve(pending);
  std::mt19937 rng(1);
  for (std::size_t i = 0; i < pending; ++i) {
    bg.push_back(std::make_unique<boost::asio::steady_timer>(ioc));
    bg.back()->expires_after(std::chrono::seconds(3600 + rng() % 3600));
    bg.back()->async_wait([](const boost::system::error_code&) {});
  }
  boost::asio::steady_timer t(ioc);
  std::vector<double> v;
  for (int r = 0; r < reps; ++r) {
    std::int64_t t0 = now_ns();
    for (int i = 0; i < pairs; ++i) {
      t.expires_after(std::chrono::milliseconds(1000 + (i & 0xffff)));
      t.async_wait([](const boost::system::error_code&) {});
      t.cancel();
      ioc.poll();  // runs the cancelled handler
    }
    v.push_back(static_cast<double>(now_ns() - t0) / pairs);
  }
  for (auto& b : bg) b->cancel();
  ioc.poll();
  return v;
}

}  // namespace kcont_bench
