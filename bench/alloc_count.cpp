// Global operator new/delete that count allocations (see alloc_count.h). In its own
// translation unit so that the replacement is never inlined into a caller.
#include "alloc_count.h"

#include <cstdlib>
#include <new>

namespace {
// Per thread: a benchmark asks about the path it runs itself, not about what other threads
// (a CPU loop re-arming its timer, say) allocate meanwhile.
thread_local std::uint64_t tl_allocs = 0;
}  // namespace

std::uint64_t kcont_bench::allocations() {
  return tl_allocs;
}

void* operator new(std::size_t n) {
  ++tl_allocs;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
