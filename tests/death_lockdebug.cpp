// Death cases for wait-under-lock detection (kcont/internal/lockdebug.h): each teaches a handler a
// lock (the handler takes it once), then waits for that handler while holding the lock. With
// KCONT_LOCKDEBUG the wait reports "would deadlock" and aborts instead of hanging. Registered
// only in builds with KCONT_LOCKDEBUG (tests/CMakeLists.txt).
#include <kcont/callout.h>
#include <kcont/kcont.h>
#include <kcont/runtime.h>
#include <kcont/softint.h>
#include <kcont/task.h>
#include <kcont/workqueue.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>

namespace {

kcont::runtime_config two_cpus() {
  kcont::runtime_config c;
  c.ncpu = 2;
  return c;
}

// A lock and a handler body that takes it once, noting that it ran.
struct lesson {
  kmutex_t lock;
  std::atomic<int> runs{0};
  lesson() { mutex_init(&lock, MUTEX_DEFAULT, IPL_NONE); }
  void take() {
    mutex_enter(&lock);
    mutex_exit(&lock);
    ++runs;
  }
  static void fn(void* self) { static_cast<lesson*>(self)->take(); }
  void wait_ran() {
    while (runs.load() == 0) std::this_thread::yield();
  }
};

// A workqueue whose function has taken the lesson's lock once (it ran one item).
struct taught_workqueue {
  lesson l;
  workqueue* wq = nullptr;
  work wk{};
  taught_workqueue() {
    workqueue_create(
        &wq, "ld", [](work*, void* a) { static_cast<lesson*>(a)->take(); }, &l, PRI_NONE, 0,
        WQ_MPSAFE);
    workqueue_enqueue(wq, &wk, nullptr);
    l.wait_ran();
  }
};

// A one-thread taskq whose task has run once and learned the lesson's lock.
struct taught_taskq {
  lesson l;
  taskq* tq = taskq_create("ld", 1, 0, TASKQ_MPSAFE);
  task t{};
  taught_taskq() {
    task_set(&t, lesson::fn, &l);
    task_add(tq, &t);
    l.wait_ran();
  }
};

}  // namespace

extern const std::map<std::string, std::function<void()>> lockdebug_cases;
const std::map<std::string, std::function<void()>> lockdebug_cases = {
    {"lockdebug_callout_halt",
     [] {
       kcont::runtime rt(two_cpus());
       kcont::runtime_scope scope(rt);
       static lesson l;
       static callout c;
       callout_init(&c, CALLOUT_MPSAFE);
       callout_reset(&c, 1, lesson::fn, &l);
       l.wait_ran();
       mutex_enter(&l.lock);
       callout_halt(&c, nullptr);
     }},
    {"lockdebug_softint_disestablish",
     [] {
       kcont::runtime rt(two_cpus());
       static lesson l;
       void* si = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, lesson::fn, &l);
       softint_schedule_cpu(si, rt.cpu(1));
       l.wait_ran();
       mutex_enter(&l.lock);
       softint_disestablish(si);
     }},
    {"lockdebug_taskq_barrier",
     [] {
       kcont::runtime rt(two_cpus());
       kcont::runtime_scope scope(rt);
       static taught_taskq tt;
       mutex_enter(&tt.l.lock);
       taskq_barrier(tt.tq);
     }},
    {"lockdebug_taskq_del_barrier",
     [] {
       kcont::runtime rt(two_cpus());
       kcont::runtime_scope scope(rt);
       static taught_taskq tt;
       mutex_enter(&tt.l.lock);
       taskq_del_barrier(tt.tq, &tt.t);
     }},
    {"lockdebug_workqueue_wait",
     [] {
       kcont::runtime rt(two_cpus());
       kcont::runtime_scope scope(rt);
       taught_workqueue tw;
       mutex_enter(&tw.l.lock);
       workqueue_wait(tw.wq, &tw.wk);
     }},
    {"lockdebug_workqueue_wait_reenqueued",
     [] {
       kcont::runtime rt(two_cpus());
       kcont::runtime_scope scope(rt);
       taught_workqueue tw;
       workqueue_enqueue(tw.wq, &tw.wk, nullptr);  // again: what it learned must be kept
       mutex_enter(&tw.l.lock);
       workqueue_wait(tw.wq, &tw.wk);
     }},
    {"lockdebug_workqueue_destroy",
     [] {
       kcont::runtime rt(two_cpus());
       kcont::runtime_scope scope(rt);
       taught_workqueue tw;
       mutex_enter(&tw.l.lock);
       workqueue_destroy(tw.wq);
     }},
    {"lockdebug_taskctx_barrier",
     [] {
       static lesson l;
       static taskctx tc;
       taskctx_init(&tc, 0);
       static task t;
       task_set(&t, lesson::fn, &l);
       task_dispatch(&tc, &t);  // runs here, at once: the context was free
       mutex_enter(&l.lock);
       taskctx_barrier(&tc);
     }},
    {"lockdebug_kcont_halt_own_lock",
     [] {
       kcont::runtime rt(two_cpus());
       kcont::runtime_scope scope(rt);
       // func runs holding its lock, gives it up for a while and needs it back: halting it
       // meanwhile while holding that lock can never return.
       static lesson l;
       static std::atomic<bool> gave_up{false};
       kcont_t* kc = kcont_create(
           wq_prihigh, &l.lock,
           [](void* a, kcont_t*) {
             auto* les = static_cast<lesson*>(a);
             mutex_exit(&les->lock);
             gave_up = true;
             std::this_thread::sleep_for(std::chrono::milliseconds(200));
             mutex_enter(&les->lock);
           },
           &l, 0);
       kcont_schedule(kc, rt.cpu(1), 0);
       while (!gave_up) std::this_thread::yield();
       mutex_enter(&l.lock);
       kcont_halt(kc);
     }},
    {"lockdebug_kcont_destroy",
     [] {
       kcont::runtime rt(two_cpus());
       kcont::runtime_scope scope(rt);
       static lesson l;
       kcont_t* kc = kcont_create(
           wq_softnet, nullptr, [](void* a, kcont_t*) { static_cast<lesson*>(a)->take(); }, &l, 0);
       kcont_schedule(kc, rt.cpu(1), 0);
       l.wait_ran();
       mutex_enter(&l.lock);
       kcont_destroy(kc);
     }},
};
