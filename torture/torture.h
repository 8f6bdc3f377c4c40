// kcont-torture: shared pieces. Each API family (softint, callout, task, workqueue, kcont) is
// one `family` in its own file; the driver (kcont_torture.cpp) runs N threads that pick a
// family and an operation at random, then stops everything, drains, and asks every family to
// check its books.
//
// Accounting rule, everywhere: a piece of work the API accepted (schedule/arm/add/enqueue/
// dispatch that did not answer "busy" or "already queued") ends as exactly one run or as one
// cancellation the API reported (or, for the calls that return nothing, that the API's
// guarantee implies: after a halt/del_barrier/destroy nothing outstanding may run any more).
// Each family keeps per-object ledgers under a lock its handlers take too, so that "ran" and
// "cancelled" are read and written at points where the object cannot be running.
#pragma once

#include "books.h"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace torture {

// splitmix64: small, fast, good enough for choosing operations, reproducible per seed.
struct rng {
  std::uint64_t s;
  explicit rng(std::uint64_t seed) : s(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  unsigned below(unsigned n) { return static_cast<unsigned>(next() % n); }
  bool one_in(unsigned n) { return below(n) == 0; }
};

// Every operation kind the torture issues, for the per-API count table.
enum op : unsigned {
  // softint
  op_softint_establish,
  op_softint_schedule,
  op_softint_schedule_cpu,
  op_softint_disestablish,
  op_softint_disestablish_self,
  op_softint_quiet_check,
  // callout
  op_callout_init,
  op_callout_reset,
  op_callout_schedule,
  op_callout_stop,
  op_callout_halt,
  op_callout_destroy,
  op_callout_bind,
  op_callout_rearm_self,
  op_callout_halt_destroy_self,
  // task(9)
  op_task_add,
  op_task_del,
  op_taskq_barrier,
  op_taskq_del_barrier,
  op_task_readd_self,
  op_task_dispatch,
  op_taskctx_barrier,
  // workqueue(9)
  op_workqueue_enqueue,
  op_workqueue_wait,
  op_workqueue_reenqueue_self,
  // kcont
  op_kcont_create,
  op_kcont_schedule_now,
  op_kcont_schedule_delay,
  op_kcont_schedule_ordered,
  op_kcont_stop,
  op_kcont_ack,
  op_kcont_halt,
  op_kcont_destroy,
  op_kcont_resched_self,
  op_kcont_destroy_self,
  // every family
  op_handler_throw,
  op_kcont_hold_group_lock,
  op_count
};
const char* op_name(op o);
const char* op_api(op o);

// Per-thread operation counts (handlers count into the shared atomic table).
struct op_counts {
  std::uint64_t n[op_count] = {};
};
extern std::atomic<std::uint64_t> g_handler_ops[op_count];
inline void count_handler_op(op o) {
  g_handler_ops[o].fetch_add(1, std::memory_order_relaxed);
}

// Set when the operation phase ends: handlers stop re-arming themselves.
extern std::atomic<bool> g_stopping;
inline bool stopping() {
  return g_stopping.load(std::memory_order_relaxed);
}

// Handlers of every family throw now and then, after their books are done: kcont must report
// the exception, abandon the handler and release what it held, and the run still counts. The
// number thrown must equal kcont::handler_exceptions() at the end.
extern std::atomic<std::uint64_t> g_thrown;
struct thrown_on_purpose : std::exception {
  const char* what() const noexcept override { return "kcont-torture: thrown on purpose"; }
};
inline constexpr unsigned kThrowOneIn = 2000;
bool throw_now();  // this handler run should throw (thread-local rng; never while stopping)
[[noreturn]] inline void throw_on_purpose() {
  count_handler_op(op_handler_throw);
  g_thrown.fetch_add(1, std::memory_order_relaxed);
  throw thrown_on_purpose();
}

// Violations: printed (the first few) and counted; any makes the exit status non-zero.
void violation(const char* api, unsigned object, const std::string& what);
std::uint64_t violation_count();
extern std::uint64_t g_seed;

struct thread_ctx {
  unsigned index;
  rng r;
  op_counts ops;
  std::uint64_t executed = 0;  // operations picked (some find nothing to do)
};

class family {
 public:
  virtual ~family() = default;
  virtual const char* name() const = 0;
  // One random operation on a random object, from a torture thread.
  virtual void op(thread_ctx& t) = 0;
  // After every torture thread has stopped: cancel or drain everything, free it.
  virtual void finish() = 0;
  virtual std::vector<books> check() = 0;
};

struct config {
  unsigned ncpu = 2;
  unsigned threads = 4;
};
extern config g_config;

std::unique_ptr<family> make_softint_family();
std::unique_ptr<family> make_callout_family();
std::unique_ptr<family> make_task_family();
std::unique_ptr<family> make_workqueue_family();
std::unique_ptr<family> make_kcont_family();

}  // namespace torture
