// The exception policy, one for every handler kind (<kcont/runtime.h>): a handler that throws
// is reported once, with its kind, queue and function, and abandoned; whatever kcont held for
// it is released and the queue goes on. (The abort policy is a death test.)
#include <doctest/doctest.h>
#include <kcont/asio_executors.h>
#include <kcont/callout.h>
#include <kcont/kcont.h>
#include <kcont/mutex.h>
#include <kcont/runtime.h>
#include <kcont/softint.h>
#include <kcont/task.h>
#include <kcont/workqueue.h>
#include <unistd.h>
#include <boost/asio/post.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>

#include "test_util.h"

using namespace std::chrono_literals;
using kcont_test::wait_until;

using kcont_test::stderr_capture;

namespace {

// Waits until `n` more exceptions than `before` have been reported.
bool reported(std::uint64_t before, std::uint64_t n = 1) {
  return wait_until([&] { return kcont::handler_exceptions() >= before + n; });
}

void throw_runtime_error(void*) {
  throw std::runtime_error("thrown on purpose");
}

}  // namespace

TEST_CASE("a softint handler that throws is reported once; the softint and the CPU go on") {
  stderr_capture err;
  kcont::runtime rt(kcont_test::cpus(1));
  std::atomic<int> runs{0}, other{0};
  kcont::softint si(rt, SOFTINT_NET | SOFTINT_MPSAFE, [&] {
    if (++runs == 1) throw std::runtime_error("softint failed on purpose");
  });
  kcont::softint neighbour(rt, SOFTINT_BIO | SOFTINT_MPSAFE, [&] { ++other; });
  const auto before = kcont::handler_exceptions();
  si.schedule(rt.cpu(0));
  neighbour.schedule(rt.cpu(0));
  REQUIRE(reported(before));
  REQUIRE(wait_until([&] { return other == 1; }));
  si.schedule(rt.cpu(0));
  REQUIRE(wait_until([&] { return runs == 2; }));
  CHECK(kcont::handler_exceptions() == before + 1);
  CHECK(err.count("softint failed on purpose") == 1);
  CHECK(err.count("a softint handler threw and was abandoned") == 1);
}

TEST_CASE("a non-MPSAFE softint that throws releases the kernel lock") {
  kcont::runtime rt(kcont_test::cpus(1));
  stderr_capture err;
  kcont::softint si(rt, SOFTINT_NET, [] { throw 42; });  // not a std::exception
  const auto before = kcont::handler_exceptions();
  si.schedule(rt.cpu(0));
  REQUIRE(reported(before));
  std::thread other([] {  // would hang if the loop still held the kernel lock
    kernel_lock();
    kernel_unlock();
  });
  other.join();
  CHECK(err.count("an exception of type int") == 1);
}

TEST_CASE("a callout handler that throws: expired, halt returns, it can be armed again") {
  stderr_capture err;
  kcont::runtime rt(kcont_test::cpus(1));
  kcont::runtime_scope scope(rt);
  callout c;
  callout_init(&c, 0);  // not MPSAFE: the kernel lock must be released too
  std::atomic<int> runs{0};
  struct ctx {
    std::atomic<int>* runs;
  } x{&runs};
  callout_setfunc(
      &c,
      [](void* p) {
        if (++*static_cast<ctx*>(p)->runs == 1) throw std::logic_error("callout failed on purpose");
      },
      &x);
  const auto before = kcont::handler_exceptions();
  callout_schedule(&c, 1);
  REQUIRE(reported(before));
  REQUIRE(wait_until([&] { return !callout_invoking(&c) || callout_expired(&c); }));
  CHECK(callout_expired(&c));
  callout_halt(&c, nullptr);  // returns: nothing pending, nothing running
  CHECK_FALSE(callout_pending(&c));
  callout_schedule(&c, 1);
  REQUIRE(wait_until([&] { return runs == 2; }));
  callout_halt(&c, nullptr);
  callout_destroy(&c);
  CHECK(err.count("callout failed on purpose") == 1);
}

TEST_CASE("a taskq task that throws is reported with the queue's name; the queue goes on") {
  stderr_capture err;
  kcont::runtime rt(kcont_test::cpus(1));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("throwq", 1, 0, TASKQ_MPSAFE);
  task bad = TASK_INITIALIZER(throw_runtime_error, nullptr);
  std::atomic<int> good_runs{0};
  task good = TASK_INITIALIZER([](void* p) { ++*static_cast<std::atomic<int>*>(p); }, &good_runs);
  const auto before = kcont::handler_exceptions();
  task_add(tq, &bad);
  task_add(tq, &good);
  REQUIRE(wait_until([&] { return good_runs == 1; }));
  taskq_barrier(tq);
  CHECK(kcont::handler_exceptions() == before + 1);
  CHECK(err.count("(queue throwq,") == 1);
  task_add(tq, &bad);  // and again: reported again, once
  taskq_barrier(tq);
  CHECK(kcont::handler_exceptions() == before + 2);
  taskq_destroy(tq);
}

TEST_CASE("taskctx: a task that throws on the fast path leaves the context free") {
  stderr_capture err;
  taskctx tc;
  taskctx_init(&tc, 0);
  task bad = TASK_INITIALIZER(throw_runtime_error, nullptr);
  const auto before = kcont::handler_exceptions();
  CHECK_NOTHROW(task_dispatch(&tc, &bad));
  CHECK(kcont::handler_exceptions() == before + 1);
  CHECK(tc.tc_serializer.load() == 0);  // left
  // The thread's "inside" marker is restored: a barrier from here is not a self-wait.
  taskctx_barrier(&tc);
  std::thread::id ran_on;
  task good = TASK_INITIALIZER(
      [](void* p) { *static_cast<std::thread::id*>(p) = std::this_thread::get_id(); }, &ran_on);
  task_dispatch(&tc, &good);
  CHECK(ran_on == std::this_thread::get_id());  // free again: ran in the caller's thread
}

TEST_CASE("taskctx: a queued task that throws in the drain; the tasks behind it still run") {
  stderr_capture err;
  taskctx tc;
  taskctx_init(&tc, 0);
  std::atomic<bool> inside{false}, release{false};
  struct hold_ctx {
    std::atomic<bool>* inside;
    std::atomic<bool>* release;
  } h{&inside, &release};
  task holder = TASK_INITIALIZER(
      [](void* p) {
        auto* hc = static_cast<hold_ctx*>(p);
        *hc->inside = true;
        while (!*hc->release) std::this_thread::sleep_for(100us);
      },
      &h);
  std::thread runner([&] { task_dispatch(&tc, &holder); });
  REQUIRE(wait_until([&] { return inside.load(); }));
  task bad = TASK_INITIALIZER(throw_runtime_error, nullptr);
  std::atomic<int> after{0};
  task good = TASK_INITIALIZER([](void* p) { ++*static_cast<std::atomic<int>*>(p); }, &after);
  const auto before = kcont::handler_exceptions();
  task_dispatch(&tc, &bad);   // queued: the runner is inside
  task_dispatch(&tc, &good);  // queued behind it
  release = true;
  runner.join();
  CHECK(after == 1);
  CHECK(kcont::handler_exceptions() == before + 1);
  taskctx_barrier(&tc);  // returns: the context was left
  CHECK(tc.tc_serializer.load() == 0);
}

TEST_CASE("a workqueue item that throws names the workqueue's function; the next item runs") {
  stderr_capture err;
  kcont::runtime rt(kcont_test::cpus(1));
  kcont::runtime_scope scope(rt);
  struct items {
    work w[3];
    std::atomic<int> runs{0};
  } it;
  workqueue* wq = nullptr;
  REQUIRE(workqueue_create(
              &wq, "throwwq",
              [](work* wk, void* p) {
                auto* i = static_cast<items*>(p);
                ++i->runs;
                if (wk == &i->w[0]) throw std::runtime_error("work item failed on purpose");
              },
              &it, PRI_NONE, IPL_NONE, WQ_MPSAFE) == 0);
  const auto before = kcont::handler_exceptions();
  for (auto& w : it.w) workqueue_enqueue(wq, &w, nullptr);
  for (auto& w : it.w) workqueue_wait(wq, &w);
  CHECK(it.runs == 3);
  CHECK(kcont::handler_exceptions() == before + 1);
  CHECK(err.count("a workqueue item threw and was abandoned (queue throwwq,") == 1);
  workqueue_destroy(wq);
}

namespace {

struct kc_case {
  kmutex_t lock;
  std::atomic<int> runs{0};
  bool drop_lock_first = false;  // func gives its lock up before it throws
};

void throwing_func(void* p, kcont_t*) {
  auto* c = static_cast<kc_case*>(p);
  if (++c->runs == 1) {
    if (c->drop_lock_first) mutex_exit(&c->lock);
    throw std::runtime_error("kcont func failed on purpose");
  }
}

void check_kcont_after_throw(kcont_wq_t* wq, bool drop_lock_first) {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  kc_case c;
  c.drop_lock_first = drop_lock_first;
  mutex_init(&c.lock, MUTEX_DEFAULT, IPL_NONE);
  kcont_t* kc = kcont_create(wq, &c.lock, throwing_func, &c, 0);
  REQUIRE(kc != nullptr);
  const auto before = kcont::handler_exceptions();
  REQUIRE(kcont_schedule(kc, rt.cpu(1), 0) == 0);
  REQUIRE(reported(before));
  // INVOKING is cleared and the lock is free again.
  REQUIRE(wait_until([&] { return !kcont_invoking(kc); }));
  REQUIRE(wait_until([&] {
    if (!mutex_tryenter(&c.lock)) return false;
    mutex_exit(&c.lock);
    return true;
  }));
  CHECK(kcont_schedule(kc, rt.cpu(1), 0) == 0);  // not EBUSY
  REQUIRE(wait_until([&] { return c.runs == 2; }));
  kcont_destroy(kc);
  mutex_destroy(&c.lock);
  CHECK(kcont::handler_exceptions() == before + 1);
}

}  // namespace

TEST_CASE("a kcont func that throws on a soft queue: lock released, INVOKING cleared") {
  stderr_capture err;
  check_kcont_after_throw(wq_softnet, false);
  CHECK(err.count("a kcont func (soft queue) threw") == 1);
}

TEST_CASE("a kcont func that throws on a thread queue: lock released, INVOKING cleared") {
  stderr_capture err;
  check_kcont_after_throw(wq_prihigh, false);
  CHECK(err.count("a kcont func (thread queue) threw") == 1);
}

TEST_CASE("a kcont func that drops its lock and then throws is not released twice") {
  stderr_capture err;
  check_kcont_after_throw(wq_primedlow, true);
  check_kcont_after_throw(wq_softbio, true);
}

TEST_CASE("kcont::continuation: a throwing callable, then schedule and the destructor work") {
  stderr_capture err;
  kcont::runtime rt(kcont_test::cpus(1));
  std::atomic<int> runs{0};
  const auto before = kcont::handler_exceptions();
  {
    kcont::continuation k(rt, wq_prilow, [&] {
      ++runs;
      throw std::runtime_error("continuation failed on purpose");
    });
    REQUIRE(k.schedule() == 0);
    REQUIRE(reported(before));
    REQUIRE(wait_until([&] { return !k.invoking(); }));
    REQUIRE(k.schedule() == 0);
    REQUIRE(reported(before, 2));
  }  // ~continuation must not hang
  CHECK(runs == 2);
}

TEST_CASE("the Asio executors: a posted function that throws is reported; the next one runs") {
  stderr_capture err;
  kcont::runtime rt(kcont_test::cpus(1));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("asioq", 1, 0, TASKQ_MPSAFE);
  taskctx tc;
  taskctx_init(&tc, 0);
  std::atomic<int> ran{0};
  const auto before = kcont::handler_exceptions();
  boost::asio::post(kcont::taskq_executor(tq), [] { throw std::runtime_error("posted throw"); });
  boost::asio::post(kcont::taskq_executor(tq), [&] { ++ran; });
  boost::asio::post(kcont::taskctx_executor(&tc), [] { throw std::runtime_error("strand throw"); });
  boost::asio::post(kcont::taskctx_executor(&tc), [&] { ++ran; });
  REQUIRE(wait_until([&] { return ran == 2; }));
  REQUIRE(reported(before, 2));
  taskq_barrier(tq);
  taskctx_barrier(&tc);
  CHECK(tc.tc_serializer.load() == 0);
  taskq_destroy(tq);
}

TEST_CASE("set_exception_policy switches the policy; KCONT_ON_EXCEPTION=abort is a death test") {
  CHECK(kcont::current_exception_policy() == kcont::exception_policy::report);
  kcont::set_exception_policy(kcont::exception_policy::abort);
  CHECK(kcont::current_exception_policy() == kcont::exception_policy::abort);
  kcont::set_exception_policy(kcont::exception_policy::report);
}
