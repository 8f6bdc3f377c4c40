// fd readiness watches (machine_hooks.h): the part shared by the loop backends.
//
// A watch has a backend half (watch_io: an Asio descriptor wait or a libevent EV_READ event)
// and a private service softint on its CPU (lowest level, MPSAFE). fd_watch_resume and
// unwatch_fd from other threads reach the CPU by scheduling that softint, so they use the
// CPU's pending/kick protocol: no allocation, and a system call only to wake a sleeping loop.
// The service handler arms the backend half, reports data already sitting, or closes it.
#pragma once

#include "loop_backend.h"

#include <atomic>

namespace kcont::machine {

struct fd_watch {
  cpu_info* ci = nullptr;
  int fd = -1;  // kcont's dup of the caller's fd; closed by the backend half's close()
  void (*fn)(void*) = nullptr;
  void* arg = nullptr;
  void* service_si = nullptr;  // the service softint
  std::atomic<bool> paused{false};
  std::atomic<bool> closing{false};
  bool closed = false;          // under the runtime's state_mu: the CPU has closed it
  bool in_callback = false;     // CPU-private: fn is running
  bool free_on_return = false;  // CPU-private: unwatched from inside fn
  std::unique_ptr<detail::watch_io> io;
};

}  // namespace kcont::machine

namespace kcont::detail {

// As the watch's CPU: calls fn. Returns false if fn unwatched the watch: it is freed and the
// caller must not touch it (nor its watch_io) again.
bool watch_call(machine::fd_watch* w);
// As the watch's CPU: asks for another service pass after the softints now pending (the Asio
// half uses it to look again for data fn left unread).
void watch_service_later(machine::fd_watch* w);

}  // namespace kcont::detail
