// Attach mode (kcont/attach.h): kcont's CPUs served by a loop the server runs on its own
// threads, a Boost.Asio io_context or (when built with libevent) an event_base. Each case runs
// on both kinds of loop (doctest template cases).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <kcont/attach.h>
#include <kcont/callout.h>
#include <kcont/coro.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/kcont.h>
#include <kcont/runtime.h>
#include <kcont/softint.h>
#include <unistd.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#ifdef KCONT_HAVE_LIBEVENT
#include <event2/event.h>
#include <event2/thread.h>
#endif

#include <atomic>
#include <functional>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include "test_util.h"

using namespace std::chrono_literals;
using kcont_test::wait_until;

namespace {

// The server's Asio loop: an io_context run by `n` server threads.
struct asio_loop {
  static constexpr const char* name = "asio";
  static constexpr bool multithreaded = true;
  boost::asio::io_context ioc;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard{
      ioc.get_executor()};
  std::vector<std::thread> threads;

  kcont::runtime_config config(unsigned ncpu) {
    kcont::runtime_config c = kcont::attached(ioc, ncpu);
    c.drain_timeout = 300ms;
    return c;
  }
  void run(int n = 1) {
    ioc.restart();
    for (int i = 0; i < n; ++i) threads.emplace_back([this] { ioc.run(); });
  }
  void halt() {  // the server stops its loop; its threads return
    ioc.stop();
    for (auto& t : threads) t.join();
    threads.clear();
  }
  void post(std::function<void()> f) { boost::asio::post(ioc, std::move(f)); }
  ~asio_loop() { halt(); }
};

#ifdef KCONT_HAVE_LIBEVENT
// The server's libevent loop: an event_base (with locking, so the test thread may post to it)
// run by one server thread.
struct libevent_loop {
  static constexpr const char* name = "libevent";
  static constexpr bool multithreaded = false;
  event_base* base;
  std::optional<std::thread> thread;
  std::atomic<bool> returned{false};

  libevent_loop() {
    evthread_use_pthreads();
    base = event_base_new();
    REQUIRE(base != nullptr);
  }
  kcont::runtime_config config(unsigned ncpu) {
    kcont::runtime_config c = kcont::attached(base, ncpu);
    c.drain_timeout = 300ms;
    return c;
  }
  void run(int = 1) {
    returned = false;
    thread.emplace([this] {
      event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
      returned = true;
    });
  }
  void halt() {
    if (!thread) return;
    // A break before the loop started would be forgotten: repeat until it returned.
    while (!returned) {
      event_base_loopbreak(base);
      std::this_thread::sleep_for(1ms);
    }
    thread->join();
    thread.reset();
  }
  void post(std::function<void()> f) {
    auto* fp = new std::function<void()>(std::move(f));
    timeval zero{0, 0};
    event_base_once(
        base, -1, EV_TIMEOUT,
        [](evutil_socket_t, short, void* p) {
          auto* g = static_cast<std::function<void()>*>(p);
          (*g)();
          delete g;
        },
        fp, &zero);
  }
  ~libevent_loop() {
    halt();
    event_base_free(base);
  }
};
#define KCONT_TEST_LOOPS asio_loop, libevent_loop
#else
#define KCONT_TEST_LOOPS asio_loop
#endif

template <class Loop>
std::thread::id server_thread_id(Loop& loop) {
  std::promise<std::thread::id> p;
  loop.post([&] { p.set_value(std::this_thread::get_id()); });
  return p.get_future().get();
}

// A softint recording where its handler ran.
struct where {
  kcont::runtime* rt = nullptr;
  unsigned cpu = 0;
  std::atomic<int> runs{0}, wrong_cpu{0};
  std::atomic<std::thread::id> thread{};
  static void fn(void* self) { static_cast<where*>(self)->hit(); }
  void hit() {
    if (kcont::machine::this_thread_cpu() != rt->cpu(cpu) || !kcont::in_interrupt_context() ||
        curcpu() != rt->cpu(cpu))
      wrong_cpu.fetch_add(1);
    thread = std::this_thread::get_id();
    runs.fetch_add(1);
  }
  // A SOFTINT_NET softint on rt's CPU 0 that has run once.
  void* establish_and_run_once(kcont::runtime& on) {
    rt = &on;
    void* si = softint_establish_rt(on, SOFTINT_NET | SOFTINT_MPSAFE, &where::fn, this);
    REQUIRE(si != nullptr);
    softint_schedule_cpu(si, on.cpu(0));
    REQUIRE(wait_until([&] { return runs == 1; }));
    return si;
  }
};

}  // namespace

namespace {

// Hops onto two soft queues and sleeps twice (a callout each way); records where each step ran.
kcont::co_task<void> attached_steps(kcont::runtime& rt, std::atomic<int>& steps,
                                    std::atomic<int>& off_server, std::thread::id server) {
  auto mark = [&] {
    if (std::this_thread::get_id() != server) ++off_server;
    ++steps;
  };
  co_await kcont::on(rt, wq_softnet, rt.cpu(0));
  mark();
  const bool came = co_await kcont::sleep_for(rt, 5ms);
  if (came) mark();
  kcont::timer t(rt);
  const bool again = co_await t.sleep_for(2ms);
  if (again) mark();
  co_await kcont::on(rt, wq_softclock, rt.cpu(0));
  mark();
}

}  // namespace

TEST_CASE_TEMPLATE("attached: coroutines hop onto soft queues and sleep on the server's thread",
                   Loop, KCONT_TEST_LOOPS) {
  Loop loop;
  loop.run();
  const std::thread::id server = server_thread_id(loop);
  const int before = kcont_test::process_threads();
  {
    kcont::runtime rt(loop.config(1));
    std::atomic<int> steps{0}, off_server{0};
    kcont::spawn(attached_steps(rt, steps, off_server, server));
    CHECK(wait_until([&] { return steps == 4; }));
    CHECK(off_server == 0);
    CHECK(kcont_test::process_threads() == before);  // no thread for any of it
    CHECK(rt.stop().drained);
  }
}

TEST_CASE_TEMPLATE("attached: softints and callouts run on the server's thread; no thread added",
                   Loop, KCONT_TEST_LOOPS) {
  Loop loop;
  loop.run();
  const std::thread::id server = server_thread_id(loop);
  const int before = kcont_test::process_threads();
  {
    kcont::runtime rt(loop.config(1));
    CHECK(rt.attached());
    CHECK(rt.running());
    CHECK(rt.ncpu() == 1);

    where si_w;
    si_w.rt = &rt;
    void* si = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, &where::fn, &si_w);
    softint_schedule_cpu(si, rt.cpu(0));  // from a foreign thread
    CHECK(wait_until([&] { return si_w.runs == 1; }));
    CHECK(si_w.thread.load() == server);

    std::atomic<int> fired{0}, fired_wrong{0};
    std::atomic<std::thread::id> fired_on{};
    kcont::callout timer(rt, [&] {
      if (kcont::machine::this_thread_cpu() != rt.cpu(0)) fired_wrong.fetch_add(1);
      fired_on = std::this_thread::get_id();
      fired.fetch_add(1);
    });
    auto t0 = std::chrono::steady_clock::now();
    timer.schedule(20ms);
    CHECK(wait_until([&] { return fired == 1; }));
    CHECK(std::chrono::steady_clock::now() - t0 >= 20ms);  // never early
    CHECK(fired_on.load() == server);
    CHECK(fired_wrong == 0);

    // The server's own handlers are not a kcont CPU.
    std::promise<bool> irq;
    loop.post([&] { irq.set_value(kcont::in_interrupt_context()); });
    CHECK_FALSE(irq.get_future().get());

    // Many schedules, and a softint scheduling another from its handler.
    for (int i = 0; i < 1000; ++i) softint_schedule_cpu(si, rt.cpu(0));
    CHECK(wait_until([&] { return si_w.runs >= 2; }));
    CHECK(si_w.wrong_cpu == 0);

    CHECK(kcont_test::process_threads() == before);  // no loop thread for the attached CPU
    softint_disestablish(si);
    kcont::stop_report r = rt.stop();
    CHECK(r.drained);
    CHECK(r.attached_unserved == 0);
  }
  CHECK(kcont_test::process_threads() == before);
}

TEST_CASE_TEMPLATE("attached: wq_softnet continuations run on the server's thread", Loop,
                   KCONT_TEST_LOOPS) {
  Loop loop;
  loop.run();
  const std::thread::id server = server_thread_id(loop);
  kcont::runtime rt(loop.config(1));
  kcont::runtime_scope scope(rt);
  struct ctx {
    kcont::runtime* rt;
    std::atomic<int> runs{0}, wrong{0};
    std::atomic<std::thread::id> thread{};
  } c{&rt};
  kcont_t* kc = kcont_create(
      wq_softnet, nullptr,
      [](void* arg, kcont_t*) {
        auto* x = static_cast<ctx*>(arg);
        if (kcont::machine::this_thread_cpu() != x->rt->cpu(0)) x->wrong.fetch_add(1);
        x->thread = std::this_thread::get_id();
        x->runs.fetch_add(1);
      },
      &c, 0);
  REQUIRE(kc != nullptr);
  REQUIRE(kcont_schedule(kc, rt.cpu(0), 0) == 0);  // now
  CHECK(wait_until([&] { return c.runs == 1; }));
  CHECK(wait_until([&] { return !kcont_invoking(kc); }));
  REQUIRE(kcont_schedule(kc, rt.cpu(0), 5) == 0);  // the timer path: 5 ticks
  CHECK(wait_until([&] { return c.runs == 2; }));
  CHECK(c.thread.load() == server);
  CHECK(c.wrong == 0);
  kcont_destroy(kc);
}

TEST_CASE_TEMPLATE(
    "attached: work pending when the server stopped its loop is parked, reported "
    "by stop() and run by drain_attached() or by a restart",
    Loop, KCONT_TEST_LOOPS) {
  Loop loop;
  loop.run();
  kcont::runtime rt(loop.config(1));
  where w;
  void* si = w.establish_and_run_once(rt);

  loop.halt();  // the server stops its loop (run() returned)
  softint_schedule_cpu(si, rt.cpu(0));
  std::this_thread::sleep_for(20ms);
  CHECK(w.runs == 1);  // no loop serves the CPU

  auto t0 = std::chrono::steady_clock::now();
  kcont::stop_report r = rt.stop();
  CHECK(std::chrono::steady_clock::now() - t0 >= 300ms);  // waited drain_timeout
  CHECK_FALSE(r.drained);
  CHECK(r.attached_unserved == 1);
  CHECK(r.left_pending == 1);
  CHECK(r.summary().find("not served") != std::string::npos);
  CHECK(r.summary().find("drain_attached") != std::string::npos);
  CHECK(rt.pending_work() == 1);
  CHECK(w.runs == 1);

  // The server drains from its own (main) thread, acting as the CPU.
  CHECK(rt.drain_attached() == 1);
  CHECK(w.runs == 2);
  CHECK(w.thread.load() == std::this_thread::get_id());
  CHECK(w.wrong_cpu == 0);
  CHECK(rt.pending_work() == 0);
  CHECK_FALSE(kcont::in_interrupt_context());  // restored after the drain

  // Parked again, then the runtime and the loop start again: the loop runs it.
  softint_schedule_cpu(si, rt.cpu(0));
  CHECK(rt.pending_work() == 1);
  rt.start();
  loop.run();
  CHECK(wait_until([&] { return w.runs == 3; }));
  CHECK(w.thread.load() != std::this_thread::get_id());
  r = rt.stop();  // the loop runs: drained through it
  CHECK(r.drained);
  CHECK(r.attached_unserved == 0);
  softint_disestablish(si);
}

TEST_CASE_TEMPLATE("attached: stop() from a handler on the loop's own thread drains inline", Loop,
                   KCONT_TEST_LOOPS) {
  Loop loop;
  loop.run();
  kcont::runtime rt(loop.config(1));
  where w;
  void* si = w.establish_and_run_once(rt);
  std::promise<kcont::stop_report> report;
  auto t0 = std::chrono::steady_clock::now();
  loop.post([&] {
    softint_schedule_cpu(si, rt.cpu(0));  // pending when stop() is called
    report.set_value(rt.stop());          // on the server's thread: must not wait for itself
  });
  kcont::stop_report r = report.get_future().get();
  CHECK(std::chrono::steady_clock::now() - t0 < 250ms);
  CHECK(r.drained);
  CHECK(r.attached_unserved == 0);
  CHECK(r.left_pending == 0);
  CHECK(w.runs == 2);
  CHECK(w.wrong_cpu == 0);
  CHECK_FALSE(rt.running());
  softint_disestablish(si);
}

TEST_CASE_TEMPLATE("attached: misuse is refused with a clear error", Loop, KCONT_TEST_LOOPS) {
  Loop loop;
  kcont::runtime plain(kcont_test::cpus(1));
  CHECK_THROWS_AS(plain.drain_attached(), std::logic_error);
  kcont::runtime_config c = loop.config(1);
  c.attach.loop = nullptr;
  CHECK_THROWS_AS(kcont::runtime{c}, std::invalid_argument);
}

TEST_CASE("attached: io_context run by two server threads; a CPU's handlers never overlap") {
  asio_loop loop;
  loop.run(2);
  kcont::runtime rt(loop.config(2));
  struct cpu_probe {
    kcont::runtime* rt;
    unsigned cpu;
    std::atomic<int> inside{0}, overlaps{0}, runs{0}, wrong{0};
    std::atomic<std::thread::id> t0{}, t1{};
  };
  cpu_probe probes[2] = {{&rt, 0}, {&rt, 1}};
  auto handler = [](void* p) {
    auto* c = static_cast<cpu_probe*>(p);
    if (c->inside.fetch_add(1) != 0) c->overlaps.fetch_add(1);
    if (curcpu() != c->rt->cpu(c->cpu) || !kcont::in_interrupt_context()) c->wrong.fetch_add(1);
    std::this_thread::sleep_for(20us);
    c->inside.fetch_sub(1);
    c->runs.fetch_add(1);
  };
  void* si[2][3];
  for (auto& row : si)
    for (auto*& s : row) s = nullptr;
  for (unsigned cpu = 0; cpu < 2; ++cpu)
    for (int k = 0; k < 3; ++k)
      si[cpu][k] = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, handler, &probes[cpu]);
  // Callouts on each CPU too (they run from the same CPU dispatch).
  std::vector<std::unique_ptr<kcont::callout>> timers;
  for (unsigned cpu = 0; cpu < 2; ++cpu)
    for (int k = 0; k < 4; ++k) {
      timers.push_back(
          std::make_unique<kcont::callout>(rt, [&probes, cpu, handler] { handler(&probes[cpu]); }));
      timers.back()->bind(rt.cpu(cpu));
    }
  std::vector<std::thread> producers;
  for (int p = 0; p < 2; ++p)
    producers.emplace_back([&, p] {
      for (int i = 0; i < 3000; ++i) {
        unsigned cpu = static_cast<unsigned>(i + p) % 2;
        softint_schedule_cpu(si[cpu][i % 3], rt.cpu(cpu));
        if (i % 100 == 0) timers[static_cast<size_t>(i / 100) % timers.size()]->schedule(1ms);
        if (i % 50 == 0) std::this_thread::sleep_for(100us);
      }
    });
  for (auto& t : producers) t.join();
  std::this_thread::sleep_for(50ms);
  for (auto& t : timers) t->halt();
  for (auto& row : si)
    for (void* s : row) softint_disestablish(s);
  for (auto& c : probes) {
    CHECK(c.runs > 0);
    CHECK(c.overlaps == 0);
    CHECK(c.wrong == 0);
  }
}

TEST_CASE_TEMPLATE("attached: fd watches on an attached CPU, unwatched after the loop stopped",
                   Loop, KCONT_TEST_LOOPS) {
  Loop loop;
  loop.run();
  const std::thread::id server = server_thread_id(loop);
  kcont::runtime rt(loop.config(1));
  int fds[2];
  REQUIRE(::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
  struct ctx {
    int fd;
    std::atomic<int> bytes{0};
    std::atomic<std::thread::id> thread{};
  } c{fds[0]};
  kcont::machine::fd_watch* w = kcont::machine::watch_fd(
      rt.cpu(0), fds[0],
      [](void* p) {
        auto* x = static_cast<ctx*>(p);
        char buf[16];
        ssize_t n;
        while ((n = ::read(x->fd, buf, sizeof buf)) > 0) x->bytes.fetch_add(static_cast<int>(n));
        x->thread = std::this_thread::get_id();
      },
      &c);
  REQUIRE(::write(fds[1], "abc", 3) == 3);
  CHECK(wait_until([&] { return c.bytes == 3; }));
  CHECK(c.thread.load() == server);
  loop.halt();
  kcont::machine::unwatch_fd(w);  // the loop no longer runs: must not hang
  CHECK(rt.stop().attached_unserved == 1);
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_CASE("attached: after stop() kcont leaves no work on the io_context, so run() returns") {
  boost::asio::io_context ioc;
  kcont::runtime rt(kcont::attached(ioc));
  where w;
  w.rt = &rt;
  void* si = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, &where::fn, &w);
  std::atomic<bool> returned{false};
  std::thread server([&] {
    ioc.run();  // no work guard: only kcont's wait keeps it running
    returned = true;
  });
  softint_schedule_cpu(si, rt.cpu(0));
  CHECK(wait_until([&] { return w.runs == 1; }));
  std::this_thread::sleep_for(20ms);
  CHECK_FALSE(returned);
  CHECK(rt.stop().drained);
  CHECK(wait_until([&] { return returned.load(); }, 5s));
  server.join();
  softint_disestablish(si);
}
