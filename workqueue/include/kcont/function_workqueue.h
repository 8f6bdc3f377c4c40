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

#include <cstdint>

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

// For a work item that runs many units of other work (kcont's queue drain runs up to 64
// continuations): the blocking watch then counts only time inside one unit, and each new unit
// starts its threshold again. Without these marks a drain that waits on its queue's lock while
// others add work looked blocked for the whole drain, and a second drain ran beside it: the
// continuations of one CPU's queue then ran out of order (CI, TSan, stop 27). Outside an
// engine worker they do nothing.
class work_units {  // the item runs units from now until this is destroyed
 public:
  work_units();
  ~work_units();
  work_units(const work_units&) = delete;
  work_units& operator=(const work_units&) = delete;

 private:
  std::uint32_t saved_ = 0;
};
class work_unit {  // one unit runs while this exists (inside a work_units)
 public:
  work_unit();
  ~work_unit();
  work_unit(const work_unit&) = delete;
  work_unit& operator=(const work_unit&) = delete;

 private:
  std::uint32_t saved_ = 0;
};
}  // namespace kcont::detail
