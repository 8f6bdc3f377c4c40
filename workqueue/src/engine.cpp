// The pooled per-CPU worker engine: pools, workers and overseers (see engine.h).
#include "engine.h"
#include "engine_parts.h"
#include "task_flags.h"

#include <kcont/internal/lockdebug.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/internal/spin.h>
#include <kcont/internal/thread_setup.h>

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <exception>
#include <system_error>

namespace kcont::detail {

thread_local serving_state tl_serving;

namespace {

const char* const kPriorityName[kPriorities] = {"hi", "mh", "ml", "lo"};
const int kNice[kPriorities] = {0, 1, 3, 6};  // raising niceness needs no privilege
}  // namespace

namespace {

// A barrier's marker in a work list (instance_barrier). Never run: whoever takes it off the
// list records how many tasks had been taken before it.
struct barrier_marker {
  task t;
  bool passed = false;    // [q.mu] taken off the list
  std::uint64_t seq = 0;  // [q.mu] q.started when it was taken
};
void marker_func(void*) {}

// q.mu held, the marker at the head of q.work: takes it off.
void pass_marker(queue_instance& q) {
  task& t = q.work.front();
  q.work.pop_front();
  t.t_queue = nullptr;
  t.t_flags.fetch_and(~TASK_ONQUEUE);
  auto* m = static_cast<barrier_marker*>(t.t_arg);
  m->passed = true;
  m->seq = q.started;
  q.idle_cv.notify_all();
}
}  // namespace

pool::spawn_result pool::spawn() {
  if (eng.threads.fetch_add(1) >= eng.max_workers) {
    eng.threads.fetch_sub(1);
    eng.bump(&engine_stats::ceiling_refusals);
    return spawn_result::ceiling;
  }
  int f = eng.fail_next_creations.load();
  while (f > 0 && !eng.fail_next_creations.compare_exchange_weak(f, f - 1)) {
  }
  if (f > 0) {
    eng.threads.fetch_sub(1);
    eng.bump(&engine_stats::thread_create_failures);
    return spawn_result::failed;
  }
  auto* w = new worker;
  try {
    std::thread([this, w] { worker_main(w); }).detach();
  } catch (const std::system_error&) {
    delete w;
    eng.threads.fetch_sub(1);
    eng.bump(&engine_stats::thread_create_failures);
    return spawn_result::failed;
  }
  eng.bump(&engine_stats::threads_created);
  return spawn_result::made;
}

void pool::serve(queue_instance& q, worker* w) {
  w->serving.store(&q, std::memory_order_release);
  std::unique_lock<std::mutex> ql(q.mu);
  while (!q.work.empty()) {
    // Elastic: once the blocked workers wake up, the extra ones leave.
    if (q.elastic && q.active > q.blocked + q.target) break;
    task& t = q.work.front();
    if (t.t_func == marker_func) {
      pass_marker(q);
      continue;
    }
    q.work.pop_front();
    // Work waits behind this task: should it sleep, the watch must be there to see it.
    if (q.elastic && !q.work.empty() && eng.watches() &&
        !eng.watch_on.load(std::memory_order_relaxed))
      eng.ask_watch();
    const std::uint64_t timed_from = q.counters.started(&t);
    void (*fn)(void*) = t.t_func;  // copied: the task may be re-added or freed while it runs
    void* arg = t.t_arg;
    t.t_queue = nullptr;
    t.t_flags.fetch_and(~TASK_ONQUEUE);
    const std::uint64_t id = ++q.started;
    // Its start time only while the watch runs (a clock read per task otherwise for nothing).
    const std::int64_t started_ns =
        q.elastic && eng.watch_on.load(std::memory_order_relaxed) ? steady_ns() : 0;
    q.running.push_back({w, std::this_thread::get_id(), &t, id, false,
                         queue_instance::blocked_by::none, started_ns, 0, 0});
    ql.unlock();
    tl_serving.q = &q;
    tl_serving.w = w;
    tl_serving.p = this;
    if (!q.mpsafe) kernel_lock();
    {
      kcont::lockdebug::handler_scope by_queue(q.owner);
      kcont::lockdebug::handler_scope by_task(&t);
      machine::run_handler("taskq task", q.name, machine::code_address(fn), [fn, arg] { fn(arg); });
    }
    if (!q.mpsafe) kernel_unlock();
    tl_serving.q = nullptr;
    tl_serving.w = nullptr;
    ql.lock();
    auto it = std::find_if(q.running.begin(), q.running.end(),
                           [&](const auto& s) { return s.seq == id; });
    if (it->blocked == queue_instance::blocked_by::detected) {  // it woke and finished
      --q.blocked;
      blocked.fetch_sub(1, std::memory_order_relaxed);
    }
    q.running.erase(it);
    ++q.finished_runs;
    q.counters.finished(timed_from);
    q.idle_cv.notify_all();
  }
  w->serving.store(nullptr, std::memory_order_release);
  --q.active;
  q.idle_cv.notify_all();
}

void pool::worker_main(worker* w) {
  // Kernel-style calls made by the work this thread runs (kpause, curcpu, task_add, ...) act
  // on the runtime the worker belongs to, never on the default runtime.
  runtime_scope scope(eng.rt);
  char name[16];
  std::snprintf(name, sizeof name, "kcont/w%u%s", cpu, kPriorityName[prio]);
  internal::name_this_thread(name);
  internal::note_this_thread_cpu(static_cast<int>(cpu));
  if (eng.rt.config().pin_threads) internal::pin_this_thread(cpu);
  w->tid = static_cast<pid_t>(::syscall(SYS_gettid));
  if (pthread_getcpuclockid(pthread_self(), &w->cpu_clock) != 0) w->cpu_clock = -1;
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(w->tid), kNice[prio]);

  const std::int64_t spin_ns = eng.rt.config().spin_before_sleep.count() * 1000;
  std::unique_lock<std::mutex> lk(mu);
  --starting;
  ++workers;
  ++created;
  all.push_back(w);
  for (;;) {
    if (w->assigned == nullptr && !overflow.empty()) {
      w->assigned = overflow.front();  // its `active` slot was reserved when it queued
      overflow.pop_front();
    }
    if (w->assigned != nullptr) {
      w->handed.store(false, std::memory_order_relaxed);
      auto self = std::find(idle.begin(), idle.end(), w);
      if (self != idle.end()) idle.erase(self);
      if (idle.empty() && !stopping) {  // keep a spare ready for the next instance
        spare_wanted = true;
        call_overseer();
      }
      queue_instance* q = w->assigned;
      lk.unlock();
      serve(*q, w);
      lk.lock();
      w->assigned = nullptr;
      idle.push_back(w);
      if (spin_ns > 0 && !stopping) {  // idle, but work may follow at once: poll a while
        lk.unlock();
        const bool handed = internal::spin_until(
            [w] { return w->handed.load(std::memory_order_acquire); }, spin_ns);
        (handed ? eng.spin_hits : eng.spin_misses).fetch_add(1, std::memory_order_relaxed);
        lk.lock();
      }
      continue;
    }
    if (stopping) break;
    if (std::find(idle.begin(), idle.end(), w) == idle.end()) idle.push_back(w);
    bool woken = w->cv.wait_for(lk, eng.idle_timeout, [&] {
      return w->assigned != nullptr || stopping || !overflow.empty();
    });
    if (!woken && idle.size() > 1) break;  // idle too long, and not the last idle one
  }
  auto self = std::find(idle.begin(), idle.end(), w);
  if (self != idle.end()) idle.erase(self);
  all.erase(std::find(all.begin(), all.end(), w));
  // Out of `idle` and `all`: no one hands it work or finds it any more. One that found it
  // before may still look at it: wait for them while still counted (~engine waits for that).
  lk.unlock();
  eng.worker_gone();
  lk.lock();
  --workers;
  ++exited;
  eng.threads.fetch_sub(1);
  eng.bump(&engine_stats::threads_exited);
  exit_cv.notify_all();
  lk.unlock();
  delete w;
}

namespace {

// Makes the workers pools of its CPU asked for; returns whether a thread could not be made
// for work that waits (then it retries a little later: held work must not wait for the next
// add). A spare refused by the runtime's ceiling is not retried: nothing waits for it.
bool make_workers(const std::vector<pool*>& pools, unsigned wanted) {
  bool retry = false;
  for (pool* p : pools) {
    if ((wanted & (1u << p->prio)) == 0) continue;
    unsigned need;
    {
      std::lock_guard<std::mutex> pl(p->mu);
      unsigned want = static_cast<unsigned>(p->overflow.size()) +
                      (p->spare_wanted && p->idle.empty() ? 1u : 0u);
      need = want > p->starting ? want - p->starting : 0;
      p->starting += need;
      p->spare_wanted = false;
      if (p->stopping) {
        p->starting -= need;
        need = 0;
      }
    }
    for (unsigned i = 0; i < need; ++i) {
      const pool::spawn_result r = p->spawn();
      if (r == pool::spawn_result::made) continue;
      std::lock_guard<std::mutex> pl(p->mu);
      p->starting -= need - i;
      if (r == pool::spawn_result::failed) {
        p->spare_wanted = true;
        retry = true;
      } else if (!p->overflow.empty()) {
        retry = true;  // at the ceiling: a worker that exits makes room
      }
      break;
    }
  }
  return retry;
}

// One overseer per CPU. CPU 0's also runs the blocking watch, sampling every half threshold
// while engine::watch_pass finds something to watch; otherwise it sleeps until asked.
void overseer_main(engine* eng, overseer* ov, std::vector<pool*> pools, bool watcher) {
  const auto period = eng->blocking_threshold / 2;
  bool watching = false;
  std::unique_lock<std::mutex> lk(ov->mu);
  for (;;) {
    auto asked = [&] { return ov->wanted != 0 || ov->stopping || ov->watch_asked; };
    if (watching)
      ov->cv.wait_for(lk, period, asked);
    else
      ov->cv.wait(lk, asked);
    if (ov->stopping) return;
    if (watcher && (watching || ov->watch_asked)) {
      ov->watch_asked = false;
      lk.unlock();
      watching = eng->watch_pass();
      if (!watching) {
        // Off, then one more look: work queued before the store was seen by this pass or
        // by the next; work queued after it asks again.
        eng->watch_on.store(false);
        watching = eng->watch_pass();
        if (watching) {
          eng->watch_on.store(true);
          eng->wake_probes();
        }
      }
      lk.lock();
    }
    const unsigned wanted = ov->wanted;
    ov->wanted = 0;
    if (wanted == 0) continue;
    lk.unlock();
    const bool retry = make_workers(pools, wanted);
    lk.lock();
    if (retry && !ov->stopping) {
      ov->wanted |= wanted;
      ov->cv.wait_for(lk, std::chrono::milliseconds(10), [&] { return ov->stopping; });
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

namespace {
// Stops and joins every overseer whose thread was started.
void stop_overseers(engine_overseers* ovs) {
  for (auto& o : ovs->list) {
    if (!o->thread.joinable()) continue;
    {
      std::lock_guard<std::mutex> lk(o->mu);
      o->stopping = true;
      o->cv.notify_all();
    }
    o->thread.join();
  }
}
}  // namespace

engine::engine(runtime& r)
    : rt(r),
      idle_timeout(r.config().worker_idle_timeout),
      blocking_threshold(r.config().blocking_threshold),
      max_workers(r.config().max_workers),
      probing(r.config().blocking_probe && r.config().pin_threads &&
              r.config().blocking_threshold.count() > 0) {
  static_assert(sizeof(pool) > 0);
  auto* ovs = new engine_overseers;
  for (unsigned c = 0; c < rt.ncpu(); ++c) {
    ovs->list.push_back(std::make_unique<overseer>());
    for (unsigned p = 0; p < kPriorities; ++p)
      pools_.push_back(std::make_unique<pool>(*this, c, p, *ovs->list.back()));
  }
  try {
    for (unsigned c = 0; c < rt.ncpu(); ++c) {
      std::vector<pool*> mine;
      for (unsigned p = 0; p < kPriorities; ++p) mine.push_back(&pool_of(c, p));
      ovs->list[c]->thread =
          std::thread(overseer_main, this, ovs->list[c].get(), mine, c == 0 && watches());
    }
  } catch (...) {  // a thread could not be made: undo, and let the face answer EAGAIN
    stop_overseers(ovs);
    delete ovs;
    throw;
  }
  overseers_ = ovs;
  start_probes();
}

queue_instance::queue_instance(engine& e, unsigned prio, unsigned most_active, bool is_mpsafe,
                               int home, const char* kind, const char* queue_name,
                               const void* queue_owner)
    : eng(&e),
      priority(prio),
      max_active(most_active),
      mpsafe(is_mpsafe),
      home_cpu(home),
      owner(queue_owner),
      name(queue_name),
      counters(internal::queue_timing(e.rt)),
      stats_node(kind, queue_name, home, mu, counters) {
  internal::register_queue(e.rt, stats_node);
}

queue_instance::~queue_instance() {
  { std::lock_guard<std::mutex> no_watch_inside(eng->watch_mu); }
  eng->no_probe_inside();
  internal::unregister_queue(eng->rt, stats_node);
}

queue_instance& engine::handoff_queue() {
  std::call_once(handoff_once_, [this] {
    // One task at a time, medium-high priority: hand-offs keep the order they were made in
    // (a strand's posts run in order; so do a taskctx executor's).
    handoff_ = std::make_unique<queue_instance>(*this, 1, 1, true, -1, "handoff", "kcont hand-off",
                                                nullptr);
  });
  return *handoff_;
}

engine::~engine() {
  if (handoff_) instance_drain(*handoff_);  // its tasks run before the workers stop
  stop_probes();
  auto* ovs = static_cast<engine_overseers*>(overseers_);
  stop_overseers(ovs);
  for (auto& p : pools_) {
    std::unique_lock<std::mutex> lk(p->mu);
    p->stopping = true;
    for (worker* w : p->idle) w->cv.notify_all();
    p->exit_cv.wait(lk, [&] { return p->workers == 0 && p->starting == 0; });
  }
  delete ovs;
}

void engine::want_worker(queue_instance& q, std::unique_lock<std::mutex>&, worker** wake_later) {
  const unsigned limit = q.elastic ? std::min(q.max_active, q.target + q.blocked) : q.max_active;
  if (q.active >= limit) {
    // Work waits behind busy workers: if one of them is asleep, the watch will find it.
    if (q.elastic && limit < q.max_active && watches() && !watch_on.load(std::memory_order_relaxed))
      ask_watch();
    return;
  }
  ++q.active;
  unsigned c =
      q.home_cpu >= 0 ? static_cast<unsigned>(q.home_cpu) : cpu_index(machine::current_cpu(rt));
  pool& p = pool_of(c, q.priority);
  std::lock_guard<std::mutex> lk(p.mu);
  if (!p.idle.empty()) {
    worker* w = p.idle.back();
    p.idle.pop_back();
    w->assigned = &q;
    w->handed.store(true, std::memory_order_release);
    if (wake_later != nullptr) {  // (the worker asks for a spare itself as it takes q)
      *wake_later = w;
      return;
    }
    w->cv.notify_one();  // no system call when it is still polling (no waiter)
    if (p.idle.empty()) {
      p.spare_wanted = true;
      p.call_overseer();
    }
    return;
  }
  p.overflow.push_back(&q);
  p.call_overseer();
}

void engine::wake_handed(worker* w) {
  w->cv.notify_one();
}

void engine::bump(std::uint64_t engine_stats::*field) {
  std::lock_guard<std::mutex> lk(counters_mu_);
  ++(counters_.*field);
}

std::vector<worker_pool_stats> engine::pool_stats() {
  std::vector<worker_pool_stats> v;
  v.reserve(pools_.size());
  for (auto& p : pools_) {
    std::lock_guard<std::mutex> lk(p->mu);
    worker_pool_stats s;
    s.cpu = p->cpu;
    s.priority = p->prio;
    s.workers = p->workers;
    s.idle = static_cast<unsigned>(p->idle.size());
    s.waiting = static_cast<unsigned>(p->overflow.size());
    s.blocked = p->blocked.load(std::memory_order_relaxed);
    s.created = p->created;
    s.exited = p->exited;
    s.blocked_detected = p->detected;
    s.detect_ns_total = p->detect_ns_total;
    s.detect_ns_max = p->detect_ns_max;
    v.push_back(s);
  }
  return v;
}

engine_stats engine::stats() {
  engine_stats s;
  {
    std::lock_guard<std::mutex> lk(counters_mu_);
    s = counters_;
  }
  s.spin_hits = spin_hits.load(std::memory_order_relaxed);
  s.spin_misses = spin_misses.load(std::memory_order_relaxed);
  s.watch_passes = watch_passes.load(std::memory_order_relaxed);
  s.probe_detections = probe_detections.load(std::memory_order_relaxed);
  s.workers_now = 0;
  s.idle_now = 0;
  for (auto& p : pools_) {
    std::lock_guard<std::mutex> lk(p->mu);
    s.workers_now += p->workers;
    s.idle_now += static_cast<unsigned>(p->idle.size());
  }
  return s;
}

bool instance_add(queue_instance& q, task* t) {
  if (t->t_flags.load() & TASK_ONQUEUE) return false;
  std::unique_lock<std::mutex> lk(q.mu);
  if (t->t_flags.load(std::memory_order_relaxed) & TASK_ONQUEUE) return false;
  t->t_flags.fetch_or(TASK_ONQUEUE);
  t->t_queue = &q;
  q.work.push_back(*t);
  q.counters.queued(t);
  q.eng->want_worker(q, lk);
  return true;
}

bool instance_del(queue_instance& q, task* t) {
  if ((t->t_flags.load() & TASK_ONQUEUE) == 0) return false;
  std::lock_guard<std::mutex> lk(q.mu);
  if ((t->t_flags.load(std::memory_order_relaxed) & TASK_ONQUEUE) == 0 || t->t_queue != &q)
    return false;
  q.work.erase(q.work.iterator_to(*t));
  q.counters.withdrawn(t);
  t->t_queue = nullptr;
  t->t_flags.fetch_and(~TASK_ONQUEUE);
  return true;
}

bool instance_wait_not_running(queue_instance& q, const task* t) {
  std::unique_lock<std::mutex> lk(q.mu);
  for (const auto& s : q.running)
    if (s.t == t && s.thread == std::this_thread::get_id()) return false;
  q.idle_cv.wait(lk, [&] {
    return std::none_of(q.running.begin(), q.running.end(),
                        [&](const auto& s) { return s.t == t; });
  });
  return true;
}

bool instance_drain(queue_instance& q) {
  std::unique_lock<std::mutex> lk(q.mu);
  auto idle = [&] { return q.work.empty() && q.active == 0; };
  if (idle()) return false;
  q.idle_cv.wait(lk, idle);
  return true;
}

bool instance_is_mine(queue_instance& q) {
  std::lock_guard<std::mutex> lk(q.mu);
  return std::any_of(q.running.begin(), q.running.end(),
                     [](const auto& s) { return s.thread == std::this_thread::get_id(); });
}

void instance_barrier(queue_instance& q) {
  const auto me = std::this_thread::get_id();
  barrier_marker m{TASK_INITIALIZER(marker_func, nullptr)};
  m.t.t_arg = &m;
  std::unique_lock<std::mutex> lk(q.mu);
  auto own_slot = [&]() -> queue_instance::running_slot* {
    for (auto& s : q.running)
      if (s.thread == me) return &s;
    return nullptr;
  };
  m.t.t_flags.fetch_or(TASK_ONQUEUE);
  m.t.t_queue = &q;
  q.work.push_back(m.t);
  const bool member = own_slot() != nullptr;
  const std::uint64_t gen = q.barrier_gen;
  if (member) {
    own_slot()->in_barrier = true;
    if (++q.barrier_members >= q.max_active) {  // every slot waits in a barrier
      ++q.barrier_gen;
      q.idle_cv.notify_all();
    }
  }
  for (;;) {
    if (member && q.barrier_gen != gen) break;
    if (!m.passed && &q.work.front() == &m.t) pass_marker(q);  // no worker needed to pass it
    if (m.passed && std::none_of(q.running.begin(), q.running.end(), [&](const auto& s) {
          return s.seq <= m.seq && s.thread != me && !s.in_barrier;
        }))
      break;
    q.idle_cv.wait(lk);
  }
  if (!m.passed) {  // released by the generation: the marker must not outlive us
    q.work.erase(q.work.iterator_to(m.t));
    m.t.t_flags.fetch_and(~TASK_ONQUEUE);
  }
  if (member) {
    own_slot()->in_barrier = false;
    --q.barrier_members;
  }
}

namespace {
// The engine's part of the exported statistics (machine::set_stats_hook): its pools.
void export_stats(runtime& rt, stats_segment::cpu_record*, stats_segment::pool_record* pools) {
  engine* e = engine_if_made(rt);
  if (e == nullptr) return;
  for (const worker_pool_stats& s : e->pool_stats()) {
    stats_segment::pool_record& r = pools[s.cpu * stats_segment::kPriorities + s.priority];
    r.workers = s.workers;
    r.idle = s.idle;
    r.waiting = s.waiting;
    r.blocked = s.blocked;
    r.created = s.created;
    r.exited = s.exited;
  }
}

void* create_engine(runtime& rt) {
  machine::set_blocking_hooks(worker_blocking_begin, worker_blocking_end);
  auto* e = new engine(rt);
  machine::set_stats_hook(rt, machine::layer::workqueue, export_stats);
  return e;
}
void destroy_engine(void* e) {
  machine::set_stats_hook(static_cast<engine*>(e)->rt, machine::layer::workqueue, nullptr);
  delete static_cast<engine*>(e);
}
}  // namespace

engine* engine_if_made(runtime& rt) {
  return static_cast<engine*>(machine::layer_state_if_made(rt, machine::layer::workqueue));
}

engine& engine_of(runtime& rt) {
  return *static_cast<engine*>(
      machine::layer_state(rt, machine::layer::workqueue, create_engine, destroy_engine));
}

}  // namespace kcont::detail

namespace kcont {
std::vector<worker_pool_stats> worker_pools(runtime& rt) {
  detail::engine* e = detail::engine_if_made(rt);
  return e == nullptr ? std::vector<worker_pool_stats>{} : e->pool_stats();
}
}  // namespace kcont
