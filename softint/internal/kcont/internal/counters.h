// Statistics counters: written on hot paths, read by stats() from any thread, never used to
// synchronise anything (relaxed).
#pragma once

#include <atomic>
#include <cstdint>

namespace kcont::internal {

// Written by one thread only (its owner, e.g. a CPU's loop thread): a relaxed load and store,
// not a locked read-modify-write, so counting costs a plain increment.
struct owner_counter {
  std::atomic<std::uint64_t> value{0};
  void bump() noexcept {
    value.store(value.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  std::uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};

// Written by any thread: a relaxed fetch_add.
struct shared_counter {
  std::atomic<std::uint64_t> value{0};
  void add(std::uint64_t n = 1) noexcept { value.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};

}  // namespace kcont::internal
