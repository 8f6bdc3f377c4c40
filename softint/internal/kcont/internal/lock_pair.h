// Two locks of the same rank held at once (a callout moving between two CPUs' wheels, a
// continuation moving between two queues) are taken in address order, lower address first:
// two threads moving in opposite directions then never wait for each other.
#pragma once

#include <cassert>
#include <functional>
#include <mutex>

namespace kcont::internal {

struct lock_pair {
  lock_pair(std::mutex& a, std::mutex& b)
      : first(std::less<std::mutex*>{}(&a, &b) ? a : b),
        second(std::less<std::mutex*>{}(&a, &b) ? b : a) {
    assert(&a != &b && "lock_pair of one mutex would deadlock");
  }
  std::unique_lock<std::mutex> first, second;  // held until the pair is destroyed
};

}  // namespace kcont::internal
