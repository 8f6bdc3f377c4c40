// The engine's blocking watch (see engine.h): finds workers of elastic queues asleep where
// kcont cannot see it, and lets another worker serve their queue meanwhile; and the blocking
// hooks of kcont's own blocking points, which say so at once.
#include "engine_parts.h"
#include "thread_state.h"

#include <kcont/function_workqueue.h>
#include <kcont/internal/thread_setup.h>

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <system_error>

namespace kcont::detail {

void engine::ask_watch() {
  if (watch_on.exchange(true)) return;
  overseer& ov = *static_cast<engine_overseers*>(overseers_)->list[0];
  std::lock_guard<std::mutex> lk(ov.mu);
  ov.watch_asked = true;
  ov.cv.notify_one();
  wake_probes();
}

// watch_mu held: the workers serving an elastic instance, of every pool or of CPU `cpu`'s.
void engine::collect_candidates(std::vector<watch_candidate>& out, int cpu) {
  out.clear();
  for (auto& p : pools_) {
    if (cpu >= 0 && p->cpu != static_cast<unsigned>(cpu)) continue;
    std::lock_guard<std::mutex> pl(p->mu);
    for (worker* w : p->all)
      if (queue_instance* q = w->serving.load(std::memory_order_acquire); q && q->elastic)
        out.push_back({q, w, w->tid, w->cpu_clock, p.get()});
  }
}

namespace {
// q.mu held again after a read of /proc made without it: c's worker's slot, if it is still in
// the task (seq) and unit (phase) it was in before the read; else nullptr.
queue_instance::running_slot* same_task(queue_instance& q, const watch_candidate& c,
                                        std::uint64_t seq, std::uint32_t phase) {
  auto slot =
      std::find_if(q.running.begin(), q.running.end(), [&](const auto& s) { return s.w == c.w; });
  if (slot == q.running.end() || slot->seq != seq ||
      c.w->phase.load(std::memory_order_relaxed) != phase)
    return nullptr;
  return &*slot;
}
}  // namespace

// q.mu (ql) held: the worker of `slot` is asleep; it counts as blocked now and another worker
// may serve q. `since`: when it was first known to be in this task (or unit).
void engine::mark_detected(queue_instance& q, queue_instance::running_slot& slot, pool& p,
                           std::unique_lock<std::mutex>& ql, std::int64_t since,
                           worker** wake_later) {
  slot.blocked = queue_instance::blocked_by::detected;
  slot.detected_ns = steady_ns();
  ++q.blocked;
  p.blocked.fetch_add(1, std::memory_order_relaxed);
  const auto in_task = static_cast<std::uint64_t>(slot.detected_ns - since);
  {
    std::lock_guard<std::mutex> pl(p.mu);
    ++p.detected;
    p.detect_ns_total += in_task;
    p.detect_ns_max = std::max(p.detect_ns_max, in_task);
  }
  want_worker(q, ql, wake_later);
}

bool engine::watch_pass() {
  std::lock_guard<std::mutex> no_instance_freed(watch_mu);
  watch_passes.fetch_add(1, std::memory_order_relaxed);
  if (watch_ == nullptr) watch_ = std::make_unique<engine_watch>();
  collect_candidates(watch_->candidates, -1);
  using bb = queue_instance::blocked_by;
  bool keep = false;
  for (const watch_candidate& c : watch_->candidates) {
    queue_instance& q = *c.q;  // alive: see worker::serving
    std::unique_lock<std::mutex> ql(q.mu);
    auto it =
        std::find_if(q.running.begin(), q.running.end(), [&](const auto& s) { return s.w == c.w; });
    if (it == q.running.end()) continue;  // between tasks, or gone on to another instance
    queue_instance::running_slot* slot = &*it;
    const std::int64_t now = steady_ns();
    // An item that runs units (work_units) counts only inside one, each unit on its own.
    const std::uint32_t phase = c.w->phase.load(std::memory_order_relaxed);
    const bool between_units = (phase & worker::kUnits) && !(phase & worker::kInside);
    const bool same_unit = phase == slot->seen_phase;
    const bool was_detected = slot->blocked == bb::detected;
    if (was_detected && !same_unit) {  // its unit ended: it counts again from the next sample
      slot->blocked = bb::none;
      slot->first_seen_ns = 0;
      --q.blocked;
      c.p->blocked.fetch_sub(1, std::memory_order_relaxed);
      continue;
    }
    if (was_detected && now - slot->detected_ns < blocking_threshold.count()) {
      keep = true;  // asked about again once it has slept a whole threshold since found
      continue;
    }
    if (!was_detected) {
      if (slot->blocked != bb::none || q.work.empty()) continue;  // declared, or nobody waits
      keep = true;
      if (between_units) {
        slot->first_seen_ns = 0;
        continue;
      }
      if (slot->first_seen_ns == 0 || !same_unit) {
        slot->first_seen_ns = now;
        slot->seen_phase = phase;
        continue;
      }
      if (now - slot->first_seen_ns < (blocking_threshold / 2).count()) continue;
    }
    // Ask the kernel, without the instance's lock (enqueuers and its workers never wait for a
    // read of /proc); then act only if the worker is still where it was.
    const std::uint64_t seq = slot->seq;
    ql.unlock();
    const bool asleep = watch_->reader.read(c.tid) == thread_run_state::sleeping;
    ql.lock();
    slot = same_task(q, c, seq, phase);
    if (slot == nullptr || (slot->blocked == bb::detected) != was_detected) continue;
    if (was_detected) {
      if (asleep) {
        keep = true;
        continue;
      }
      slot->blocked = bb::none;  // awake again in the same task: the threshold starts again
      slot->first_seen_ns = now;
      --q.blocked;
      c.p->blocked.fetch_sub(1, std::memory_order_relaxed);
      keep = keep || !q.work.empty();
      continue;
    }
    if (!asleep || slot->blocked != bb::none || q.work.empty()) continue;
    // Time in the task (or, for an item of units, since the unit was first seen).
    mark_detected(q, *slot, *c.p, ql,
                  slot->started_ns != 0 && !(phase & worker::kUnits) ? slot->started_ns
                                                                     : slot->first_seen_ns);
  }
  return keep;
}

// ---- The idle probe (runtime_config::blocking_probe) ----
//
// Linux runs a SCHED_IDLE thread when its CPU has nothing else to run (and a sliver of the
// time otherwise). So while work waits behind a busy elastic worker of CPU c, c's probe polls
// that worker: when the worker goes to sleep, c falls idle, the probe runs at once and finds it
// asleep; asleep and not run for kProbeAsleep (checked in place, in the same task or unit: a
// short lock wait ends sooner), it is blocked, and the worker handed the queue, woken once the
// probe has let go of every lock it needs, preempts the probe at once. The reads are made
// without the instance's lock (enqueuers never wait for them), and each probe keeps instances
// and workers alive with a lock of its own (engine_probes::looking), never the watch's.

namespace {
// How long a worker must stay asleep to count as blocked: a short lock wait ends sooner.
constexpr std::int64_t kProbeAsleep = 2'500;

// Whether candidate c is asleep now and does not run for kProbeAsleep: its state in /proc is
// S or D (not R: SCHED_IDLE still gets a sliver of a busy CPU, so the probe running does not
// prove its worker asleep), and its CPU time has not moved over the window around that read
// (any run at all in between shows, where a second state read could miss it). A clock read
// is a system call of ~1.3 us, a state read 2.5 us: this took 5 us, two state reads 5 us
// apart took 10.
bool stays_asleep(thread_state_reader& reader, const watch_candidate& c) {
  timespec before{}, after{};
  if (c.cpu_clock == -1 || ::clock_gettime(c.cpu_clock, &before) != 0) return false;  // gone
  const std::int64_t from = steady_ns();
  if (reader.read(c.tid) != thread_run_state::sleeping) return false;
  while (steady_ns() - from < kProbeAsleep) {
  }
  if (::clock_gettime(c.cpu_clock, &after) != 0) return false;
  return before.tv_sec == after.tv_sec && before.tv_nsec == after.tv_nsec;
}
}  // namespace

void engine::probe_pass(unsigned cpu, engine_watch& own) {
  std::lock_guard<std::mutex> no_instance_freed(probes_->looking[cpu]);
  collect_candidates(own.candidates, static_cast<int>(cpu));
  auto hint = std::find_if(own.candidates.begin(), own.candidates.end(),
                           [&](const watch_candidate& c) { return c.w == own.handed_last; });
  if (hint != own.candidates.end()) std::iter_swap(own.candidates.begin(), hint);
  for (const watch_candidate& c : own.candidates) {
    queue_instance& q = *c.q;
    std::unique_lock<std::mutex> ql(q.mu);
    auto slot =
        std::find_if(q.running.begin(), q.running.end(), [&](const auto& s) { return s.w == c.w; });
    if (slot == q.running.end() || slot->blocked != queue_instance::blocked_by::none ||
        q.work.empty())
      continue;
    const std::uint32_t phase = c.w->phase.load(std::memory_order_relaxed);
    if ((phase & worker::kUnits) && !(phase & worker::kInside)) continue;  // between units
    const std::uint64_t seq = slot->seq;
    ql.unlock();
    const std::int64_t first = steady_ns();
    if (!stays_asleep(own.reader, c)) continue;
    ql.lock();
    auto* again = same_task(q, c, seq, phase);
    if (again == nullptr || again->blocked != queue_instance::blocked_by::none || q.work.empty())
      continue;  // it moved on meanwhile
    worker* wake = nullptr;
    mark_detected(q, *again, *c.p, ql,
                  again->started_ns != 0 && !(phase & worker::kUnits) ? again->started_ns : first,
                  &wake);
    probe_detections.fetch_add(1, std::memory_order_relaxed);
    ql.unlock();
    // The worker woken runs at once, in the probe's place: with no lock of the probe's in its
    // way. And this pass is over: when the probe runs again, a worker has just fallen asleep
    // (this CPU went idle), and a new pass finds it sooner than the rest of this one would.
    own.handed_last = wake;
    if (wake != nullptr) wake_handed(wake);
    return;
  }
}

namespace {
void probe_main(engine* eng, engine_probes* pr, unsigned cpu) {
  char name[16];
  std::snprintf(name, sizeof name, "kcont/probe%u", cpu);
  internal::name_this_thread(name);
  internal::pin_this_thread(cpu);
  sched_param none{};
  none.sched_priority = 0;
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &none);  // else it would take real time
  engine_watch own;
  std::unique_lock<std::mutex> lk(pr->mu);
  for (;;) {
    pr->cv.wait(lk, [&] { return pr->stopping || eng->watch_on.load(); });
    if (pr->stopping) return;
    lk.unlock();
    while (eng->watch_on.load(std::memory_order_relaxed) &&
           !pr->stop_now.load(std::memory_order_relaxed)) {
      eng->probe_pass(cpu, own);
      sched_yield();
    }
    lk.lock();
  }
}
}  // namespace

void engine::start_probes() {
  if (!probing) return;
  probes_ = std::make_unique<engine_probes>();
  probes_->looking = std::make_unique<std::mutex[]>(rt.ncpu());
  try {
    for (unsigned c = 0; c < rt.ncpu(); ++c)
      probes_->threads.emplace_back(probe_main, this, probes_.get(), c);
  } catch (const std::system_error&) {  // no probe then: the sampled watch still finds sleepers
    stop_probes();
  }
}

void engine::stop_probes() {
  if (!probes_) return;
  {
    std::lock_guard<std::mutex> lk(probes_->mu);
    probes_->stopping = true;
    probes_->stop_now.store(true);
    probes_->cv.notify_all();
  }
  for (auto& t : probes_->threads) t.join();
  probes_->threads.clear();
}

void engine::no_probe_inside() {
  if (!probes_) return;
  for (unsigned c = 0; c < rt.ncpu(); ++c) std::lock_guard<std::mutex> lk(probes_->looking[c]);
}

void engine::worker_gone() {
  { std::lock_guard<std::mutex> no_watch_inside(watch_mu); }
  no_probe_inside();
}

void engine::wake_probes() {
  if (!probes_) return;
  std::lock_guard<std::mutex> lk(probes_->mu);
  probes_->cv.notify_all();
}

namespace {
// q.mu held: the slot of the task this worker thread runs on q.
queue_instance::running_slot& own_slot(queue_instance& q) {
  const auto me = std::this_thread::get_id();
  return *std::find_if(q.running.begin(), q.running.end(),
                       [&](const auto& s) { return s.thread == me; });
}
}  // namespace

work_units::work_units() {
  if (worker* w = tl_serving.w) {
    saved_ = w->phase.load(std::memory_order_relaxed);
    w->phase.store((saved_ & ~worker::kInside) | worker::kUnits, std::memory_order_relaxed);
  }
}
work_units::~work_units() {
  if (worker* w = tl_serving.w) w->phase.store(saved_, std::memory_order_relaxed);
}
work_unit::work_unit() {
  if (worker* w = tl_serving.w) {
    saved_ = w->phase.load(std::memory_order_relaxed);
    w->phase.store((saved_ + worker::kUnitStep) | worker::kInside, std::memory_order_relaxed);
  }
}
work_unit::~work_unit() {
  if (worker* w = tl_serving.w) {
    const std::uint32_t now = w->phase.load(std::memory_order_relaxed);
    w->phase.store((now & ~worker::kInside) | (saved_ & worker::kInside),
                   std::memory_order_relaxed);
  }
}

void worker_blocking_begin() {
  serving_state& st = tl_serving;
  if (st.q == nullptr || st.depth++ != 0) return;
  queue_instance& q = *st.q;
  std::unique_lock<std::mutex> lk(q.mu);
  auto& slot = own_slot(q);
  if (slot.blocked == queue_instance::blocked_by::none) {  // detected already: counted
    ++q.blocked;
    st.p->blocked.fetch_add(1, std::memory_order_relaxed);
  }
  slot.blocked = queue_instance::blocked_by::declared;
  if (q.elastic && !q.work.empty()) q.eng->want_worker(q, lk);
}

void worker_blocking_end() {
  serving_state& st = tl_serving;
  if (st.q == nullptr || --st.depth != 0) return;
  std::lock_guard<std::mutex> lk(st.q->mu);
  own_slot(*st.q).blocked = queue_instance::blocked_by::none;
  --st.q->blocked;
  st.p->blocked.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace kcont::detail
