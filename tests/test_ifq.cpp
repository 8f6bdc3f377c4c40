// ifqueue and the start path: FIFO and drops, oactive, if_start's direct dispatch into the
// serialiser (runs on the caller when free, queued behind the thread inside otherwise),
// ifq_restart, if_start_barrier, and the taskq start mode.
#include <doctest/doctest.h>
#include <kcont/ifq.h>
#include <kcont/runtime.h>

#include <atomic>
#include <thread>
#include <vector>

#include "test_util.h"

using kcont::net::pkt;

namespace {

struct fake_driver {
  ifnet ifn;
  std::atomic<int> starts{0};
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::atomic<bool> hold{false};
  std::thread::id last_thread;
  std::vector<pkt*> sent;

  static void start(ifnet* ifp) {
    auto* d = static_cast<fake_driver*>(ifp->if_softc);
    if (d->inside.fetch_add(1) != 0) ++d->overlaps;
    ++d->starts;
    d->last_thread = std::this_thread::get_id();
    while (d->hold.load()) std::this_thread::yield();
    while (pkt* m = ifq_dequeue(&ifp->if_snd)) d->sent.push_back(m);
    d->inside.fetch_sub(1);
  }
  explicit fake_driver(unsigned maxlen, taskq* tq = nullptr) {
    ifq_init(&ifn.if_snd, maxlen);
    ifn.if_start = start;
    ifn.if_softc = this;
    if_attach(&ifn, tq);
    ifn.if_flags = IFF_UP | IFF_RUNNING;
  }
};

}  // namespace

TEST_CASE("ifq: FIFO, a full queue refuses and counts the drop, oactive flags") {
  fake_driver d(3);
  pkt p[4];
  for (int i = 0; i < 3; ++i) CHECK(ifq_enqueue(&d.ifn.if_snd, &p[i]) == 0);
  CHECK(ifq_enqueue(&d.ifn.if_snd, &p[3]) == ENOBUFS);
  CHECK(d.ifn.if_snd.ifq_drops.load() == 1);
  CHECK(ifq_len(&d.ifn.if_snd) == 3);
  for (int i = 0; i < 3; ++i) CHECK(ifq_dequeue(&d.ifn.if_snd) == &p[i]);
  CHECK(ifq_dequeue(&d.ifn.if_snd) == nullptr);
  CHECK(ifq_empty(&d.ifn.if_snd));
  CHECK_FALSE(ifq_is_oactive(&d.ifn.if_snd));
  ifq_set_oactive(&d.ifn.if_snd);
  ifq_set_oactive(&d.ifn.if_snd);
  CHECK(ifq_is_oactive(&d.ifn.if_snd));
  CHECK(d.ifn.if_snd.ifq_oactive_sets.load() == 1);  // one transition
  ifq_clr_oactive(&d.ifn.if_snd);
  CHECK_FALSE(ifq_is_oactive(&d.ifn.if_snd));
}

TEST_CASE("if_start runs start on the caller when the serialiser is free; not when it must not") {
  fake_driver d(16);
  pkt p[2];
  if_start(&d.ifn);  // empty queue: start is not called
  CHECK(d.starts == 0);
  ifq_enqueue(&d.ifn.if_snd, &p[0]);
  if_start(&d.ifn);
  CHECK(d.starts == 1);
  CHECK(d.last_thread == std::this_thread::get_id());  // direct dispatch, no hand-off
  CHECK(d.sent.size() == 1);

  ifq_enqueue(&d.ifn.if_snd, &p[1]);
  ifq_set_oactive(&d.ifn.if_snd);
  if_start(&d.ifn);
  CHECK(d.starts == 1);        // oactive: the stack must not call start
  ifq_restart(&d.ifn.if_snd);  // clears oactive inside the serialiser, then starts
  CHECK_FALSE(ifq_is_oactive(&d.ifn.if_snd));
  CHECK(d.starts == 2);
  CHECK(d.sent.size() == 2);

  d.ifn.if_flags = IFF_UP;  // not running
  ifq_enqueue(&d.ifn.if_snd, &p[0]);
  if_start(&d.ifn);
  CHECK(d.starts == 2);
  ifq_dequeue(&d.ifn.if_snd);
}

TEST_CASE("if_start from a second thread while start runs is queued behind it, never overlaps") {
  fake_driver d(1024);
  std::vector<pkt> p(200);
  d.hold = true;
  ifq_enqueue(&d.ifn.if_snd, &p[0]);
  std::thread first([&] { if_start(&d.ifn); });
  REQUIRE(kcont_test::wait_until([&] { return d.inside.load() == 1; }));
  const auto first_id = d.last_thread;
  // Others call if_start meanwhile: each returns at once, the work is queued for `first`.
  std::vector<std::thread> others;
  for (int t = 0; t < 3; ++t)
    others.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        ifq_enqueue(&d.ifn.if_snd, &p[1 + t * 50 + i]);
        if_start(&d.ifn);
      }
    });
  for (auto& t : others) t.join();
  CHECK(d.starts == 1);  // nothing ran yet: the serialiser is held
  d.hold = false;
  first.join();
  CHECK(d.overlaps == 0);
  CHECK(d.sent.size() == 151);       // every packet went out
  CHECK(d.last_thread == first_id);  // the queued start ran on the thread inside
  if_start_barrier(&d.ifn);
}

TEST_CASE("taskq start mode: start runs on a task queue worker, serialised") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("ifq-test", 1, 0, TASKQ_MPSAFE);
  REQUIRE(tq != nullptr);
  {
    fake_driver d(1024, tq);
    std::vector<pkt> p(300);
    std::vector<std::thread> producers;
    for (int t = 0; t < 3; ++t)
      producers.emplace_back([&, t] {
        for (int i = 0; i < 100; ++i) {
          while (ifq_enqueue(&d.ifn.if_snd, &p[t * 100 + i]) != 0) std::this_thread::yield();
          if_start(&d.ifn);
        }
      });
    for (auto& t : producers) t.join();
    if_start_barrier(&d.ifn);
    CHECK(d.sent.size() == 300);
    CHECK(d.overlaps == 0);
    CHECK(d.last_thread != std::this_thread::get_id());
  }
  taskq_destroy(tq);
}
