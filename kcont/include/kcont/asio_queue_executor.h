// An Asio executor onto a kcont queue of one runtime (asio::post, asio::dispatch, asio::defer,
// asio::co_spawn): kcont::queue_executor(rt, wq[, ci]) runs each function object once at the
// queue's level on CPU ci (nullptr: the submitting thread's CPU at each submission), in softint
// context on that CPU's loop for the soft queues (wq_softserial ... wq_softclock), on a worker
// for the thread queues (wq_prihigh ... wq_prilow) and acquired ones. Never inline (blocking.
// never: dispatch is post). Function objects take turns with the queue's continuations, as
// kcont::on(wq) hops do (kcont_hop, <kcont/kcont.h>); on the soft queues in attach mode they add
// no thread. Each is moved into one heap block (as Asio does for a handler), freed before it
// runs. One that throws is reported under the runtime's exception policy, as any kcont handler.
// A submission that cannot be queued (ENOENT: a CPU on a queue without per-CPU queues; EAGAIN:
// the runtime's queues cannot be made) throws std::system_error from execute().
#pragma once

#include <kcont/asio_executors.h>
#include <kcont/kcont.h>
#include <kcont/runtime.h>

#include <memory>
#include <system_error>
#include <type_traits>
#include <utility>

namespace kcont {
namespace detail {

// A hop that owns a function object and frees itself before calling it.
template <class F>
struct owned_hop {
  kcont_hop hop;
  F f;
  explicit owned_hop(F&& fn) : f(std::move(fn)) {
    hop.fn = &owned_hop::run;
    hop.arg = this;
  }
  static void run(void* self) {
    std::unique_ptr<owned_hop> p(static_cast<owned_hop*>(self));
    kcont_hop_done(&p->hop, true);
    F fn(std::move(p->f));
    p.reset();
    fn();
  }
};

}  // namespace detail

class queue_executor : public detail::executor_base<true> {
 public:
  queue_executor(runtime& rt, kcont_wq_t* wq, cpu_info* ci = nullptr) noexcept
      : rt_(&rt), wq_(wq), ci_(ci) {}

  queue_executor require(boost::asio::execution::blocking_t::never_t) const noexcept {
    return *this;
  }

  template <class F>
  void execute(F&& f) const {
    using D = std::decay_t<F>;
    auto h = std::make_unique<detail::owned_hop<D>>(D(std::forward<F>(f)));
    if (int e = detail::kcont_hop_schedule(&h->hop, *rt_, wq_, ci_); e != 0)
      throw std::system_error(e, std::generic_category(), "kcont::queue_executor");
    h.release();  // the hop's now: run() frees it
  }

  runtime& context_runtime() const noexcept { return *rt_; }
  kcont_wq_t* queue() const noexcept { return wq_; }
  cpu_info* cpu() const noexcept { return ci_; }
  friend bool operator==(const queue_executor& a, const queue_executor& b) noexcept {
    return a.rt_ == b.rt_ && a.wq_ == b.wq_ && a.ci_ == b.ci_;
  }
  friend bool operator!=(const queue_executor& a, const queue_executor& b) noexcept {
    return !(a == b);
  }

 private:
  runtime* rt_;
  kcont_wq_t* wq_;
  cpu_info* ci_;
};

}  // namespace kcont
