// fd readiness in the loop backend (machine_hooks.h): watch_fd, pause/resume, unwatch_fd. Runs
// once per backend (KCONT_BACKEND).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/runtime.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>
#include <thread>

#include "test_util.h"

using namespace std::chrono_literals;
using kcont_test::wait_until;

namespace {

struct pipe_pair {
  int r = -1, w = -1;
  pipe_pair() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
    r = fds[0];
    w = fds[1];
  }
  ~pipe_pair() {
    ::close(r);
    ::close(w);
  }
  void put(int n) {
    for (int i = 0; i < n; ++i) REQUIRE(::write(w, "x", 1) == 1);
  }
  int sitting() const {
    int n = 0;
    ::ioctl(r, FIONREAD, &n);
    return n;
  }
};

// What the callback saw. `per_call` bytes are read per call (0: everything).
struct probe {
  int fd = -1;
  int per_call = 0;
  cpu_info* want_cpu = nullptr;
  kcont::machine::fd_watch* w = nullptr;
  std::atomic<int> calls{0}, bytes{0}, wrong_cpu{0};
  std::atomic<bool> pause_in_fn{false}, unwatch_in_fn{false}, slow{false};
  std::atomic<bool> inside{false}, finished{false};

  // Watches read_fd on ci (set the flags first).
  void watch(cpu_info* ci, int read_fd) {
    fd = read_fd;
    want_cpu = ci;
    w = kcont::machine::watch_fd(ci, read_fd, &probe::fn, this);
  }
  static void fn(void* self) { static_cast<probe*>(self)->run(); }
  void run() {
    calls.fetch_add(1);
    if (kcont::machine::this_thread_cpu() != want_cpu || !kcont::in_interrupt_context())
      wrong_cpu.fetch_add(1);
    inside = true;
    if (slow) std::this_thread::sleep_for(100ms);
    char buf[64];
    for (;;) {
      int want = per_call == 0 ? static_cast<int>(sizeof buf) : per_call;
      ssize_t n = ::read(fd, buf, static_cast<size_t>(want));
      if (n <= 0) break;
      bytes.fetch_add(static_cast<int>(n));
      if (per_call != 0) break;
    }
    if (pause_in_fn) kcont::machine::fd_watch_pause(w);
    if (unwatch_in_fn) {
      unwatch_in_fn = false;
      kcont::machine::unwatch_fd(w);
      w = nullptr;
    }
    finished = true;
  }
};

// Writes n bytes and waits a while: true if fn was not called for them.
bool no_call_for_new_data(probe& pr, pipe_pair& p, int n) {
  const int calls = pr.calls;
  p.put(n);
  std::this_thread::sleep_for(150ms);
  return pr.calls == calls;
}

}  // namespace

TEST_CASE("fd watch: fn runs on the watched CPU's thread when the fd is readable") {
  kcont::runtime rt(kcont_test::cpus(2));
  pipe_pair p;
  probe pr;
  pr.watch(rt.cpu(1), p.r);
  std::this_thread::sleep_for(50ms);
  CHECK(pr.bytes == 0);  // nothing to read: at most spurious calls
  p.put(3);
  CHECK(wait_until([&] { return pr.bytes == 3; }));
  p.put(2);
  CHECK(wait_until([&] { return pr.bytes == 5; }));
  CHECK(pr.wrong_cpu == 0);
  kcont::machine::unwatch_fd(pr.w);
}

TEST_CASE("fd watch: level-triggered, data fn leaves unread is reported again") {
  kcont::runtime rt(kcont_test::cpus(1));
  pipe_pair p;
  probe pr;
  pr.per_call = 1;  // one byte per call
  pr.watch(rt.cpu(0), p.r);
  p.put(10);  // one write burst, no later writes
  CHECK(wait_until([&] { return pr.bytes == 10; }));
  CHECK(pr.calls >= 10);
  kcont::machine::unwatch_fd(pr.w);
}

TEST_CASE("fd watch: pause stops callbacks while data sits; resume from a foreign thread") {
  kcont::runtime rt(kcont_test::cpus(2));
  pipe_pair p;
  probe pr;
  pr.pause_in_fn = true;  // pause from inside fn (the CPU's own thread)
  pr.watch(rt.cpu(0), p.r);
  p.put(1);
  CHECK(wait_until([&] { return pr.bytes == 1; }));
  CHECK(no_call_for_new_data(pr, p, 4));  // paused: no callback although data sits
  CHECK(p.sitting() == 4);

  pr.pause_in_fn = false;
  std::thread foreign([&] { kcont::machine::fd_watch_resume(pr.w); });
  foreign.join();
  CHECK(wait_until([&] { return pr.bytes == 5; }));  // sitting data seen without a new write
  CHECK(pr.wrong_cpu == 0);

  // Pause from a foreign thread, then resume: nothing is lost either way.
  kcont::machine::fd_watch_pause(pr.w);
  std::this_thread::sleep_for(20ms);  // a callback under way may still finish
  CHECK(no_call_for_new_data(pr, p, 2));
  kcont::machine::fd_watch_resume(pr.w);
  CHECK(wait_until([&] { return pr.bytes == 7; }));
  kcont::machine::unwatch_fd(pr.w);
}

TEST_CASE("fd watch: unwatch waits for a running callback; no callback after it returns") {
  kcont::runtime rt(kcont_test::cpus(2));
  pipe_pair p;
  probe pr;
  pr.slow = true;
  pr.watch(rt.cpu(1), p.r);
  p.put(1);
  REQUIRE(wait_until([&] { return pr.inside.load(); }));
  kcont::machine::unwatch_fd(pr.w);  // from a foreign thread, while fn sleeps
  CHECK(pr.finished);
  CHECK(no_call_for_new_data(pr, p, 3));
  CHECK(p.sitting() == 3);
}

TEST_CASE("fd watch: unwatch from inside fn; the caller's fd stays open") {
  kcont::runtime rt(kcont_test::cpus(1));
  pipe_pair p;
  probe pr;
  pr.unwatch_in_fn = true;
  pr.watch(rt.cpu(0), p.r);
  p.put(1);
  CHECK(wait_until([&] { return pr.finished.load(); }));
  std::this_thread::sleep_for(20ms);
  CHECK(no_call_for_new_data(pr, p, 2));
  CHECK(::fcntl(p.r, F_GETFD) >= 0);  // kcont closed only its dup
  CHECK(p.sitting() == 2);
}

TEST_CASE("fd watch: many watches on one CPU, unwatched from another thread while data flows") {
  kcont::runtime rt(kcont_test::cpus(2));
  constexpr int n = 8;
  pipe_pair p[n];
  probe pr[n];
  for (int i = 0; i < n; ++i) pr[i].watch(rt.cpu(i % 2), p[i].r);
  for (int round = 0; round < 20; ++round)
    for (int i = 0; i < n; ++i) p[i].put(1);
  for (int i = 0; i < n; ++i) CHECK(wait_until([&] { return pr[i].bytes == 20; }));
  for (int i = 0; i < n; ++i) {
    p[i].put(1);
    kcont::machine::unwatch_fd(pr[i].w);
    CHECK(pr[i].wrong_cpu == 0);
  }
}

TEST_CASE("fd watch: misuse is refused with a clear error") {
  kcont::runtime rt(kcont_test::cpus(1));
  probe pr;
  CHECK_THROWS_AS(kcont::machine::watch_fd(rt.cpu(0), -1, &probe::fn, &pr), std::system_error);
  rt.stop();
  pipe_pair p;
  CHECK_THROWS_AS(kcont::machine::watch_fd(rt.cpu(0), p.r, &probe::fn, &pr), std::logic_error);
}
