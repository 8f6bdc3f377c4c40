// The executable model the fuzzer checks kcont against: the man-page semantics of callout(9),
// the kcont proposal (with docs/semantics.md's decisions) and task(9), for a runtime whose CPU runs
// nothing between settle points (see fuzz_kcont.cpp). Plain data and rules, no concurrency.
#pragma once

#include <cerrno>
#include <cstdint>
#include <vector>

namespace kcont_fuzz {

struct callout_model {
  bool pending = false, expired = false, invoking = false;
  std::int64_t due = 0;
  int runs = 0;

  void reset(std::int64_t now, int ticks) {  // callout_reset / callout_schedule
    pending = true;
    expired = invoking = false;
    due = now + (ticks <= 0 ? 1 : ticks);  // on a tick boundary: exactly `ticks` later
  }
  bool stop() {  // callout_stop / callout_halt with nothing running: PENDING, EXPIRED cleared
    const bool was = expired;
    pending = expired = false;
    return was;
  }
  void ack() { invoking = false; }
  void advance(std::int64_t now) {  // the clock reached `now`; the handler runs once if due
    if (pending && due <= now) {
      pending = false;
      expired = invoking = true;
      ++runs;
    }
  }
};

struct kcont_model {
  bool pending = false, expired = false, invoking = false, queued = false;
  std::int64_t due = 0;
  int runs = 0;

  int schedule(std::int64_t now, int nticks) {
    if (invoking) return EBUSY;
    if (nticks <= 0) {
      pending = expired = false;
      invoking = queued = true;
    } else {
      expired = false;
      pending = true;
      due = now + nticks;
    }
    return 0;
  }
  bool stop() {  // also kcont_halt with nothing running
    const bool was = expired;
    if (queued) {
      queued = false;
      invoking = false;
    }
    pending = expired = false;
    return was;
  }
  bool ack() {
    const bool was = invoking;
    invoking = false;
    return was;
  }
  void expire(std::int64_t now) {  // the timer fired: EXPIRED|INVOKING, PENDING cleared
    if (pending && due <= now) {
      pending = false;
      expired = invoking = queued = true;
    }
  }
  void run() {  // the executor ran it (func does not reschedule): INVOKING clears on return
    if (!queued) return;
    queued = false;
    invoking = false;
    ++runs;
  }
};

// A single-threaded taskq whose worker is held between settle points.
struct taskq_model {
  std::vector<int> queue;  // task ids in the order they will run
  std::vector<int> ran;    // ids in the order they ran
  bool pending(int id) const {
    for (int q : queue)
      if (q == id) return true;
    return false;
  }
  int add(int id) {
    if (pending(id)) return 0;
    queue.push_back(id);
    return 1;
  }
  int del(int id) {
    for (auto it = queue.begin(); it != queue.end(); ++it) {
      if (*it == id) {
        queue.erase(it);
        return 1;
      }
    }
    return 0;
  }
  void run_all() {
    ran.insert(ran.end(), queue.begin(), queue.end());
    queue.clear();
  }
};

}  // namespace kcont_fuzz
