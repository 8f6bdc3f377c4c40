// The Boost.Asio loop backend: a CPU's own io_context run by its loop thread, or (attach mode)
// the server's io_context run by the server's threads.
//
// Waking, own loop: wake() posts a handler to the CPU's io_context (asio::post: the scheduler
// wakes its thread out of epoll_wait), the operation's memory a slab kept per CPU, so a wake
// allocates nothing (one is in flight at a time). An eventfd wait stays armed: it keeps run()
// from returning while idle, and is the fallback should a post fail. Waking, attached: an eventfd
// registered with the server's io_context (a posix::stream_descriptor with an outstanding
// async_wait); wake() is one write(2), so nothing is posted to the server's loop from kcont's
// producers. Deadline: one steady_timer (timerfd-backed, nanosecond resolution), re-armed only
// when the deadline changes.
//
// Attach mode: every handler of the CPU is bound to one strand (a CPU never runs on two server
// threads at once) and runs holding the CPU's consumer lock, as the CPU (this_thread_cpu() set
// around it and restored after). Handlers share a small `core` with the backend, so a handler
// still queued on the server's io_context after the runtime is gone finds `alive` false and
// does nothing; `serving` is false while the runtime is stopped.
//
// Locks used to protect the fields below:
//   [I] immutable after construction
//   [u] core::mu (attach mode: the CPU's consumer lock)
//   [C] as the CPU: its own loop thread, or, attached, a server thread holding core::mu
#include "loop_backend.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <optional>
#include <system_error>
#include <thread>

#include "fd_watch.h"
#include "runtime_impl.h"

namespace kcont::detail {
namespace {

namespace asio = boost::asio;

// The memory of a CPU's wake operation (its own loop): wake() is called once per sleep, by the
// producer that moved the CPU from CPU_SLEEPING to CPU_AWAKE, so one wake is in flight at a time
// and its operation fits here; a wake allocates nothing. Should one ever overlap another, it
// takes the heap.
struct wake_slab {
  alignas(std::max_align_t) unsigned char buf[256];
  std::atomic<bool> busy{false};  // [a] buf holds an operation
};

template <class T>
struct wake_allocator {
  using value_type = T;
  wake_slab* slab;
  explicit wake_allocator(wake_slab* s) noexcept : slab(s) {}
  template <class U>
  wake_allocator(const wake_allocator<U>& other) noexcept : slab(other.slab) {}
  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes <= sizeof slab->buf && alignof(T) <= alignof(std::max_align_t) &&
        !slab->busy.exchange(true, std::memory_order_acquire))
      return reinterpret_cast<T*>(slab->buf);
    return static_cast<T*>(::operator new(bytes));
  }
  void deallocate(T* p, std::size_t) noexcept {
    if (reinterpret_cast<unsigned char*>(p) == slab->buf)
      slab->busy.store(false, std::memory_order_release);
    else
      ::operator delete(p);
  }
  template <class U>
  bool operator==(const wake_allocator<U>& other) const noexcept {
    return slab == other.slab;
  }
  template <class U>
  bool operator!=(const wake_allocator<U>& other) const noexcept {
    return slab != other.slab;
  }
};

// What a handler needs, shared with the handlers queued on the loop.
struct core {
  std::mutex mu;                     // attached: the CPU's consumer lock
  cpu_info* ci = nullptr;            // [I]
  bool attached = false;             // [I]
  bool alive = true;                 // [u] the backend exists
  bool serving = true;               // [u] attached CPU served by the loop (runtime running)
  std::int64_t armed = kNoDeadline;  // [C] the deadline the timer is armed for
  wake_slab wake_memory;             // own loop: the wake operation's memory

  // Runs f as the CPU; then, if f returns true and the CPU is served, a dispatch.
  template <class F>
  void on_cpu(F&& f, wake_reason reason = wake_reason::woken) {
    if (!attached) {  // our own loop thread: this_thread_cpu() is set for good
      if (f()) cpu_dispatch(ci, reason);
      return;
    }
    std::lock_guard<std::mutex> lk(mu);
    if (!alive) return;
    cpu_info* prev = set_this_thread_cpu(ci);
    if (f() && serving) cpu_dispatch(ci, reason);
    set_this_thread_cpu(prev);
  }
};

class asio_backend;

// The backend half of an fd watch. Asio's epoll reactor is edge-triggered and async_wait never
// tries the descriptor first, so a wait started while data already sits would not complete:
// service() arms the wait and then polls once, reporting sitting data itself.
class asio_watch_io final : public watch_io {
 public:
  asio_watch_io(asio_backend* b, machine::fd_watch* w);
  void service() override;
  void close() override;

 private:
  struct state {
    state(asio::io_context& ioc, std::shared_ptr<core> c) : sd(ioc), cpu(std::move(c)) {}
    asio::posix::stream_descriptor sd;  // owns the dup of the caller's fd
    std::shared_ptr<core> cpu;
    machine::fd_watch* w = nullptr;
    bool armed = false;  // as the CPU: a wait is outstanding
    bool dead = false;   // as the CPU: closed
  };
  void arm();
  asio_backend* b_;
  std::shared_ptr<state> st_;
};

class asio_backend final : public loop_backend {
 public:
  asio_backend(cpu_info* ci, asio::io_context* server)
      : own_ioc_(server == nullptr ? std::make_unique<asio::io_context>(1) : nullptr),
        ioc_(server == nullptr ? *own_ioc_ : *server),
        wake_fd_(ioc_),
        timer_(ioc_),
        core_(std::make_shared<core>()) {
    core_->ci = ci;
    core_->attached = server != nullptr;
    core_->serving = server == nullptr;  // attached: from start() (run()) on
    if (server != nullptr) strand_.emplace(asio::make_strand(ioc_));
    int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "kcont: eventfd");
    efd_ = fd;
    wake_fd_.assign(fd);
    std::lock_guard<std::mutex> lk(core_->mu);
    if (server == nullptr) arm_wake();  // attached: from start() (run()) on
  }

  ~asio_backend() override {
    std::lock_guard<std::mutex> lk(core_->mu);  // waits out a handler running as the CPU
    core_->alive = false;
    boost::system::error_code ec;
    wake_fd_.close(ec);  // queued handlers find alive false
    timer_.cancel();
  }

  void wake() noexcept override {
    if (!core_->attached) {
      post_wake();
      return;
    }
    std::uint64_t one = 1;
    // EAGAIN only when the counter is saturated, and then the loop is already due to wake.
    [[maybe_unused]] ssize_t r = ::write(efd_, &one, sizeof one);
  }

  void set_deadline(std::int64_t ns) override {
    if (ns == core_->armed) return;
    core_->armed = ns;
    if (ns == kNoDeadline) {
      timer_.cancel();
      return;
    }
    timer_.expires_at(asio::steady_timer::time_point(std::chrono::nanoseconds(ns)));
    launch([this](auto&& h) { timer_.async_wait(std::move(h)); },
           [c = core_, ns](const boost::system::error_code& ec) {
             if (ec) return;  // cancelled or re-armed
             c->on_cpu(
                 [&] {
                   if (c->armed != ns) return false;  // re-armed meanwhile
                   c->armed = kNoDeadline;
                   return true;
                 },
                 wake_reason::deadline);
           });
  }

  void run() override {
    if (core_->attached) {  // caller holds the consumer lock
      core_->serving = true;
      if (!wake_armed_) arm_wake();
      wake();  // the first dispatch runs parked work
      return;
    }
    ioc_.restart();
    asio::post(ioc_, [c = core_] { cpu_dispatch(c->ci, wake_reason::start); });
    ioc_.run();
  }

  void stop() override {
    if (core_->attached) {
      // Handlers still queued do nothing. No wait of ours is left on the server's loop, so
      // it may now run out of work and return.
      core_->serving = false;
      boost::system::error_code ec;
      wake_fd_.cancel(ec);
      timer_.cancel();
      core_->armed = kNoDeadline;
    } else {
      ioc_.stop();
    }
  }

  std::unique_ptr<watch_io> new_watch(machine::fd_watch* w) override {
    return std::make_unique<asio_watch_io>(this, w);
  }

  bool attached() const override { return core_->attached; }
  std::mutex* consumer_lock() override { return core_->attached ? &core_->mu : nullptr; }
  bool caller_runs_loop() const override {
    return core_->attached && ioc_.get_executor().running_in_this_thread();
  }

  asio::io_context& ioc() { return ioc_; }
  const std::shared_ptr<core>& shared_core() const { return core_; }

  // Starts an asynchronous operation: start(handler). Attached: the handler goes through the
  // CPU's strand.
  template <class Start, class H>
  void launch(Start&& start, H&& h) {
    if (strand_)
      start(asio::bind_executor(*strand_, std::forward<H>(h)));
    else
      start(std::forward<H>(h));
  }

 private:
  // Own loop: the wake is a handler posted to the io_context (its scheduler wakes the loop
  // thread out of epoll_wait itself, and the handler runs without a read(2) of our eventfd: the
  // Asio idle wake at asio::post's cost, issue 18 item 3), its memory from the core's slab.
  struct wake_handler {
    std::shared_ptr<core> c;
    using allocator_type = wake_allocator<void>;
    allocator_type get_allocator() const noexcept { return allocator_type(&c->wake_memory); }
    void operator()() const {
      c->on_cpu([] { return true; });
    }
  };
  void post_wake() noexcept {
    try {
      asio::post(ioc_, wake_handler{core_});
    } catch (...) {  // no memory for an overlapping wake: the eventfd still wakes the loop
      std::uint64_t one = 1;
      [[maybe_unused]] ssize_t r = ::write(efd_, &one, sizeof one);
    }
  }

  void arm_wake() {  // as the CPU (or constructing)
    wake_armed_ = true;
    launch(
        [this](auto&& h) {
          wake_fd_.async_wait(asio::posix::stream_descriptor::wait_read, std::move(h));
        },
        [c = core_, this](const boost::system::error_code& ec) {
          c->on_cpu([&] {  // `this` is alive if on_cpu calls us
            wake_armed_ = false;
            if (ec && !c->serving) return false;  // cancelled by stop()
            if (!ec) {
              std::uint64_t count;
              [[maybe_unused]] ssize_t r = ::read(efd_, &count, sizeof count);
            }
            if (c->serving) arm_wake();  // (a stale cancel after a restart re-arms too)
            return true;
          });
        });
  }

  std::unique_ptr<asio::io_context> own_ioc_;  // [I] a loop of our own, or none (attached)
  asio::io_context& ioc_;                      // [I]
  std::optional<asio::strand<asio::io_context::executor_type>> strand_;  // [I]
  asio::posix::stream_descriptor wake_fd_;  // [C] owns the eventfd (wake() writes efd_)
  asio::steady_timer timer_;                // [C]
  std::shared_ptr<core> core_;              // [I]
  int efd_ = -1;                            // [I]
  bool wake_armed_ = false;                 // [C] the eventfd wait is outstanding
};

asio_watch_io::asio_watch_io(asio_backend* b, machine::fd_watch* w)
    : b_(b), st_(std::make_shared<state>(b->ioc(), b->shared_core())) {
  st_->w = w;
  st_->sd.assign(w->fd);
}

void asio_watch_io::arm() {
  st_->armed = true;
  b_->launch(
      [this](auto&& h) {
        st_->sd.async_wait(asio::posix::stream_descriptor::wait_read, std::move(h));
      },
      [st = st_](const boost::system::error_code& ec) {
        st->cpu->on_cpu([&] {
          st->armed = false;
          if (ec || st->dead || !st->cpu->serving) return false;
          machine::fd_watch* w = st->w;
          if (w->paused.load(std::memory_order_seq_cst)) return false;
          if (!watch_call(w)) return true;  // unwatched inside fn
          // Look again (re-arm, and poll for what fn left) after the softints fn scheduled.
          watch_service_later(w);
          return true;
        });
      });
}

void asio_watch_io::service() {
  machine::fd_watch* w = st_->w;
  if (st_->dead || w->paused.load(std::memory_order_seq_cst)) return;
  if (!st_->armed) arm();
  // Armed before polling: data arriving after the poll completes the wait.
  pollfd p{w->fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0 || (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) return;
  if (!watch_call(w)) return;  // unwatched inside fn: w and this are gone
  if (!w->paused.load(std::memory_order_seq_cst)) watch_service_later(w);
}

void asio_watch_io::close() {
  st_->dead = true;
  boost::system::error_code ec;
  st_->sd.close(ec);  // cancels the wait; its handler finds `dead`
}

}  // namespace

std::unique_ptr<loop_backend> make_asio_backend(cpu_info* ci, void* attach_loop) {
  return std::make_unique<asio_backend>(ci, static_cast<asio::io_context*>(attach_loop));
}

}  // namespace kcont::detail
