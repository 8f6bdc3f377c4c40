// fd readiness watches: creation, pause/resume, unwatch (see fd_watch.h and machine_hooks.h).
#include "fd_watch.h"

#include <fcntl.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/internal/misuse.h>
#include <kcont/softint.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <system_error>

#include "runtime_impl.h"

namespace kcont::detail {
namespace {

using machine::fd_watch;

// As the watch's CPU: cancels the backend half, retires the service softint (from its own
// handler or another handler on this CPU: no wait), and frees the watch unless fn is running.
void close_here(fd_watch* w) {
  w->closing.store(true, std::memory_order_seq_cst);
  w->io->close();
  softint_disestablish(w->service_si);
  w->ci->rt->live_watches.fetch_sub(1, std::memory_order_relaxed);
}

// The service softint: runs on the watch's CPU.
void service(void* p) {
  auto* w = static_cast<fd_watch*>(p);
  if (w->close_asked.load(std::memory_order_seq_cst)) {  // unwatch_fd from another thread
    runtime_impl* rt = w->ci->rt;
    close_here(w);
    std::lock_guard<std::mutex> lk(rt->state_mu);
    w->closed = true;  // the waiter frees w once it sees this
    rt->state_cv.notify_all();
    return;
  }
  w->io->service();
}

[[noreturn]] void misuse(const char* what) {
  kcont::internal::misuse("fd watch", what);
}

}  // namespace

bool watch_call(fd_watch* w) {
  w->in_callback = true;
  w->fn(w->arg);
  w->in_callback = false;
  if (w->free_on_return) {
    delete w;
    return false;
  }
  return true;
}

void watch_service_later(fd_watch* w) {
  softint_schedule_cpu(w->service_si, w->ci);
}

}  // namespace kcont::detail

namespace kcont::machine {

fd_watch* watch_fd(cpu_info* ci, int fd, void (*fn)(void*), void* arg) {
  using namespace kcont::detail;
  if (ci == nullptr || fn == nullptr)
    throw std::invalid_argument("kcont: watch_fd needs a CPU and a function");
  runtime_impl* rt = ci->rt;
  if (!rt->running())
    throw std::logic_error(
        "kcont: watch_fd on a stopped runtime (a watch belongs to a running runtime)");
  int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) throw std::system_error(errno, std::generic_category(), "kcont: watch_fd");
  auto w = std::make_unique<fd_watch>();
  w->ci = ci;
  w->fd = dup;
  w->fn = fn;
  w->arg = arg;
  try {
    w->io = ci->backend->new_watch(w.get());  // owns dup from here on
  } catch (...) {
    ::close(dup);
    throw;
  }
  w->service_si =
      softint_establish_rt(*rt->face, SOFTINT_CLOCK | SOFTINT_MPSAFE, &service, w.get());
  if (w->service_si == nullptr) throw std::bad_alloc();
  rt->live_watches.fetch_add(1, std::memory_order_relaxed);
  fd_watch* raw = w.release();
  softint_schedule_cpu(raw->service_si, ci);  // the CPU arms it
  return raw;
}

void fd_watch_pause(fd_watch* w) {
  if (w == nullptr) kcont::detail::misuse("fd_watch_pause(NULL)");
  w->paused.store(true, std::memory_order_seq_cst);
}

void fd_watch_resume(fd_watch* w) {
  if (w == nullptr) kcont::detail::misuse("fd_watch_resume(NULL)");
  w->paused.store(false, std::memory_order_seq_cst);
  softint_schedule_cpu(w->service_si, w->ci);
}

void unwatch_fd(fd_watch* w) {
  using namespace kcont::detail;
  if (w == nullptr) misuse("unwatch_fd(NULL)");
  if (w->closing.exchange(true, std::memory_order_seq_cst)) misuse("unwatch_fd called twice");
  cpu_info* ci = w->ci;
  auto own = [w] {
    close_here(w);
    if (w->in_callback)
      w->free_on_return = true;  // unwatched from fn: freed when fn returns
    else
      delete w;
  };
  if (this_thread_cpu() == ci) return own();
  if (std::mutex* m = ci->backend->consumer_lock()) {
    // Attached CPU: become it for a moment (whether or not the server's loop runs).
    std::lock_guard<std::mutex> lk(*m);
    cpu_info* prev = set_this_thread_cpu(ci);
    own();
    set_this_thread_cpu(prev);
    return;
  }
  runtime_impl* rt = ci->rt;
  std::unique_lock<std::mutex> lk(rt->state_mu);
  w->close_asked.store(true, std::memory_order_seq_cst);
  softint_schedule_cpu(w->service_si, ci);  // the service handler closes it
  rt->state_cv.wait(lk, [w] { return w->closed; });
  lk.unlock();
  delete w;
}

}  // namespace kcont::machine
