// node_queue: the per-CPU, per-level queue of pending handler instances.
//
// Producers (any thread) push onto a lock-free stack with one CAS. The single consumer (the
// CPU's loop thread, or whoever holds the runtime's state lock while that loop is not running)
// takes the whole stack at once, reverses it into a private FIFO batch, and pops from there.
// A node is in at most one queue at a time (its PENDING bit guards the push), so taking the
// whole stack has no ABA problem.
//
// Locks used to protect the fields below:
//   [I] set when the node is made
//   [a] atomic
//   [P] the node's PENDING bit: only the thread that set it pushes the node and writes `next`
//       until the consumer takes it
//   [C] the consumer (see above)
#pragma once

#include <atomic>
#include <cstdint>

namespace kcont::detail {

struct softint_handle;

inline constexpr std::uint32_t NODE_PENDING = 1;  // queued, handler not started
inline constexpr std::uint32_t NODE_RUNNING = 2;  // handler running on this node's CPU
inline constexpr std::uint32_t NODE_DEAD = 4;     // disestablished: never pushed again

struct pending_node {
  pending_node* next = nullptr;         // [P] then [C]: link while queued (stack or batch)
  std::atomic<std::uint32_t> state{0};  // [a] NODE_* bits
  softint_handle* owner = nullptr;      // [I]
};

class node_queue {
 public:
  // Any thread. seq_cst so that the caller's following read of the CPU's sleep state cannot
  // be ordered before the push (the wake-up protocol in cpu.h depends on it).
  void push(pending_node* n) noexcept {
    pending_node* h = head_.load(std::memory_order_relaxed);
    do {
      n->next = h;
    } while (
        !head_.compare_exchange_weak(h, n, std::memory_order_seq_cst, std::memory_order_relaxed));
  }

  // Any thread: pushed nodes the consumer has not taken yet. (A sleeping consumer has taken
  // and run everything else.)
  bool has_incoming() const noexcept { return head_.load(std::memory_order_seq_cst) != nullptr; }

  // Consumer only.
  bool empty() const noexcept {
    return batch_ == nullptr && head_.load(std::memory_order_seq_cst) == nullptr;
  }

  // Consumer only: the oldest queued node, or nullptr.
  pending_node* pop() noexcept {
    if (batch_ == nullptr) refill();
    pending_node* n = batch_;
    if (n != nullptr) batch_ = n->next;
    return n;
  }

  // Consumer only: unlinks `target` if queued; returns whether it was.
  bool remove(pending_node* target) noexcept {
    refill();
    for (pending_node** link = &batch_; *link != nullptr; link = &(*link)->next) {
      if (*link == target) {
        *link = target->next;
        return true;
      }
    }
    return false;
  }

  // Consumer only: how many nodes are queued.
  std::uint64_t count() noexcept {
    refill();
    std::uint64_t n = 0;
    for (pending_node* p = batch_; p != nullptr; p = p->next) ++n;
    return n;
  }

 private:
  // Moves everything pushed so far to the tail of the batch, oldest first.
  void refill() noexcept {
    pending_node* taken = head_.exchange(nullptr, std::memory_order_acquire);
    if (taken == nullptr) return;
    pending_node* reversed = nullptr;
    while (taken != nullptr) {
      pending_node* next = taken->next;
      taken->next = reversed;
      reversed = taken;
      taken = next;
    }
    pending_node** tail = &batch_;
    while (*tail != nullptr) tail = &(*tail)->next;
    *tail = reversed;
  }

  // Producers' line and the consumer's line kept apart.
  alignas(64) std::atomic<pending_node*> head_{nullptr};  // [a] pushed, newest first
  alignas(64) pending_node* batch_ = nullptr;             // [C] taken, oldest first
};

}  // namespace kcont::detail
