// Spin-then-park's poll (runtime_config::spin_before_sleep): a CPU loop and a worker that have
// just run work poll for more for a bounded window before they sleep.
#pragma once

#include <chrono>
#include <cstdint>

namespace kcont::internal {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// Polls ready() until it returns true (then true) or `window_ns` has passed (then false),
// reading the clock once every 64 polls.
template <class Ready>
bool spin_until(Ready&& ready, std::int64_t window_ns) {
  using clock = std::chrono::steady_clock;
  const auto end = clock::now() + std::chrono::nanoseconds(window_ns);
  for (unsigned i = 1;; ++i) {
    if (ready()) return true;
    if (i % 64 == 0 && clock::now() > end) return false;
    cpu_relax();
  }
}

}  // namespace kcont::internal
