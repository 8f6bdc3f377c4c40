// softint(9) on the virtual CPUs.
//
// A softint_handle has one pending_node per CPU. Scheduling on a CPU sets the node's PENDING
// bit and, if it was clear, pushes the node on that CPU's queue for the softint's level; the
// loop turns PENDING into RUNNING before it calls the handler, so a schedule that lands while
// the handler runs queues it again and it runs once more afterwards.
//
// Disestablish marks the handle dying (a dying node popped by a loop is skipped), then, CPU by
// CPU, waits until the node is idle and turns it DEAD (never pushed again). Where no loop
// consumes the CPU's queue (the runtime is stopped, or the caller is that CPU's own loop) it
// unlinks the node itself.
//
// Called from the softint's own handler it waits for nothing (a handler must not: two handlers
// disestablishing themselves on two CPUs would wait for each other). It orphans the handle
// instead: every node is marked DEAD at once, and the handle counts the nodes still queued or
// running; the loop that finishes with the last of them (the caller's own loop, once the
// handler returns, at the latest) frees it. A loop sees DEAD on a node it held only in an
// orphaned handle: the wait above marks idle nodes only.
//
// The loop never touches a handle after clearing RUNNING (the disestablisher may free it at
// once); it reads what it needs first and signals waiters through the runtime.
//
// Locks used to protect the fields below:
//   [I] set by softint_establish before the cookie is returned
//   [a] atomic
//   [l] g_live_mu (the live-cookie set and the quarantine ring)
// A node's fields follow node_queue.h.
#include "runtime_impl.h"
#include "softint_run.h"

#include <kcont/internal/lockdebug.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/internal/misuse.h>

#include <kcont/softint.h>

#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <stdexcept>
#include <unordered_set>

namespace kcont::detail {

struct alignas(64) aligned_node {
  pending_node node;
};

struct softint_handle {
  void (*fn)(void*);               // [I]
  void* arg;                       // [I]
  unsigned level;                  // [I]
  bool mpsafe;                     // [I]
  runtime_impl* rt;                // [I]
  std::atomic<bool> dying{false};  // [a]
  std::atomic<bool> gone{false};   // [a] disestablished: the cookie is stale (in quarantine)
  // [a] Orphaned by a self-disestablish: nodes still queued or running, plus one while the
  // disestablisher counts them. Whoever drops it to 0 frees the handle.
  std::atomic<unsigned> orphan_refs{0};
  std::unique_ptr<aligned_node[]> nodes;  // [I] one per CPU
};

namespace {

[[noreturn]] void misuse(const char* what) {
  kcont::internal::misuse("softint", what);
}

// Live cookies, so that disestablishing an unknown or already disestablished cookie is
// reported instead of touching freed memory. Establish and disestablish only (not the
// schedule path).
// Built on first use and never destroyed: softints may be established by constructors of
// namespace-scope objects (before this file's statics are initialised) and disestablished by
// static destructors (after they are gone).
std::mutex g_live_mu;                        // constant-initialised
std::unordered_set<void*>& live_cookies() {  // [l]
  static auto* set = new std::unordered_set<void*>;
  return *set;
}

void register_live(void* cookie) {
  std::lock_guard<std::mutex> lk(g_live_mu);
  live_cookies().insert(cookie);
}

void unregister_live(void* cookie) {
  std::lock_guard<std::mutex> lk(g_live_mu);
  if (live_cookies().erase(cookie) == 0)
    misuse("softint_disestablish called twice, or with a cookie softint_establish never returned");
}

softint_handle* handle_of(void* cookie) {
  if (cookie == nullptr) misuse("NULL cookie");
  return static_cast<softint_handle*>(cookie);
}

bool level_of(unsigned flags, unsigned& lvl) {
  if ((flags & ~(SOFTINT_LVLMASK | SOFTINT_MPSAFE)) != 0) return false;
  switch (flags & SOFTINT_LVLMASK) {
    case SOFTINT_HARDINTR:
      lvl = level_hard;
      return true;
    case SOFTINT_SERIAL:
      lvl = level_serial;
      return true;
    case SOFTINT_NET:
      lvl = level_net;
      return true;
    case SOFTINT_BIO:
      lvl = level_bio;
      return true;
    case SOFTINT_CLOCK:
      lvl = level_clock;
      return true;
    default:
      return false;
  }
}

// A disestablished handle is not freed at once: it is marked gone and kept among the last
// kQuarantine ones, so that scheduling a stale cookie (softint_schedule after
// softint_disestablish) is reported instead of writing to freed memory. Older ones are freed.
constexpr std::size_t kQuarantine = 128;

void free_handle(softint_handle* sh) {
  sh->rt->established_softints.fetch_sub(1);
  kcont::lockdebug::forget(sh);
  sh->gone.store(true, std::memory_order_release);
  softint_handle* oldest = nullptr;
  {
    std::lock_guard<std::mutex> lk(g_live_mu);
    static auto* ring = new std::deque<softint_handle*>;  // never destroyed (static dtors)
    ring->push_back(sh);
    if (ring->size() > kQuarantine) {
      oldest = ring->front();
      ring->pop_front();
    }
  }
  delete oldest;
}

// The hot path's only extra look: a bool in a cache line it reads anyway.
softint_handle* live_handle(void* cookie, const char* call) {
  softint_handle* sh = handle_of(cookie);
  if (sh->gone.load(std::memory_order_relaxed)) [[unlikely]] {
    char what[128];
    std::snprintf(what, sizeof what, "%s of a softint that was disestablished (stale cookie)",
                  call);
    misuse(what);
  }
  return sh;
}

void release_orphan(softint_handle* sh) {
  if (sh->orphan_refs.fetch_sub(1, std::memory_order_acq_rel) == 1) free_handle(sh);
}

// softint_disestablish from the softint's own handler (on `self`, a loop of its runtime).
// Waits for nothing; see the top of the file.
void orphan(softint_handle* sh, cpu_info* self) {
  runtime_impl* rt = sh->rt;
  sh->orphan_refs.store(rt->ncpu() + 1, std::memory_order_relaxed);
  std::unique_lock<std::mutex> lk(rt->state_mu);  // loop_running
  for (unsigned i = 0; i < rt->ncpu(); ++i) {
    cpu_info* ci = rt->cpu(i);
    pending_node& n = sh->nodes[i].node;
    std::uint32_t s = n.state.fetch_or(NODE_DEAD, std::memory_order_seq_cst);
    // Queued where no loop will pop it (ours is busy running this handler and pops it later):
    // take it out now, so that a stopped CPU does not keep the handle alive.
    if ((s & NODE_PENDING) && ci != self && !ci->loop_running && ci->queues[sh->level].remove(&n))
      s = n.state.fetch_and(~NODE_PENDING, std::memory_order_seq_cst) & ~NODE_PENDING;
    if ((s & (NODE_PENDING | NODE_RUNNING)) == 0) release_orphan(sh);  // idle: nothing to wait for
  }
  lk.unlock();
  release_orphan(sh);  // the counting reference; our own node (RUNNING) keeps the handle alive
}

void schedule_on(softint_handle* sh, cpu_info* ci) {
  pending_node& n = sh->nodes[ci->index].node;
  std::uint32_t s = n.state.load(std::memory_order_relaxed);
  do {
    if (s & (NODE_PENDING | NODE_DEAD)) {
      // Coalesced (or disestablished). The RMW orders the caller's earlier writes before the
      // handler run that is still to start (it clears PENDING with an RMW after this one).
      s = n.state.fetch_or(0, std::memory_order_acq_rel);
      // A DEAD node belongs to a softint being disestablished concurrently: the schedule
      // is dropped, as disestablish discards pending schedules.
      if (s & (NODE_PENDING | NODE_DEAD)) return;
    }
  } while (!n.state.compare_exchange_weak(s, s | NODE_PENDING, std::memory_order_acq_rel,
                                          std::memory_order_relaxed));
  ci->enqueue(sh->level, &n);
}

}  // namespace

void softint_run(cpu_info* ci, pending_node* n) {
  softint_handle* sh = n->owner;
  n->state.fetch_xor(NODE_PENDING | NODE_RUNNING, std::memory_order_seq_cst);
  runtime_impl* rt = ci->rt;
  if (!sh->dying.load(std::memory_order_seq_cst)) {
    ci->running_node = n;
    if (!sh->mpsafe) kernel_lock();
    {
      kcont::lockdebug::handler_scope scope(sh);
      machine::run_handler("softint handler", sh->level == level_hard ? "hard interrupt" : nullptr,
                           machine::code_address(sh->fn), [sh] { sh->fn(sh->arg); });
    }
    if (!sh->mpsafe) kernel_unlock();
    ci->running_node = nullptr;
  }
  std::uint32_t s = n->state.fetch_and(~NODE_RUNNING, std::memory_order_seq_cst);
  if (s & NODE_DEAD) {  // orphaned (see orphan()); sh is alive until we release our node
    if ((s & NODE_PENDING) && ci->queues[sh->level].remove(n))
      s = n->state.fetch_and(~NODE_PENDING, std::memory_order_seq_cst) & ~NODE_PENDING;
    if ((s & NODE_PENDING) == 0) release_orphan(sh);
    return;
  }
  rt->notify_quiesce_waiters();  // sh may be gone from here on
}

}  // namespace kcont::detail

using kcont::detail::softint_handle;

void* softint_establish_rt(kcont::runtime& rt, unsigned flags, void (*func)(void*), void* arg) {
  unsigned lvl;
  if (func == nullptr || !kcont::detail::level_of(flags, lvl)) {
    errno = EINVAL;
    return nullptr;
  }
  kcont::detail::runtime_impl& impl = rt.impl();
  auto* sh = new (std::nothrow) softint_handle;
  if (sh == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  sh->fn = func;
  sh->arg = arg;
  sh->level = lvl;
  sh->mpsafe = (flags & SOFTINT_MPSAFE) != 0;
  sh->rt = &impl;
  sh->nodes.reset(new (std::nothrow) kcont::detail::aligned_node[impl.ncpu()]);
  if (!sh->nodes) {
    delete sh;
    errno = ENOMEM;
    return nullptr;
  }
  for (unsigned i = 0; i < impl.ncpu(); ++i) sh->nodes[i].node.owner = sh;
  impl.established_softints.fetch_add(1);
  kcont::detail::register_live(sh);
  return sh;
}

void* softint_establish(unsigned flags, void (*func)(void*), void* arg) {
  return softint_establish_rt(kcont::runtime::current(), flags, func, arg);
}

void softint_schedule(void* cookie) {
  softint_handle* sh = kcont::detail::live_handle(cookie, "softint_schedule");
  kcont::detail::schedule_on(sh, sh->rt->current_cpu());
}

void softint_schedule_cpu(void* cookie, cpu_info* ci) {
  softint_handle* sh = kcont::detail::live_handle(cookie, "softint_schedule_cpu");
  if (ci == nullptr) kcont::detail::misuse("softint_schedule_cpu with a NULL cpu_info");
  if (ci->rt != sh->rt) kcont::detail::misuse("softint_schedule_cpu with a CPU of another runtime");
  kcont::detail::schedule_on(sh, ci);
}

void softint_disestablish(void* cookie) {
  using namespace kcont::detail;
  softint_handle* sh = handle_of(cookie);
  unregister_live(cookie);
  runtime_impl* rt = sh->rt;
  sh->dying.store(true, std::memory_order_seq_cst);
  cpu_info* self = this_thread_cpu();
  if (self != nullptr && self->rt != rt) self = nullptr;  // another runtime's CPU: foreign here
  if (self != nullptr && self->running_node != nullptr && self->running_node->owner == sh) {
    orphan(sh, self);  // from its own handler
    return;
  }
  kcont::lockdebug::check_wait("softint_disestablish", sh);

  rt->quiesce_waiters.fetch_add(1, std::memory_order_seq_cst);
  {
    std::unique_lock<std::mutex> lk(rt->state_mu);
    for (unsigned i = 0; i < rt->ncpu(); ++i) {
      cpu_info* ci = rt->cpu(i);
      pending_node& n = sh->nodes[i].node;
      for (;;) {
        std::uint32_t s = n.state.load(std::memory_order_seq_cst);
        if (s == 0) {
          if (n.state.compare_exchange_strong(s, NODE_DEAD, std::memory_order_seq_cst)) break;
          continue;
        }
        // We may consume this CPU's queue ourselves when its loop is down or is us.
        if ((s & NODE_PENDING) && (ci == self || !ci->loop_running)) {
          if (ci->queues[sh->level].remove(&n))
            n.state.fetch_and(~NODE_PENDING, std::memory_order_seq_cst);
          continue;
        }
        rt->state_cv.wait(lk);
      }
    }
  }
  rt->quiesce_waiters.fetch_sub(1, std::memory_order_seq_cst);
  free_handle(sh);
}

// ---------------------------------------------------------------------------------------------

namespace kcont {

softint::softint(unsigned flags, std::function<void()> fn)
    : softint(runtime::current(), flags, std::move(fn)) {}

softint::softint(runtime& rt, unsigned flags, std::function<void()> fn) : fn_(std::move(fn)) {
  cookie_ = softint_establish_rt(rt, flags, &softint::trampoline, this);
  if (cookie_ == nullptr) throw std::invalid_argument("kcont::softint: bad flags or no memory");
}

softint::~softint() {
  softint_disestablish(cookie_);
}

void softint::trampoline(void* self) {
  static_cast<softint*>(self)->fn_();
}

}  // namespace kcont
