// task(9) task queues on the pooled worker engine.
//
// A taskq is one queue_instance (engine.h) with max_active = nthreads, served by workers from
// the pool of the CPU that adds work. systq/systqmp are static objects bound to the default
// runtime on first use.
#include "engine.h"

#include <kcont/task.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace {
constexpr unsigned TASK_ONQUEUE = 1;
constexpr unsigned kDefaultPriority = 1;  // medium-high
}  // namespace

struct taskq {
  const char* name;
  unsigned nthreads;
  bool mpsafe;
  bool system;
  std::once_flag bound;
  std::unique_ptr<kcont::detail::queue_instance> q;
};

namespace {

using kcont::detail::queue_instance;

[[noreturn]] void misuse(const char* what, const taskq* tq) {
  std::fprintf(stderr, "kcont: taskq misuse: %s (taskq %s)\n", what,
               tq != nullptr && tq->name != nullptr ? tq->name : "?");
  std::abort();
}

queue_instance& instance(taskq* tq) {
  if (tq == nullptr) misuse("NULL taskq", tq);
  std::call_once(tq->bound, [tq] {  // system queues bind lazily to the default runtime
    auto& eng = kcont::detail::engine_of(kcont::runtime::default_runtime());
    tq->q = std::make_unique<queue_instance>(eng, kDefaultPriority, 1, tq->mpsafe, -1);
  });
  if (!tq->q) misuse("use of a destroyed taskq", tq);
  return *tq->q;
}

// The worker slot of this thread in q.running, if this thread runs one of q's tasks.
const queue_instance::running_slot* my_slot(queue_instance& q) {
  for (const auto& s : q.running)
    if (s.thread == std::this_thread::get_id()) return &s;
  return nullptr;
}

taskq g_systq{"systq", 1, false, true, {}, nullptr};
taskq g_systqmp{"systqmp", 1, true, true, {}, nullptr};

}  // namespace

taskq* const systq = &g_systq;
taskq* const systqmp = &g_systqmp;

taskq* taskq_create(const char* name, unsigned nthreads, int, unsigned flags) {
  if (nthreads == 0 || (flags & ~(TASKQ_MPSAFE | TASKQ_CANTSLEEP)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  auto* tq = new taskq{name, nthreads, (flags & TASKQ_MPSAFE) != 0, false, {}, nullptr};
  std::call_once(tq->bound, [tq] {
    auto& eng = kcont::detail::engine_of(kcont::runtime::current());
    tq->q = std::make_unique<queue_instance>(eng, kDefaultPriority, tq->nthreads, tq->mpsafe, -1);
  });
  return tq;
}

void taskq_destroy(taskq* tq) {
  queue_instance& q = instance(tq);
  if (tq->system) misuse("taskq_destroy of a system taskq", tq);
  {
    std::unique_lock<std::mutex> lk(q.mu);
    if (my_slot(q) != nullptr) misuse("taskq_destroy from one of its own tasks", tq);
    q.idle_cv.wait(lk, [&] { return q.work.empty() && q.active == 0; });  // drained, not dropped
  }
  delete tq;
}

int task_add(taskq* tq, task* t) {
  queue_instance& q = instance(tq);
  if (t->t_func == nullptr) misuse("task_add of a task with no function (task_set it first)", tq);
  if (t->t_flags.load() & TASK_ONQUEUE) return 0;
  std::unique_lock<std::mutex> lk(q.mu);
  if (t->t_flags.load(std::memory_order_relaxed) & TASK_ONQUEUE) return 0;
  t->t_flags.fetch_or(TASK_ONQUEUE);
  t->t_queue = &q;
  q.work.push_back(*t);
  q.eng->want_worker(q, lk);
  return 1;
}

int task_del(taskq* tq, task* t) {
  queue_instance& q = instance(tq);
  if ((t->t_flags.load() & TASK_ONQUEUE) == 0) return 0;
  std::lock_guard<std::mutex> lk(q.mu);
  if ((t->t_flags.load(std::memory_order_relaxed) & TASK_ONQUEUE) == 0) return 0;
  if (t->t_queue != &q) misuse("task_del on a taskq the task was not added to", tq);
  q.work.erase(q.work.iterator_to(*t));
  t->t_queue = nullptr;
  t->t_flags.fetch_and(~TASK_ONQUEUE);
  return 1;
}

void taskq_barrier(taskq* tq) {
  queue_instance& q = instance(tq);
  std::unique_lock<std::mutex> lk(q.mu);
  // Every run in progress now, except our own (a barrier from a task counts itself as done).
  std::vector<std::pair<std::thread::id, std::uint64_t>> waiting;
  for (const auto& s : q.running)
    if (s.thread != std::this_thread::get_id()) waiting.push_back({s.thread, s.run_id});
  q.idle_cv.wait(lk, [&] {
    return std::none_of(q.running.begin(), q.running.end(), [&](const auto& s) {
      return std::find(waiting.begin(), waiting.end(), std::make_pair(s.thread, s.run_id)) !=
             waiting.end();
    });
  });
}

void taskq_del_barrier(taskq* tq, task* t) {
  queue_instance& q = instance(tq);
  task_del(tq, t);
  std::unique_lock<std::mutex> lk(q.mu);
  for (const auto& s : q.running)
    if (s.t == t && s.thread == std::this_thread::get_id())
      misuse("taskq_del_barrier of the task that is calling it (it would wait for itself)", tq);
  q.idle_cv.wait(lk, [&] {
    return std::none_of(q.running.begin(), q.running.end(),
                        [&](const auto& s) { return s.t == t; });
  });
}

bool task_pending(const task* t) {
  return (t->t_flags.load() & TASK_ONQUEUE) != 0;
}
