// ifqueue and the start path. See kcont/ifq.h.
#include <kcont/ifq.h>

#include <cerrno>
#include <condition_variable>

using kcont::net::pkt;

void ifq_init(ifqueue* ifq, unsigned maxlen) {
  taskctx_init(&ifq->ifq_serializer, 0);
  ifq->ifq_head = ifq->ifq_tail = nullptr;
  ifq->ifq_len = 0;
  ifq->ifq_maxlen = maxlen == 0 ? IFQ_MAXLEN : maxlen;
  ifq->ifq_drops.store(0);
  ifq->ifq_oactive.store(0);
  ifq->ifq_oactive_sets.store(0);
}

int ifq_enqueue(ifqueue* ifq, pkt* m) {
  std::lock_guard<std::mutex> lk(ifq->ifq_mtx);
  if (ifq->ifq_len >= ifq->ifq_maxlen) {
    ifq->ifq_drops.fetch_add(1, std::memory_order_relaxed);
    return ENOBUFS;
  }
  m->next = nullptr;
  if (ifq->ifq_tail != nullptr)
    ifq->ifq_tail->next = m;
  else
    ifq->ifq_head = m;
  ifq->ifq_tail = m;
  ++ifq->ifq_len;
  return 0;
}

pkt* ifq_dequeue(ifqueue* ifq) {
  std::lock_guard<std::mutex> lk(ifq->ifq_mtx);
  pkt* m = ifq->ifq_head;
  if (m == nullptr) return nullptr;
  ifq->ifq_head = m->next;
  if (ifq->ifq_head == nullptr) ifq->ifq_tail = nullptr;
  m->next = nullptr;
  --ifq->ifq_len;
  return m;
}

bool ifq_empty(ifqueue* ifq) {
  std::lock_guard<std::mutex> lk(ifq->ifq_mtx);
  return ifq->ifq_len == 0;
}

unsigned ifq_len(ifqueue* ifq) {
  std::lock_guard<std::mutex> lk(ifq->ifq_mtx);
  return ifq->ifq_len;
}

// seq_cst: the driver's start sets oactive and then looks at the ring again, while txeof
// updates the ring and then looks at oactive; one of the two must see the other.
void ifq_set_oactive(ifqueue* ifq) {
  if (ifq->ifq_oactive.exchange(1, std::memory_order_seq_cst) == 0)
    ifq->ifq_oactive_sets.fetch_add(1, std::memory_order_relaxed);
}

void ifq_clr_oactive(ifqueue* ifq) {
  ifq->ifq_oactive.store(0, std::memory_order_seq_cst);
}

bool ifq_is_oactive(const ifqueue* ifq) {
  return ifq->ifq_oactive.load(std::memory_order_seq_cst) != 0;
}

void ifq_serialize(ifqueue* ifq, task* t) {
  if (ifq->ifq_taskq != nullptr)
    task_add(ifq->ifq_taskq, t);
  else
    task_dispatch(&ifq->ifq_serializer, t);
}

namespace {

void ifq_restart_task(void* p) {
  auto* ifq = static_cast<ifqueue*>(p);
  ifq_clr_oactive(ifq);
  if_start(ifq->ifq_if);
}

void if_start_task(void* p) {
  auto* ifp = static_cast<ifnet*>(p);
  if (!(ifp->if_flags.load(std::memory_order_acquire) & IFF_RUNNING) || ifq_empty(&ifp->if_snd) ||
      ifq_is_oactive(&ifp->if_snd))
    return;
  ifp->if_start(ifp);
}

}  // namespace

void ifq_restart(ifqueue* ifq) {
  ifq_serialize(ifq, &ifq->ifq_restart_task);
}

void if_attach(ifnet* ifp, taskq* tq) {
  ifp->if_snd.ifq_if = ifp;
  ifp->if_snd.ifq_taskq = tq;
  task_set(&ifp->if_snd.ifq_restart_task, ifq_restart_task, &ifp->if_snd);
  task_set(&ifp->if_start_ctx, if_start_task, ifp);
}

void if_start(ifnet* ifp) {
  ifq_serialize(&ifp->if_snd, &ifp->if_start_ctx);
}

namespace {

// taskq_barrier covers only the tasks running when it is called; a start queued behind them
// must be waited for too. The start taskq has one thread and runs its tasks in order, so a
// marker task added now runs after every task queued before it.
void taskq_fence(taskq* tq) {
  struct fence {
    task t{};
    std::mutex mu;
    std::condition_variable cv;
    bool ran = false;
  } f;
  task_set(
      &f.t,
      [](void* p) {
        auto* fp = static_cast<fence*>(p);
        std::lock_guard<std::mutex> lk(fp->mu);
        fp->ran = true;
        fp->cv.notify_all();
      },
      &f);
  task_add(tq, &f.t);
  std::unique_lock<std::mutex> lk(f.mu);
  f.cv.wait(lk, [&] { return f.ran; });
}

}  // namespace

void if_start_barrier(ifnet* ifp) {
  if (ifp->if_snd.ifq_taskq != nullptr) taskq_fence(ifp->if_snd.ifq_taskq);
  taskctx_barrier(&ifp->if_snd.ifq_serializer);
}
