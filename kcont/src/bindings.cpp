// A kcont queue's binding in a runtime: its kqueues and the softint or workqueue(9) that
// drains them; the predefined queues (bound lazily in each runtime) and acquired ones
// (kcont_workqueue_acquire/release), whose binding lives while it is acquired or has
// continuations bound to it.
#include "kcont_impl.h"

#include <kcont/function_workqueue.h>
#include <kcont/softint.h>

#include <cerrno>
#include <condition_variable>
#include <system_error>
#include <thread>

namespace kcont::detail {
namespace {

const unsigned kSoftLevel[kSoftLevels] = {SOFTINT_SERIAL, SOFTINT_NET, SOFTINT_BIO, SOFTINT_CLOCK};

// The thread running a drain of a binding (a thread queue's worker), so that dropping the
// last reference to that binding from inside it defers the free (workqueue_destroy must not
// run on one of its own workers).
thread_local const binding* tl_draining = nullptr;

// Names of the queues in statistics: the predefined ones by kind, acquired ones by priority.
const char* const kPredefinedName[kPredefined] = {"wq_softserial", "wq_softnet", "wq_softbio",
                                                  "wq_softclock",  "wq_prihigh", "wq_primedhigh",
                                                  "wq_primedlow",  "wq_prilow"};
const char* const kAcquiredName[] = {"kcont acquired PRI_HIGH", "kcont acquired PRI_MEDHIGH",
                                     "kcont acquired PRI_MEDLOW", "kcont acquired PRI_LOW"};

std::unique_ptr<binding> make_binding(kcont::runtime& rt, const char* name, bool soft,
                                      unsigned level_or_pri, bool percpu,
                                      level_gate* gates = nullptr) {
  auto b = std::make_unique<binding>();
  b->rt = &rt;
  b->soft = soft;
  b->percpu = percpu;
  kcont::runtime_scope scope(rt);
  unsigned n = percpu ? rt.ncpu() : 1;
  for (unsigned i = 0; i < n; ++i) {
    auto q = std::make_unique<kqueue>(rt, name, percpu ? rt.cpu(i) : nullptr);
    q->b = b.get();
    if (gates != nullptr) {
      q->gate = &gates[i];
      q->level = level_or_pri;
      gates[i].queues[level_or_pri] = q.get();
    }
    b->queues.push_back(std::move(q));
  }
  if (soft) {
    b->softint = softint_establish_rt(rt, level_or_pri | SOFTINT_MPSAFE, soft_drain, b.get());
    if (b->softint == nullptr)
      throw std::system_error(errno, std::generic_category(), "kcont: softint_establish");
  } else {
    // Elastic: a func that sleeps at a blocking point lets another worker drain the queue
    // (drain.cpp kicks a second drain), so one sleeper does not hold back its level.
    int flags = WQ_MPSAFE | WQ_ELASTIC | (percpu ? WQ_PERCPU : 0);
    if (int e = workqueue_create(&b->wq, name, thread_drain, b.get(),
                                 static_cast<pri_t>(level_or_pri), 0, flags);
        e != 0)
      throw std::system_error(e, std::generic_category(), "kcont: workqueue_create");
  }
  return b;
}

}  // namespace

kqueue::kqueue(kcont::runtime& r, const char* name, cpu_info* ci)
    : rt(r),
      cpu(ci),
      counters(kcont::internal::queue_timing(r)),
      stats_node("kcont", name, ci != nullptr ? static_cast<int>(cpu_index(ci)) : -1, mu,
                 counters) {
  kcont::internal::register_queue(rt, stats_node);
}

kqueue::~kqueue() {
  kcont::internal::unregister_queue(rt, stats_node);
}

namespace {

void free_binding(binding* b) {
  if (b->soft) {
    softint_disestablish(b->softint);
  } else {
    workqueue_destroy(b->wq);  // drains
  }
  delete b;
}

void* create_state(kcont::runtime& rt) {
  auto* st = new runtime_state;
  st->gates = std::make_unique<level_gate[]>(rt.ncpu());
  try {
    for (unsigned k = 0; k < kSoftLevels; ++k)
      st->predefined[k] = make_binding(rt, kPredefinedName[k], true, kSoftLevel[k], true).release();
  } catch (...) {  // no memory, or no softint: undo what was made (kcont_init: EAGAIN)
    for (auto& b : st->predefined)
      if (binding* made = b.load()) free_binding(made);
    delete st;
    throw;
  }
  return st;
}

// A predefined thread queue's binding, made on first use (its workqueue starts the runtime's
// worker engine). Throws as make_binding does; nothing is kept then and the next use retries.
binding& predefined_thread_binding(runtime_state& st, kcont::runtime& rt, int kind) {
  std::lock_guard<std::mutex> lk(st.acquire_mu);
  if (binding* b = st.predefined[kind].load(std::memory_order_relaxed)) return *b;
  binding* b =
      make_binding(rt, kPredefinedName[kind], false, kind - kSoftLevels, true, st.gates.get())
          .release();
  st.predefined[kind].store(b, std::memory_order_release);
  return *b;
}

// Until no thread queue's drain is queued or running, all at once. A drain of one queue may
// still be inside a kick of another (a continuation or a coroutine hop that its func queued,
// whose run may already have ended and let the owner destroy the runtime), so no binding may
// be freed while any drain of any of them runs. The CPU loops have stopped by now: the soft
// queues' drains are over, and a kick of one only parks its softint. Acquired queues are not
// freed meanwhile (tearing_down), so each pass's list of them stays valid; one acquired during
// a pass is in the next, which a busy pass always has.
void settle_thread_queues(runtime_state& st) {
  std::vector<workqueue*> wqs;
  for (bool busy = true; busy;) {
    wqs.clear();
    for (auto& b : st.predefined)
      if (binding* made = b.load(); made != nullptr && !made->soft) wqs.push_back(made->wq);
    {
      std::lock_guard<std::mutex> lk(st.acquire_mu);
      for (auto& [key, wq] : st.acquired) wqs.push_back(wq->acquired->wq);
    }
    busy = false;
    for (workqueue* wq : wqs) busy = kcont::detail::workqueue_settle(wq) || busy;
  }
}

void destroy_state(void* p) {
  auto* st = static_cast<runtime_state*>(p);
  {
    std::lock_guard<std::mutex> lk(st->acquire_mu);
    st->tearing_down = true;  // from now on no acquired binding is freed but here
  }
  {
    std::unique_lock<std::mutex> lk(st->reap_mu);
    st->reaped.wait(lk, [&] { return st->reaping == 0; });
  }
  settle_thread_queues(*st);
  for (auto& b : st->predefined)
    if (binding* made = b.load()) free_binding(made);
  for (auto& [key, wq] : st->acquired) {
    if (wq->refs != 0)
      std::fprintf(stderr,
                   "kcont: runtime destroyed with an acquired kcont queue still referenced "
                   "(%u reference(s): acquisitions or continuations not destroyed)\n",
                   wq->refs);
    free_binding(wq->acquired);
    delete wq;
  }
  delete st;
}

// Its last reference is gone: the binding goes, now or on a thread of its own.
void free_acquired(runtime_state& st, kcont_wq* wq) {
  binding* b = wq->acquired;
  delete wq;
  if (tl_draining != b && !kcont::in_interrupt_context()) {
    free_binding(b);
    return;
  }
  {
    std::lock_guard<std::mutex> lk(st.reap_mu);
    ++st.reaping;
  }
  auto reap = [&st, b] {
    free_binding(b);
    std::lock_guard<std::mutex> lk(st.reap_mu);
    --st.reaping;
    st.reaped.notify_all();
  };
  try {
    std::thread(reap).detach();
  } catch (const std::system_error&) {
    std::fprintf(stderr,
                 "kcont: no thread to free a released kcont queue from inside its own drain; "
                 "it is leaked\n");
    std::lock_guard<std::mutex> lk(st.reap_mu);
    --st.reaping;
    st.reaped.notify_all();
  }
}

}  // namespace

runtime_state& state_of(kcont::runtime& rt) {
  return *static_cast<runtime_state*>(
      kcont::machine::layer_state(rt, kcont::machine::layer::kcont, create_state, destroy_state));
}

binding& bind(kcont_wq* wq, kcont::runtime& rt) {
  if (wq->kind < kPredefined) {
    runtime_state& st = state_of(rt);
    if (binding* b = st.predefined[wq->kind].load(std::memory_order_acquire)) return *b;
    return predefined_thread_binding(st, rt, wq->kind);
  }
  runtime_state& st = state_of(*wq->rt);
  std::lock_guard<std::mutex> lk(st.acquire_mu);
  ++wq->refs;
  return *wq->acquired;
}

void unbind(kcont_wq* wq) {
  if (wq->kind < kPredefined) return;
  auto& st = state_of(*wq->rt);
  {
    std::lock_guard<std::mutex> lk(st.acquire_mu);
    if (wq->refs == 0) misuse("kcont_workqueue_release of a queue released more than acquired");
    if (--wq->refs != 0 || st.tearing_down) return;  // tearing down: destroy_state frees it
    st.acquired.erase({wq->pri, wq->flags});
  }
  free_acquired(st, wq);  // not under acquire_mu: its drains may acquire queues
}

void set_draining(const binding* b) {
  tl_draining = b;
}

}  // namespace kcont::detail

using namespace kcont::detail;

namespace {
kcont_wq g_predefined[kPredefined] = {{0, PRI_HIGH, 0},   {1, PRI_HIGH, 0}, {2, PRI_HIGH, 0},
                                      {3, PRI_HIGH, 0},   {4, PRI_HIGH, 0}, {5, PRI_MEDHIGH, 0},
                                      {6, PRI_MEDLOW, 0}, {7, PRI_LOW, 0}};
}  // namespace

kcont_wq_t* const wq_softserial = &g_predefined[0];
kcont_wq_t* const wq_softnet = &g_predefined[1];
kcont_wq_t* const wq_softbio = &g_predefined[2];
kcont_wq_t* const wq_softclock = &g_predefined[3];
kcont_wq_t* const wq_prihigh = &g_predefined[kSoftLevels + 0];
kcont_wq_t* const wq_primedhigh = &g_predefined[kSoftLevels + 1];
kcont_wq_t* const wq_primedlow = &g_predefined[kSoftLevels + 2];
kcont_wq_t* const wq_prilow = &g_predefined[kSoftLevels + 3];

kcont_wq_t* kcont_workqueue_acquire(pri_t pri, int flags) {
  if (pri < PRI_NONE || pri > PRI_LOW || (flags & ~WQ_PERCPU) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  kcont::runtime& rt = kcont::runtime::current();
  auto fail = [](const std::system_error& e) -> kcont_wq_t* {  // no thread for its workers
    errno = e.code().value() != 0 ? e.code().value() : EAGAIN;
    return nullptr;
  };
  runtime_state* st;
  try {
    st = &state_of(rt);
  } catch (const std::system_error& e) {
    return fail(e);
  }
  std::lock_guard<std::mutex> lk(st->acquire_mu);
  kcont_wq*& slot = st->acquired[{pri, flags}];
  if (slot == nullptr) {
    auto wq = std::make_unique<kcont_wq>(kcont_wq{kAcquiredKind, pri, flags});
    wq->rt = &rt;
    const unsigned level = pri == PRI_NONE ? PRI_MEDLOW : static_cast<unsigned>(pri);
    try {
      wq->acquired =
          make_binding(rt, kAcquiredName[level], false, level, (flags & WQ_PERCPU) != 0).release();
    } catch (const std::system_error& e) {
      st->acquired.erase({pri, flags});
      return fail(e);
    }
    slot = wq.release();
  }
  ++slot->refs;
  return slot;
}

int kcont_workqueue_release(kcont_wq_t* wq) {
  if (wq == nullptr || wq->kind != kAcquiredKind) return EINVAL;
  unbind(wq);  // the acquisition's reference; continuations still bound keep it alive
  return 0;
}
