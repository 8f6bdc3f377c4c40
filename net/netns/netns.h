// Network namespaces of our own, so nothing kcont's programs and tests do with a tap ever
// configures or sends anything in the host's default namespace: the tap is made inside one,
// the host side's address lives there, and whatever talks to the tap (ping, the UDP load, a
// test's packet socket) runs there too (a thread or child that setns(2)'s into it).
//
// Named PREFIX<pid> under /run/netns (made with `ip netns add`, so `ip netns exec` works on
// it): kcont-nicsim-<pid> for kcont-nicsim, kcont-bench-<pid> for kcont-bench's net rows,
// kcont-test-<pid> for the tests. A name is removed by whoever outlives its process's end:
//   - the process itself on a normal exit, Ctrl-C or SIGTERM (netns_handle's destructor);
//   - the reaper, a child blocked reading a pipe whose write end only the process holds: EOF
//     means the process is gone, however it died (kill -9, a crashed test);
//   - the sweep (netns_sweep_stale, run before making one), which removes names of any
//     of these prefixes whose pid is dead.
// KCONT_NO_NETNS=1 pretends no namespace can be made (the fallback and skip paths' tests).
// own_netns.h puts the three together; netns_thread.h moves a thread in and out.
//
// Locks used to protect the fields of netns_handle and netns_reaper:
//   [I] immutable after construction (their users are the control thread; spawn and
//       enter_thread only read fd_)
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace kcont::net {

inline constexpr const char* netns_prefix_nicsim = "kcont-nicsim-";
inline constexpr const char* netns_prefix_bench = "kcont-bench-";
inline constexpr const char* netns_prefix_test = "kcont-test-";
inline constexpr const char* netns_dir = "/run/netns";

std::string netns_name_for(const char* prefix, pid_t pid);  // PREFIX<pid>
// Removes /run/netns/NAME (unmounts and unlinks it, as `ip netns delete` does). Async-signal-
// safe path building aside, it makes two system calls. false: it did not exist.
bool netns_remove(const std::string& name);
// Removes every namespace of our prefixes (PREFIX<pid>) whose pid is not alive, or,
// with `own_pid_is_stale`, is ours (left by an earlier process that had our pid, when this
// process has made none yet). Returns the names removed.
std::vector<std::string> netns_sweep_stale(bool own_pid_is_stale = true);

// The reaper of one namespace name. Its child only calls async-signal-safe functions and
// closes every descriptor but its pipe first, so it may be started from a process with
// threads and holds nothing of the parent's open (a pipe a test waits on, another reaper's).
class netns_reaper {
 public:
  // nullptr (with `why`) when fork or pipe fails.
  static std::unique_ptr<netns_reaper> start(const std::string& name, std::string& why);
  ~netns_reaper();  // closes the pipe (the child then removes the name, if still there) and
                    // waits for the child
  netns_reaper(const netns_reaper&) = delete;
  netns_reaper& operator=(const netns_reaper&) = delete;
  pid_t pid() const { return pid_; }

 private:
  netns_reaper(pid_t pid, int wfd) : pid_(pid), wfd_(wfd) {}
  pid_t pid_;  // [I]
  int wfd_;    // [I] close-on-exec: no spawned program inherits it
};

class netns_handle {
 public:
  // Makes the namespace (`ip netns add NAME`) and opens it. nullptr with `why` saying what is
  // missing (KCONT_NO_NETNS set, no `ip`, not permitted, ...).
  static std::unique_ptr<netns_handle> create(const std::string& name, std::string& why);
  ~netns_handle();  // closes the fd and removes the namespace
  netns_handle(const netns_handle&) = delete;
  netns_handle& operator=(const netns_handle&) = delete;

  const std::string& name() const { return name_; }
  int fd() const { return fd_; }
  // Moves the calling thread into the namespace (setns). Only for threads of our own that do
  // nothing else afterwards (never a runtime's thread). false with errno on failure.
  bool enter_thread() const;
  // Runs `argv` (argv[0] looked up in PATH first) in a child that enters the namespace before
  // exec and dies with the thread that forked it (PR_SET_PDEATHSIG). Its stdout and stderr go
  // to `out_fd`. -1 with `why` on failure.
  pid_t spawn(const std::vector<std::string>& argv, int out_fd, std::string& why) const;

 private:
  netns_handle(std::string name, int fd) : name_(std::move(name)), fd_(fd) {}
  std::string name_;  // [I]
  int fd_;            // [I]
};

// false with `why` when no namespace can be made for a reason known without trying
// (KCONT_NO_NETNS is set, no `ip`): checked before forking a reaper for nothing.
bool netns_possible(std::string& why);

// argv[0] as found in PATH (or in /usr/sbin and /sbin, where `ip` lives), or "" if nowhere.
std::string find_program(const std::string& name);

}  // namespace kcont::net
