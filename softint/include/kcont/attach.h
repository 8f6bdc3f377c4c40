// Attach mode: kcont's CPUs served by a loop the server already runs.
//
//   boost::asio::io_context ioc;
//   kcont::runtime rt(kcont::attached(ioc));      // 1 CPU on ioc; no thread is created
//   ... softints, callouts, wq_soft* continuations now run inside ioc.run() ...
//   ioc.run();                                    // on as many server threads as it likes
//
// Semantics:
// - Every CPU of an attached runtime is served by the one loop given (ncpu of them, default
//   1). Handlers of one CPU are serialised (Asio: each CPU has its own strand, so a CPU never
//   runs on two server threads at once; libevent: an event_base runs on one thread anyway).
//   While a CPU's work runs, curcpu() is that CPU and in_interrupt_context() is true; the
//   server's other handlers are foreign threads to kcont (curcpu() = sched_getcpu() % ncpu).
// - kcont creates no loop thread for attached CPUs. Thread-context work (workqueue(9),
//   task(9), the wq_pri* kcont queues) still runs on the worker engine's threads.
// - While the runtime is running, kcont keeps one wait outstanding on the loop (an eventfd it
//   uses to wake the CPU), so io_context::run() / event_base_dispatch() does not return for
//   lack of work: end the loop explicitly (io_context::stop(), event_base_loopbreak()), or
//   stop the runtime (stop() removes kcont's waits; the loop then ends when the server's own
//   work does).
// - start()/stop() create and join no thread. stop() asks each CPU to drain through its loop
//   and waits up to drain_timeout. Called from a thread that is running the loop (Asio:
//   io_context::get_executor().running_in_this_thread(); libevent: the thread that last ran
//   the CPU's events) it drains inline on the caller instead of waiting for itself. If the
//   loop does not serve a CPU in time (the server stopped its loop, or it returned), stop()
//   gives up on it: stop_report::attached_unserved counts such CPUs and left_pending their
//   softints. That work is parked, not lost: runtime::drain_attached() runs it on the
//   caller's thread, or start() hands the CPUs back to the loop, which runs it when it runs.
// - The loop must outlive the runtime (destroy the runtime first). libevent: a base is not
//   thread-safe unless the server enabled locking (evthread_use_pthreads() before creating
//   it), so create, start, stop and destroy the attached runtime from the base's own thread
//   or while the base is not running. Asio io_contexts are thread-safe: any thread.
#pragma once

#include <kcont/runtime.h>

namespace boost::asio {
class io_context;
}
struct event_base;

namespace kcont {

inline attach_target attach_to(boost::asio::io_context& ioc) {
  return attach_target{attach_target::kind::asio_io_context, static_cast<void*>(&ioc)};
}
// Throws std::invalid_argument (when the runtime is created) if this kcont was built without
// libevent.
inline attach_target attach_to(event_base* base) {
  return attach_target{attach_target::kind::libevent_base, static_cast<void*>(base)};
}

// A configuration from the environment (hz, drain_timeout, ...) with `ncpu` CPUs attached to
// the server's loop.
inline runtime_config attached(boost::asio::io_context& ioc, unsigned ncpu = 1) {
  runtime_config c = runtime_config::from_env();
  c.ncpu = ncpu;
  c.attach = attach_to(ioc);
  return c;
}
inline runtime_config attached(event_base* base, unsigned ncpu = 1) {
  runtime_config c = runtime_config::from_env();
  c.ncpu = ncpu;
  c.attach = attach_to(base);
  return c;
}

}  // namespace kcont
