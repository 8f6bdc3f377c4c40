// Global operator new/delete that count allocations (see alloc_count.h). In its own
// translation unit so that the replacement is never inlined into a caller.
#include "alloc_count.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<std::uint64_t> g_allocs{0};
}

std::uint64_t kcont_bench::allocations() {
  return g_allocs.load(std::memory_order_relaxed);
}

void* operator new(std::size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
