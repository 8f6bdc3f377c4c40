// kcont::function_workqueue (<kcont/function_workqueue.h>): a workqueue(9) whose func calls
// each item's own function.
#include <kcont/function_workqueue.h>

#include <system_error>

namespace kcont {

function_workqueue::function_workqueue(runtime& rt, const char* name, pri_t pri, int flags)
    : rt_(&rt) {
  runtime_scope scope(rt);
  if (int e = workqueue_create(&wq_, name, &function_workqueue::run, nullptr, pri, 0, flags);
      e != 0)
    throw std::system_error(e, std::generic_category(), "kcont::function_workqueue");
}

function_workqueue::~function_workqueue() {
  workqueue_destroy(wq_);
}

bool function_workqueue::withdraw(item* it) {
  return detail::workqueue_withdraw(wq_, it);
}

void function_workqueue::run(work* wk, void*) {
  auto* it = static_cast<item*>(wk);
  it->fn(it);  // the last touch: fn may free the item
}

}  // namespace kcont
