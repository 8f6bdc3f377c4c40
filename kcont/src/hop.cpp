// One-shot hops onto a kcont queue (kcont_hop in <kcont/kcont.h>): the coroutine awaitable
// kcont::on(wq) queues one from its frame. A hop is queued on its kqueue's hop list and run by
// the queue's drain (drain.cpp), taking turns with the continuations; the drain copies fn and
// arg before the call and never touches the hop again, so a coroutine resumed by it may end and
// free its frame inside fn.
#include "kcont_impl.h"

#include <cerrno>
#include <new>
#include <system_error>

namespace kcont::detail {

int kcont_hop_schedule(kcont_hop* h, kcont::runtime& rt, kcont_wq_t* wq, cpu_info* ci) {
  if (h == nullptr || wq == nullptr || h->fn == nullptr)
    misuse("kcont_hop_schedule with a NULL hop, queue or function");
  if (h->link.is_linked()) misuse("kcont_hop_schedule of a hop that is already queued");
  binding* bp;
  try {
    bp = &bind(wq, rt);  // for an acquired queue: a reference until kcont_hop_done
  } catch (const std::system_error& e) {
    return e.code().value() != 0 ? e.code().value() : EAGAIN;
  } catch (const std::bad_alloc&) {
    return ENOMEM;
  }
  binding& b = *bp;
  if (ci != nullptr && !b.percpu) {
    unbind(wq);
    return ENOENT;
  }
  if (ci != nullptr && &kcont::machine::runtime_of(ci) != b.rt)
    misuse("kcont_hop_schedule onto a CPU of another runtime than the queue's");
  kqueue& q = b.queue_for(ci != nullptr ? ci : kcont::machine::current_cpu(*b.rt));
  h->wq = wq;
  h->queue = &q;
  if (q.stashed_hop.load(std::memory_order_relaxed) == h)
    misuse("kcont_hop_schedule of a hop that is already queued");
  // From inside a hop of q's own drain, with nothing else queued: no lock, no kick; the drain
  // runs it as soon as this hop returns (run_hop), unless work arrives first.
  if (tl_hop_q == &q && q.b->soft && q.queued_work.load(std::memory_order_acquire) == 0 &&
      q.stashed_hop.load(std::memory_order_relaxed) == nullptr) {
    q.stashed_hop.store(h, std::memory_order_release);
    return 0;
  }
  {
    std::lock_guard<std::mutex> lk(q.mu);
    q.hops.push_back(*h);
    work_queued(q);
    q.counters.queued(h);
    set_ready(q, true);
  }
  // h may have run and be gone already: only q is used. From a func or hop of a soft queue's
  // own drain no kick: the drain looks again after each run (see tl_draining_q).
  if (tl_draining_q != &q || !q.b->soft) kick(q);
  return 0;
}

bool kcont_hop_done(kcont_hop* h, bool begun) {
  bool withdrawn = false;
  if (!begun) {
    auto& q = *static_cast<kqueue*>(h->queue);
    std::unique_lock<std::mutex> lk(q.mu);
    kcont_hop* stashed = h;
    if (q.stashed_hop.compare_exchange_strong(stashed, nullptr, std::memory_order_acq_rel)) {
      withdrawn = true;  // it was to run when the hop that queued it returned
    } else if (h->link.is_linked()) {
      q.hops.erase(q.hops.iterator_to(*h));
      work_dequeued(q);
      q.counters.withdrawn(h);
      withdrawn = true;
      // Nothing left for its level: lower it now, as kcont_stop does (state.cpp).
      if (!has_runnable(q) && q.running == 0 && set_ready(q, false)) q.wake_pending = true;
    }
    unlock_and_wake(lk, q);
  }
  unbind(h->wq);
  return withdrawn;
}

}  // namespace kcont::detail
