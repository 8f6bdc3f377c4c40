// Counts operator new calls per thread in a benchmark process (alloc_count.cpp replaces the
// global operator new/delete), so benchmarks can report allocations on the path they time.
#pragma once

#include <cstdint>

namespace kcont_bench {
std::uint64_t allocations();  // by the calling thread so far
}
