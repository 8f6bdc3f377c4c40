// The taskctx serialiser (OpenBSD 2015 diff, what became ifq_serialize in net/ifq.c).
//
// tc_serializer counts the threads that tried to enter. The first (count 0 -> 1) is inside and
// runs tasks; the others only queue their task and bump the count. Before taking each task the
// runner resets the count to 1, and it leaves only if it can CAS the count from 1 to 0: a
// contender that queued after the runner's last look has bumped the count, the CAS fails and
// the runner looks again. A contender queues before it bumps, so whatever it queued is seen by
// the runner's next look: no task is stranded in the window between enter and leave.
//
// taskctx_barrier queues a barrier task behind everything queued. The thread inside that
// reaches it does not run it: it keeps it and signals the barrier once it no longer touches
// the context — when it leaves, or when it has taken the next task (work dispatched after the
// barrier: the context lives on, and whoever frees it must stop dispatching first). No one
// polls, and continuous dispatching cannot hold a barrier back.
//
// A task that throws is reported (the exception policy, <kcont/runtime.h>) and abandoned; the
// runner carries on with the queue and leaves as usual, so the context is never left entered.
//
// Locks used to protect the fields below (and struct taskctx's in <kcont/taskctx.h>):
//   [a] atomic
//   [t] the taskctx's tc_mtx
//   [b] barrier_state::mu
//   [R] the runner (the thread inside the context) only
//
// Statistics (kcont::taskctx_stats, taskctx_stats.cpp): tc_stats points at the counters while
// an observer lives, written and read under tc_mtx. Counting re-reads it under the lock each
// time, so an observer may come or go while tasks run; a run is counted as finished only by
// the counters it was counted as started by.
#include "task_flags.h"

#include <kcont/internal/lockdebug.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/internal/misuse.h>
#include <kcont/internal/queue_counters.h>
#include <kcont/taskctx.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>

namespace {

using kcont::detail::TASK_ONQUEUE;

thread_local taskctx* tl_running_ctx = nullptr;  // the taskctx this thread is inside, if any

using kcont::internal::queue_counters;

// tc_mtx held: the observer's counters, if any.
queue_counters* counters_of(taskctx* tc) {
  return static_cast<queue_counters*>(tc->tc_stats.load(std::memory_order_relaxed));
}

// A run being timed for the statistics: by whom it was counted, and its sample stamp.
struct counted_run {
  queue_counters* by = nullptr;
  std::uint64_t from = 0;
};

// After a run: counted as finished, if it was counted as started (tc_mtx taken only then).
void count_finished(taskctx* tc, const counted_run& r) {
  if (r.by == nullptr) return;
  std::lock_guard<std::mutex> lk(tc->tc_mtx);
  if (counters_of(tc) == r.by) r.by->finished(r.from);
}

// The barrier task's function: never called, only recognised by the runner.
void barrier_task(void*) {}

bool taskctx_enter(taskctx* tc) {
  return tc->tc_serializer.fetch_add(1) + 1 == 1;
}

bool taskctx_leave(taskctx* tc) {
  unsigned one = 1;
  return tc->tc_serializer.compare_exchange_strong(one, 0);
}

// Takes the oldest queued task and copies it out (the original may be re-dispatched or freed
// while the copy runs).
bool taskctx_next_work(taskctx* tc, void (*&fn)(void*), void*& arg, counted_run& counted) {
  tc->tc_serializer.store(1);
  std::lock_guard<std::mutex> lk(tc->tc_mtx);
  if (tc->tc_worklist.empty()) return false;
  task& t = tc->tc_worklist.front();
  tc->tc_worklist.pop_front();
  fn = t.t_func;
  arg = t.t_arg;
  t.t_flags.fetch_and(~TASK_ONQUEUE);
  counted = {};
  if (queue_counters* c = counters_of(tc); c != nullptr && fn != barrier_task)
    counted = {c, c->started(&t)};
  return true;
}

// A barrier waiting on its stack until the runner that reached its task is done with the
// context. The runner chains reached barriers through `next` and signals them together.
struct barrier_state {
  std::mutex mu;
  std::condition_variable cv;     // [b]
  bool done = false;              // [b]
  barrier_state* next = nullptr;  // [R] the chain of barriers the runner has reached
};

// Signals every barrier in the chain. The waiter may free its state as soon as it sees done.
void signal_barriers(barrier_state* b) {
  while (b != nullptr) {
    barrier_state* next = b->next;
    std::lock_guard<std::mutex> lk(b->mu);
    b->done = true;
    b->cv.notify_all();
    b = next;
  }
}

void run_task(taskctx* tc, void (*fn)(void*), void* arg) {
  kcont::lockdebug::handler_scope scope(tc);
  kcont::machine::run_handler("taskctx task", nullptr, kcont::machine::code_address(fn),
                              [fn, arg] { fn(arg); });
}

// Runs queued work until the context can be left. The caller is inside (count >= 1).
void taskctx_drain(taskctx* tc) {
  barrier_state* reached = nullptr;  // barrier tasks taken, to signal once we are done with tc
  do {
    void (*fn)(void*);
    void* arg;
    counted_run counted;
    while (taskctx_next_work(tc, fn, arg, counted)) {
      if (fn == barrier_task) {
        auto* b = static_cast<barrier_state*>(arg);
        b->next = reached;
        reached = b;
        continue;
      }
      signal_barriers(reached);  // work dispatched after them: the context lives on
      reached = nullptr;
      run_task(tc, fn, arg);
      count_finished(tc, counted);
    }
  } while (!taskctx_leave(tc));
  signal_barriers(reached);  // left: this thread no longer touches tc
}

void taskctx_run(taskctx* tc) {
  if (!taskctx_enter(tc)) return;
  taskctx* outer = tl_running_ctx;  // a task may dispatch into another taskctx
  tl_running_ctx = tc;
  taskctx_drain(tc);
  tl_running_ctx = outer;
}

}  // namespace

void task_set(task* t, void (*fn)(void*), void* arg) {
  t->t_func = fn;
  t->t_arg = arg;
  if ((t->t_flags.load() & TASK_ONQUEUE) == 0) t->t_queue = nullptr;
  kcont::lockdebug::forget(t);  // a new task (maybe at a reused address)
}

void taskctx_init(taskctx* tc, int) {
  tc->tc_worklist.clear();
  tc->tc_serializer.store(0);
  kcont::lockdebug::forget(tc);
}

void task_dispatch(taskctx* tc, task* t) {
  if (t->t_func == nullptr) {
    kcont::internal::misuse("taskctx",
                            "task_dispatch of a task with no function (task_set it first)");
  }
  if (t->t_flags.load() & TASK_ONQUEUE) return;  // already queued: it will run
  // Fast path: a free context is entered with one CAS and the task runs without being queued.
  // Leaving is one CAS more; it fails only if a contender bumped the count meanwhile, and then
  // the queue is drained as usual. A contender that queued but has not bumped yet finds the
  // context free after we leave and runs its task itself.
  unsigned zero = 0;
  if (tc->tc_serializer.compare_exchange_strong(zero, 1)) {
    taskctx* outer = tl_running_ctx;
    tl_running_ctx = tc;
    void (*fn)(void*) = t->t_func;  // copied: the task may be re-dispatched or freed by fn
    void* arg = t->t_arg;
    counted_run counted;
    if (tc->tc_stats.load(std::memory_order_relaxed) != nullptr) {  // observed: count it
      std::lock_guard<std::mutex> lk(tc->tc_mtx);
      if (queue_counters* c = counters_of(tc)) {
        c->queued(t);  // dispatched, and started at once: no wait
        counted = {c, c->started(t)};
      }
    }
    run_task(tc, fn, arg);
    count_finished(tc, counted);
    if (!taskctx_leave(tc)) taskctx_drain(tc);
    tl_running_ctx = outer;
    return;
  }
  {
    std::lock_guard<std::mutex> lk(tc->tc_mtx);
    if ((t->t_flags.load(std::memory_order_relaxed) & TASK_ONQUEUE) == 0) {
      t->t_flags.fetch_or(TASK_ONQUEUE);
      tc->tc_worklist.push_back(*t);
      if (queue_counters* c = counters_of(tc)) c->queued(t);
    }
  }
  taskctx_run(tc);
}

void taskctx_barrier(taskctx* tc) {
  if (tl_running_ctx == tc) {
    kcont::internal::misuse("taskctx",
                            "taskctx_barrier called from a task running in that taskctx (it "
                            "would wait for itself)");
  }
  kcont::lockdebug::check_wait("taskctx_barrier", tc);
  // Decided under tc_mtx: a dispatcher may have queued its task and not yet entered (the count
  // is 0 for that moment), so "nothing inside" alone does not mean nothing is owed. The
  // barrier task goes behind whatever is queued, never by the fast path, which would run it
  // ahead of an older queued task. (Found by the spin model models/taskctx.pml.)
  barrier_state b;
  task t = TASK_INITIALIZER(barrier_task, &b);
  {
    std::lock_guard<std::mutex> lk(tc->tc_mtx);
    if (tc->tc_serializer.load() == 0 && tc->tc_worklist.empty()) return;
    t.t_flags.fetch_or(TASK_ONQUEUE);
    tc->tc_worklist.push_back(t);
  }
  taskctx_run(tc);
  std::unique_lock<std::mutex> lk(b.mu);
  b.cv.wait(lk, [&] { return b.done; });
}

bool kcont::detail::taskctx_withdraw(taskctx* tc, task* t) {
  std::lock_guard<std::mutex> lk(tc->tc_mtx);
  if ((t->t_flags.load(std::memory_order_relaxed) & TASK_ONQUEUE) == 0) return false;
  tc->tc_worklist.erase(tc->tc_worklist.iterator_to(*t));
  t->t_flags.fetch_and(~TASK_ONQUEUE);
  if (queue_counters* c = counters_of(tc)) c->withdrawn(t);
  return true;
}

std::size_t kcont::detail::taskctx_queued_tasks(taskctx* tc) {
  std::size_t n = 0;
  for (const task& t : tc->tc_worklist) n += t.t_func != barrier_task ? 1 : 0;
  return n;
}
