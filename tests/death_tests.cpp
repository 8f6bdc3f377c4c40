// Misuse that kcont answers with a clear message and an abort (no silent corruption, no
// hang). `death_tests CASE MESSAGE` runs CASE in a child process and passes when the child
// was killed by SIGABRT and its stderr contains MESSAGE.
#include <kcont/callout.h>
#include <kcont/coro.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/kcont.h>
#include <kcont/runtime.h>
#include <kcont/softint.h>
#include <kcont/task.h>
#include <kcont/workqueue.h>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>

namespace {

kcont::runtime_config one_cpu() {
  kcont::runtime_config c;
  c.ncpu = 1;
  return c;
}

// A softint whose handler throws, on a one-CPU runtime; waits (the policy aborts first).
void throw_from_a_softint() {
  kcont::runtime rt(one_cpu());
  kcont::softint si(rt, SOFTINT_NET | SOFTINT_MPSAFE,
                    [] { throw std::runtime_error("handler failed on purpose"); });
  si.schedule(rt.cpu(0));
  ::sleep(30);
}

const std::map<std::string, std::function<void()>> cases = {
    {"callout_init_pending",
     [] {
       kcont::runtime rt(one_cpu());
       kcont::runtime_scope scope(rt);
       static callout c;
       callout_init(&c, CALLOUT_MPSAFE);
       callout_reset(
           &c, 100000, [](void*) {}, nullptr);
       callout_init(&c, CALLOUT_MPSAFE);
     }},
    {"kcont_setfunc_without_lock",
     [] {
       kcont::runtime rt(one_cpu());
       kcont::runtime_scope scope(rt);
       kcont_t* kc = kcont_create(
           wq_softnet, nullptr, [](void*, kcont_t*) {}, nullptr, 0);
       kcont_setfunc(
           kc, [](void*, kcont_t*) {}, nullptr);
     }},
    {"taskq_destroy_twice",
     [] {
       kcont::runtime rt(one_cpu());
       kcont::runtime_scope scope(rt);
       taskq* tq = taskq_create("twice", 1, 0, TASKQ_MPSAFE);
       taskq_destroy(tq);
       taskq_destroy(tq);
     }},
    {"softint_schedule_after_disestablish",
     [] {
       kcont::runtime rt(one_cpu());
       void* si = softint_establish_rt(
           rt, SOFTINT_NET | SOFTINT_MPSAFE, [](void*) {}, nullptr);
       softint_disestablish(si);
       softint_schedule_cpu(si, rt.cpu(0));
     }},
    {"softint_schedule_after_disestablish_again",
     [] {  // misuse twice in a row: the first schedule must already be caught
       kcont::runtime rt(one_cpu());
       void* si = softint_establish_rt(
           rt, SOFTINT_NET | SOFTINT_MPSAFE, [](void*) {}, nullptr);
       softint_disestablish(si);
       kcont::runtime_scope scope(rt);
       softint_schedule(si);
       softint_schedule(si);
     }},
    {"exception_policy_abort",
     [] {
       ::setenv("KCONT_ON_EXCEPTION", "abort", 1);
       throw_from_a_softint();
     }},
    {"exception_policy_set_abort",
     [] {
       kcont::set_exception_policy(kcont::exception_policy::abort);
       throw_from_a_softint();
     }},
    {"exception_policy_bad_env",
     [] {
       ::setenv("KCONT_ON_EXCEPTION", "sometimes", 1);
       throw_from_a_softint();
     }},
    // A bad KCONT_* variable when the default runtime starts lazily, inside a kernel-style
    // call nobody wraps in a try: the program ends with a message naming the variable.
    {"default_runtime_bad_ncpu",
     [] {
       ::setenv("KCONT_NCPU", "4294967297", 1);
       (void)curcpu();
     }},
    {"default_runtime_bad_hz",
     [] {
       ::setenv("KCONT_HZ", "4294968296", 1);
       (void)softint_establish(
           SOFTINT_NET | SOFTINT_MPSAFE, [](void*) {}, nullptr);
     }},
    {"stop_with_fd_watch",
     [] {
       kcont::runtime rt(one_cpu());
       int fds[2];
       if (::pipe(fds) != 0) std::exit(3);
       kcont::machine::watch_fd(
           rt.cpu(0), fds[0], [](void*) {}, nullptr);
       rt.stop();
     }},
    {"softint_disestablish_twice",
     [] {
       kcont::runtime rt(one_cpu());
       void* si = softint_establish_rt(
           rt, SOFTINT_NET | SOFTINT_MPSAFE, [](void*) {}, nullptr);
       softint_disestablish(si);
       softint_disestablish(si);
     }},
    {"timer_two_waiters",
     [] {
       kcont::runtime rt(one_cpu());
       kcont::timer t(rt);
       auto wait = [](kcont::timer& tm) -> kcont::co_task<> {
         co_await tm.sleep_for(std::chrono::hours(1));
       };
       kcont::spawn(wait(t));
       kcont::spawn(wait(t));  // the second waiter: misuse
     }},
    {"callout_uninitialised",
     [] {
       kcont::runtime rt(one_cpu());
       callout c{};
       callout_stop(&c);
     }},
    {"callout_destroy_pending",
     [] {
       kcont::runtime rt(one_cpu());
       kcont::runtime_scope scope(rt);
       callout c;
       callout_init(&c, CALLOUT_MPSAFE);
       callout_reset(
           &c, 1000, [](void*) {}, nullptr);
       callout_destroy(&c);
     }},
    {"taskctx_barrier_from_inside",
     [] {
       static taskctx tc;
       taskctx_init(&tc, 0);
       task t = TASK_INITIALIZER([](void*) { taskctx_barrier(&tc); }, nullptr);
       task_dispatch(&tc, &t);
     }},
    {"taskctx_stats_twice",
     [] {
       kcont::runtime rt(one_cpu());
       static taskctx tc;
       taskctx_init(&tc, 0);
       kcont::taskctx_stats first(rt, &tc, "first");
       kcont::taskctx_stats second(rt, &tc, "second");
     }},
    {"workqueue_enqueue_twice",
     [] {
       kcont::runtime rt(one_cpu());
       kcont::runtime_scope scope(rt);
       workqueue* wq = nullptr;
       static kmutex_t hold;
       mutex_init(&hold, MUTEX_DEFAULT, IPL_NONE);
       mutex_enter(&hold);  // the first item blocks, so the second stays queued
       workqueue_create(
           &wq, "dup",
           [](work*, void*) {
             mutex_enter(&hold);
             mutex_exit(&hold);
           },
           nullptr, PRI_HIGH, 0, WQ_MPSAFE);
       static work first, second;
       workqueue_enqueue(wq, &first, nullptr);
       workqueue_enqueue(wq, &second, nullptr);
       workqueue_enqueue(wq, &second, nullptr);
     }},
    {"taskq_del_barrier_from_itself",
     [] {
       kcont::runtime rt(one_cpu());
       kcont::runtime_scope scope(rt);
       static taskq* tq = taskq_create("self", 1, 0, TASKQ_MPSAFE);
       static task t = TASK_INITIALIZER([](void*) { taskq_del_barrier(tq, &t); }, nullptr);
       task_add(tq, &t);
       taskq_destroy(tq);
     }},
    {"taskq_destroy_systq", [] { taskq_destroy(systq); }},
    {"kcont_setmutex_without_lock",
     [] {
       kcont::runtime rt(one_cpu());
       kcont::runtime_scope scope(rt);
       static kmutex_t m;
       mutex_init(&m, MUTEX_DEFAULT, IPL_NONE);
       kcont_t* kc = kcont_create(
           wq_softnet, &m, [](void*, kcont_t*) {}, nullptr, 0);
       kcont_setmutex(kc, nullptr);  // m is not held
     }},
    {"kcont_schedule_after_destroy",
     [] {
       kcont::runtime rt(one_cpu());
       kcont::runtime_scope scope(rt);
       static kcont_t kc;
       kcont_init(
           &kc, wq_softnet, nullptr, [](void*, kcont_t*) {}, nullptr, 0);
       kcont_destroy(&kc);
       kcont_schedule(&kc, nullptr, 0);
     }},
    {"kcont_uninitialised",
     [] {
       kcont_t kc{};
       kcont_stop(&kc);
     }},
    {"mutex_exit_not_owner",
     [] {
       kmutex_t m;
       mutex_init(&m, MUTEX_DEFAULT, IPL_NONE);
       mutex_exit(&m);
     }},
};

}  // namespace

extern const std::map<std::string, std::function<void()>> lockdebug_cases;  // death_lockdebug.cpp

int main(int argc, char** argv) {
  const auto* table = argc == 3 && lockdebug_cases.count(argv[1]) ? &lockdebug_cases : &cases;
  if (argc != 3 || table->count(argv[1]) == 0) {
    std::fprintf(stderr, "usage: death_tests CASE MESSAGE; cases:");
    for (auto& [name, fn] : cases) std::fprintf(stderr, " %s", name.c_str());
    for (auto& [name, fn] : lockdebug_cases) std::fprintf(stderr, " %s", name.c_str());
    std::fprintf(stderr, "\n");
    return 2;
  }
  int pipefd[2];
  if (::pipe(pipefd) != 0) return 2;
  pid_t child = ::fork();  // no thread exists yet: forking is safe
  if (child == 0) {
    ::dup2(pipefd[1], STDERR_FILENO);
    ::close(pipefd[0]);
    table->at(argv[1])();
    std::fprintf(stderr, "death_tests: %s did not abort\n", argv[1]);
    std::_Exit(0);
  }
  ::close(pipefd[1]);
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;)
    err.append(buf, static_cast<size_t>(n));
  int status = 0;
  ::waitpid(child, &status, 0);
  std::fprintf(stdout, "child stderr:\n%s\n", err.c_str());
  const bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  const bool said = err.find(argv[2]) != std::string::npos;
  std::printf("%s: %s, %s\n", argv[1], aborted ? "aborted" : "did NOT abort",
              said ? "with the expected message" : "WITHOUT the expected message");
  return aborted && said ? 0 : 1;
}
