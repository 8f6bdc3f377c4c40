// The interface send queue and its start path, after OpenBSD's ifqueue and the 2015 taskctx
// diff (../shared/seeds/openbsd-taskctx-diff-2015.txt).
//
// An ifqueue is a bounded FIFO of packets, an `oactive` flag (the hardware ring is full: the
// stack must not call start) and a serialiser: a taskctx that runs the driver's start routine
// and whatever else the driver submits with ifq_serialize, never two at once. if_start
// dispatches the start task into the serialiser: when nobody is inside, it runs at once on the
// calling thread (no hand-off: the fast path the diff was written for); otherwise the thread
// inside runs it before leaving.
//
// The driver's rule (the diff's myx change): txeof may reclaim descriptors anywhere, but it
// clears oactive only inside the serialiser, through ifq_restart:
//     if (ifq_is_oactive(ifq)) ifq_restart(ifq);
//
// Start modes: `taskctx` is the above. `taskq` defers start (and everything ifq_serialize
// submits) to a single-threaded task queue instead: serialised too, but each start is a
// hand-off to a worker thread (the alternative the diff measured as slower). `naive` is the
// driver before the diff; the ifqueue behaves as in `taskctx` and the driver differs.
//
// Context: ifq_enqueue/dequeue/oactive calls and if_start may be called from any thread,
// including CPU loop threads; they allocate nothing. if_start_barrier sleeps.
#pragma once

#include <kcont/pkt.h>
#include <kcont/task.h>
#include <kcont/taskctx.h>
#include <net/if.h>

#include <atomic>
#include <cstdint>
#include <mutex>

struct ifnet;

// Locks used to protect the fields of ifqueue and ifnet:
//   [I] set by ifq_init / if_attach before the interface is used
//   [q] ifq_mtx
//   [a] atomic (oactive is set by start and cleared inside the serialiser: the diff's rule)
//   [S] inside the serialiser only
struct ifqueue {
  taskctx ifq_serializer;
  std::mutex ifq_mtx;
  kcont::net::pkt* ifq_head = nullptr;             // [q]
  kcont::net::pkt* ifq_tail = nullptr;             // [q]
  unsigned ifq_len = 0;                            // [q]
  unsigned ifq_maxlen = 0;                         // [I]
  std::atomic<std::uint64_t> ifq_drops{0};         // [a]
  std::atomic<unsigned> ifq_oactive{0};            // [a]
  std::atomic<std::uint64_t> ifq_oactive_sets{0};  // [a] transitions to oactive (statistics)
  taskq* ifq_taskq = nullptr;  // [I] taskq start mode: where serialised work runs instead
  ifnet* ifq_if = nullptr;     // [I]
  task ifq_restart_task{};     // [I] set; queued by ifq_restart, run [S]
};

// IFF_UP and IFF_RUNNING come from <net/if.h> (same values as in the BSDs).
inline constexpr unsigned IFQ_MAXLEN = 256;  // OpenBSD's default send queue length

struct ifnet {
  char if_xname[IFNAMSIZ] = {};  // [I]
  ifqueue if_snd;
  task if_start_ctx{};                 // [I] runs if_start_task in the serialiser
  void (*if_start)(ifnet*) = nullptr;  // [I] the driver's start routine
  void* if_softc = nullptr;            // [I]
  std::atomic<unsigned> if_flags{0};   // [a]
};

// maxlen 0 means IFQ_MAXLEN. Packets are the caller's until enqueued.
void ifq_init(ifqueue* ifq, unsigned maxlen);
// 0 when queued; ENOBUFS when the queue is full: the drop is counted and the packet stays the
// caller's (OpenBSD frees the mbuf; here the caller returns it to its pool).
int ifq_enqueue(ifqueue* ifq, kcont::net::pkt* m);
kcont::net::pkt* ifq_dequeue(ifqueue* ifq);  // nullptr when empty
bool ifq_empty(ifqueue* ifq);
unsigned ifq_len(ifqueue* ifq);
void ifq_set_oactive(ifqueue* ifq);
void ifq_clr_oactive(ifqueue* ifq);
bool ifq_is_oactive(const ifqueue* ifq);
// Runs t in the interface's serialiser (task_dispatch; in taskq mode, task_add on its taskq).
void ifq_serialize(ifqueue* ifq, task* t);
// Inside the serialiser: clear oactive, then start the interface.
void ifq_restart(ifqueue* ifq);

// Attaches the start path: ifp->if_start must be set. `tq` non-null selects taskq mode.
void if_attach(ifnet* ifp, taskq* tq = nullptr);
// Starts output: runs ifp->if_start in the serialiser unless the interface is not running,
// its queue is empty or oactive is set.
void if_start(ifnet* ifp);
// Waits until no start routine (or other serialised work) that was running or queued when it
// was called still runs or is queued. Sleeps: not from interrupt context or from inside the
// serialiser.
void if_start_barrier(ifnet* ifp);
