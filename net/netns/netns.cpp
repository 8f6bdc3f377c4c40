#include "netns.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace kcont::net {
namespace {

std::string errno_text(int e) {
  return std::strerror(e);
}

// Runs argv (argv[0] a path) and returns its exit status (-1: could not run it), with its
// stdout and stderr in `output`. posix_spawn: safe from a program that has threads.
int run_capture(const std::vector<std::string>& argv, std::string& output) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int e = ::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(p[1]);
  if (e != 0) {
    ::close(p[0]);
    output = errno_text(e);
    return -1;
  }
  char buf[512];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(p[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The pid of a name of one of our prefixes (PREFIX<pid>), or 0 for any other name.
pid_t pid_in_name(const std::string& n) {
  for (const char* prefix : {netns_prefix_nicsim, netns_prefix_bench, netns_prefix_test}) {
    const std::size_t plen = std::strlen(prefix);
    if (n.size() <= plen || n.compare(0, plen, prefix) != 0 || n.size() - plen > 9 ||
        n.find_first_not_of("0123456789", plen) != std::string::npos)
      continue;
    return static_cast<pid_t>(std::stol(n.substr(plen)));
  }
  return 0;
}

bool pretend_no_netns() {
  const char* v = std::getenv("KCONT_NO_NETNS");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

}  // namespace

std::string netns_name_for(const char* prefix, pid_t pid) {
  return prefix + std::to_string(pid);
}

bool netns_remove(const std::string& name) {
  const std::string path = std::string(netns_dir) + "/" + name;
  ::umount2(path.c_str(), MNT_DETACH);  // fails harmlessly when it is not mounted
  return ::unlink(path.c_str()) == 0;
}

std::vector<std::string> netns_sweep_stale(bool own_pid_is_stale) {
  std::vector<std::string> removed;
  DIR* d = ::opendir(netns_dir);
  if (d == nullptr) return removed;
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
  ::closedir(d);
  for (const std::string& n : names) {
    const pid_t pid = pid_in_name(n);
    if (pid <= 0 || (pid == ::getpid() && !own_pid_is_stale)) continue;
    // Alive means alive: a pid reused by an unrelated program keeps its namespace until that
    // program ends (removing a live kcont-nicsim's or test's namespace would be worse).
    const bool dead = pid == ::getpid() || (::kill(pid, 0) != 0 && errno == ESRCH);
    if (dead && netns_remove(n)) removed.push_back(n);
  }
  return removed;
}

std::unique_ptr<netns_reaper> netns_reaper::start(const std::string& name, std::string& why) {
  // Everything the child needs is made before fork: it then calls only async-signal-safe
  // functions (close, dup2, close_range, sigaction, read, umount2, unlink, _exit).
  char path[256];
  std::snprintf(path, sizeof path, "%s/%s", netns_dir, name.c_str());
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    why = "pipe: " + errno_text(errno);
    return nullptr;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    why = "fork: " + errno_text(errno);
    ::close(p[0]);
    ::close(p[1]);
    return nullptr;
  }
  if (pid == 0) {
    // Nothing of the parent's stays open here but the pipe's read end (as fd 3; stdio kept):
    // a copy of another pipe's write end would keep its reader from ever seeing EOF.
    // (close_range needs Linux 5.9; before it, the write end is closed here all the same.)
    ::close(p[1]);
    if (p[0] != 3 && ::dup2(p[0], 3) < 0) ::_exit(1);
    ::syscall(SYS_close_range, 4u, ~0u, 0u);
    const int rfd = 3;
    // Ctrl-C and kill of the process group must not take the reaper along: it is the one
    // that cleans up after them.
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGINT, &ign, nullptr);
    ::sigaction(SIGTERM, &ign, nullptr);
    ::sigaction(SIGHUP, &ign, nullptr);
    ::sigaction(SIGPIPE, &ign, nullptr);
    char c;
    for (;;) {
      const ssize_t n = ::read(rfd, &c, 1);
      if (n == 0 || (n < 0 && errno != EINTR)) break;
    }
    ::umount2(path, MNT_DETACH);
    ::unlink(path);
    ::_exit(0);
  }
  ::close(p[0]);
  return std::unique_ptr<netns_reaper>(new netns_reaper(pid, p[1]));
}

netns_reaper::~netns_reaper() {
  ::close(wfd_);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

std::string find_program(const std::string& name) {
  std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/bin:/bin";
  for (std::size_t start = 0; start <= path.size();) {
    const std::size_t end = std::min(path.find(':', start), path.size());
    const std::string dir = path.substr(start, end - start);
    start = end + 1;
    if (dir.empty()) continue;
    const std::string full = dir + "/" + name;
    if (::access(full.c_str(), X_OK) == 0) return full;
  }
  return "";
}

bool netns_possible(std::string& why) {
  if (pretend_no_netns()) {
    why = "KCONT_NO_NETNS is set (pretending no network namespace can be made)";
    return false;
  }
  if (find_program("ip").empty()) {
    why = "the 'ip' command is missing (install iproute2)";
    return false;
  }
  return true;
}

std::unique_ptr<netns_handle> netns_handle::create(const std::string& name, std::string& why) {
  if (!netns_possible(why)) return nullptr;
  const std::string ip = find_program("ip");
  std::string out;
  const int rc = run_capture({ip, "netns", "add", name}, out);
  if (rc != 0) {
    why = "'ip netns add " + name + "' failed" + (out.empty() ? "" : ": " + out) +
          (::geteuid() != 0 ? " (needs root or CAP_SYS_ADMIN and CAP_NET_ADMIN)" : "");
    return nullptr;
  }
  const std::string path = std::string(netns_dir) + "/" + name;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    why = "opening " + path + ": " + errno_text(errno);
    netns_remove(name);
    return nullptr;
  }
  return std::unique_ptr<netns_handle>(new netns_handle(name, fd));
}

netns_handle::~netns_handle() {
  ::close(fd_);
  netns_remove(name_);
}

bool netns_handle::enter_thread() const {
  return ::setns(fd_, CLONE_NEWNET) == 0;
}

pid_t netns_handle::spawn(const std::vector<std::string>& argv, int out_fd,
                          std::string& why) const {
  const std::string prog = argv.empty() ? "" : find_program(argv[0]);
  if (prog.empty()) {
    why = "'" + (argv.empty() ? std::string() : argv[0]) + "' was not found";
    return -1;
  }
  std::vector<char*> args;
  args.push_back(const_cast<char*>(prog.c_str()));
  for (std::size_t i = 1; i < argv.size(); ++i) args.push_back(const_cast<char*>(argv[i].c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    why = "fork: " + errno_text(errno);
    return -1;
  }
  if (pid == 0) {
    // Only async-signal-safe calls from here: the parent has threads.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::setns(fd_, CLONE_NEWNET) != 0) ::_exit(126);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);  // the parent died before prctl
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    ::execve(args[0], args.data(), environ);
    ::_exit(127);
  }
  return pid;
}

}  // namespace kcont::net
