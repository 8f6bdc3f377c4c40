// workqueue(9) under torture: workqueue_enqueue (to a given CPU, to the caller's, from the
// item's own function) and workqueue_wait, on a WQ_PERCPU queue and on a single queue (and one
// without WQ_MPSAFE).
//
// Books, per item, under a mutex its function takes too: `enqueued`, `ran`; an item is
// enqueued only when it is not queued (the man page's rule: enqueueing a queued item is
// misuse). Nothing cancels work, so enqueued == ran at the end, and right after
// workqueue_wait (the function is told not to re-enqueue itself meanwhile) as well. Order:
// each queue (per CPU with WQ_PERCPU) runs its items in enqueue order: every queue keeps its
// instances in enqueue order and a run must be the oldest of its queue. An enqueue with
// ci = NULL from a foreign thread lands on a CPU the caller cannot know for sure: it is
// tracked apart and not order-checked.
#include <kcont/runtime.h>
#include <kcont/workqueue.h>

#include <algorithm>
#include <deque>

#include "torture.h"

namespace torture {
namespace {

constexpr unsigned kQueues = 3;
constexpr unsigned kItems = 16;

struct item;
struct order_q {
  std::mutex mu;
  std::deque<item*> queued;
};
struct wq_books {
  unsigned index = 0;
  workqueue* wq = nullptr;
  bool percpu = false;
  std::unique_ptr<order_q[]> qs;  // per CPU, or one
  order_q floating;               // enqueued with ci = NULL on a per-CPU queue
  std::atomic<std::uint64_t> order_checks{0};
};

struct alignas(64) item {
  work wk{};  // first member: the function finds the item from it
  unsigned index = 0;
  wq_books* w = nullptr;
  std::mutex op;  // torture threads
  std::mutex m;   // torture threads and the function
  bool queued = false;
  order_q* q = nullptr;  // where its instance is listed
  bool no_reenqueue = false;
  std::uint64_t enqueued = 0, ran = 0;
  rng r{0};
};

class workqueue_family final : public family {
 public:
  workqueue_family() {
    const int flags[kQueues] = {WQ_MPSAFE | WQ_PERCPU, WQ_MPSAFE, 0};
    const pri_t pris[kQueues] = {PRI_HIGH, PRI_LOW, PRI_NONE};
    for (unsigned i = 0; i < kQueues; ++i) {
      wq_books& w = ws_[i];
      w.index = i;
      w.percpu = (flags[i] & WQ_PERCPU) != 0;
      w.qs = std::make_unique<order_q[]>(w.percpu ? g_config.ncpu : 1);
      if (workqueue_create(&w.wq, "torture", run, &w, pris[i], IPL_NONE, flags[i]) != 0)
        violation("workqueue", i, "workqueue_create failed");
    }
    for (unsigned i = 0; i < kQueues * kItems; ++i) {
      item& it = items_[i];
      it.index = i;
      it.w = &ws_[i % kQueues];
      it.r = rng(g_seed * 977 + i);
    }
  }
  ~workqueue_family() override {
    for (auto& w : ws_) workqueue_destroy(w.wq);
  }
  const char* name() const override { return "workqueue"; }

  void op(thread_ctx& t) override {
    item& it = items_[t.r.below(kQueues * kItems)];
    std::lock_guard<std::mutex> oplk(it.op);
    if (t.r.below(100) < 85) {
      std::lock_guard<std::mutex> lk(it.m);
      if (it.queued) return;
      const unsigned c = t.r.below(g_config.ncpu + 1);  // ncpu: NULL
      enqueue_locked(it, c < g_config.ncpu ? cpu_lookup(c) : nullptr);
      ++t.ops.n[op_workqueue_enqueue];
    } else {
      wait_counted(it);
      ++t.ops.n[op_workqueue_wait];
    }
  }

  void finish() override {
    for (auto& it : items_) {
      std::lock_guard<std::mutex> oplk(it.op);
      wait_counted(it);
    }
  }

  std::vector<books> check() override {
    books b;
    b.api = "workqueue(9)";
    for (auto& it : items_) {
      std::lock_guard<std::mutex> lk(it.m);
      b.add_object(it.index, it.enqueued, it.ran, 0, "enqueued");
    }
    for (auto& w : ws_) b.order_checks += w.order_checks;
    b.note = "nothing cancels: enqueued == ran; per-queue enqueue order checked";
    return {b};
  }

 private:
  // it.m held, it not queued.
  static void enqueue_locked(item& it, cpu_info* ci) {
    wq_books& w = *it.w;
    order_q* q = !w.percpu ? &w.qs[0] : ci != nullptr ? &w.qs[cpu_index(ci)] : &w.floating;
    std::lock_guard<std::mutex> lk(q->mu);
    workqueue_enqueue(w.wq, &it.wk, ci);
    q->queued.push_back(&it);
    it.q = q;
    it.queued = true;
    ++it.enqueued;
  }

  static void wait_counted(item& it) {  // it.op held
    {
      std::lock_guard<std::mutex> lk(it.m);
      it.no_reenqueue = true;
    }
    workqueue_wait(it.w->wq, &it.wk);
    std::lock_guard<std::mutex> lk(it.m);
    it.no_reenqueue = false;
    if (it.queued || it.enqueued != it.ran)
      violation("workqueue", it.index,
                "workqueue_wait returned with " + std::to_string(it.enqueued - it.ran) +
                    " enqueue(s) not yet run");
  }

  static void run(work* wk, void*) {
    auto* it = reinterpret_cast<item*>(wk);
    std::lock_guard<std::mutex> lk(it->m);
    ++it->ran;
    if (!it->queued) violation("workqueue", it->index, "ran while not enqueued (ran twice?)");
    it->queued = false;
    if (order_q* q = it->q) {
      std::lock_guard<std::mutex> olk(q->mu);
      wq_books& w = *it->w;
      if (q == &w.floating) {
        auto f = std::find(q->queued.begin(), q->queued.end(), it);
        if (f != q->queued.end()) q->queued.erase(f);
      } else if (q->queued.empty() || q->queued.front() != it) {
        violation("workqueue", it->index,
                  "ran out of enqueue order (queue " + std::to_string(q - w.qs.get()) +
                      " of workqueue " + std::to_string(w.index) + ")");
        auto f = std::find(q->queued.begin(), q->queued.end(), it);
        if (f != q->queued.end()) q->queued.erase(f);
      } else {
        q->queued.pop_front();
        w.order_checks.fetch_add(1, std::memory_order_relaxed);
      }
      it->q = nullptr;
    }
    if (!it->no_reenqueue && !stopping() && it->r.one_in(4)) {
      const unsigned c = it->r.below(g_config.ncpu + 1);
      enqueue_locked(*it, c < g_config.ncpu ? cpu_lookup(c) : nullptr);
      count_handler_op(op_workqueue_reenqueue_self);
    }
    if (throw_now()) throw_on_purpose();
  }

  wq_books ws_[kQueues];
  item items_[kQueues * kItems];
};

}  // namespace

std::unique_ptr<family> make_workqueue_family() {
  return std::make_unique<workqueue_family>();
}

}  // namespace torture
