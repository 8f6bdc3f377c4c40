// Issue 21, item 4: the stuck-handler watchdog (<kcont/watchdog.h>). A deliberately stuck
// handler of each kind is reported once, with its kind, queue, function, CPU and thread, and
// once more when it returns; short handlers never are; the watchdog sleeps while nothing runs;
// bad thresholds are refused.
#include "test_util.h"

#include <doctest/doctest.h>
#include <kcont/callout.h>
#include <kcont/runtime.h>
#include <kcont/softint.h>
#include <kcont/task.h>
#include <kcont/taskctx.h>
#include <kcont/watchdog.h>
#include <kcont/workqueue.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using kcont_test::cpus;
using kcont_test::wait_until;
using namespace std::chrono_literals;

// The stuck handlers: named, exported functions (the test links with -rdynamic, as a program
// that wants dladdr to name its own functions must), so that the report's symbol is checked.
constexpr auto kStuckFor = std::chrono::milliseconds(400);

void stuck_softint(void* done) {
  std::this_thread::sleep_for(kStuckFor);
  static_cast<std::atomic<bool>*>(done)->store(true);
}
void stuck_task(void* done) {
  stuck_softint(done);
}
void stuck_callout(void* done) {
  stuck_softint(done);
}
void stuck_work(work*, void* done) {
  stuck_softint(done);
}
void quick(void* count) {
  static_cast<std::atomic<int>*>(count)->fetch_add(1);
}

namespace {

// A report as the test keeps it (the watchdog's own struct lives only during the call).
struct seen_report {
  std::string kind, queue, function, thread;
  int cpu;
  std::chrono::nanoseconds running_for;
  bool returned;
};

// Collects every report while it exists; restores the default (stderr) and turns the
// watchdog off when it goes, so that test cases do not see each other's settings.
class report_log {
 public:
  explicit report_log(std::chrono::milliseconds threshold) {
    kcont::set_stuck_handler_reporter(&report_log::take, this);
    kcont::set_stuck_handler_watchdog(threshold);
  }
  ~report_log() {
    kcont::set_stuck_handler_watchdog(0ns);
    kcont::set_stuck_handler_reporter(nullptr, nullptr);
  }
  std::vector<seen_report> reports() {
    std::lock_guard<std::mutex> lk(mu_);
    return reports_;
  }
  std::size_t size() { return reports().size(); }

 private:
  static void take(const kcont::stuck_handler_report& r, void* self) {
    auto* log = static_cast<report_log*>(self);
    std::lock_guard<std::mutex> lk(log->mu_);
    log->reports_.push_back(
        {r.kind, r.queue, r.function, r.thread, r.cpu, r.running_for, r.returned});
  }
  std::mutex mu_;
  std::vector<seen_report> reports_;
};

constexpr auto kThreshold = 50ms;

// One report that it is stuck, then one that it returned, both naming the same handler.
void check_stuck_then_returned(report_log& log, const char* kind, const char* queue,
                               const char* function, int cpu) {
  REQUIRE(wait_until([&] { return log.size() >= 2; }));
  std::this_thread::sleep_for(4 * kThreshold);  // time for a wrong third report
  const std::vector<seen_report> r = log.reports();
  REQUIRE(r.size() == 2);
  for (const seen_report& x : r) {
    INFO(x.function);
    CHECK(x.kind == kind);
    CHECK(x.queue == queue);
    CHECK(x.function.find(function) != std::string::npos);
    if (cpu != -2) CHECK(x.cpu == cpu);
  }
  CHECK_FALSE(r[0].returned);
  CHECK(r[1].returned);
  CHECK(r[0].running_for >= kThreshold);
  CHECK(r[1].running_for >= r[0].running_for);
}

}  // namespace

TEST_CASE("a stuck softint handler is reported once, with its function, CPU and thread") {
  kcont::runtime rt(cpus(2));
  report_log log(kThreshold);
  std::atomic<bool> done{false};
  void* sih = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, stuck_softint, &done);
  REQUIRE(sih != nullptr);
  softint_schedule_cpu(sih, rt.cpu(1));
  REQUIRE(wait_until([&] { return done.load(); }));
  check_stuck_then_returned(log, "softint handler", "-", "stuck_softint", 1);
  CHECK(log.reports()[0].thread == "kcont/cpu1");
  CHECK(kcont::stuck_handler_watchdog_stats().reported >= 1);
  softint_disestablish(sih);
}

TEST_CASE("a stuck taskq task is reported with its queue's name") {
  kcont::runtime rt(cpus(2));
  kcont::runtime_scope scope(rt);
  report_log log(kThreshold);
  taskq* tq = taskq_create("stuckq", 1, IPL_NONE, TASKQ_MPSAFE);
  REQUIRE(tq != nullptr);
  std::atomic<bool> done{false};
  task t;
  task_set(&t, stuck_task, &done);
  CHECK(task_add(tq, &t) == 1);
  REQUIRE(wait_until([&] { return done.load(); }));
  check_stuck_then_returned(log, "taskq task", "stuckq", "stuck_task", -2);
  const seen_report r = log.reports()[0];
  CHECK(r.cpu >= 0);
  CHECK(r.cpu < 2);
  CHECK(r.thread.rfind("kcont/w", 0) == 0);
  taskq_destroy(tq);
}

TEST_CASE("a stuck callout handler is reported, not the softclock softint that runs it") {
  kcont::runtime rt(cpus(1));
  kcont::runtime_scope scope(rt);
  report_log log(kThreshold);
  std::atomic<bool> done{false};
  callout c;
  callout_init(&c, CALLOUT_MPSAFE);
  callout_reset(&c, 1, stuck_callout, &done);
  REQUIRE(wait_until([&] { return done.load(); }));
  check_stuck_then_returned(log, "callout handler", "-", "stuck_callout", 0);
  callout_halt(&c, nullptr);
  callout_destroy(&c);
}

TEST_CASE("a stuck workqueue item is reported with the workqueue's name") {
  kcont::runtime rt(cpus(1));
  kcont::runtime_scope scope(rt);
  report_log log(kThreshold);
  std::atomic<bool> done{false};
  workqueue* wq = nullptr;
  REQUIRE(workqueue_create(&wq, "stuckwq", stuck_work, &done, PRI_NONE, IPL_NONE, WQ_MPSAFE) == 0);
  work wk;
  workqueue_enqueue(wq, &wk, nullptr);
  REQUIRE(wait_until([&] { return done.load(); }));
  check_stuck_then_returned(log, "workqueue item", "stuckwq", "stuck_work", 0);
  workqueue_wait(wq, &wk);
  workqueue_destroy(wq);
}

TEST_CASE("a task stuck in task_dispatch on the caller's own thread names that thread") {
  kcont::runtime rt(cpus(1));
  kcont::runtime_scope scope(rt);
  report_log log(kThreshold);
  std::atomic<bool> done{false};
  taskctx tc;
  taskctx_init(&tc, IPL_NONE);
  task t;
  task_set(&t, stuck_task, &done);
  std::atomic<bool> may_leave{false};
  std::thread caller([&] {
    pthread_setname_np(pthread_self(), "server-thread");
    task_dispatch(&tc, &t);  // runs here: the context is free
    // Stays until the reports are in: a thread that has left has no slot to report from.
    while (!may_leave.load()) std::this_thread::sleep_for(1ms);
  });
  REQUIRE(wait_until([&] { return done.load(); }));
  check_stuck_then_returned(log, "taskctx task", "-", "stuck_task", -1);
  CHECK(log.reports()[0].thread == "server-thread");
  may_leave = true;
  caller.join();
}

TEST_CASE("short handlers are never reported, however many") {
  kcont::runtime rt(cpus(2));
  report_log log(kThreshold);
  std::atomic<int> count{0};
  void* sih = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, quick, &count);
  REQUIRE(sih != nullptr);
  const auto until = std::chrono::steady_clock::now() + 6 * kThreshold;
  int scheduled = 0;
  while (std::chrono::steady_clock::now() < until) {
    softint_schedule_cpu(sih, rt.cpu(scheduled++ % 2));
    std::this_thread::yield();
  }
  std::this_thread::sleep_for(2 * kThreshold);  // time for a wrong report
  CHECK(count.load() > 0);
  CHECK(log.size() == 0);
  softint_disestablish(sih);
}

TEST_CASE("the watchdog sleeps while no handler runs, and wakes for the next one") {
  kcont::runtime rt(cpus(1));
  report_log log(kThreshold);
  std::atomic<int> count{0};
  void* sih = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, quick, &count);
  REQUIRE(sih != nullptr);
  softint_schedule_cpu(sih, rt.cpu(0));
  REQUIRE(wait_until([&] { return count.load() == 1; }));
  REQUIRE(wait_until([] { return kcont::stuck_handler_watchdog_stats().samples > 0; }));
  if (!kcont::stuck_handler_watchdog_stats().can_park) {
    MESSAGE("membarrier(2) PRIVATE_EXPEDITED is unavailable: the watchdog samples while on");
    softint_disestablish(sih);
    return;
  }
  // Idle: it parks, and then it samples no more.
  REQUIRE(wait_until([] { return kcont::stuck_handler_watchdog_stats().parks > 0; }));
  std::this_thread::sleep_for(2 * kThreshold);
  const std::uint64_t samples = kcont::stuck_handler_watchdog_stats().samples;
  std::this_thread::sleep_for(10 * kThreshold);
  CHECK(kcont::stuck_handler_watchdog_stats().samples == samples);
  // Handlers now and then (several per sampling period, none running at most samples): the
  // first wakes it, and it stays on its timed samples instead of parking between them, so the
  // handlers pay no wake-up and it pays no membarrier per handler.
  const std::uint64_t parks = kcont::stuck_handler_watchdog_stats().parks;
  for (int i = 0; i < 40; ++i) {
    softint_schedule_cpu(sih, rt.cpu(0));
    std::this_thread::sleep_for(kThreshold / 16);
  }
  CHECK(kcont::stuck_handler_watchdog_stats().parks <= parks + 1);
  CHECK(kcont::stuck_handler_watchdog_stats().samples > samples);
  // A stuck handler that starts now wakes it, and is reported.
  std::atomic<bool> done{false};
  void* stuck = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, stuck_softint, &done);
  softint_schedule_cpu(stuck, rt.cpu(0));
  REQUIRE(wait_until([&] { return done.load(); }));
  check_stuck_then_returned(log, "softint handler", "-", "stuck_softint", 0);
  softint_disestablish(stuck);
  softint_disestablish(sih);
}

TEST_CASE("with the watchdog off, nothing is reported") {
  kcont::runtime rt(cpus(1));
  report_log log(kThreshold);
  kcont::set_stuck_handler_watchdog(0ns);
  CHECK(kcont::stuck_handler_watchdog() == 0ns);
  std::atomic<bool> done{false};
  void* sih = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, stuck_softint, &done);
  softint_schedule_cpu(sih, rt.cpu(0));
  REQUIRE(wait_until([&] { return done.load(); }));
  std::this_thread::sleep_for(2 * kThreshold);
  CHECK(log.size() == 0);
  softint_disestablish(sih);
}

TEST_CASE("bad thresholds are refused and change nothing") {
  kcont::set_stuck_handler_watchdog(0ns);
  CHECK_THROWS_AS(kcont::set_stuck_handler_watchdog(-1ns), std::invalid_argument);
  CHECK_THROWS_AS(kcont::set_stuck_handler_watchdog(999us), std::invalid_argument);
  CHECK_THROWS_AS(kcont::set_stuck_handler_watchdog(std::chrono::hours(24) + 1ns),
                  std::invalid_argument);
  CHECK_THROWS_AS(kcont::set_stuck_handler_watchdog(std::chrono::nanoseconds::max()),
                  std::invalid_argument);
  CHECK_THROWS_AS(kcont::set_stuck_handler_watchdog(std::chrono::nanoseconds::min()),
                  std::invalid_argument);
  CHECK(kcont::stuck_handler_watchdog() == 0ns);
  kcont::set_stuck_handler_watchdog(1ms);  // both limits are allowed
  kcont::set_stuck_handler_watchdog(std::chrono::hours(24));
  CHECK(kcont::stuck_handler_watchdog() == std::chrono::hours(24));
  kcont::set_stuck_handler_watchdog(0ns);

  kcont::runtime_config c = cpus(1);
  c.stuck_handler_threshold = -1ms;
  CHECK_THROWS_AS(kcont::runtime{c}, std::invalid_argument);
  c.stuck_handler_threshold = std::chrono::milliseconds(86400001);
  CHECK_THROWS_AS(kcont::runtime{c}, std::invalid_argument);
  CHECK(kcont::stuck_handler_watchdog() == 0ns);
  c.stuck_handler_threshold = 250ms;  // a runtime turns the process-wide watchdog on
  {
    kcont::runtime rt(c);
    CHECK(kcont::stuck_handler_watchdog() == 250ms);
  }
  kcont::set_stuck_handler_watchdog(0ns);

  ::setenv("KCONT_WATCHDOG_MS", "86400001", 1);
  CHECK_THROWS_AS(kcont::runtime_config::from_env(), std::invalid_argument);
  ::setenv("KCONT_WATCHDOG_MS", "-5", 1);
  CHECK_THROWS_AS(kcont::runtime_config::from_env(), std::invalid_argument);
  ::setenv("KCONT_WATCHDOG_MS", "2000", 1);
  CHECK(kcont::runtime_config::from_env().stuck_handler_threshold == 2000ms);
  ::unsetenv("KCONT_WATCHDOG_MS");
  CHECK(kcont::runtime_config::from_env().stuck_handler_threshold == 0ms);
}

TEST_CASE("a reporter may replace itself from inside its call; the next report goes to stderr") {
  kcont::runtime rt(cpus(1));
  static std::atomic<int> calls{0};
  calls = 0;
  kcont::set_stuck_handler_reporter(
      [](const kcont::stuck_handler_report&, void*) {
        calls.fetch_add(1);
        kcont::set_stuck_handler_reporter(nullptr, nullptr);  // on the watchdog's own thread
      },
      nullptr);
  kcont::set_stuck_handler_watchdog(kThreshold);
  const std::uint64_t reported = kcont::stuck_handler_watchdog_stats().reported;
  kcont_test::stderr_capture err;
  std::atomic<bool> done{false};
  void* sih = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, stuck_softint, &done);
  softint_schedule_cpu(sih, rt.cpu(0));
  REQUIRE(wait_until([&] { return done.load(); }));
  REQUIRE(
      wait_until([&] { return err.text().find("reported stuck returned") != std::string::npos; }));
  CHECK(calls.load() == 1);
  CHECK(kcont::stuck_handler_watchdog_stats().reported == reported + 1);
  CHECK(err.text().find("stuck_softint") != std::string::npos);
  kcont::set_stuck_handler_watchdog(0ns);
  softint_disestablish(sih);
}
