// Counts every operator new in a benchmark process (alloc_count.cpp replaces the global
// operator new/delete), so benchmarks can report allocations on hot paths.
#pragma once

#include <cstdint>

namespace kcont_bench {
std::uint64_t allocations();
}
