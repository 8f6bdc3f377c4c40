// kcont::taskctx_stats (<kcont/taskctx.h>): a taskctx's entry in its runtime's queue statistics.
// The counters live here and are hung on the taskctx (tc_stats) under its tc_mtx, which is the
// lock they are written under (taskctx.cpp) and read under (the registry).
#include <kcont/internal/misuse.h>
#include <kcont/internal/queue_counters.h>
#include <kcont/runtime.h>
#include <kcont/taskctx.h>

namespace kcont {

struct taskctx_stats::impl {
  impl(runtime& r, taskctx* t, const char* name)
      : rt(r),
        tc(t),
        counters(internal::queue_timing(r)),
        node("taskctx", name, -1, t->tc_mtx, counters) {}
  runtime& rt;
  taskctx* const tc;
  internal::queue_counters counters;
  internal::queue_stats_node node;
};

taskctx_stats::taskctx_stats(runtime& rt, taskctx* tc, const char* name) {
  if (tc == nullptr) internal::misuse("taskctx", "taskctx_stats of a NULL taskctx");
  impl_ = new impl(rt, tc, name);
  {
    std::lock_guard<std::mutex> lk(tc->tc_mtx);
    if (tc->tc_stats.load(std::memory_order_relaxed) != nullptr) {
      delete impl_;
      internal::misuse("taskctx", "a second taskctx_stats on one taskctx");
    }
    // What is queued already leaves the depth when it starts.
    impl_->counters.depth = detail::taskctx_queued_tasks(tc);
    impl_->counters.max_depth = impl_->counters.depth;
    tc->tc_stats.store(&impl_->counters, std::memory_order_relaxed);
  }
  internal::register_queue(rt, impl_->node);
}

taskctx_stats::~taskctx_stats() {
  internal::unregister_queue(impl_->rt, impl_->node);
  {
    // Runners read tc_stats under this lock: once it is cleared, none touches the counters.
    std::lock_guard<std::mutex> lk(impl_->tc->tc_mtx);
    impl_->tc->tc_stats.store(nullptr, std::memory_order_relaxed);
  }
  delete impl_;
}

}  // namespace kcont
