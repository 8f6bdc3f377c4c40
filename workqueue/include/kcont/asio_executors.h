// Asio executors onto kcont's thread-context queues, so that asio::post, asio::dispatch and
// asio::co_spawn can target them:
//   kcont::taskq_executor    runs function objects as tasks of a taskq (never inline);
//   kcont::workqueue_executor runs them as items of a kcont::function_workqueue (a workqueue(9)
//                            whose items carry their function), on a CPU's queue (WQ_PERCPU);
//   kcont::taskctx_executor  runs them inside a taskctx: dispatch runs inline when the context
//                            is free (task_dispatch); post (blocking.never) hands the function
//                            to a worker of the executor's runtime (the one given, else
//                            runtime::current() when the executor is made), which dispatches it
//                            into the context.
// Each submitted function object is moved into one heap block (as Asio itself does for a
// handler) that is freed after it ran.
#pragma once

#include <kcont/function_workqueue.h>
#include <kcont/runtime.h>
#include <kcont/task.h>
#include <kcont/taskctx.h>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>

#include <memory>
#include <type_traits>
#include <utility>

namespace kcont {
namespace detail {

// A task that owns a function object and frees itself after running it once.
template <class F>
struct owned_task {
  task t;
  F f;
  explicit owned_task(F&& fn) : t(TASK_INITIALIZER(&owned_task::run, this)), f(std::move(fn)) {}
  static void run(void* self) {
    std::unique_ptr<owned_task> p(static_cast<owned_task*>(self));
    p->f();
  }
};

template <class F>
task* make_owned_task(F&& f) {
  using D = std::decay_t<F>;
  return &(new owned_task<D>(D(std::forward<F>(f))))->t;
}

// The execution_context kcont's executors report (Asio asks every executor for one).
boost::asio::execution_context& executors_context();

// Dispatches a task into a taskctx from a worker of rt (the never-blocking post).
void post_into_taskctx(runtime& rt, taskctx* tc, task* t);

// What every kcont executor answers alike: the execution_context Asio asks for, and whether
// execute() may run the function before it returns.
template <bool NeverBlocking>
struct executor_base {
  boost::asio::execution_context& query(boost::asio::execution::context_t) const noexcept {
    return executors_context();
  }
  static constexpr boost::asio::execution::blocking_t query(
      boost::asio::execution::blocking_t) noexcept {
    if constexpr (NeverBlocking)
      return boost::asio::execution::blocking.never;
    else
      return boost::asio::execution::blocking.possibly;
  }
};

}  // namespace detail

class taskq_executor : public detail::executor_base<true> {
 public:
  explicit taskq_executor(taskq* tq) noexcept : tq_(tq) {}

  taskq_executor require(boost::asio::execution::blocking_t::never_t) const noexcept {
    return *this;
  }

  template <class F>
  void execute(F&& f) const {
    task_add(tq_, detail::make_owned_task(std::forward<F>(f)));
  }

  taskq* queue() const noexcept { return tq_; }
  friend bool operator==(const taskq_executor& a, const taskq_executor& b) noexcept {
    return a.tq_ == b.tq_;
  }
  friend bool operator!=(const taskq_executor& a, const taskq_executor& b) noexcept {
    return !(a == b);
  }

 private:
  taskq* tq_;
};

template <bool NeverBlocking>
class basic_taskctx_executor : public detail::executor_base<NeverBlocking> {
 public:
  explicit basic_taskctx_executor(taskctx* tc) : basic_taskctx_executor(tc, runtime::current()) {}
  basic_taskctx_executor(taskctx* tc, runtime& rt) noexcept : tc_(tc), rt_(&rt) {}

  basic_taskctx_executor<true> require(boost::asio::execution::blocking_t::never_t) const noexcept {
    return basic_taskctx_executor<true>(tc_, *rt_);
  }
  basic_taskctx_executor<false> require(
      boost::asio::execution::blocking_t::possibly_t) const noexcept {
    return basic_taskctx_executor<false>(tc_, *rt_);
  }

  template <class F>
  void execute(F&& f) const {
    task* t = detail::make_owned_task(std::forward<F>(f));
    if constexpr (NeverBlocking)
      detail::post_into_taskctx(*rt_, tc_, t);
    else
      task_dispatch(tc_, t);
  }

  taskctx* context() const noexcept { return tc_; }
  runtime& context_runtime() const noexcept { return *rt_; }
  friend bool operator==(const basic_taskctx_executor& a,
                         const basic_taskctx_executor& b) noexcept {
    return a.tc_ == b.tc_ && a.rt_ == b.rt_;
  }
  friend bool operator!=(const basic_taskctx_executor& a,
                         const basic_taskctx_executor& b) noexcept {
    return !(a == b);
  }

 private:
  taskctx* tc_;
  runtime* rt_;
};

using taskctx_executor = basic_taskctx_executor<false>;

namespace detail {
// A function workqueue item that owns a function object and frees itself before calling it.
template <class F>
struct owned_item : function_workqueue::item {
  F f;
  explicit owned_item(F&& func) : f(std::move(func)) { this->fn = &owned_item::run; }
  static void run(function_workqueue::item* it) {
    std::unique_ptr<owned_item> p(static_cast<owned_item*>(it));
    F call(std::move(p->f));
    p.reset();
    call();
  }
};
}  // namespace detail

// Runs function objects as items of a kcont::function_workqueue, on CPU ci's queue with
// WQ_PERCPU (nullptr: the submitting thread's CPU), never inline.
class workqueue_executor : public detail::executor_base<true> {
 public:
  explicit workqueue_executor(function_workqueue& q, cpu_info* ci = nullptr) noexcept
      : q_(&q), ci_(ci) {}

  workqueue_executor require(boost::asio::execution::blocking_t::never_t) const noexcept {
    return *this;
  }

  template <class F>
  void execute(F&& f) const {
    using D = std::decay_t<F>;
    q_->enqueue(new detail::owned_item<D>(D(std::forward<F>(f))), ci_);
  }

  function_workqueue& queue() const noexcept { return *q_; }
  friend bool operator==(const workqueue_executor& a, const workqueue_executor& b) noexcept {
    return a.q_ == b.q_ && a.ci_ == b.ci_;
  }
  friend bool operator!=(const workqueue_executor& a, const workqueue_executor& b) noexcept {
    return !(a == b);
  }

 private:
  function_workqueue* q_;
  cpu_info* ci_;
};

}  // namespace kcont
