// The machine: a runtime of `ncpu` virtual CPUs, each one loop thread.
//
// A virtual CPU runs, in strict priority order, hard-interrupt handlers, softints
// (SERIAL > NET > BIO > CLOCK) and clock processing; code running there is "interrupt
// context" and must not block. Everything else in kcont stands on this layer.
//
// Kernel-style calls (softint_establish, callout_init, ...) act on runtime::current(): the
// runtime of the calling CPU thread, else the one a runtime_scope installed on this thread,
// else the lazily started default runtime.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

struct cpu_info;  // one virtual CPU (kernel name); opaque outside the machine layer

namespace kcont {

using clock = std::chrono::steady_clock;

enum class backend_kind { asio, libevent };

// Parses "asio" / "libevent"; returns false for anything else.
bool parse_backend(const std::string& name, backend_kind& out);
const char* backend_name(backend_kind kind);
bool backend_available(backend_kind kind);  // libevent: only if built with libevent

// Attach mode (see <kcont/attach.h>, which makes these): the runtime's CPUs are served by a
// loop the server already runs on its own threads, and kcont creates no loop thread for them.
struct attach_target {
  enum class kind { none, asio_io_context, libevent_base };
  kind what = kind::none;
  void* loop = nullptr;  // boost::asio::io_context* or event_base*
};

struct runtime_config {
  unsigned ncpu = 0;   // virtual CPUs; 0 means the host's online CPUs (attached: 1)
  unsigned hz = 1000;  // clock ticks per second (callout granularity)
  backend_kind backend = backend_kind::asio;
  bool pin_threads = true;  // set each loop thread's affinity to one host core, where allowed
  // stop(): how long to drain before giving up; saturated (milliseconds::max() never gives up).
  std::chrono::milliseconds drain_timeout{5000};
  // The 32-bit tick counter's value at creation. Set near 2^32 to exercise wrap-around.
  std::uint32_t initial_ticks = 0;
  // Attach mode: every CPU of the runtime is served by this loop (backend and pin_threads are
  // then ignored). Default: kcont runs one loop thread per CPU.
  attach_target attach;
  // A manual clock, for tests and fuzzers: the runtime's time (callouts, ticks) stands still
  // at its creation until advance_clock() moves it; no real timer is armed.
  bool manual_clock = false;
  // Spin-then-park (off by default): a CPU loop or a worker thread that has just run work
  // polls for more for up to this long before it sleeps, so work that follows within the
  // window starts without a wake-up (no system call on either side) at the price of that much
  // CPU time per burst. 0: sleep at once. CPU loops ignore it in attach mode (the server's
  // thread must not spin) and with a manual clock. At most 10 ms.
  std::chrono::microseconds spin_before_sleep{0};
  // Publish the runtime's statistics for kcont-stat(1) in a shared-memory segment
  // (/dev/shm/kcont.<pid>, removed when the runtime is destroyed; see <kcont/stats_segment.h>).
  // A thread that sleeps until a reader asks: no cost while nobody reads. Off by default.
  bool export_stats = false;
  // Sample each queue's wait and run times (<kcont/queue_stats.h>): one task in 64 is timed on
  // the time-stamp counter. Off by default; export_stats turns it on.
  bool queue_timing = false;
  // Turns on the process-wide stuck-handler watchdog (<kcont/watchdog.h>) with this threshold
  // when the runtime is made: a handler running longer is reported once. 0 (the default)
  // leaves the watchdog as it is; otherwise 1 ms .. 24 h.
  std::chrono::milliseconds stuck_handler_threshold{0};
  // The worker engine (taskqs, workqueue(9), kcont thread queues). A worker of an elastic queue
  // (WQ_ELASTIC, the kcont thread queues) found asleep inside one task for about this long
  // (between half of it and all of it) while work waits behind it, in read(2), a std::mutex, a
  // condition variable, sleep_for or anything else, counts as blocked: another worker serves
  // the queue meanwhile. 0 turns that watch off (kcont's own blocking points still count).
  // 0 or 20 us .. 10 s.
  std::chrono::microseconds blocking_threshold{1000};
  // The blocking watch's idle probe (off by default): a thread per CPU in the idle scheduling
  // class (SCHED_IDLE), which Linux runs only when that CPU has nothing else to run, polls
  // while work waits behind a busy elastic worker of that CPU. A worker it finds asleep for
  // 5 us counts as blocked then (about 30 us after it fell asleep), as the scheduler tells Linux's
  // cmwq, instead of after half to all of blocking_threshold. The price: while work waits behind a
  // sleeper, that CPU's idle time goes to polling instead of sleeping (it never takes time from a
  // runnable thread, and nothing polls when no work waits). Needs pin_threads and the watch
  // (threshold > 0).
  bool blocking_probe = false;
  // Workers an elastic queue meant to run one task at a time may have at once, blocked ones
  // included (1..1024); a taskq of n > 1 threads (elastic too) may have n - 1 more.
  unsigned elastic_max_active = 16;
  // Worker threads of the whole runtime at most (1..65536); work beyond waits, never lost.
  unsigned max_workers = 4096;
  // An idle worker exits after this long without work; each pool keeps its last idle one.
  // 1 ms .. 24 h.
  std::chrono::milliseconds worker_idle_timeout{10000};

  // Defaults overridden by KCONT_NCPU (0..1024), KCONT_HZ (1..100000), KCONT_BACKEND
  // (asio, libevent), KCONT_PIN (0/1), KCONT_INITIAL_TICKS (0..4294967295), KCONT_SPIN_US
  // (0..10000), KCONT_STATS (0/1: export_stats), KCONT_WATCHDOG_MS (0..86400000:
  // stuck_handler_threshold), KCONT_BLOCKING_US (0 or 20..10000000: blocking_threshold),
  // KCONT_BLOCKING_PROBE (0/1: blocking_probe), KCONT_ELASTIC_MAX (1..1024), KCONT_MAX_WORKERS
  // (1..65536), KCONT_WORKER_IDLE_MS (1..86400000: worker_idle_timeout); numbers are plain decimal
  // digits. An unset or empty variable keeps the default. Any other value throws
  // std::invalid_argument naming the variable and its range (never wrapped or ignored). The lazily
  // started default runtime lets it out of the call that started it (curcpu(), softint_establish,
  // ...): uncaught, the program ends with that message and SIGABRT.
  static runtime_config from_env();
};

// What stop() found. Work that was still queued when the drain gave up is parked, not lost:
// it runs if the runtime is started again and is counted by pending_work().
struct stop_report {
  bool drained = true;                 // every CPU went quiet within drain_timeout
  std::uint64_t ran_during_drain = 0;  // handlers run after stop() was called
  std::uint64_t left_pending = 0;      // softint instances still pending when the CPUs stopped
  // Attach mode: CPUs whose loop did not serve the drain within drain_timeout (the server was
  // not running its loop). Their work is parked: drain_attached() or start() runs it.
  unsigned attached_unserved = 0;
  std::string summary() const;
};

struct runtime_stats {
  std::uint64_t handlers_run = 0;   // softint / interrupt handler invocations
  std::uint64_t wakeups = 0;        // times a sleeping CPU loop was woken by another thread
  std::uint64_t loop_sleeps = 0;    // times a CPU loop went to sleep
  std::uint64_t timer_wakeups = 0;  // times a CPU loop woke for its clock deadline
  unsigned pinned_cpus = 0;         // loop threads whose affinity could be set
  // Spin-then-park (runtime_config::spin_before_sleep): windows in which work came (no sleep,
  // no wake-up) and windows that ran out (the loop then slept).
  std::uint64_t spin_hits = 0, spin_misses = 0;
};

// One virtual CPU's loop (runtime::cpu_stats). Counters only grow; each is read on its own
// (relaxed), so a snapshot taken while the CPU runs is not one instant.
struct cpu_loop_stats {
  std::uint64_t hard_interrupts = 0;  // simulated hard-interrupt handlers run
  std::uint64_t softint_serial = 0, softint_net = 0, softint_bio = 0, softint_clock = 0;
  std::uint64_t wakeups = 0;        // woken by another thread while asleep
  std::uint64_t loop_sleeps = 0;    // times it went to sleep
  std::uint64_t timer_wakeups = 0;  // times it woke for its clock deadline
  std::uint64_t spin_hits = 0, spin_misses = 0;
  // Time awake (running handlers and clock processing, spinning, looking for work), from one
  // clock read when the loop wakes and one when it sleeps.
  std::uint64_t awake_ns = 0;
  bool pinned = false;  // its loop thread's affinity could be set
};

namespace detail {
class runtime_impl;
}

class runtime {
 public:
  // Creates and starts the runtime. Throws std::system_error if a loop thread cannot start,
  // std::invalid_argument for a bad config (hz 0 or > 100000, ncpu > 1024, a backend this
  // build lacks).
  explicit runtime(runtime_config config = runtime_config::from_env());
  ~runtime();  // stops (draining) if running
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  // Starts the CPU loops again after stop(). Parked work runs. No-op when running.
  void start();
  // Drains every CPU (runs queued work until quiet or drain_timeout) and joins the loops
  // (attach mode: no threads; see <kcont/attach.h> for a loop that does not serve the drain).
  // Must not be called from one of this runtime's own threads (asserts).
  stop_report stop();
  bool running() const;

  unsigned ncpu() const;
  unsigned hz() const;
  const runtime_config& config() const;
  cpu_info* cpu(unsigned index) const;  // nullptr when index >= ncpu()
  runtime_stats stats() const;
  // One CPU's figures; std::out_of_range when index >= ncpu(). Any thread; never stops a CPU.
  cpu_loop_stats cpu_stats(unsigned index) const;
  // The exported statistics' segment ("/dev/shm/kcont.<pid>"); empty when not exporting.
  std::string stats_segment_path() const;
  // Softint instances parked on stopped CPUs (queued, not started). A running CPU's queue
  // belongs to its loop thread and is not counted.
  std::uint64_t pending_work() const;

  // Attach mode (<kcont/attach.h>). True when the CPUs are served by the server's loop.
  bool attached() const;
  // Runs, on the calling thread and as each attached CPU in turn (curcpu() is that CPU,
  // in_interrupt_context() is true inside the handlers), every pending softint (kcont soft
  // queues included) and every callout already due, until the CPU is quiet; returns how many
  // handlers ran. For a server whose loop has stopped (io_context::run() returned, the
  // event_base loop exited) or after stop() reported attached_unserved CPUs: nothing parked
  // is lost. Works on a running or stopped runtime (on a running one it holds each CPU for
  // the while; the loop's own dispatch waits). Callouts due later stay armed. Throws
  // std::logic_error on a runtime that is not attached or from one of its CPUs' handlers.
  std::uint64_t drain_attached();

  // Manual clock only (else std::logic_error): moves the runtime's time forward by `d` and
  // wakes the CPUs whose clock work has come due; they run it asynchronously.
  void advance_clock(std::chrono::nanoseconds d);
  // True when every CPU is asleep with no work queued and no clock work due: with a manual
  // clock nothing more happens on the CPUs until someone schedules or advances the clock.
  // (Worker-engine threads are not covered.)
  bool quiescent() const;

  // The runtime kernel-style calls act on from this thread (see the file comment).
  static runtime& current();
  // The process-wide default runtime, started on first use with runtime_config::from_env()
  // and stopped at exit.
  static runtime& default_runtime();

  detail::runtime_impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<detail::runtime_impl> impl_;
};

// Makes `rt` the runtime kernel-style calls on this thread act on, until destroyed.
class runtime_scope {
 public:
  explicit runtime_scope(runtime& rt);
  ~runtime_scope();
  runtime_scope(const runtime_scope&) = delete;
  runtime_scope& operator=(const runtime_scope&) = delete;

 private:
  runtime* previous_;
};

// True on one of a runtime's CPU loop threads (interrupt/softint context: do not block).
bool in_interrupt_context();

}  // namespace kcont

// Kernel-style CPU access.
cpu_info* curcpu();  // this thread's CPU (foreign threads: sched_getcpu() % ncpu)
unsigned cpu_index(const cpu_info* ci);
cpu_info* cpu_lookup(unsigned index);  // in runtime::current(); nullptr when out of range
unsigned kcont_ncpu();                 // runtime::current().ncpu()

// The big kernel lock (KERNEL_LOCK): handlers established without an MPSAFE flag run holding
// it, as in the kernels. Recursive.
void kernel_lock();
void kernel_unlock();

namespace kcont {

// What kcont does when a handler it runs (softint, callout, task of a taskq or taskctx,
// workqueue item, kcont func, a function posted through the Asio executors) exits with an
// exception. One policy for every kind:
//   report (default): the exception is reported once on stderr, naming the handler kind, its
//     queue and function, and the handler is abandoned as if it had returned: whatever kcont
//     held for it is released (the kernel lock, a taskctx, a kcont's lock and INVOKING, the
//     worker) and the queue goes on with its next work.
//   abort: the same report, then std::abort() (for those who prefer a core dump).
// Process-wide; the environment variable KCONT_ON_EXCEPTION=report|abort sets it at the first
// report (anything else is refused with a message and abort). set_exception_policy overrides.
enum class exception_policy { report, abort };
void set_exception_policy(exception_policy policy);
exception_policy current_exception_policy();
// How many handler exceptions have been reported in this process.
std::uint64_t handler_exceptions();

}  // namespace kcont
