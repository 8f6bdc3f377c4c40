// /proc/self/task/TID/stat readings for the blocking watch (see thread_state.h).
#include "thread_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

namespace kcont::detail {

thread_state_reader::~thread_state_reader() {
  for (auto& [tid, fd] : fds_) ::close(fd);
}

void thread_state_reader::forget(pid_t tid) {
  auto it = fds_.find(tid);
  if (it == fds_.end()) return;
  ::close(it->second);
  fds_.erase(it);
}

char thread_state_reader::state_letter(const char* line, long length) {
  long close = -1;
  for (long i = 0; i < length; ++i)
    if (line[i] == ')') close = i;
  if (close < 0 || close + 2 >= length || line[close + 1] != ' ') return 0;
  return line[close + 2];
}

thread_run_state thread_state_reader::classify(char letter) {
  if (letter == 'S' || letter == 'D') return thread_run_state::sleeping;
  // Exiting: a thread just joined may still be listed a moment, as a zombie or dead.
  if (letter == 'Z' || letter == 'X' || letter == 'x') return thread_run_state::gone;
  return thread_run_state::running;
}

thread_run_state thread_state_reader::read(pid_t tid) {
  auto it = fds_.find(tid);
  if (it == fds_.end()) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return thread_run_state::gone;
    it = fds_.emplace(tid, fd).first;
  }
  char line[512];
  const ssize_t n = ::pread(it->second, line, sizeof line, 0);
  if (n <= 0) {  // the thread has exited (ESRCH); its TID may be reused by a new thread
    forget(tid);
    return thread_run_state::gone;
  }
  const char letter = state_letter(line, n);
  return letter == 0 ? thread_run_state::gone : classify(letter);
}

}  // namespace kcont::detail
