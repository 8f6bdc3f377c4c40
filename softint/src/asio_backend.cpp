// The Boost.Asio loop backend: each CPU owns an io_context run by its loop thread.
//
// Waking: an eventfd registered with the io_context's reactor (a posix::stream_descriptor with
// an outstanding async_wait); wake() is one write(2). Nothing is posted across threads, so a
// wake allocates nothing and takes no asio lock. Deadline: one steady_timer (timerfd-backed,
// nanosecond resolution), re-armed only when the deadline changes.
#include "loop_backend.h"

#include <sys/eventfd.h>
#include <unistd.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cerrno>
#include <system_error>

namespace kcont::detail {
namespace {

namespace asio = boost::asio;

class asio_backend final : public loop_backend {
 public:
  explicit asio_backend(cpu_info* ci) : ci_(ci), ioc_(1), wake_fd_(ioc_), timer_(ioc_) {
    int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "kcont: eventfd");
    efd_ = fd;
    wake_fd_.assign(fd);
    arm_wake();
  }

  void wake() noexcept override {
    std::uint64_t one = 1;
    // EAGAIN only when the counter is saturated, and then the loop is already due to wake.
    [[maybe_unused]] ssize_t r = ::write(efd_, &one, sizeof one);
  }

  void set_deadline(std::int64_t ns) override {
    if (ns == armed_) return;
    armed_ = ns;
    if (ns == no_deadline) {
      timer_.cancel();
      return;
    }
    timer_.expires_at(asio::steady_timer::time_point(std::chrono::nanoseconds(ns)));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;  // cancelled or re-armed
      armed_ = no_deadline;
      cpu_dispatch(ci_, wake_reason::deadline);
    });
  }

  void run() override {
    ioc_.restart();
    asio::post(ioc_, [this] { cpu_dispatch(ci_, wake_reason::start); });
    ioc_.run();
  }

  void stop() override { ioc_.stop(); }

 private:
  void arm_wake() {
    wake_fd_.async_wait(asio::posix::stream_descriptor::wait_read,
                        [this](const boost::system::error_code& ec) {
                          if (ec) return;
                          std::uint64_t count;
                          [[maybe_unused]] ssize_t r = ::read(efd_, &count, sizeof count);
                          arm_wake();
                          cpu_dispatch(ci_, wake_reason::woken);
                        });
  }

  cpu_info* ci_;
  asio::io_context ioc_;
  asio::posix::stream_descriptor wake_fd_;  // owns the eventfd
  asio::steady_timer timer_;
  int efd_ = -1;
  std::int64_t armed_ = no_deadline;
};

}  // namespace

std::unique_ptr<loop_backend> make_asio_backend(cpu_info* ci) {
  return std::make_unique<asio_backend>(ci);
}

}  // namespace kcont::detail
