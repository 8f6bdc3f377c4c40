// Whether another thread of this process is running or asleep, as the kernel's scheduler sees
// it: the state letter of /proc/self/task/TID/stat. The engine's blocking watch (engine.cpp)
// asks it about a worker that has been inside one work item for longer than the blocking
// threshold: `S` (interruptible sleep: read(2), a futex, nanosleep) or `D` (uninterruptible)
// means the worker is blocked and its queue may get another worker; `R` means it is computing
// or waiting for a CPU, where another worker would not help.
//
// Why /proc stat and not schedstat's run time or the thread's CPU clock: one pread of a kept
// descriptor answers at once (on a 2-vCPU KVM guest, under load: 2.5 us a read; schedstat
// 2.3 us, the thread CPU clock 1.3 us, opening the file each time 7.8 us), where a run time must
// be read twice, a sampling period apart, to tell "not advancing"; and only the state tells a
// sleeper from a runnable thread that is merely preempted.
//
// One reader per watching thread (not thread-safe). Descriptors are kept per TID and closed
// when forget() is told the TID is gone, or by the destructor.
#pragma once

#include <sys/types.h>

#include <unordered_map>

namespace kcont::detail {

enum class thread_run_state { running, sleeping, gone };

class thread_state_reader {
 public:
  thread_state_reader() = default;
  ~thread_state_reader();
  thread_state_reader(const thread_state_reader&) = delete;
  thread_state_reader& operator=(const thread_state_reader&) = delete;

  // The state of thread `tid` of this process now. `gone`: it has exited, or /proc is not
  // mounted (then nothing is ever reported blocked; the explicit blocking points still work).
  thread_run_state read(pid_t tid);
  void forget(pid_t tid);

  // The state letter's meaning (exposed for the unit test): 'R' running or runnable; 'S' and
  // 'D' asleep; 'Z', 'X' exiting (gone: a joined thread may be listed a moment longer);
  // anything else (stopped, traced) counts as not blocked in a way another worker could help
  // with, so as running.
  static thread_run_state classify(char state_letter);
  // The state letter of a /proc/PID/stat line: the first field after the last ')' (the command
  // name in parentheses may itself contain ") "). 0 if the line has no such field.
  static char state_letter(const char* stat_line, long length);

 private:
  std::unordered_map<pid_t, int> fds_;  // TID -> open /proc/self/task/TID/stat
};

}  // namespace kcont::detail
