// C++20 coroutines on kcont, without Asio: a small lazy coroutine type and awaitables usable
// from any coroutine (kcont_coro(3)).
//
//   kcont::co_task<T>          a lazy coroutine returning T: it starts when awaited (symmetric
//                              transfer, no stack growth) and passes its exception on to the
//                              awaiter; destroying one that never ran, or whose awaiter is
//                              destroyed while suspended, frees its frame.
//   kcont::spawn(t, done)      starts t now on the calling thread, detached: its frame frees
//                              itself at the end; done(exception_ptr) is called when it ends
//                              (null: it returned). Without done, an escaping exception is
//                              reported under the runtime's exception policy (<kcont/runtime.h>).
//   co_await sleep_for(d[, st]) / sleep_until(t[, st])
//                              a callout(9) on the current runtime (or the one given): never
//                              early, the first tick boundary at or after call time + d (as
//                              kcont::callout::schedule). Yields true when the time came, false
//                              when the std::stop_token `st` was stopped first (or already).
//                              Resumes in the callout's softclock context on the arming thread's
//                              CPU (a soft interrupt: hop before blocking); a cancelled sleep
//                              resumes inside request_stop(), on the thread that called it (as a
//                              std::stop_callback runs). When the time comes or the stop lands
//                              before the coroutine has finished suspending, it goes on at once
//                              on its own thread instead.
//   kcont::timer t; co_await t.sleep_for(d); t.cancel()
//                              the same sleep on one callout made once, cut short by cancel()
//                              from any thread (as asio::steady_timer): no allocation per wait.
//   co_await on(ci)            resumes in CPU ci's soft interrupt context (= on(wq_softnet, ci)).
//   co_await on([rt,] wq[, ci]) resumes on kcont queue wq (soft or thread level) of CPU ci
//                              (default: the caller's), never inline, taking turns with the
//                              queue's continuations; throws std::system_error (nothing queued)
//                              for a CPU on a queue without per-CPU queues (ENOENT) or when the
//                              runtime's queues cannot be made (EAGAIN).
//   co_await on(taskq*)        resumes as a task of that queue (never inline).
//   co_await on(fwq[, ci])     resumes as an item of a kcont::function_workqueue
//                              (<kcont/function_workqueue.h>), on CPU ci's queue with WQ_PERCPU.
//   co_await on([rt,] taskctx*) resumes inside the taskctx, never inline: a worker of the runtime
//                              dispatches it into the context (hand-offs keep their order).
//   co_await dispatch(taskctx*)
//                              resumes inside the taskctx's serialisation: at once on this thread
//                              when the context is free (task_dispatch's direct path), else after
//                              the work queued ahead of it, on the thread running the context.
//                              The code up to the next suspension point is the "task".
//
// No awaitable allocates: its callout, hop or task lives in the awaiting coroutine's frame.
// Destroying a coroutine suspended in one of them is safe: the destructor withdraws the callout,
// hop or task (callout_halt / kcont_hop_done / task_del) and nothing resumes the frame
// afterwards. Destroying a frame
// whose resumption has already begun (its timer fired, its task started) is a race in the
// caller, as destroying any running coroutine is.
#pragma once

#include <kcont/callout.h>
#include <kcont/detail/duration.h>
#include <kcont/function_workqueue.h>
#include <kcont/kcont.h>
#include <kcont/runtime.h>
#include <kcont/task.h>
#include <kcont/taskctx.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>

namespace kcont {

template <class T = void>
class co_task;

namespace detail {

// A spawned coroutine ended by an exception and nobody asked to hear of it: reported under the
// runtime's exception policy, as a handler's exception is (kcont/src/coro.cpp).
void coro_unhandled(std::exception_ptr error) noexcept;

struct co_promise_base {
  std::coroutine_handle<> continuation;  // the awaiting coroutine; none: spawned
  std::exception_ptr error;
  std::function<void(std::exception_ptr)> on_done;  // spawned only

  std::suspend_always initial_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }

  struct final_awaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      co_promise_base& p = h.promise();
      if (p.continuation) return p.continuation;
      // Spawned: nobody holds the frame; free it, then report.
      std::exception_ptr failure = std::move(p.error);
      std::function<void(std::exception_ptr)> done = std::move(p.on_done);
      h.destroy();
      if (done)
        done(failure);
      else if (failure)
        coro_unhandled(failure);
      return std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  final_awaiter final_suspend() noexcept { return {}; }
};

template <class T>
struct co_promise : co_promise_base {
  std::optional<T> value;
  template <class U>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
  T take() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};

template <>
struct co_promise<void> : co_promise_base {
  void return_void() noexcept {}
  void take() {
    if (error) std::rethrow_exception(error);
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] co_task {
 public:
  struct promise_type : detail::co_promise<T> {
    co_task get_return_object() noexcept {
      return co_task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
  };

  co_task(co_task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  co_task& operator=(co_task&& other) noexcept {
    if (this != &other) {
      reset();
      h_ = std::exchange(other.h_, {});
    }
    return *this;
  }
  co_task(const co_task&) = delete;
  co_task& operator=(const co_task&) = delete;
  ~co_task() { reset(); }

  // Awaiting starts it (once) and yields its result, or throws its exception.
  auto operator co_await() && noexcept { return awaiter{h_}; }
  auto operator co_await() & noexcept { return awaiter{h_}; }

  bool valid() const noexcept { return static_cast<bool>(h_); }

 private:
  template <class U>
  friend void spawn(co_task<U> t, std::function<void(std::exception_ptr)> done);

  using handle = std::coroutine_handle<promise_type>;
  explicit co_task(handle h) noexcept : h_(h) {}

  void reset() noexcept {
    if (h_) std::exchange(h_, {}).destroy();
  }

  struct awaiter {
    handle h;
    bool await_ready() const noexcept { return !h || h.done(); }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
      h.promise().continuation = awaiting;
      return h;
    }
    T await_resume() {
      if (!h) throw std::logic_error("kcont::co_task: awaiting a moved-from or spawned task");
      return h.promise().take();
    }
  };

  handle h_;
};

// Starts t on the calling thread, detached (see the file comment). A moved-from t: nothing.
template <class T>
void spawn(co_task<T> t, std::function<void(std::exception_ptr)> done = {}) {
  auto h = std::exchange(t.h_, {});
  if (!h) return;
  h.promise().on_done = std::move(done);
  h.resume();
}

namespace detail {

// One sleeping coroutine and its callout (kcont/src/coro.cpp): the claim protocol shared by
// sleep_for's awaiter and kcont::timer. States: the coroutine is being suspended (arming),
// suspended (waiting), or someone claimed its resumption (fired, cancelled). Whoever moves
// `state` out of waiting resumes the coroutine; a claim made while arming makes await_suspend
// decline to suspend instead, so nothing resumes the coroutine inside await_suspend.
struct sleep_slot {
  enum : int { SLEEP_IDLE, SLEEP_ARMING, SLEEP_WAITING, SLEEP_FIRED, SLEEP_CANCELLED };

  // await_suspend's two halves: begin (state arming) ... [a stop callback may claim] ...
  // arm_and_wait: arms the callout unless claimed, then true if the coroutine is now waiting
  // (after which the caller must not touch the slot: the coroutine may be running again).
  void begin(std::coroutine_handle<> h) noexcept;
  bool arm_and_wait(std::int64_t ns);
  // The time came or a cancel: true if this call won the resumption.
  bool claim(int how) noexcept;
  bool fired() const noexcept { return state.load(std::memory_order_acquire) == SLEEP_FIRED; }
  bool busy() const noexcept;  // arming or waiting
  // A wait is over (or its frame is being destroyed): nothing resumes it any more; a waiting
  // one counts as cancelled; with stop_callout its callout is stopped too.
  void settle(bool stop_callout) noexcept;

  static void fire(void* self);

  std::atomic<int> state{SLEEP_IDLE};
  std::coroutine_handle<> h;
  ::callout c{};
};

// co_await sleep_for / sleep_until: a slot whose callout lives as long as the awaiter.
class sleep_awaiter {
 public:
  sleep_awaiter(runtime& rt, std::int64_t ns, std::stop_token stop) noexcept
      : rt_(&rt), ns_(ns), stop_(std::move(stop)) {}
  sleep_awaiter(const sleep_awaiter&) = delete;
  sleep_awaiter& operator=(const sleep_awaiter&) = delete;
  ~sleep_awaiter();

  bool await_ready() noexcept;
  bool await_suspend(std::coroutine_handle<> h);
  bool await_resume() const noexcept { return slot_.fired(); }  // false: stopped

 private:
  struct canceller {
    sleep_slot* slot;
    void operator()() const noexcept { slot->claim(sleep_slot::SLEEP_CANCELLED); }
  };

  runtime* rt_;
  std::int64_t ns_;
  std::stop_token stop_;
  bool initialised_ = false;  // slot_.c is a live callout (destroyed with the awaiter)
  sleep_slot slot_;
  std::optional<std::stop_callback<canceller>> on_stop_;
};

// co_await timer.sleep_for(d): a wait on a kcont::timer's slot.
class timer_awaiter {
 public:
  timer_awaiter(sleep_slot& slot, std::int64_t ns) noexcept : slot_(&slot), ns_(ns) {}
  timer_awaiter(const timer_awaiter&) = delete;
  timer_awaiter& operator=(const timer_awaiter&) = delete;
  ~timer_awaiter();
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h);
  bool await_resume() const noexcept { return slot_->fired(); }  // false: cancelled

 private:
  sleep_slot* slot_;
  std::int64_t ns_;
  bool began_ = false;
};

// co_await on(taskq*): the awaiter's task resumes the coroutine.
class taskq_hop {
 public:
  explicit taskq_hop(taskq* tq) noexcept : tq_(tq) {}
  taskq_hop(const taskq_hop&) = delete;
  taskq_hop& operator=(const taskq_hop&) = delete;
  ~taskq_hop();
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  void await_resume() const noexcept {}

 private:
  static void run(void* self);
  taskq* tq_;
  std::coroutine_handle<> h_;
  ::task t_ = TASK_INITIALIZER(nullptr, nullptr);
  bool queued_ = false;
};

// co_await on(wq, ci): the awaiter's kcont_hop, queued on the kcont queue (kcont/src/hop.cpp).
class kqueue_hop {
 public:
  kqueue_hop(runtime* rt, kcont_wq_t* wq, cpu_info* ci) noexcept : rt_(rt), wq_(wq), ci_(ci) {}
  kqueue_hop(const kqueue_hop&) = delete;
  kqueue_hop& operator=(const kqueue_hop&) = delete;
  ~kqueue_hop();
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);  // std::system_error: nothing was queued
  void await_resume() const noexcept {}

 private:
  static void run(void* self);
  runtime* rt_;  // nullptr: ci_'s runtime, else runtime::current()
  kcont_wq_t* wq_;
  cpu_info* ci_;
  std::coroutine_handle<> h_;
  kcont_hop hop_;
  bool scheduled_ = false;
  bool begun_ = false;  // set by run() before it resumes the coroutine
};

// co_await dispatch(taskctx*): the awaiter's task, dispatched into the context.
class taskctx_hop {
 public:
  explicit taskctx_hop(taskctx* tc) noexcept : tc_(tc) {}
  taskctx_hop(const taskctx_hop&) = delete;
  taskctx_hop& operator=(const taskctx_hop&) = delete;
  ~taskctx_hop();
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  void await_resume() const noexcept {}

 private:
  static void run(void* self);
  taskctx* tc_;
  std::coroutine_handle<> h_;
  ::task t_ = TASK_INITIALIZER(nullptr, nullptr);
  bool dispatched_ = false;
};

// co_await on(function_workqueue&, ci): the awaiter is the queue's item.
class workqueue_hop : function_workqueue::item {
 public:
  workqueue_hop(function_workqueue& q, cpu_info* ci) noexcept : q_(&q), ci_(ci) {}
  workqueue_hop(const workqueue_hop&) = delete;
  workqueue_hop& operator=(const workqueue_hop&) = delete;
  ~workqueue_hop();
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  void await_resume() const noexcept {}

 private:
  static void run(function_workqueue::item* it);
  function_workqueue* q_;
  cpu_info* ci_;
  std::coroutine_handle<> h_;
  bool queued_ = false;
};

// co_await on(taskctx*): the awaiter's hand-off task goes to a worker of the runtime, which
// dispatches the awaiter's second task, the coroutine, into the context.
class taskctx_post_hop {
 public:
  taskctx_post_hop(runtime& rt, taskctx* tc) noexcept : rt_(&rt), tc_(tc) {}
  taskctx_post_hop(const taskctx_post_hop&) = delete;
  taskctx_post_hop& operator=(const taskctx_post_hop&) = delete;
  ~taskctx_post_hop();
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  void await_resume() const noexcept {}

 private:
  static void hand_off(void* self);
  static void run(void* self);
  runtime* rt_;
  taskctx* tc_;
  std::coroutine_handle<> h_;
  ::task handoff_ = TASK_INITIALIZER(nullptr, nullptr);
  ::task t_ = TASK_INITIALIZER(nullptr, nullptr);
  bool queued_ = false;
};

}  // namespace detail

// Sleeps d (any std::chrono duration: rounded up to whole nanoseconds, saturating, as
// kcont::callout::schedule) on `rt`'s callout wheels.
template <class Rep, class Period>
detail::sleep_awaiter sleep_for(runtime& rt, std::chrono::duration<Rep, Period> d,
                                std::stop_token stop = {}) {
  return detail::sleep_awaiter(rt, detail::duration_to_ns(d), std::move(stop));
}
template <class Rep, class Period>
detail::sleep_awaiter sleep_for(std::chrono::duration<Rep, Period> d, std::stop_token stop = {}) {
  return sleep_for(runtime::current(), d, std::move(stop));
}
// Sleeps until t of its clock: the delay is t - Clock::now() at the call.
template <class Clock, class Duration>
detail::sleep_awaiter sleep_until(runtime& rt, std::chrono::time_point<Clock, Duration> t,
                                  std::stop_token stop = {}) {
  return sleep_for(rt, t - Clock::now(), std::move(stop));
}
template <class Clock, class Duration>
detail::sleep_awaiter sleep_until(std::chrono::time_point<Clock, Duration> t,
                                  std::stop_token stop = {}) {
  return sleep_until(runtime::current(), t, std::move(stop));
}

// A reusable sleep another thread can cut short, as an asio::steady_timer is used: one callout
// made once (no stop token, no allocation per wait), one coroutine waiting at a time (a second
// one is misuse: abort with a message). sleep_for/sleep_until as the free functions; cancel()
// resumes the waiting coroutine inside the call, on the calling thread, with false, and returns
// whether one was waiting (a wait that begins later is not affected, as steady_timer::cancel).
// Destroying the timer cancels a waiting coroutine the same way; it must outlive the wait.
class timer {
 public:
  timer() : timer(runtime::current()) {}
  explicit timer(runtime& rt);
  ~timer();
  timer(const timer&) = delete;
  timer& operator=(const timer&) = delete;

  template <class Rep, class Period>
  detail::timer_awaiter sleep_for(std::chrono::duration<Rep, Period> d) noexcept {
    return detail::timer_awaiter(slot_, detail::duration_to_ns(d));
  }
  template <class Clock, class Duration>
  detail::timer_awaiter sleep_until(std::chrono::time_point<Clock, Duration> t) noexcept {
    return sleep_for(t - Clock::now());
  }
  bool cancel() noexcept;

 private:
  detail::sleep_slot slot_;
};

// Resumes on kcont queue wq (wq_softserial ... wq_prilow, or an acquired one) of CPU ci
// (nullptr: the caller's CPU), at the queue's level, taking turns with its continuations.
inline detail::kqueue_hop on(kcont_wq_t* wq, cpu_info* ci = nullptr) noexcept {
  return detail::kqueue_hop(nullptr, wq, ci);
}
inline detail::kqueue_hop on(runtime& rt, kcont_wq_t* wq, cpu_info* ci = nullptr) noexcept {
  return detail::kqueue_hop(&rt, wq, ci);
}
// Resumes in CPU ci's soft interrupt context, at the network level: on(wq_softnet, ci).
inline detail::kqueue_hop on(cpu_info* ci) noexcept {
  return detail::kqueue_hop(nullptr, wq_softnet, ci);
}
// Resumes as an item of a function workqueue (a worker thread), on CPU ci's queue with
// WQ_PERCPU (nullptr: the caller's CPU), after the items enqueued before it.
inline detail::workqueue_hop on(function_workqueue& q, cpu_info* ci = nullptr) noexcept {
  return detail::workqueue_hop(q, ci);
}
inline detail::taskq_hop on(taskq* tq) noexcept {
  return detail::taskq_hop(tq);
}
// Resumes inside the taskctx, never inline: a worker of `rt` (default: runtime::current())
// dispatches the coroutine into the context, after the hand-offs made before it.
inline detail::taskctx_post_hop on(runtime& rt, taskctx* tc) noexcept {
  return detail::taskctx_post_hop(rt, tc);
}
inline detail::taskctx_post_hop on(taskctx* tc) {
  return detail::taskctx_post_hop(runtime::current(), tc);
}
inline detail::taskctx_hop dispatch(taskctx* tc) noexcept {
  return detail::taskctx_hop(tc);
}

}  // namespace kcont
