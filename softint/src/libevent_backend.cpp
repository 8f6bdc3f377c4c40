// The libevent loop backend: each CPU owns an event_base run by its loop thread.
//
// Waking: an eventfd watched by a persistent EV_READ event; wake() is one write(2), so other
// threads never call into libevent. Deadline: one evtimer, re-armed only when the deadline
// changes; the base uses EVENT_BASE_FLAG_PRECISE_TIMER (timerfd, microseconds) and does not
// cache time. libevent rounds to microseconds: the timer is armed rounded up, and the CPU loop
// re-checks the clock, so nothing runs early.
#include "loop_backend.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <system_error>

#include "runtime_impl.h"

namespace kcont::detail {
namespace {

class libevent_backend final : public loop_backend {
 public:
  explicit libevent_backend(cpu_info* ci) : ci_(ci) {
    static std::once_flag threads_once;
    std::call_once(threads_once, [] { evthread_use_pthreads(); });
    event_config* cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NO_CACHE_TIME);
    base_ = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (base_ == nullptr) throw std::runtime_error("kcont: libevent: event_base_new failed");
    efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0) throw std::system_error(errno, std::generic_category(), "kcont: eventfd");
    wake_ev_ = event_new(base_, efd_, EV_READ | EV_PERSIST, &libevent_backend::on_wake, this);
    timer_ev_ = evtimer_new(base_, &libevent_backend::on_timer, this);
    start_ev_ = evtimer_new(base_, &libevent_backend::on_start, this);
    event_add(wake_ev_, nullptr);
  }

  ~libevent_backend() override {
    event_free(start_ev_);
    event_free(timer_ev_);
    event_free(wake_ev_);
    event_base_free(base_);
    ::close(efd_);
  }

  void wake() noexcept override {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(efd_, &one, sizeof one);
  }

  void set_deadline(std::int64_t ns) override {
    if (ns == armed_) return;
    armed_ = ns;
    if (ns == no_deadline) {
      evtimer_del(timer_ev_);
      return;
    }
    std::int64_t rel = ns - now_ns();
    if (rel < 0) rel = 0;
    std::int64_t us = (rel + 999) / 1000;  // round up: never early
    timeval tv{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
    evtimer_add(timer_ev_, &tv);
  }

  void run() override {
    timeval zero{0, 0};
    evtimer_add(start_ev_, &zero);  // the first dispatch runs parked work
    event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY);
  }

  void stop() override { event_base_loopbreak(base_); }

 private:
  static void on_wake(evutil_socket_t, short, void* self) {
    auto* b = static_cast<libevent_backend*>(self);
    std::uint64_t count;
    [[maybe_unused]] ssize_t r = ::read(b->efd_, &count, sizeof count);
    cpu_dispatch(b->ci_, wake_reason::woken);
  }
  static void on_timer(evutil_socket_t, short, void* self) {
    auto* b = static_cast<libevent_backend*>(self);
    b->armed_ = no_deadline;
    cpu_dispatch(b->ci_, wake_reason::deadline);
  }
  static void on_start(evutil_socket_t, short, void* self) {
    cpu_dispatch(static_cast<libevent_backend*>(self)->ci_, wake_reason::start);
  }

  cpu_info* ci_;
  event_base* base_ = nullptr;
  event* wake_ev_ = nullptr;
  event* timer_ev_ = nullptr;
  event* start_ev_ = nullptr;
  int efd_ = -1;
  std::int64_t armed_ = no_deadline;
};

}  // namespace

std::unique_ptr<loop_backend> make_libevent_backend(cpu_info* ci) {
  return std::make_unique<libevent_backend>(ci);
}

}  // namespace kcont::detail
