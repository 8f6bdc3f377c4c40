// The libevent loop backend: a CPU's own event_base run by its loop thread, or (attach mode)
// the server's event_base run by the server's thread.
//
// Waking: an eventfd watched by a persistent EV_READ event; wake() is one write(2), so other
// threads never call into libevent. Deadline: one evtimer, re-armed only when the deadline
// changes; our own base uses EVENT_BASE_FLAG_PRECISE_TIMER (timerfd, microseconds) and does not
// cache time. libevent rounds to microseconds: the timer is armed rounded up, and the CPU loop
// re-checks the clock, so nothing runs early.
//
// Attach mode: callbacks run holding the CPU's consumer lock, as the CPU (this_thread_cpu()
// set around them and restored after), and do nothing while the runtime is stopped. An
// event_base runs on one thread, so one CPU's callbacks never overlap. The events are freed
// with the backend (the base must outlive the runtime; see attach.h for threading).
//
// Locks used to protect the fields below:
//   [I] immutable after construction
//   [a] atomic
//   [u] mu_ (attach mode: the CPU's consumer lock)
//   [C] as the CPU: its own loop thread, or, attached, the server thread holding mu_
#include "loop_backend.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <system_error>
#include <thread>

#include "fd_watch.h"
#include "runtime_impl.h"

namespace kcont::detail {
namespace {

class libevent_backend final : public loop_backend {
 public:
  libevent_backend(cpu_info* ci, event_base* server) : ci_(ci), attached_(server != nullptr) {
    static std::once_flag threads_once;
    std::call_once(threads_once, [] { evthread_use_pthreads(); });
    if (server != nullptr) {
      base_ = server;
      serving_ = false;  // from start() (run()) on
    } else {
      event_config* cfg = event_config_new();
      event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
      event_config_set_flag(cfg, EVENT_BASE_FLAG_NO_CACHE_TIME);
      base_ = event_base_new_with_config(cfg);
      event_config_free(cfg);
      if (base_ == nullptr) throw std::runtime_error("kcont: libevent: event_base_new failed");
    }
    efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0) throw std::system_error(errno, std::generic_category(), "kcont: eventfd");
    wake_ev_ = event_new(base_, efd_, EV_READ | EV_PERSIST, &libevent_backend::on_wake, this);
    timer_ev_ = evtimer_new(base_, &libevent_backend::on_timer, this);
    start_ev_ = evtimer_new(base_, &libevent_backend::on_start, this);
    if (server == nullptr) event_add(wake_ev_, nullptr);  // attached: from start() on
  }

  ~libevent_backend() override {
    {
      std::lock_guard<std::mutex> lk(mu_);  // a callback running as the CPU ends first
      serving_ = false;
    }
    // Not holding mu_: with a locking base, event_free waits for a running callback.
    event_free(start_ev_);
    event_free(timer_ev_);
    event_free(wake_ev_);
    if (!attached_) event_base_free(base_);
    ::close(efd_);
  }

  void wake() noexcept override {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(efd_, &one, sizeof one);
  }

  void set_deadline(std::int64_t ns) override {
    if (ns == armed_) return;
    armed_ = ns;
    if (ns == kNoDeadline) {
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
    if (attached_) {  // caller holds the consumer lock
      serving_ = true;
      event_add(wake_ev_, nullptr);
      wake();  // the first dispatch runs parked work
      return;
    }
    timeval zero{0, 0};
    evtimer_add(start_ev_, &zero);  // the first dispatch runs parked work
    event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY);
  }

  void stop() override {
    if (attached_) {
      // No event of ours is left on the server's base: its loop may run out of work.
      serving_ = false;
      event_del(wake_ev_);
      evtimer_del(timer_ev_);
      armed_ = kNoDeadline;
    } else {
      event_base_loopbreak(base_);
    }
  }

  std::unique_ptr<watch_io> new_watch(machine::fd_watch* w) override;

  bool attached() const override { return attached_; }
  std::mutex* consumer_lock() override { return attached_ ? &mu_ : nullptr; }
  bool caller_runs_loop() const override {
    return attached_ && loop_thread_.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }

  event_base* base() const { return base_; }

  // Runs f as the CPU; then, if f returns true and the CPU is served, a dispatch.
  template <class F>
  void on_cpu(F&& f, wake_reason reason = wake_reason::woken) {
    if (!attached_) {
      if (f()) cpu_dispatch(ci_, reason);
      return;
    }
    loop_thread_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    std::lock_guard<std::mutex> lk(mu_);
    cpu_info* prev = set_this_thread_cpu(ci_);
    if (f() && serving_) cpu_dispatch(ci_, reason);
    set_this_thread_cpu(prev);
  }

  bool serving() const { return serving_; }

 private:
  static void on_wake(evutil_socket_t, short, void* self) {
    auto* b = static_cast<libevent_backend*>(self);
    b->on_cpu([b] {
      std::uint64_t count;
      [[maybe_unused]] ssize_t r = ::read(b->efd_, &count, sizeof count);
      return true;
    });
  }
  static void on_timer(evutil_socket_t, short, void* self) {
    auto* b = static_cast<libevent_backend*>(self);
    b->on_cpu(
        [b] {
          b->armed_ = kNoDeadline;
          return true;
        },
        wake_reason::deadline);
  }
  static void on_start(evutil_socket_t, short, void* self) {
    auto* b = static_cast<libevent_backend*>(self);
    b->on_cpu([] { return true; }, wake_reason::start);
  }

  cpu_info* ci_;                                // [I]
  const bool attached_;                         // [I]
  std::mutex mu_;                               // attached: the CPU's consumer lock
  bool serving_ = true;                         // [u] attached CPU served (runtime running)
  std::atomic<std::thread::id> loop_thread_{};  // [a]
  event_base* base_ = nullptr;                  // [I]
  event* wake_ev_ = nullptr;                    // [I] made with the backend, used [C]
  event* timer_ev_ = nullptr;                   // [I] made with the backend, used [C]
  event* start_ev_ = nullptr;                   // [I] made with the backend, used [C]
  int efd_ = -1;                                // [I]
  std::int64_t armed_ = kNoDeadline;            // [C] the deadline the timer is armed for
};

// The backend half of an fd watch: a persistent EV_READ event (level-triggered), added while
// the watch is not paused.
class libevent_watch_io final : public watch_io {
 public:
  libevent_watch_io(libevent_backend* b, machine::fd_watch* w) : b_(b), w_(w) {
    ev_ = event_new(b->base(), w->fd, EV_READ | EV_PERSIST, &libevent_watch_io::on_ready, this);
    if (ev_ == nullptr) throw std::runtime_error("kcont: libevent: event_new failed");
  }
  ~libevent_watch_io() override {
    if (ev_ != nullptr) close();
  }

  void service() override {
    if (w_->paused.load(std::memory_order_seq_cst) || added_) return;
    event_add(ev_, nullptr);  // level-triggered: fires at once if data sits
    added_ = true;
  }

  void close() override {
    event_free(ev_);  // also deletes it; safe from inside its own callback
    ev_ = nullptr;
    ::close(w_->fd);
  }

 private:
  static void on_ready(evutil_socket_t, short, void* self) {
    auto* io = static_cast<libevent_watch_io*>(self);
    libevent_backend* b = io->b_;
    b->on_cpu([io, b] {
      if (!b->serving()) return false;
      machine::fd_watch* w = io->w_;
      if (w->paused.load(std::memory_order_seq_cst)) {
        event_del(io->ev_);  // resume adds it again
        io->added_ = false;
        return false;
      }
      watch_call(w);  // if fn unwatched, io is gone: touch nothing
      return true;
    });
  }

  libevent_backend* b_;
  machine::fd_watch* w_;
  event* ev_ = nullptr;
  bool added_ = false;
};

std::unique_ptr<watch_io> libevent_backend::new_watch(machine::fd_watch* w) {
  return std::make_unique<libevent_watch_io>(this, w);
}

}  // namespace

std::unique_ptr<loop_backend> make_libevent_backend(cpu_info* ci, void* attach_loop) {
  return std::make_unique<libevent_backend>(ci, static_cast<event_base*>(attach_loop));
}

}  // namespace kcont::detail
