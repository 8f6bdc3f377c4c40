// fd readiness watches (machine_hooks.h): the part shared by the loop backends.
//
// A watch has a backend half (watch_io: an Asio descriptor wait or a libevent EV_READ event)
// and a private service softint on its CPU (lowest level, MPSAFE). fd_watch_resume and
// unwatch_fd from other threads reach the CPU by scheduling that softint, so they use the
// CPU's pending/kick protocol: no allocation, and a system call only to wake a sleeping loop.
// The service handler arms the backend half, reports data already sitting, or closes it.
//
// Locks used to protect the fields of fd_watch:
//   [I] set by watch_fd before the watch is returned
//   [a] atomic
//   [C] the watch's CPU only (its loop thread, or the server thread serving it)
//   [m] the runtime's state_mu
#pragma once

#include "loop_backend.h"

#include <atomic>

namespace kcont::machine {

struct fd_watch {
  cpu_info* ci = nullptr;            // [I]
  int fd = -1;                       // [I] kcont's dup of the caller's fd; closed by io's close()
  void (*fn)(void*) = nullptr;       // [I]
  void* arg = nullptr;               // [I]
  void* service_si = nullptr;        // [I] the service softint
  std::atomic<bool> paused{false};   // [a]
  std::atomic<bool> closing{false};  // [a]
  // [a] unwatch_fd from another thread asks the service softint to close it; set, and the
  // softint scheduled, under rt->state_mu, which the service's softint_disestablish takes: so
  // the softint cannot be retired between the request and the schedule (it once was: a stale
  // cookie abort in test_nic_tap's down/up loop under TSan).
  std::atomic<bool> close_asked{false};
  bool closed = false;                   // [m] the CPU has closed it
  bool in_callback = false;              // [C] fn is running
  bool free_on_return = false;           // [C] unwatched from inside fn
  std::unique_ptr<detail::watch_io> io;  // [I] made by watch_fd, used [C]
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
