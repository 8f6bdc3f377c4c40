// The loop backend: how one CPU loop thread waits. Deliberately small, so that another event
// library (libevent) or a loop the server already runs (attach mode) can stand in for Asio.
//
// The backend calls cpu_dispatch(ci, reason) on the loop thread whenever it was woken or its
// deadline passed; cpu_dispatch runs the pending work, arms the next deadline through
// set_deadline() and returns, after which the backend blocks again.
#pragma once

#include <cstdint>
#include <memory>

struct cpu_info;

namespace kcont::detail {

enum class wake_reason { start, woken, deadline };

inline constexpr std::int64_t no_deadline = INT64_MAX;

class loop_backend {
 public:
  virtual ~loop_backend() = default;
  // Any thread: make the loop call cpu_dispatch soon. Called at most once per sleep (see the
  // wake-up protocol in cpu.h), so it may make a system call.
  virtual void wake() noexcept = 0;
  // Loop thread: call cpu_dispatch(deadline) once steady_clock reaches `ns` (nanoseconds since
  // the steady_clock epoch), unless woken earlier; no_deadline cancels.
  virtual void set_deadline(std::int64_t ns) = 0;
  // Loop thread: dispatch once (wake_reason::start), then serve wakes and deadlines until stop().
  virtual void run() = 0;
  // Loop thread, from inside cpu_dispatch: make run() return.
  virtual void stop() = 0;
};

void cpu_dispatch(cpu_info* ci, wake_reason reason);

std::unique_ptr<loop_backend> make_asio_backend(cpu_info* ci);
#ifdef KCONT_HAVE_LIBEVENT
std::unique_ptr<loop_backend> make_libevent_backend(cpu_info* ci);
#endif

}  // namespace kcont::detail
