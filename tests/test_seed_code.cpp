// Seed code compiles unchanged (issue 16, item 9).
//
// 1. The myx(4) driver change of OpenBSD's 2015 taskctx diff
//    (../shared/seeds/openbsd-taskctx-diff-2015.txt): every `+` line of its if_myx.c hunks,
//    reproduced as the diff has it (whitespace aside), compiled against kcont's public headers
//    and run: txeof finds oactive set, hands sc_tx_restart to the ifqueue's serialiser, and
//    myx_restart clears oactive and starts the interface again.
//    Where those lines need kernel things kcont does not have (the rest of struct myx_softc,
//    struct arpcom, the body of txeof, the attach hook), a minimal STUB stands in; every stub
//    is marked "STUB". <sys/task.h> is tests/seed_stub/sys/task.h, a stub that includes
//    <kcont/task.h>.
//    One line is not valid C++ as the diff writes it: `struct ifnet *ifp = p;` converts a
//    void * implicitly, which C allows and C++ does not (no library can change that). It is
//    reproduced with the cast C++ needs, and the diff's text beside it in a comment.
// 2. The diff's if.c lines that call kcont's task API (taskctx_init with IPL_NET,
//    task_dispatch into ifq_serializer, taskctx_barrier), in a namespace of their own, since
//    kcont's net layer defines if_start_barrier itself.
// 3. NetBSD names: callout_t, IPL_SOFTNET, softint_establish, workqueue_create with
//    PRI_NONE / IPL_NET, chained callout -> softint -> workqueue and run.
// 4. Every IPL name of both kernels (and OpenBSD's IPL_MPSAFE flag OR-ed in) is accepted
//    wherever kcont takes an ipl.
//
// Compiled with -Werror (tests/CMakeLists.txt).
#include <doctest/doctest.h>
#include <kcont/callout.h>
#include <kcont/ifq.h>
#include <kcont/mutex.h>
#include <kcont/runtime.h>
#include <kcont/softint.h>
#include <kcont/task.h>
#include <kcont/workqueue.h>
#include <sys/types.h>

#include <atomic>
#include <cerrno>

#include "test_util.h"

// ---- 1. myx(4) -------------------------------------------------------------------------------

// clang-format off
#include <sys/task.h>   /* the diff's line (if_myx.c, @@ -34,6 +34,7 @@) */

// STUB: OpenBSD's struct arpcom holds the interface; kcont's struct ifnet stands in as is.
struct arpcom {
	struct ifnet		 ac_if;
};

// STUB: struct myx_softc reduced to the fields around the diff's line.
struct myx_softc {
	struct arpcom		 sc_ac;
	u_int			 sc_tx_prod;
	u_int			 sc_tx_cons;
	struct task		 sc_tx_restart;
};

void myx_txeof(struct myx_softc *, u_int32_t);
void myx_restart(void *);

// STUB: the part of myx_attachhook around the diff's line.
static void
myx_attachhook_stub(struct myx_softc *sc)
{
	struct ifnet *ifp = &sc->sc_ac.ac_if;

	task_set(&sc->sc_tx_restart, myx_restart, ifp);
}

void
myx_restart(void *p)
{
	struct ifnet *ifp = static_cast<struct ifnet *>(p); /* diff: struct ifnet *ifp = p; */

	ifq_clr_oactive(&ifp->if_snd);
	if_start(ifp);
}

// STUB: myx_txeof's descriptor reclaim, reduced to advancing the consumer index.
void
myx_txeof(struct myx_softc *sc, u_int32_t done_count)
{
	struct ifnet *ifp = &sc->sc_ac.ac_if;

	sc->sc_tx_cons += done_count;

	if (ifq_is_oactive(&ifp->if_snd))
		ifq_serialize(&ifp->if_snd, &sc->sc_tx_restart);
}
// clang-format on

// ---- 2. the diff's if.c lines that use the task API ----------------------------------------

namespace seed_if_c {
// clang-format off
void
if_start_mpsafe(struct ifnet *ifp)
{
	task_dispatch(&ifp->if_snd.ifq_serializer, &ifp->if_start_ctx);
}

void
if_start_barrier(struct ifnet *ifp)
{
	taskctx_barrier(&ifp->if_snd.ifq_serializer);
}

// STUB: the head of if.c's ifq_init, around the diff's line.
void
ifq_init_head(struct ifqueue *ifq)
{
	taskctx_init(&ifq->ifq_serializer, IPL_NET);
}
// clang-format on
}  // namespace seed_if_c

namespace {

using kcont::net::pkt;
using kcont::net::pkt_pool;

// The test's start routine: sends (takes off the queue) everything queued.
struct start_log {
  pkt_pool* pool = nullptr;
  std::atomic<int> starts{0};
  std::atomic<int> sent{0};
};
start_log g_start;

void myx_start_stub(ifnet* ifp) {
  ++g_start.starts;
  while (pkt* m = ifq_dequeue(&ifp->if_snd)) {
    ++g_start.sent;
    g_start.pool->put(m);
  }
}

}  // namespace

TEST_CASE("the diff's myx change: txeof restarts an oactive interface through the serialiser") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  pkt_pool pool(8);
  g_start.pool = &pool;

  static myx_softc sc{};  // static: ifnet holds a mutex and atomics, and lives long
  ifnet* ifp = &sc.sc_ac.ac_if;
  ifq_init(&ifp->if_snd, 0);
  ifp->if_start = myx_start_stub;
  if_attach(ifp);
  myx_attachhook_stub(&sc);
  ifp->if_flags = IFF_UP | IFF_RUNNING;

  // The ring is full: start set oactive and left two packets queued.
  REQUIRE(ifq_enqueue(&ifp->if_snd, pool.get()) == 0);
  REQUIRE(ifq_enqueue(&ifp->if_snd, pool.get()) == 0);
  ifq_set_oactive(&ifp->if_snd);
  if_start(ifp);
  CHECK(g_start.starts == 0);  // oactive: the stack must not start it
  CHECK(ifq_len(&ifp->if_snd) == 2);

  // Completion: txeof reclaims and, oactive being set, restarts inside the serialiser.
  myx_txeof(&sc, 4);
  CHECK(sc.sc_tx_cons == 4);
  CHECK_FALSE(ifq_is_oactive(&ifp->if_snd));
  CHECK(g_start.starts == 1);
  CHECK(g_start.sent == 2);
  CHECK(ifq_empty(&ifp->if_snd));

  // Not oactive: txeof leaves start alone.
  myx_txeof(&sc, 1);
  CHECK(g_start.starts == 1);

  // The if.c lines: a direct dispatch of the start task, then the barrier.
  REQUIRE(ifq_enqueue(&ifp->if_snd, pool.get()) == 0);
  seed_if_c::if_start_mpsafe(ifp);
  seed_if_c::if_start_barrier(ifp);
  CHECK(g_start.starts == 2);
  CHECK(g_start.sent == 3);
  CHECK(pool.available() == pool.size());

  ifp->if_flags = 0;
  if_start_barrier(ifp);

  // taskctx_init(..., IPL_NET) on a fresh ifqueue, then a dispatch that runs at once.
  static ifqueue other;
  seed_if_c::ifq_init_head(&other);
  static int ran = 0;
  task t = TASK_INITIALIZER([](void*) { ++ran; }, nullptr);
  task_dispatch(&other.ifq_serializer, &t);
  taskctx_barrier(&other.ifq_serializer);
  CHECK(ran == 1);
}

// ---- 3. NetBSD names --------------------------------------------------------------------------

namespace {

struct netbsd_driver {
  kmutex_t sc_lock;
  callout_t sc_tick;
  void* sc_sih = nullptr;
  struct workqueue* sc_wq = nullptr;
  struct work sc_wk;
  std::atomic<int> ticks{0}, softints{0}, works{0};
};

void netbsd_work(struct work*, void* arg) {
  auto* sc = static_cast<netbsd_driver*>(arg);
  mutex_enter(&sc->sc_lock);
  ++sc->works;
  mutex_exit(&sc->sc_lock);
}

void netbsd_softint(void* arg) {
  auto* sc = static_cast<netbsd_driver*>(arg);
  ++sc->softints;
  workqueue_enqueue(sc->sc_wq, &sc->sc_wk, nullptr);
}

void netbsd_tick(void* arg) {
  auto* sc = static_cast<netbsd_driver*>(arg);
  ++sc->ticks;
  softint_schedule(sc->sc_sih);
}

}  // namespace

TEST_CASE("NetBSD names: callout_t -> softint_establish -> workqueue_create(PRI_NONE, IPL_NET)") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  netbsd_driver sc;
  mutex_init(&sc.sc_lock, MUTEX_DEFAULT, IPL_SOFTNET);
  callout_init(&sc.sc_tick, CALLOUT_MPSAFE);
  callout_setfunc(&sc.sc_tick, netbsd_tick, &sc);
  sc.sc_sih = softint_establish(SOFTINT_NET | SOFTINT_MPSAFE, netbsd_softint, &sc);
  REQUIRE(sc.sc_sih != nullptr);
  REQUIRE(workqueue_create(&sc.sc_wq, "nbsdwq", netbsd_work, &sc, PRI_NONE, IPL_NET, WQ_MPSAFE) ==
          0);

  callout_schedule(&sc.sc_tick, 1);
  CHECK(kcont_test::wait_until([&] { return sc.works.load() == 1; }));
  workqueue_wait(sc.sc_wq, &sc.sc_wk);
  CHECK(sc.ticks == 1);
  CHECK(sc.softints == 1);
  CHECK(sc.works == 1);

  callout_halt(&sc.sc_tick, nullptr);
  callout_destroy(&sc.sc_tick);
  softint_disestablish(sc.sc_sih);
  workqueue_destroy(sc.sc_wq);
  mutex_destroy(&sc.sc_lock);
}

// ---- 4. every IPL name, wherever kcont takes an ipl -------------------------------------------

// Each kernel's relative order.
static_assert(IPL_NONE < IPL_SOFTCLOCK && IPL_SOFTCLOCK < IPL_SOFTBIO &&
              IPL_SOFTBIO < IPL_SOFTNET && IPL_SOFTNET < IPL_SOFTSERIAL &&
              IPL_SOFTSERIAL < IPL_VM && IPL_VM < IPL_SCHED && IPL_SCHED < IPL_HIGH);
static_assert(IPL_NONE < IPL_SOFTCLOCK && IPL_SOFTCLOCK < IPL_SOFTNET && IPL_SOFTNET < IPL_BIO &&
              IPL_BIO < IPL_NET && IPL_NET < IPL_SOFTTTY && IPL_SOFTTTY < IPL_TTY &&
              IPL_TTY < IPL_VM && IPL_VM < IPL_AUDIO && IPL_AUDIO < IPL_CLOCK &&
              IPL_CLOCK == IPL_STATCLOCK && IPL_CLOCK == IPL_SCHED && IPL_CLOCK < IPL_HIGH &&
              IPL_HIGH < IPL_IPI);
static_assert((IPL_MPSAFE & IPL_IPI) == 0 && (IPL_MPSAFE & (IPL_MPSAFE - 1)) == 0);

TEST_CASE("every IPL name of both kernels, also | IPL_MPSAFE, is accepted where an ipl is taken") {
  kcont::runtime rt(kcont_test::cpus(2));
  kcont::runtime_scope scope(rt);
  const int ipls[] = {IPL_NONE,
                      IPL_SOFTCLOCK,
                      IPL_SOFTBIO,
                      IPL_SOFTNET,
                      IPL_SOFTSERIAL,
                      IPL_BIO,
                      IPL_NET,
                      IPL_SOFTTTY,
                      IPL_TTY,
                      IPL_VM,
                      IPL_AUDIO,
                      IPL_CLOCK,
                      IPL_SCHED,
                      IPL_STATCLOCK,
                      IPL_HIGH,
                      IPL_IPI,
                      IPL_NET | IPL_MPSAFE,
                      IPL_HIGH | IPL_MPSAFE};
  static std::atomic<int> ran{0};
  int expected = 0;
  for (int ipl : ipls) {
    CAPTURE(ipl);
    kmutex_t m;
    mutex_init(&m, MUTEX_DEFAULT, ipl);
    mutex_enter(&m);
    CHECK(mutex_owned(&m));
    mutex_exit(&m);
    mutex_destroy(&m);

    taskctx tc;
    taskctx_init(&tc, ipl);
    task t = TASK_INITIALIZER([](void*) { ++ran; }, nullptr);
    task_dispatch(&tc, &t);
    taskctx_barrier(&tc);

    taskq* tq = taskq_create("ipl", 1, ipl, TASKQ_MPSAFE);
    REQUIRE(tq != nullptr);
    task t2 = TASK_INITIALIZER([](void*) { ++ran; }, nullptr);
    CHECK(task_add(tq, &t2) == 1);
    taskq_barrier(tq);
    taskq_destroy(tq);

    struct workqueue* wq = nullptr;
    REQUIRE(workqueue_create(
                &wq, "ipl", [](struct work*, void*) { ++ran; }, nullptr, PRI_NONE, ipl,
                WQ_MPSAFE) == 0);
    struct work wk {};
    workqueue_enqueue(wq, &wk, nullptr);
    workqueue_wait(wq, &wk);
    workqueue_destroy(wq);
    expected += 3;
    CHECK(kcont_test::wait_until([&] { return ran.load() == expected; }));
  }
}
