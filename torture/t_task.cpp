// task(9) under torture: task_add / task_del / taskq_barrier / taskq_del_barrier on a private
// one-thread taskq, a private two-thread taskq, systq and systqmp, tasks re-adding themselves;
// and the taskctx serialiser: task_dispatch from every thread, tasks dispatching a task from
// inside the context, taskctx_barrier.
//
// Books (task queues), per task, under a mutex its function takes too: `added` counts
// task_add == 1 (0 means "already queued": nothing new), `deleted` task_del == 1, `ran` runs.
// Each queue keeps the list of queued instances in task_add order (under an order mutex taken
// around task_add/task_del and by the running task): a run must find its instance at the front
// (one-thread queues: FIFO) or at least in the list (two threads), task_add == 0 must find one,
// task_del == 1 must remove one. taskq_del_barrier returns nothing: afterwards the task is
// neither queued nor running (its function is told not to re-add itself meanwhile), so an
// instance still listed was deleted by it. taskq_barrier: every run started before it was
// called has finished when it returns. At the end added == ran + deleted.
//
// Books (taskctx): per (thread, context) the dispatches are numbered; runs must come in that
// order, never two at once in one context; taskctx_barrier returns only after every task the
// calling thread dispatched before it has run. Nothing is ever cancelled: dispatched == ran.
#include <kcont/mutex.h>
#include <kcont/runtime.h>
#include <kcont/task.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <thread>

#include "torture.h"

namespace torture {
namespace {

constexpr unsigned kQueues = 4;
constexpr unsigned kTasksPerQueue = 12;
constexpr unsigned kCtxs = 3;
constexpr unsigned kPool = 4;  // taskctx tasks per (thread, context)

struct tq_slot;

struct queue_books {
  taskq* tq = nullptr;
  const char* name = "";
  bool fifo = true;
  std::mutex order_mu;
  std::deque<tq_slot*> queued;  // instances in task_add order
  std::atomic<std::uint64_t> started{0}, finished{0};
  std::atomic<int> inside{0};      // runs in progress (one-thread queues: at most 1)
  std::uint64_t order_checks = 0;  // guarded by order_mu
};

struct alignas(64) tq_slot {
  unsigned index = 0;
  queue_books* q = nullptr;
  task t{};
  std::mutex op;  // torture threads
  std::mutex m;   // torture threads and the task function
  bool no_readd = false;
  bool in_del_barrier = false;  // guarded by q->order_mu: its listed instance may be gone
  std::uint64_t added = 0, ran = 0, deleted = 0;
  rng r{0};
};

// ---- taskctx
struct ctx_books;
struct ctx_task {
  task t{};
  std::atomic<bool> in_flight{false};
  ctx_books* ctx = nullptr;
  unsigned thread = 0;
  std::uint64_t seq = 0;  // written before dispatch, read by the run
};
struct alignas(64) per_thread {
  std::atomic<std::uint64_t> dispatched{0}, last_run{0};
  ctx_task pool[kPool];
};
struct ctx_books {
  unsigned index = 0;
  taskctx tc;
  std::atomic<int> inside{0};
  std::unique_ptr<per_thread[]> threads;
  ctx_task chain;  // dispatched from inside the context by runs
  std::atomic<std::uint64_t> chain_dispatched{0}, chain_ran{0}, order_checks{0};
  std::atomic<std::uint64_t> chain_rng{1};
};

class task_family final : public family {
 public:
  task_family() {
    qs_[0].tq = taskq_create("torture-1", 1, IPL_NONE, TASKQ_MPSAFE);
    qs_[0].name = "torture-1";
    qs_[1].tq = taskq_create("torture-2", 2, IPL_NONE, TASKQ_MPSAFE);
    qs_[1].name = "torture-2";
    qs_[1].fifo = false;
    qs_[2].tq = systqmp;
    qs_[2].name = "systqmp";
    qs_[3].tq = systq;
    qs_[3].name = "systq";
    for (unsigned i = 0; i < kQueues * kTasksPerQueue; ++i) {
      tq_slot& s = slots_[i];
      s.index = i;
      s.q = &qs_[i % kQueues];
      s.r = rng(g_seed * 131 + i);
      task_set(&s.t, run, &s);
    }
    for (unsigned k = 0; k < kCtxs; ++k) {
      ctx_books& c = ctxs_[k];
      c.index = k;
      taskctx_init(&c.tc, IPL_NONE);
      c.threads = std::make_unique<per_thread[]>(g_config.threads);
      for (unsigned th = 0; th < g_config.threads; ++th)
        for (auto& p : c.threads[th].pool) {
          p.ctx = &c;
          p.thread = th;
        }
      c.chain.ctx = &c;
      task_set(&c.chain.t, run_chain, &c);
    }
  }
  ~task_family() override {
    taskq_destroy(qs_[0].tq);
    taskq_destroy(qs_[1].tq);
  }
  const char* name() const override { return "task"; }

  void op(thread_ctx& t) override {
    const unsigned what = t.r.below(100);
    if (what >= 70) return ctx_op(t, what);
    tq_slot& s = slots_[t.r.below(kQueues * kTasksPerQueue)];
    queue_books& q = *s.q;
    std::lock_guard<std::mutex> oplk(s.op);
    if (what < 35) {
      std::lock_guard<std::mutex> lk(s.m);
      std::lock_guard<std::mutex> olk(q.order_mu);
      add_locked(s, "task_add");
      ++t.ops.n[op_task_add];
    } else if (what < 55) {
      std::lock_guard<std::mutex> lk(s.m);
      std::lock_guard<std::mutex> olk(q.order_mu);
      if (task_del(q.tq, &s.t) == 1) {
        ++s.deleted;
        // The newest instance: older ones of the same task were taken off by the worker and
        // wait for their run (blocked on s.m) to unlist them.
        if (!unlist_newest(q, &s))
          violation("task", s.index, "task_del returned 1 for a task not queued");
      }
      ++t.ops.n[op_task_del];
    } else if (what < 63) {
      const std::uint64_t before = q.started.load();
      taskq_barrier(q.tq);
      if (q.finished.load() < before)
        violation("task", s.index,
                  std::string("taskq_barrier on ") + q.name + " returned before " +
                      std::to_string(before - q.finished.load()) + " run(s) finished");
      ++t.ops.n[op_taskq_barrier];
    } else {
      del_barrier_counted(s);
      ++t.ops.n[op_taskq_del_barrier];
    }
  }

  void finish() override {
    // First let every queue run what it holds: with the torture threads gone and re-adding
    // off (stopping()), two barriers leave nothing queued (the second covers a re-add made by
    // a run the first one waited for). A task still outstanding now was lost, not cancelled.
    for (int round = 0; round < 2; ++round)
      for (auto& q : qs_) taskq_barrier(q.tq);
    for (auto& s : slots_) {
      std::lock_guard<std::mutex> lk(s.m);
      const std::int64_t o =
          static_cast<std::int64_t>(s.added) - static_cast<std::int64_t>(s.ran + s.deleted);
      if (o != 0 || task_pending(&s.t))
        violation("task", s.index,
                  std::string("on ") + s.q->name + ": " + std::to_string(o) +
                      " added task(s) neither ran nor were deleted after two taskq_barrier "
                      "(lost)");
    }
    for (auto& s : slots_) {
      std::lock_guard<std::mutex> oplk(s.op);
      del_barrier_counted(s);
    }
    for (auto& c : ctxs_) taskctx_barrier(&c.tc);
  }

  std::vector<books> check() override {
    books b;
    b.api = "task(9)";
    for (auto& s : slots_) {
      std::lock_guard<std::mutex> lk(s.m);
      b.add_object(s.index, s.added, s.ran, s.deleted, "added", "deleted",
                   std::string("on ") + s.q->name + ": ");
    }
    for (auto& q : qs_) {
      std::lock_guard<std::mutex> lk(q.order_mu);
      b.order_checks += q.order_checks;
      if (!q.queued.empty())
        violation("task", 0,
                  std::string(q.name) + ": " + std::to_string(q.queued.size()) +
                      " task(s) still listed as queued after the drain");
    }
    b.note = "task_add==1 = runs + task_del==1 (+ taskq_del_barrier); FIFO on 1-thread queues";
    books c;
    c.api = "taskctx";
    for (auto& x : ctxs_) {
      for (unsigned th = 0; th < g_config.threads; ++th) {
        per_thread& p = x.threads[th];
        c.add_object(x.index, p.dispatched, p.last_run, 0, "dispatched", "cancelled",
                     "thread " + std::to_string(th) + ": ");
      }
      c.add_object(x.index, x.chain_dispatched, x.chain_ran, 0, "dispatched", "cancelled",
                   "from inside the context: ");
      c.order_checks += x.order_checks;
    }
    c.note = "every dispatch runs once (no cancel); per-thread dispatch order checked";
    return {b, c};
  }

 private:
  // s.m and q.order_mu held.
  static void add_locked(tq_slot& s, const char* who) {
    queue_books& q = *s.q;
    if (task_add(q.tq, &s.t) == 1) {
      ++s.added;
      q.queued.push_back(&s);
    } else if (std::find(q.queued.begin(), q.queued.end(), &s) == q.queued.end()) {
      violation("task", s.index,
                std::string(who) + " returned 0 (already queued) on " + q.name +
                    " but the task is not queued");
    }
  }
  static bool unlist_newest(queue_books& q, tq_slot* s) {
    auto it = std::find(q.queued.rbegin(), q.queued.rend(), s);
    if (it == q.queued.rend()) return false;
    q.queued.erase(std::next(it).base());
    return true;
  }
  static bool unlist(queue_books& q, tq_slot* s) {
    auto it = std::find(q.queued.begin(), q.queued.end(), s);
    if (it == q.queued.end()) return false;
    q.queued.erase(it);
    return true;
  }

  // taskq_del_barrier, with its function told not to re-add itself meanwhile. s.op held.
  static void del_barrier_counted(tq_slot& s) {
    queue_books& q = *s.q;
    {
      std::lock_guard<std::mutex> lk(s.m);
      std::lock_guard<std::mutex> olk(q.order_mu);
      s.no_readd = true;
      s.in_del_barrier = true;
    }
    taskq_del_barrier(q.tq, &s.t);
    std::lock_guard<std::mutex> lk(s.m);
    std::lock_guard<std::mutex> olk(q.order_mu);
    s.no_readd = false;
    s.in_del_barrier = false;
    if (task_pending(&s.t)) violation("task", s.index, "queued after taskq_del_barrier");
    const std::int64_t o =
        static_cast<std::int64_t>(s.added) - static_cast<std::int64_t>(s.ran + s.deleted);
    const bool listed = unlist(q, &s);
    if (o != (listed ? 1 : 0))
      violation("task", s.index,
                "after taskq_del_barrier: " + std::to_string(o) + " outstanding, " +
                    (listed ? "listed" : "not listed") + " as queued");
    if (o > 0) s.deleted += static_cast<std::uint64_t>(o);
  }

  static void run(void* a) {
    auto* s = static_cast<tq_slot*>(a);
    queue_books& q = *s->q;
    q.started.fetch_add(1);
    if (q.inside.fetch_add(1) != 0 && q.fifo)
      violation("task", s->index, std::string("two tasks at once on one-thread ") + q.name);
    {
      std::lock_guard<std::mutex> lk(s->m);
      std::lock_guard<std::mutex> olk(q.order_mu);
      ++s->ran;
      if (q.queued.empty()) {
        violation("task", s->index, std::string("ran on ") + q.name + " while not queued");
      } else if (q.fifo) {
        // The oldest listed instance, skipping those a taskq_del_barrier in progress may have
        // deleted already (they are unlisted when it returns), must be this one.
        tq_slot* oldest = nullptr;
        for (tq_slot* e : q.queued)
          if (e == s || !e->in_del_barrier) {
            oldest = e;
            break;
          }
        if (oldest != s)
          violation("task", s->index,
                    std::string("ran out of task_add order on ") + q.name +
                        (oldest != nullptr
                             ? " (the oldest queued task is #" + std::to_string(oldest->index) + ")"
                             : " (not queued)"));
        unlist(q, s);
        ++q.order_checks;
      } else if (!unlist(q, s)) {
        violation("task", s->index, std::string("ran on ") + q.name + " while not queued");
      }
      if (!s->no_readd && !stopping() && s->r.one_in(4)) {
        add_locked(*s, "task_add from its own run");
        count_handler_op(op_task_readd_self);
      }
    }
    q.inside.fetch_sub(1);
    q.finished.fetch_add(1);
    if (throw_now()) throw_on_purpose();
  }

  // ---- taskctx
  void ctx_op(thread_ctx& t, unsigned what) {
    ctx_books& c = ctxs_[t.r.below(kCtxs)];
    per_thread& p = c.threads[t.index];
    if (what < 95) {
      for (auto& x : p.pool) {
        if (x.in_flight.load()) continue;
        x.in_flight.store(true);
        x.seq = p.dispatched.load() + 1;
        p.dispatched.store(x.seq);
        task_set(&x.t, run_ctx, &x);
        task_dispatch(&c.tc, &x.t);
        ++t.ops.n[op_task_dispatch];
        return;
      }
    } else {
      const std::uint64_t d = p.dispatched.load();
      taskctx_barrier(&c.tc);
      if (p.last_run.load() != d)
        violation("taskctx", c.index,
                  "taskctx_barrier returned before the caller's dispatch #" +
                      std::to_string(p.last_run.load() + 1) + " ran (dispatched " +
                      std::to_string(d) + ")");
      ++t.ops.n[op_taskctx_barrier];
    }
  }

  static void enter(ctx_books& c) {
    if (c.inside.exchange(1) != 0) violation("taskctx", c.index, "two tasks at once in a context");
  }

  static void run_ctx(void* a) {
    auto* x = static_cast<ctx_task*>(a);
    ctx_books& c = *x->ctx;
    enter(c);
    per_thread& p = c.threads[x->thread];
    const std::uint64_t seq = x->seq;
    if (seq != p.last_run.load() + 1)
      violation("taskctx", c.index,
                "thread " + std::to_string(x->thread) + "'s dispatch #" + std::to_string(seq) +
                    " ran after #" + std::to_string(p.last_run.load()));
    c.order_checks.fetch_add(1, std::memory_order_relaxed);
    maybe_chain(c);
    c.inside.store(0);
    p.last_run.store(seq);
    x->in_flight.store(false);  // the owner may dispatch it again (it was copied before the run)
    if (throw_now()) throw_on_purpose();  // the runner must leave the context all the same
  }

  static void maybe_chain(ctx_books& c) {  // inside the context
    std::uint64_t v = c.chain_rng.load() * 6364136223846793005ull + 1442695040888963407ull;
    c.chain_rng.store(v);
    if (stopping() || (v >> 60) != 0 || c.chain.in_flight.load()) return;
    c.chain.in_flight.store(true);
    c.chain_dispatched.fetch_add(1);
    task_dispatch(&c.tc, &c.chain.t);  // from inside: queued, runs after this one
    count_handler_op(op_task_dispatch);
  }

  static void run_chain(void* a) {
    auto* c = static_cast<ctx_books*>(a);
    enter(*c);
    c->chain.in_flight.store(false);
    c->chain_ran.fetch_add(1);
    maybe_chain(*c);
    c->inside.store(0);
  }

  queue_books qs_[kQueues];
  tq_slot slots_[kQueues * kTasksPerQueue];
  ctx_books ctxs_[kCtxs];
};

}  // namespace

std::unique_ptr<family> make_task_family() {
  return std::make_unique<task_family>();
}

}  // namespace torture
