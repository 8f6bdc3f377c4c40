#include "ping_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "netns.h"

namespace kcont::net {

ping_runner::~ping_runner() {
  stop();
}

bool ping_runner::start(const netns_handle& ns, const std::string& target, std::uint64_t count,
                        unsigned interval_us, std::string& why) {
  if (find_program("ping").empty()) {
    why = "no 'ping' command (install iputils-ping)";
    return false;
  }
  char interval[32];
  std::snprintf(interval, sizeof interval, "%u.%06u", interval_us / 1000000, interval_us % 1000000);
  std::vector<std::string> argv{"ping", "-n", "-i",  interval, "-c", std::to_string(count),
                                "-W",   "1",  target};
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    why = "pipe for ping's output failed";
    return false;
  }
  // The thread that forks ping reads it to the end: ping's PR_SET_PDEATHSIG is tied to the
  // forking thread, which therefore lives exactly as long as ping.
  std::atomic<int> started{0};  // 1: forked, -1: failed
  std::string spawn_why;
  reader_ = std::thread([this, &ns, argv, p, &started, &spawn_why] {
    const pid_t pid = ns.spawn(argv, p[1], spawn_why);
    ::close(p[1]);
    if (pid < 0) {
      ::close(p[0]);
      started.store(-1, std::memory_order_release);
      started.notify_one();
      done_.store(true, std::memory_order_release);
      return;
    }
    pid_.store(pid, std::memory_order_relaxed);
    started.store(1, std::memory_order_release);
    started.notify_one();
    read_output(p[0]);
    ::close(p[0]);
    // EOF: ping is exiting. No kill from stop() after this: the pid is about to be reaped.
    pid_.store(-1, std::memory_order_relaxed);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!res_.ran && res_.problem.empty())
      res_.problem = "ping exited without a summary (status " + std::to_string(status) + ")";
    done_.store(true, std::memory_order_release);
  });
  started.wait(0, std::memory_order_acquire);
  if (started.load(std::memory_order_acquire) < 0) {
    reader_.join();
    why = spawn_why;
    return false;
  }
  return true;
}

void ping_runner::read_output(int fd) {
  std::string line;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] != '\n') {
        line += buf[i];
        continue;
      }
      parse_line(line);
      line.clear();
    }
  }
  if (!line.empty()) parse_line(line);
}

void ping_runner::parse_line(const std::string& line) {
  // "64 bytes from 10.77.0.2: icmp_seq=1 ttl=64 time=0.045 ms"
  if (auto t = line.find(" time="); t != std::string::npos && line.find("icmp_seq=") != line.npos) {
    const double ms = std::strtod(line.c_str() + t + 6, nullptr);
    rtt_.record(static_cast<std::uint64_t>(ms * 1e6));
    answered_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // "1000 packets transmitted, 1000 received, 0% packet loss, time 1101ms"
  if (line.find(" packets transmitted, ") != std::string::npos) {
    unsigned long long tx = 0, rx = 0;
    if (std::sscanf(line.c_str(), "%llu packets transmitted, %llu", &tx, &rx) == 2) {
      res_.ran = true;
      res_.transmitted = tx;
      res_.received = rx;
    }
    return;
  }
  if (line.rfind("PING ", 0) == 0 || line.rfind("--- ", 0) == 0 || line.rfind("rtt ", 0) == 0 ||
      line.empty())
    return;
  if (res_.problem.size() < 400) res_.problem += (res_.problem.empty() ? "" : "; ") + line;
}

void ping_runner::stop() {
  if (!reader_.joinable()) return;
  const pid_t pid = pid_.load(std::memory_order_relaxed);
  if (!done() && pid > 0) ::kill(pid, SIGINT);
  reader_.join();
}

ping_result ping_runner::result() const {
  return res_;
}

}  // namespace kcont::net
