// The one-way latency harness every latency benchmark shares, and its floor: an eventfd write
// to a thread blocked in read(2) on another core (the cost of one idle wake-up).
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"

namespace kcont_bench {

struct latency_options {
  int samples = 20000;
  int gap_us = 30;
};

// The receiver's side of one sample.
struct probe {
  std::atomic<std::int64_t> t1{0};
  std::atomic<bool> done{false};
  void hit() {
    t1.store(now_ns(), std::memory_order_relaxed);
    done.store(true, std::memory_order_release);
  }
};

// Runs `samples` one-way samples: fire() must cause probe.hit() on the receiver.
inline std::vector<double> one_way(const latency_options& o, probe& pr,
                                   const std::function<void()>& fire) {
  std::vector<double> v;
  v.reserve(o.samples);
  for (int i = 0; i < o.samples + o.samples / 10; ++i) {  // the first 10% warm up
    pr.done.store(false, std::memory_order_relaxed);
    std::int64_t t0 = now_ns();
    fire();
    while (!pr.done.load(std::memory_order_acquire)) {
    }
    if (i >= o.samples / 10) v.push_back(static_cast<double>(pr.t1.load() - t0));
    spin_for(o.gap_us * 1000LL);
  }
  return v;
}

// The mutex+condvar peer every area uses: a FIFO whose consumer thread, pinned to `core`,
// sleeps on a condition variable and calls on_item() (holding the mutex) for each item. The
// destructor lets it drain what is queued and joins it.
class condvar_queue {
 public:
  condvar_queue(int core, std::function<void()> on_item)
      : on_item_(std::move(on_item)), rx_([this, core] { consume(core); }) {}
  ~condvar_queue() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_ = true;
    }
    cv_.notify_one();
    rx_.join();
  }
  condvar_queue(const condvar_queue&) = delete;
  condvar_queue& operator=(const condvar_queue&) = delete;

  void push(int item = 1) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      q_.push_back(item);
    }
    cv_.notify_one();
  }

 private:
  void consume(int core) {
    pin_this_thread(core);
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return quit_ || !q_.empty(); });
      if (q_.empty()) return;  // quit, and nothing left
      q_.pop_front();
      on_item_();
    }
  }

  std::function<void()> on_item_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> q_;
  bool quit_ = false;
  std::thread rx_;  // last: starts once everything above is built
};

inline std::vector<double> bench_eventfd_floor(const latency_options& o) {
  probe pr;
  int efd = ::eventfd(0, EFD_CLOEXEC);
  std::atomic<bool> quit{false};
  std::thread rx([&] {
    pin_this_thread(1);
    std::uint64_t v;
    while (::read(efd, &v, sizeof v) == sizeof v && !quit.load()) pr.hit();
  });
  std::uint64_t one = 1;
  auto v = one_way(o, pr, [&] { [[maybe_unused]] auto r = ::write(efd, &one, sizeof one); });
  quit = true;
  [[maybe_unused]] auto r = ::write(efd, &one, sizeof one);
  rx.join();
  ::close(efd);
  return v;
}

// The Asio peer: boost::asio::post to an io_context run by an idle thread on core 1.
inline std::vector<double> bench_asio_post(const latency_options& o) {
  probe pr;
  boost::asio::io_context ioc(1);
  auto guard = boost::asio::make_work_guard(ioc);
  std::thread rx([&] {
    pin_this_thread(1);
    ioc.run();
  });
  auto v = one_way(o, pr, [&] { boost::asio::post(ioc, [&] { pr.hit(); }); });
  guard.reset();
  ioc.stop();
  rx.join();
  return v;
}

}  // namespace kcont_bench
