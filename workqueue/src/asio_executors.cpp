// Out-of-line pieces of the Asio executor adaptors (asio_executors.h).
#include <kcont/asio_executors.h>

namespace kcont::detail {

boost::asio::execution_context& executors_context() {
  static auto* ctx = new boost::asio::execution_context;  // lives until exit
  return *ctx;
}

namespace {
struct hop {
  task t;
  taskctx* tc;
  task* inner;
  static void run(void* p) {
    std::unique_ptr<hop> h(static_cast<hop*>(p));
    task_dispatch(h->tc, h->inner);
  }
};
}  // namespace

void post_into_taskctx(runtime& rt, taskctx* tc, task* t) {
  auto* h = new hop{TASK_INITIALIZER(&hop::run, nullptr), tc, t};
  h->t.t_arg = h;
  runtime_handoff(rt, &h->t);
}

}  // namespace kcont::detail
