// Thread creation failing (RLIMIT_NPROC): every face answers with an error code or a held
// piece of work, never a crash, a hang or a lost task. Each case runs in a child process that
// drops root to `nobody` (root is not bound by RLIMIT_NPROC) and allows exactly the threads
// it wants to exist; skipped with a message where that cannot be arranged.
#include <doctest/doctest.h>
#include <grp.h>
#include <kcont/kcont.h>
#include <kcont/runtime.h>
#include <kcont/task.h>
#include <kcont/workqueue.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <system_error>

#include "../workqueue/src/engine.h"
#include "test_util.h"

namespace {

constexpr uid_t kNobody = 65534;

// Allows `more` threads beyond the ones this process has now (soft limit; the hard limit
// leaves room to raise it again with allow_plenty).
bool allow_threads(int more) {
  rlimit r{static_cast<rlim_t>(kcont_test::process_threads() + more), 4096};
  return ::setrlimit(RLIMIT_NPROC, &r) == 0;
}
void allow_plenty() {
  rlimit r{4096, 4096};
  ::setrlimit(RLIMIT_NPROC, &r);
}

// Runs body in a child that is not root; returns its exit status, or -1 when the child could
// not be set up (reported as a skip).
int in_limited_child(const std::function<int()>& body) {
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::geteuid() == 0) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)
        std::_Exit(77);
    }
    std::_Exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) return WEXITSTATUS(status) == 77 ? -1 : WEXITSTATUS(status);
  std::fprintf(stderr, "child killed by signal %d\n", WTERMSIG(status));
  return 100 + WTERMSIG(status);
}

#define CHILD_CHECK(cond)                                                          \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::fprintf(stderr, "%s:%d: CHILD_CHECK(%s)\n", __FILE__, __LINE__, #cond); \
      return 1;                                                                    \
    }                                                                              \
  } while (0)

void run_case(const char* name, const std::function<int()>& body) {
  const int rc = in_limited_child(body);
  if (rc == -1) {
    MESSAGE("skipped ", name, ": cannot drop to an unprivileged user here");
    return;
  }
  CHECK_MESSAGE(rc == 0, std::string(name));
}

kcont::runtime_config one_cpu() {
  kcont::runtime_config c = kcont_test::cpus(1);
  return c;
}

}  // namespace

TEST_CASE("no thread can be made: a runtime refuses with std::system_error") {
  run_case("runtime", [] {
    if (!allow_threads(0)) return 77;
    try {
      kcont::runtime rt(one_cpu());
      return 1;  // it should not have started
    } catch (const std::system_error&) {
    }
    allow_plenty();
    kcont::runtime rt(one_cpu());  // and works once threads can be made
    return 0;
  });
}

TEST_CASE("no worker engine: taskq_create NULL + errno, workqueue_create and kcont_create fail") {
  run_case("faces", [] {
    kcont::runtime rt(one_cpu());  // its CPU loop; no worker engine yet
    kcont::runtime_scope scope(rt);
    if (!allow_threads(0)) return 77;  // no thread more from here on
    errno = 0;
    taskq* tq = taskq_create("nothreads", 1, 0, TASKQ_MPSAFE);
    CHILD_CHECK(tq == nullptr);
    CHILD_CHECK(errno == EAGAIN);
    workqueue* wq = nullptr;
    CHILD_CHECK(workqueue_create(
                    &wq, "nothreads", [](work*, void*) {}, nullptr, PRI_NONE, IPL_NONE,
                    WQ_MPSAFE) == EAGAIN);
    errno = 0;
    kcont_t* kc = kcont_create(
        wq_prihigh, nullptr, [](void*, kcont_t*) {}, nullptr, 0);
    CHILD_CHECK(kc == nullptr);
    CHILD_CHECK(errno == EAGAIN);
    errno = 0;
    CHILD_CHECK(kcont_workqueue_acquire(PRI_LOW, WQ_PERCPU) == nullptr);
    CHILD_CHECK(errno == EAGAIN);
    // The soft queues need no thread (their drains run on the CPU loops): they work meanwhile.
    std::atomic<int> soft_runs{0};
    kcont_t* soft = kcont_create(
        wq_softnet, nullptr, [](void* p, kcont_t*) { ++*static_cast<std::atomic<int>*>(p); },
        &soft_runs, 0);
    CHILD_CHECK(soft != nullptr);
    if (soft != nullptr) {
      CHILD_CHECK(kcont_schedule(soft, nullptr, 0) == 0);
      CHILD_CHECK(kcont_test::wait_until([&] { return soft_runs == 1; }));
      kcont_destroy(soft);
    }
    // Threads again: everything works, nothing was left half made.
    allow_plenty();
    tq = taskq_create("threads", 1, 0, TASKQ_MPSAFE);
    CHILD_CHECK(tq != nullptr);
    std::atomic<int> runs{0};
    task t = TASK_INITIALIZER([](void* p) { ++*static_cast<std::atomic<int>*>(p); }, &runs);
    task_add(tq, &t);
    taskq_barrier(tq);
    CHILD_CHECK(runs == 1);
    kc = kcont_create(
        wq_prihigh, nullptr, [](void* p, kcont_t*) { ++*static_cast<std::atomic<int>*>(p); }, &runs,
        0);
    CHILD_CHECK(kc != nullptr);
    CHILD_CHECK(kcont_schedule(kc, nullptr, 0) == 0);
    CHILD_CHECK(kcont_test::wait_until([&] { return runs == 2; }));
    kcont_destroy(kc);
    taskq_destroy(tq);
    return 0;
  });
}

TEST_CASE("no worker can be made: tasks are held, none lost, and run once workers can be") {
  run_case("held", [] {
    kcont::runtime rt(one_cpu());
    kcont::runtime_scope scope(rt);
    taskq* tq = taskq_create("held", 2, 0, TASKQ_MPSAFE);  // engine and overseer exist now
    CHILD_CHECK(tq != nullptr);
    auto& eng = kcont::detail::engine_of(rt);
    // Workers made so far are idle; take them out of play by letting them exit is slow, so
    // count on the overseer instead: no *new* worker can be made from here on.
    if (!allow_threads(0)) return 77;
    const auto failures_before = eng.stats().thread_create_failures;
    std::atomic<int> runs{0};
    task tasks[50];
    for (auto& t : tasks) {
      task_set(
          &t, [](void* p) { ++*static_cast<std::atomic<int>*>(p); }, &runs);
      CHILD_CHECK(task_add(tq, &t) == 1);
    }
    // Whatever idle workers existed may run some; the rest waits for a thread.
    kcont_test::wait_until([&] { return runs == 50; }, std::chrono::milliseconds(300));
    if (runs < 50) CHILD_CHECK(eng.stats().thread_create_failures > failures_before);
    allow_plenty();
    CHILD_CHECK(kcont_test::wait_until([&] { return runs == 50; }));
    taskq_barrier(tq);
    CHILD_CHECK(runs == 50);  // exactly once each
    taskq_destroy(tq);
    return 0;
  });
}
