// The example servers (examples/), each started as a child process: echo, a slow request
// answered while a fast one on another connection is answered meanwhile, an idle connection
// closed by the server, and a clean exit 0 on SIGTERM.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

using clk = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr int idle_ms = 700;
constexpr int slow_ms = 250;

struct child {
  pid_t pid = -1;
  int out = -1;  // its stdout
  unsigned port = 0;

  explicit child(const char* path) {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    std::string idle = std::to_string(idle_ms), slow = std::to_string(slow_ms);
    std::vector<char*> argv = {const_cast<char*>(path),
                               const_cast<char*>("--idle-ms"),
                               idle.data(),
                               const_cast<char*>("--slow-ms"),
                               slow.data(),
                               const_cast<char*>("--run-ms"),
                               const_cast<char*>("60000"),
                               nullptr};
    REQUIRE(posix_spawn(&pid, path, &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(p[1]);
    out = p[0];
    std::string line = read_line(10s);
    REQUIRE(std::sscanf(line.c_str(), "listening on port %u", &port) == 1);
  }
  ~child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    ::close(out);
  }
  std::string read_line(std::chrono::milliseconds timeout) {
    std::string s;
    auto give_up = clk::now() + timeout;
    char ch;
    while (clk::now() < give_up) {
      pollfd pf{out, POLLIN, 0};
      if (::poll(&pf, 1, 100) <= 0) continue;
      if (::read(out, &ch, 1) != 1) break;
      if (ch == '\n') return s;
      s += ch;
    }
    return s;
  }
  int terminate() {  // SIGTERM, then its exit status
    ::kill(pid, SIGTERM);
    int st = 0;
    auto give_up = clk::now() + 20s;
    while (::waitpid(pid, &st, WNOHANG) == 0) {
      if (clk::now() > give_up) return -1;
      ::usleep(10000);
    }
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
};

int connect_to(unsigned port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

void send_line(int fd, const std::string& s) {
  REQUIRE(::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
}

// One reply line; "" on EOF/timeout. `eof` tells which.
std::string recv_line(int fd, std::chrono::milliseconds timeout, bool* eof = nullptr) {
  std::string s;
  auto give_up = clk::now() + timeout;
  while (clk::now() < give_up) {
    pollfd pf{fd, POLLIN, 0};
    if (::poll(&pf, 1, 50) <= 0) continue;
    char ch;
    ssize_t n = ::read(fd, &ch, 1);
    if (n <= 0) {
      if (eof) *eof = true;
      return s;
    }
    if (ch == '\n') return s;
    s += ch;
  }
  return s;
}

void exercise(const char* path) {
  child srv(path);
  INFO("server " << path << " on port " << srv.port);

  int a = connect_to(srv.port);
  send_line(a, "hello kcont\n");
  CHECK(recv_line(a, 5s) == "hello kcont");

  // A slow request on b; a fast one on a is answered meanwhile.
  int b = connect_to(srv.port);
  auto t0 = clk::now();
  send_line(b, "slow request\n");
  std::this_thread::sleep_for(20ms);
  send_line(a, "fast\n");
  CHECK(recv_line(a, 5s) == "fast");
  CHECK(clk::now() - t0 < std::chrono::milliseconds(slow_ms));  // did not wait for the slow one
  CHECK(recv_line(b, 5s) == "done: slow request");
  CHECK(clk::now() - t0 >= std::chrono::milliseconds(slow_ms));

  // An idle connection is closed by the server after the idle timeout (not before).
  int c = connect_to(srv.port);
  auto t1 = clk::now();
  bool eof = false;
  CHECK(recv_line(c, 10s, &eof).empty());
  CHECK(eof);
  auto idle_for = clk::now() - t1;
  CHECK(idle_for >= std::chrono::milliseconds(idle_ms - 50));
  CHECK(idle_for < std::chrono::milliseconds(idle_ms + 3000));

  ::close(a);
  ::close(b);
  ::close(c);
  CHECK(srv.terminate() == 0);
}

}  // namespace

TEST_CASE("example: asio_echo_server") {
  exercise(KCONT_EXAMPLE_ASIO);
}

TEST_CASE("example: coro_echo_server (coroutines on kcont)") {
  exercise(KCONT_EXAMPLE_CORO);
}

#ifdef KCONT_EXAMPLE_LIBEVENT
TEST_CASE("example: libevent_echo_server") {
  exercise(KCONT_EXAMPLE_LIBEVENT);
}
#endif
