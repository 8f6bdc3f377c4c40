// A workqueue(9) whose work items carry their own function: what kcont's coroutine hop onto a
// workqueue (co_await kcont::on(fwq[, ci]), <kcont/coro.h>) and its Asio executor
// (kcont::workqueue_executor, <kcont/asio_executors.h>) queue. The same queues, priorities,
// flags and order as workqueue(9) (<kcont/workqueue.h>): WQ_PERCPU gives one queue per CPU,
// each runs its items one at a time in the order enqueued (WQ_ELASTIC: a sleeper lets the next
// start). An item's owner keeps it alive until its function begins; the function may free it.
// The destructor waits until every queued item has run (workqueue_destroy).
#pragma once

#include <kcont/runtime.h>
#include <kcont/workqueue.h>

namespace kcont {

class function_workqueue {
 public:
  struct item : work {
    void (*fn)(item*) = nullptr;
  };

  // Throws std::system_error (workqueue_create's EINVAL or ENOMEM).
  function_workqueue(runtime& rt, const char* name, pri_t pri = PRI_NONE, int flags = WQ_MPSAFE);
  ~function_workqueue();
  function_workqueue(const function_workqueue&) = delete;
  function_workqueue& operator=(const function_workqueue&) = delete;

  // it->fn set; ci: the CPU's queue with WQ_PERCPU (nullptr: the caller's), else ignored.
  void enqueue(item* it, cpu_info* ci = nullptr) { workqueue_enqueue(wq_, it, ci); }
  // Takes a queued item back (kcont extension); false if it was not queued (it began, or ran).
  bool withdraw(item* it);

  workqueue* get() const noexcept { return wq_; }
  runtime& context_runtime() const noexcept { return *rt_; }

 private:
  static void run(work* wk, void*);
  runtime* rt_;
  workqueue* wq_ = nullptr;
};

}  // namespace kcont

namespace kcont::detail {
// Takes wk off wq's queue if it has not started (kcont extension; workqueue(9) has no del).
bool workqueue_withdraw(workqueue* wq, work* wk);
// Waits until wq has nothing queued or running; returns whether it had anything when called.
// For a teardown that must see several queues idle at once (kcont's bindings.cpp).
bool workqueue_settle(workqueue* wq);
}  // namespace kcont::detail
