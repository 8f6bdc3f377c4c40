// workqueue(9) on the pooled worker engine: one queue_instance per CPU (WQ_PERCPU) or one in
// all, each serving its items one at a time on workers of its CPU's pool.
#include <kcont/function_workqueue.h>
#include <kcont/internal/lockdebug.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/internal/misuse.h>
#include <kcont/workqueue.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#include "engine.h"

using kcont::detail::queue_instance;

// Every field [I]: set by workqueue_create before the workqueue is returned. The queue
// instances follow engine.h's legend.
struct workqueue {
  const char* name;
  void (*func)(work*, void*);
  void* arg;
  bool percpu;
  kcont::runtime* rt;
  std::vector<std::unique_ptr<queue_instance>> queues;  // per CPU, or one
};

namespace {

[[noreturn]] void misuse(const char* what, const workqueue* wq) {
  kcont::internal::misuse_named("workqueue", what, "workqueue", wq != nullptr ? wq->name : nullptr);
}

void run_work(void* p) {
  auto* wk = static_cast<work*>(p);
  auto* wq = static_cast<workqueue*>(wk->wk_wq);
  // Caught here rather than by the engine, so that the report names the workqueue's function.
  kcont::machine::run_handler("workqueue item", wq->name, kcont::machine::code_address(wq->func),
                              [wk, wq] { wq->func(wk, wq->arg); });
}

}  // namespace

int workqueue_create(workqueue** wqp, const char* name, void (*func)(work*, void*), void* arg,
                     pri_t pri, int, int flags) {
  if (wqp == nullptr || func == nullptr || pri < PRI_NONE || pri > PRI_LOW ||
      (flags & ~(WQ_MPSAFE | WQ_PERCPU | WQ_FPU | WQ_ELASTIC)) != 0)
    return EINVAL;
  auto* wq = new (std::nothrow) workqueue{name, func, arg, (flags & WQ_PERCPU) != 0, nullptr, {}};
  if (wq == nullptr) return ENOMEM;
  wq->rt = &kcont::runtime::current();
  kcont::detail::engine* engp;
  try {
    engp = &kcont::detail::engine_of(*wq->rt);
  } catch (const std::system_error& e) {  // the engine's first threads could not be made
    delete wq;
    return e.code().value() != 0 ? e.code().value() : EAGAIN;
  }
  auto& eng = *engp;
  const unsigned level = pri == PRI_NONE ? PRI_MEDLOW : static_cast<unsigned>(pri);
  const bool mpsafe = (flags & WQ_MPSAFE) != 0;
  const bool elastic = (flags & WQ_ELASTIC) != 0;
  const unsigned most = elastic ? eng.rt.config().elastic_max_active : 1;
  if (wq->percpu) {
    for (unsigned c = 0; c < wq->rt->ncpu(); ++c)
      wq->queues.push_back(std::make_unique<queue_instance>(
          eng, level, most, mpsafe, static_cast<int>(c), "workqueue", wq->name, wq));
  } else {
    wq->queues.push_back(
        std::make_unique<queue_instance>(eng, level, most, mpsafe, -1, "workqueue", wq->name, wq));
  }
  for (auto& q : wq->queues) q->elastic = elastic;
  *wqp = wq;
  return 0;
}

void workqueue_enqueue(workqueue* wq, work* wk, cpu_info* ci) {
  if (wq == nullptr || wk == nullptr) misuse("NULL workqueue or work", wq);
  queue_instance* q = wq->queues[0].get();
  if (wq->percpu) {
    if (ci == nullptr) ci = kcont::machine::current_cpu(*wq->rt);
    if (&kcont::machine::runtime_of(ci) != wq->rt)
      misuse("workqueue_enqueue to a CPU of another runtime", wq);
    q = wq->queues[cpu_index(ci)].get();
  }
  wk->wk_wq = wq;
  // Not task_set: that would make lockdebug forget the locks this item's earlier runs took.
  wk->wk_task.t_func = run_work;
  wk->wk_task.t_arg = wk;
  if (!kcont::detail::instance_add(*q, &wk->wk_task))
    misuse(
        "workqueue_enqueue of a work item that is still queued (enqueue it again only once "
        "it has started)",
        wq);
}

void workqueue_wait(workqueue* wq, work* wk) {
  if (wq == nullptr || wk == nullptr) misuse("NULL workqueue or work", wq);
  kcont::lockdebug::check_wait("workqueue_wait", &wk->wk_task);
  for (auto& q : wq->queues) {
    // Queued here: wait for it to start; then for it to finish.
    std::unique_lock<std::mutex> lk(q->mu);
    q->idle_cv.wait(lk,
                    [&] { return !task_pending(&wk->wk_task) || wk->wk_task.t_queue != q.get(); });
    lk.unlock();
    if (!kcont::detail::instance_wait_not_running(*q, &wk->wk_task))
      misuse("workqueue_wait from the work item it waits for (it would wait for itself)", wq);
  }
}

void workqueue_destroy(workqueue* wq) {
  if (wq == nullptr) misuse("NULL workqueue", wq);
  kcont::lockdebug::check_wait("workqueue_destroy", wq);
  for (auto& q : wq->queues) {
    if (kcont::detail::instance_is_mine(*q))
      misuse("workqueue_destroy from one of its own work items", wq);
    kcont::detail::instance_drain(*q);
  }
  kcont::lockdebug::forget(wq);
  delete wq;
}

int kpause(const char*, bool, int timo, kmutex_t* mtx) {
  if (timo <= 0) return EINVAL;
  // timo ticks, rounded up to whole nanoseconds (a tick of 1/3 ms must not shrink to
  // 333333 ns); timo * 10^9 fits int64 for every int timo.
  const std::int64_t hz = kcont::runtime::current().hz();
  const std::chrono::nanoseconds pause((std::int64_t{timo} * 1'000'000'000 + hz - 1) / hz);
  kcont::machine::blocking_begin();
  if (mtx != nullptr) mutex_exit(mtx);
  std::this_thread::sleep_for(pause);
  if (mtx != nullptr) mutex_enter(mtx);
  kcont::machine::blocking_end();
  return EWOULDBLOCK;
}

kcont::blocking_scope::blocking_scope() {
  kcont::machine::blocking_begin();
}
kcont::blocking_scope::~blocking_scope() {
  kcont::machine::blocking_end();
}

bool kcont::detail::workqueue_settle(workqueue* wq) {
  if (wq == nullptr) misuse("NULL workqueue", wq);
  bool had_work = false;
  for (auto& q : wq->queues)
    if (kcont::detail::instance_drain(*q)) had_work = true;
  return had_work;
}

bool kcont::detail::workqueue_withdraw(workqueue* wq, work* wk) {
  if (wq == nullptr || wk == nullptr) misuse("NULL workqueue or work", wq);
  for (auto& q : wq->queues)
    if (kcont::detail::instance_del(*q, &wk->wk_task)) return true;
  return false;
}
