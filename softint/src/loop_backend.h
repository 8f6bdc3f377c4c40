// The loop backend: how one CPU loop thread waits. Deliberately small, so that another event
// library (libevent) or a loop the server already runs (attach mode) can stand in for Asio.
//
// The backend calls cpu_dispatch(ci, reason) on the loop thread whenever it was woken or its
// deadline passed; cpu_dispatch runs the pending work, arms the next deadline through
// set_deadline() and returns, after which the backend blocks again.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

struct cpu_info;

namespace kcont::machine {
struct fd_watch;
}

namespace kcont::detail {

// The backend's half of an fd watch (fd_watch.h). Called only as the watch's CPU.
class watch_io {
 public:
  virtual ~watch_io() = default;
  // Unless paused or closing: make sure readiness will be reported, and report data already
  // sitting (no edge is lost).
  virtual void service() = 0;
  // Cancel: no callback after this returns. Called once.
  virtual void close() = 0;
};

enum class wake_reason { start, woken, deadline };

inline constexpr std::int64_t kNoDeadline = INT64_MAX;

class loop_backend {
 public:
  virtual ~loop_backend() = default;
  // Any thread: make the loop call cpu_dispatch soon. Called at most once per sleep (see the
  // wake-up protocol in cpu.h), so it may make a system call.
  virtual void wake() noexcept = 0;
  // Loop thread: call cpu_dispatch(deadline) once steady_clock reaches `ns` (nanoseconds since
  // the steady_clock epoch), unless woken earlier; kNoDeadline cancels.
  virtual void set_deadline(std::int64_t ns) = 0;
  // Loop thread: dispatch once (wake_reason::start), then serve wakes and deadlines until stop().
  virtual void run() = 0;
  // Loop thread, from inside cpu_dispatch: make run() return.
  virtual void stop() = 0;

  // Any thread: the backend half of a new fd watch (registers w->fd with the loop, does not
  // arm it yet).
  virtual std::unique_ptr<watch_io> new_watch(machine::fd_watch* w) = 0;

  // Attach mode. An attached backend's run() returns at once: it makes the server's loop
  // dispatch this CPU soon ("serve it"); stop() ends serving. Whoever holds consumer_lock()
  // is the CPU (the loop's own dispatches hold it); run() and stop() are called holding it.
  virtual bool attached() const { return false; }
  virtual std::mutex* consumer_lock() { return nullptr; }
  // Attached: whether the calling thread is the one running the server's loop (so waiting for
  // the loop would wait for ourselves).
  virtual bool caller_runs_loop() const { return false; }
};

void cpu_dispatch(cpu_info* ci, wake_reason reason);

// loop: nullptr for a loop of the CPU's own (run by its thread); else the server's loop the
// CPU is attached to (boost::asio::io_context* / event_base*).
std::unique_ptr<loop_backend> make_asio_backend(cpu_info* ci, void* attach_loop = nullptr);
#ifdef KCONT_HAVE_LIBEVENT
std::unique_ptr<loop_backend> make_libevent_backend(cpu_info* ci, void* attach_loop = nullptr);
#endif

// cpu_loop.cpp: runs ci's pending handlers and due clock work on the calling thread (which
// must be ci's consumer, with this_thread_cpu() == ci) until nothing is pending or `give_up`
// passes; counts the handlers run. Returns whether ci went quiet.
bool cpu_run_inline(cpu_info* ci, std::int64_t give_up, std::uint64_t& runs);

}  // namespace kcont::detail
