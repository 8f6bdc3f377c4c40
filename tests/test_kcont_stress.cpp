// Stress: exactly-once accounting for continuations scheduled and stopped from several
// threads across CPUs and queues. Each continuation has its own lock, held by func when it
// runs and by a test thread around each operation, so under the lock an invocation is either
// absent or queued-not-running: created (schedule returned 0) = runs + cancelled (a stop of a
// queued invocation).
#include <books.h>
#include <doctest/doctest.h>
#include <kcont/kcont.h>

#include <atomic>
#include <cstdlib>
#include <random>
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
