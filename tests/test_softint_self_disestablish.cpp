// Regression test (found by kcont-torture): softint_disestablish called from the softint's own
// handler must return at once, as softint.h promises. It used to wait until the softint's
// instances on the *other* CPUs were neither pending nor running, from inside a handler, on a
// CPU loop thread: two handlers doing that on two CPUs waited for each other forever (A's
// handler on CPU 0 waited for A's pending instance on CPU 1, whose loop was busy in B's
// handler, which waited for B's pending instance on CPU 0). Now the handle is orphaned and the
// last loop done with it frees it. A hang is reported as a failure and the process exits at
// once: its CPU loops could no longer be stopped.
#include <doctest/doctest.h>
#include <kcont/runtime.h>
#include <kcont/softint.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "test_util.h"

using namespace std::chrono_literals;

namespace {

struct pair_state {
  kcont::runtime* rt = nullptr;
  void* cookie[2] = {};
  std::atomic<int> running{0}, scheduled{0}, returned{0};
};
struct side {
  pair_state* st;
  unsigned me;  // 0: A, first run on CPU 0; 1: B, first run on CPU 1
  std::atomic<int> runs{0};
};

void spin_until(std::atomic<int>& v, int want) {
  auto give_up = std::chrono::steady_clock::now() + 2s;
  while (v.load() < want && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
}

void handler(void* a) {
  auto* s = static_cast<side*>(a);
  if (s->runs.fetch_add(1) != 0) return;  // only the first run takes part
  pair_state& st = *s->st;
  st.running.fetch_add(1);
  spin_until(st.running, 2);  // both handlers are running now, one per CPU
  // Leave this softint pending on the other CPU, whose loop is inside the other handler.
  softint_schedule_cpu(st.cookie[s->me], st.rt->cpu(1 - s->me));
  st.scheduled.fetch_add(1);
  spin_until(st.scheduled, 2);
  softint_disestablish(st.cookie[s->me]);  // from its own handler: must return at once
  st.returned.fetch_add(1);
}

}  // namespace

TEST_CASE("softint_disestablish from its own handler returns at once (two CPUs, two softints)") {
  kcont::runtime rt(kcont_test::cpus(2));
  pair_state st;
  st.rt = &rt;
  side a{&st, 0}, b{&st, 1};
  st.cookie[0] = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, handler, &a);
  st.cookie[1] = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, handler, &b);
  REQUIRE(st.cookie[0] != nullptr);
  REQUIRE(st.cookie[1] != nullptr);
  softint_schedule_cpu(st.cookie[0], rt.cpu(0));
  softint_schedule_cpu(st.cookie[1], rt.cpu(1));
  const bool ok = kcont_test::wait_until([&] { return st.returned.load() == 2; }, 10000ms);
  if (!ok) {
    std::fprintf(stderr,
                 "softint_disestablish from its own handler is still waiting after 10 s (%d of 2 "
                 "returned): the two CPU loops wait for each other\n",
                 st.returned.load());
    std::fflush(stderr);
    std::_Exit(1);  // the runtime cannot be stopped: its loops are stuck
  }
  CHECK(ok);
}
