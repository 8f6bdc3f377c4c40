// Strict priority among the predefined thread queues (wq_prihigh .. wq_prilow) on one CPU.
//
// Their drains run on separate worker pools, so each CPU keeps a `ready` flag per level (its
// queue has runnable work not stuck on a lock, or a continuation running that has not gone to
// sleep at a blocking point) and a bitmask of lower levels that stood aside. A drain about to
// start a continuation first checks the higher levels' flags; if one is set it records itself
// in the mask and returns, and whoever clears the last higher flag kicks it again (flag store,
// then mask load, against mask store, then flag load: seq_cst, so one side sees the other).
// A running continuation is never preempted.
#include "kcont_impl.h"

namespace kcont::detail {
namespace {

bool higher_ready(const kqueue& q) {
  for (unsigned l = 0; l < q.level; ++l)
    if (q.gate->ready[l].load(std::memory_order_seq_cst)) return true;
  return false;
}

}  // namespace

// q.mu held: records whether q has runnable work. True when the flag fell while a lower level
// stood aside: the caller then calls wake_waiting() once it holds no kqueue lock.
bool set_ready(kqueue& q, bool ready) {
  if (q.gate == nullptr) return false;
  const bool was = q.gate->ready[q.level].exchange(ready, std::memory_order_seq_cst);
  return was && !ready && q.gate->waiting.load(std::memory_order_seq_cst) != 0;
}

// q.mu held: true if q must let a higher level's runnable work start first. It is then
// recorded as waiting, and kicked again when that work has started.
bool stand_aside(kqueue& q) {
  if (q.gate == nullptr || !higher_ready(q)) return false;
  q.gate->waiting.fetch_or(1u << q.level, std::memory_order_seq_cst);
  return higher_ready(q);  // else the higher level emptied meanwhile: carry on
}

// No kqueue lock held: kicks the levels that stood aside (they check again themselves).
void wake_waiting(level_gate* gate) {
  unsigned bits = gate->waiting.exchange(0, std::memory_order_seq_cst);
  for (unsigned l = 0; bits != 0; ++l, bits >>= 1)
    if (bits & 1u) kick(*gate->queues[l]);
}

// Releases q.mu; then, if a stop lowered q's ready flag while lower levels stood aside, kicks
// them (wake_waiting must run with no kqueue lock held).
void unlock_and_wake(std::unique_lock<std::mutex>& lk, kqueue& q) {
  const bool wake = q.wake_pending;
  q.wake_pending = false;
  lk.unlock();
  if (wake) wake_waiting(q.gate);
}

}  // namespace kcont::detail
