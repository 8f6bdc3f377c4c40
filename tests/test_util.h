// Small helpers shared by the tests.
#pragma once

#include <dirent.h>
#include <kcont/runtime.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

namespace kcont_test {

// A runtime config with `n` CPUs and everything else from the environment (KCONT_BACKEND
// selects the loop backend: CTest runs the loop-dependent suites once per backend).
inline kcont::runtime_config cpus(unsigned n) {
  kcont::runtime_config c = kcont::runtime_config::from_env();
  c.ncpu = n;
  return c;
}

// Polls `pred` until it holds or `timeout` passes; returns its last value. Tests use it to
// wait for asynchronous work without assuming how long it takes (a timeout is a failure, not
// a speed bar: it is generous).
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto give_up = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > give_up) return pred();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

// A task body that takes a while: `inside` once it started, `finished` once it is done. The
// barrier, halt and wait tests check that they returned only after `finished`.
struct slow_call {
  std::atomic<bool> inside{false}, finished{false};
  void run() {
    inside = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    finished = true;
  }
  static void task_fn(void* self) { static_cast<slow_call*>(self)->run(); }
};

// A wait that hangs is a failed test, not a hung run: report and leave at once (the objects
// stuck in the wait could not be torn down).
inline void require_or_exit(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "FAILED: %s (hung; exiting)\n", what);
  std::_Exit(1);
}

// Threads of this process now (entries of /proc/self/task).
inline int process_threads() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

// Sends this process's stderr to a file until destroyed; text() reads what was written.
class stderr_capture {
 public:
  stderr_capture() {
    std::fflush(stderr);
    saved_ = ::dup(2);
    std::snprintf(path_, sizeof path_, "/tmp/kcont-stderr-XXXXXX");
    int fd = ::mkstemp(path_);
    if (fd < 0) std::abort();
    ::dup2(fd, 2);
    ::close(fd);
  }
  ~stderr_capture() {
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    ::unlink(path_);
  }
  std::string text() const {
    std::fflush(stderr);
    std::ifstream in(path_);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  // How many times `needle` occurs in what was written.
  int count(const std::string& needle) const {
    const std::string t = text();
    int n = 0;
    for (auto at = t.find(needle); at != std::string::npos; at = t.find(needle, at + 1)) ++n;
    return n;
  }

 private:
  int saved_ = -1;
  char path_[64];
};

}  // namespace kcont_test
