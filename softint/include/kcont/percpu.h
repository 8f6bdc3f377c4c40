// percpu<T>: one T per virtual CPU, each on its own cache line(s), so CPUs never share a line.
#pragma once

#include <kcont/runtime.h>

#include <cassert>
#include <cstddef>
#include <memory>
#include <new>

namespace kcont {

inline constexpr std::size_t cache_line_size = 64;

template <class T>
class percpu {
 public:
  explicit percpu(unsigned ncpu) : n_(ncpu), slots_(new slot[ncpu]) {}
  explicit percpu(runtime& rt) : percpu(rt.ncpu()) {}

  unsigned size() const { return n_; }
  T& operator[](unsigned index) {
    assert(index < n_ && "percpu: CPU index out of range");
    return slots_[index].value;
  }
  const T& operator[](unsigned index) const {
    assert(index < n_ && "percpu: CPU index out of range");
    return slots_[index].value;
  }
  T& get(const cpu_info* ci) { return (*this)[cpu_index(ci)]; }
  T& local() { return get(curcpu()); }  // this thread's CPU's instance

  template <class F>
  void for_each(F&& f) {
    for (unsigned i = 0; i < n_; ++i) f(i, slots_[i].value);
  }

 private:
  struct alignas(cache_line_size) slot {
    T value{};
  };
  unsigned n_;
  std::unique_ptr<slot[]> slots_;
};

}  // namespace kcont
