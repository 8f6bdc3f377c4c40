// Stress: exactly-once accounting for continuations scheduled and stopped from several
// threads across CPUs and queues. Each continuation has its own lock, held by func when it
// runs and by a test thread around each operation, so under the lock an invocation is either
// absent or queued-not-running: created (schedule returned 0) = runs + cancelled (a stop of a
// queued invocation).
#include <books.h>
#include <doctest/doctest.h>
#include <kcont/kcont.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace {

struct counted {
  kcont_t kc;
  kmutex_t lock;
  std::uint64_t created = 0, runs = 0, cancelled = 0;  // guarded by lock
  static void run(void* a, kcont_t*) {
    auto* c = static_cast<counted*>(a);
    if (!mutex_owned(&c->lock)) std::abort();
    ++c->runs;
  }
};

}  // namespace

TEST_CASE("stress: created = runs + cancelled, under 3 threads, 2 CPUs, soft and thread queues") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  const unsigned n = 192;
  std::vector<counted> cs(n);
  for (unsigned i = 0; i < n; ++i) {
    mutex_init(&cs[i].lock, MUTEX_DEFAULT, IPL_NONE);
    REQUIRE(kcont_init(&cs[i].kc, i % 2 ? wq_softnet : wq_prihigh, &cs[i].lock, counted::run,
                       &cs[i], 0) == 0);
  }
  const int ops =
      60000 *
      (std::getenv("KCONT_STRESS_SCALE") ? std::atoi(std::getenv("KCONT_STRESS_SCALE")) : 100) /
      100;
  std::vector<std::thread> threads;
  for (unsigned th = 0; th < 3; ++th) {
    threads.emplace_back([&, th] {
      kcont::runtime_scope s(rt);
      std::minstd_rand rng(th + 7);
      for (int i = 0; i < ops; ++i) {
        counted& c = cs[rng() % n];
        mutex_enter(&c.lock);
        if (rng() % 4 != 0) {
          if (kcont_schedule(&c.kc, rt.cpu(rng() % 2), 0) == 0) ++c.created;
        } else if (kcont_invoking(&c.kc)) {  // queued, not running (we hold its lock)
          kcont_stop(&c.kc);
          ++c.cancelled;
        }
        mutex_exit(&c.lock);
        if (i % 256 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  for (auto& t : threads) t.join();
  torture::books books{"kcont"};
  unsigned index = 0;
  for (auto& c : cs) {
    REQUIRE(kcont_test::wait_until([&] { return !kcont_invoking(&c.kc); }));  // drain
    mutex_enter(&c.lock);
    books.add_object(index++, c.created, c.runs, c.cancelled, "created");
    mutex_exit(&c.lock);
    kcont_destroy(&c.kc);
  }
  MESSAGE(books.summary());
  CHECK_MESSAGE(books.balanced(), books.summary());
  CHECK(books.ran > 0);
  CHECK(books.cancelled > 0);
}

// A func that re-schedules itself at once asks without its queue's lock (kcont/src/state.cpp,
// "Re-scheduling"), while another thread reads its state and, in turns, either acks it or
// schedules it, and the main thread halts it. Every run after the first comes from exactly one
// of func's own schedules that returned 0 and a halt withdraws at most one, so asks - runs
// grows by 0 or 1 per halt; after a halt nothing runs and nothing is pending. While nobody
// acks, the other thread's schedules all find it INVOKING (EBUSY): it is always running or
// queued. A lost ask stalls the loop; an ask queued twice, or after the halt, breaks the books.
// Soft and thread queues, no lock (with one, no other thread's operation meets a running func).
TEST_CASE("stress: a func re-scheduling itself without the lock against ack, schedule, halt") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  const int scale =
      std::getenv("KCONT_STRESS_SCALE") ? std::atoi(std::getenv("KCONT_STRESS_SCALE")) : 100;
  const int cycles = std::max(20, 150 * scale / 100);
  for (kcont_wq_t* wq : {wq_softnet, wq_prihigh}) {
    struct looping {
      std::atomic<std::uint64_t> runs{0}, asked{0}, busy{0};
      static void run(void* a, kcont_t* self) {
        auto* l = static_cast<looping*>(a);
        l->runs.fetch_add(1);
        const int e = kcont_schedule(self, nullptr, 0);
        if (e != 0 && e != EBUSY) std::abort();
        (e == 0 ? l->asked : l->busy).fetch_add(1);
      }
    } l;
    kcont_t kc;
    REQUIRE(kcont_init(&kc, wq, nullptr, looping::run, &l, 0) == 0);
    enum mode { idle, acking, scheduling, done };
    std::atomic<int> want{idle}, at{idle};
    std::atomic<std::uint64_t> foreign_ok{0}, acks{0}, reads{0};
    std::thread racer([&] {
      kcont::runtime_scope s(rt);
      std::minstd_rand rng(3);
      for (int m; (m = want.load()) != done;) {
        at = m;
        if (m == idle) {
          std::this_thread::sleep_for(std::chrono::microseconds(20));
          continue;
        }
        reads += kcont_invoking(&kc) + kcont_expired(&kc) + kcont_pending(&kc);
        if (m == acking && kcont_ack(&kc)) acks.fetch_add(1);
        if (m == scheduling && kcont_schedule(&kc, rt.cpu(1), 0) == 0) foreign_ok.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 40));
      }
    });
    struct joiner {
      std::atomic<int>& want;
      std::thread& t;
      ~joiner() {
        want = done;
        t.join();
      }
    } join_racer{want, racer};
    std::minstd_rand rng(11);
    std::uint64_t withdrawn = 0;
    int withdrew = 0;
    for (int c = 0; c < cycles; ++c) {
      REQUIRE(kcont_schedule(&kc, rt.cpu(1), 0) == 0);  // halted: idle, so this starts it
      l.asked.fetch_add(1);                             // counted as one more schedule
      want = c % 2 ? acking : scheduling;
      const std::uint64_t from = l.runs.load();
      REQUIRE(kcont_test::wait_until([&] { return l.runs.load() >= from + 20; }));  // no stall
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200));
      want = idle;
      REQUIRE(kcont_test::wait_until([&] { return at.load() == idle; }));
      kcont_halt(&kc);
      const std::uint64_t runs = l.runs.load();
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      REQUIRE(l.runs.load() == runs);  // nothing runs after a halt
      CHECK(!kcont_pending(&kc));
      CHECK(!kcont_invoking(&kc));  // none queued, none running
      const std::uint64_t asked = l.asked.load();
      REQUIRE(asked >= runs);
      REQUIRE(asked - runs >= withdrawn);
      REQUIRE(asked - runs - withdrawn <= 1);  // this halt withdrew at most one
      if (asked - runs > withdrawn) ++withdrew;
      withdrawn = asked - runs;
      if (c % 2 == 0) REQUIRE(foreign_ok.load() == 0);  // never acked: always INVOKING
    }
    MESSAGE(std::string(wq == wq_softnet ? "soft" : "thread")
            << ": runs " << l.runs.load() << ", asks " << l.asked.load() << " (EBUSY "
            << l.busy.load() << "), other thread's schedules that got in " << foreign_ok.load()
            << ", acks " << acks.load() << ", reads " << reads.load()
            << ", halts that withdrew one " << withdrew << " of " << cycles);
    CHECK(acks.load() > 0);
    kcont_destroy(&kc);
  }
}
