// Services the machine layer offers to kcont's higher layers (callout, workqueue, kcont, net).
// A lower layer never includes a higher one: where the machine needs a higher layer (the CPU
// loop must know when the next callout is due) the higher layer registers a hook here.
// Not meant for applications.
#pragma once

#include <kcont/internal/handler_watch.h>
#include <kcont/stats_segment.h>

#include <kcont/mutex.h>
#include <kcont/runtime.h>

#include <cstddef>
#include <cstdint>

namespace kcont::machine {

// Called on a CPU's loop thread when the time it asked for with request_clock has come.
using clock_hook = void (*)(cpu_info* ci, std::int64_t now_ns);

// One clock hook per runtime (the callout layer's). Set it before the first request_clock.
void set_clock_hook(runtime& rt, clock_hook hook);

// Any thread: make ci's loop call the clock hook once steady_clock reaches `ns`. Keeps the
// earliest of several requests; wakes the loop only if it sleeps past `ns`. The loop clears
// its request before calling the hook, so the hook must ask again for its next time.
void request_clock(cpu_info* ci, std::int64_t ns);

runtime& runtime_of(const cpu_info* ci);
// The CPU whose loop thread this is, or nullptr on any other thread (unlike curcpu(), which
// also answers for foreign threads).
cpu_info* this_thread_cpu();
// curcpu() within `rt`, whatever runtime::current() is on this thread.
cpu_info* current_cpu(runtime& rt);
std::int64_t now_ns();               // steady_clock, nanoseconds since its epoch
std::int64_t epoch_ns(runtime& rt);  // when the runtime was created: its tick 0
// The runtime's time (steady_clock, or its manual clock): what callouts and ticks count.
std::int64_t clock_ns(runtime& rt);

// Called around a blocking wait in the machine layer (a contended kmutex_t), so that the
// worker engine can let another worker run while this one sleeps. Process-wide; set once.
void set_blocking_hooks(void (*begin)(), void (*end)());
void blocking_begin();  // calls this thread's observer and the hooks, where set
void blocking_end();

// This thread's observer of blocking points, told (before the process-wide hook) when code
// it runs is about to sleep. The kcont layer sets it around a thread-queue continuation so
// that lower-priority queues of that CPU may run while it sleeps. Returns the previous one.
struct block_observer {
  void (*begin)(void* arg) = nullptr;
  void* arg = nullptr;
};
block_observer set_thread_block_observer(block_observer observer);

// fd readiness (the NIC simulator's tap RX). ci's loop calls fn(arg) in interrupt context, as a
// hard interrupt, whenever fd is readable and the watch is not paused, then dispatches pending
// softints as usual. Level-triggered: while data sits, fn is called again (after the softints
// it scheduled have run). fn may be called when a read would find nothing: use a non-blocking
// fd. kcont watches a dup of fd (closed by unwatch_fd); the caller keeps its own fd.
//   watch_fd:        any thread; ci's runtime must be running (else std::logic_error); a bad
//                    fd throws std::system_error. Allocates (not a hot path).
//   fd_watch_pause:  any thread; one atomic store. From ci's own thread (e.g. inside fn) no
//                    callback starts after it returns; from another thread a callback already
//                    under way may still run once.
//   fd_watch_resume: any thread; no allocation and no system call unless ci's loop sleeps and
//                    must be woken (the CPU's pending/kick protocol). Data that sat while paused
//                    is seen at once (no readiness edge is lost).
//   unwatch_fd:      returns only when fn is not running and will never run again; from ci's
//                    own thread (even from fn) at once, from another thread after the loop
//                    acknowledged. Frees the watch.
// A watch belongs to a running runtime: stopping a runtime with live watches aborts with a
// message (unwatch them first).
struct fd_watch;
fd_watch* watch_fd(cpu_info* ci, int fd, void (*fn)(void* arg), void* arg);
void fd_watch_pause(fd_watch* w);
void fd_watch_resume(fd_watch* w);
void unwatch_fd(fd_watch* w);

// Lock waiters: a turnstile for the kcont layer. A continuation whose lock is held elsewhere
// registers a waiter on that kmutex_t; the next mutex_exit of it takes every waiter off and
// calls wake(arg) for each. No one polls for a lock.
//   lock_wait:   registers w on m (moving it from another kmutex if need be). The release may
//                have happened just before the registration: try the lock again afterwards
//                (mutex_tryenter); a release after that try is sure to call wake.
//   lock_unwait: takes w off its kmutex if it is on one. On return, wake is not running for
//                w and will not be called until w is registered again.
//   wake runs on the releasing thread, inside mutex_exit, holding an internal lock: it must
//   not block, not take a kmutex_t or any lock ordered before the lock waiters (the kcont
//   queue locks), and not call lock_wait/lock_unwait.
// Lock order: kcont queue lock -> lock-waiter stripe -> the worker engine's locks.
// (struct lock_waiter is in <kcont/mutex.h>: a kmutex_t points to its waiters.)
void lock_wait(kmutex_t* m, lock_waiter* w);
void lock_unwait(lock_waiter* w);
void detail_wake_lock_waiters(kmutex_t* m);  // mutex_exit's slow path

// Per-runtime state of a higher layer: created on first use by `create`, destroyed by
// `destroy` when the runtime is destroyed (after its CPUs have stopped), highest layer first.
enum class layer : unsigned { callout = 0, workqueue, kcont, net, count };
void* layer_state(runtime& rt, layer which, void* (*create)(runtime&), void (*destroy)(void*));
// The layer's state if it has been made, else nullptr (statistics readers: never make it).
void* layer_state_if_made(runtime& rt, layer which);

// A higher layer's part of the exported statistics (<kcont/stats_segment.h>): fills its fields
// of the CPU records (ncpu of them) and pool records (ncpu * 4). Called on the publisher's
// thread while the runtime exists; a layer sets it when its state is made.
using stats_hook = void (*)(runtime& rt, stats_segment::cpu_record* cpus,
                            stats_segment::pool_record* pools);
void set_stats_hook(runtime& rt, layer which, stats_hook fn);

}  // namespace kcont::machine

namespace kcont::machine {

// The exception policy (see <kcont/runtime.h>): called from a catch block around a handler;
// reports std::current_exception() once with `kind` ("softint", "callout", "taskq task", ...),
// `queue` (a name, or nullptr) and `fn` (the handler's function, named with dladdr), then
// returns, or aborts under exception_policy::abort.
void handler_threw(const char* kind, const char* queue, const void* fn) noexcept;

// Writes "symbol+0xoff (module)" (dladdr, demangled), or the bare address, for fn into buf.
void describe_function(const void* fn, char* buf, std::size_t size) noexcept;

// A function pointer as the address handler_threw names.
template <class R, class... A>
const void* code_address(R (*fn)(A...)) noexcept {
  return reinterpret_cast<const void*>(fn);
}

// Runs f(); if it throws, applies the policy and returns false. The stuck-handler watchdog
// (handler_watch.h) sees it running meanwhile.
template <class F>
bool run_handler(const char* kind, const char* queue, const void* fn, F&& f) noexcept {
  const watch_frame frame = watch_enter(kind, queue, fn);
  bool returned = true;
  try {
    f();
  } catch (...) {
    handler_threw(kind, queue, fn);
    returned = false;
  }
  watch_leave(frame);
  return returned;
}

}  // namespace kcont::machine
