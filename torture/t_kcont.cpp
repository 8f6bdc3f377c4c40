// kcont continuations under torture: kcont_create / kcont_schedule (now and with a delay, to a
// given CPU and to the caller's) / kcont_stop / kcont_ack / kcont_halt / kcont_destroy (from a
// torture thread and from inside func), with and without an associated kmutex_t, on soft
// (wq_softnet, wq_softserial, wq_softclock) and thread (wq_prihigh, wq_primedlow, wq_prilow,
// acquired per-CPU and single) queues; funcs that reschedule (after kcont_ack or not) and
// destroy themselves; and ordered groups sharing {wq, lock, cpu}.
//
// Books, per continuation slot: `scheduled` counts kcont_schedule == 0, `ran` func calls,
// `cancelled` invocations the API took back. The associated lock L (func runs holding it)
// guards the books, so under L an invocation is idle, PENDING (timer) or queued, never
// running: outstanding = scheduled - ran - cancelled is 0 or 1, and
//   - kcont_schedule == 0 while one is outstanding replaced a PENDING timer: cancelled;
//     EBUSY with nothing outstanding is a violation (INVOKING clears before L is released);
//   - kcont_stop takes back the outstanding one (pending or queued-not-running): cancelled;
//     it reports EXPIRED only if the last schedule was timed, and must report it when that
//     timed invocation already ran (nothing cleared EXPIRED since);
//   - kcont_ack from outside with nothing outstanding must answer false;
//   - after kcont_halt / kcont_destroy nothing outstanding may run: cancelled.
// Without a lock, func takes a plain mutex M that guards the books; then a stop cannot tell
// "cancelled" from "started, waiting for M", so a stop is followed by kcont_halt, which
// settles it. Ordered groups (one lock G, one wq, one CPU, schedules with nticks 0): every
// run must be the oldest queued member of its group (schedule order).
#include <kcont/kcont.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <deque>
#include <thread>

#include "torture.h"

namespace torture {
namespace {

constexpr unsigned kSlots = 48;
constexpr unsigned kGroups = 3;
constexpr unsigned kMembers = 4;

enum : int { dead, live, dying };
enum kind_t : int { none, now_, timed };

struct alignas(64) slot {
  unsigned index = 0;
  kcont_wq_t* wq = nullptr;
  bool percpu = true;
  bool has_lock = false;
  std::mutex op;  // torture threads
  kmutex_t L;     // the continuation's lock (has_lock)
  std::mutex M;   // taken by func and the books (no lock)
  kcont_t* kc = nullptr;
  int state = dead;
  bool die = false;
  unsigned gen = 0;
  std::uint64_t scheduled = 0, ran = 0, cancelled = 0;
  kind_t kind = none;             // of the outstanding invocation (has_lock)
  bool expired_expected = false;  // a timed invocation ran and nothing cleared EXPIRED since
  rng r{0};
};

struct group;
struct member {
  unsigned index = 0;
  group* g = nullptr;
  kcont_t* kc = nullptr;
  std::uint64_t scheduled = 0, ran = 0, cancelled = 0;  // guarded by g->G
  bool queued = false;
};
struct alignas(64) group {
  unsigned index = 0;
  kcont_wq_t* wq = nullptr;
  unsigned cpu = 0;
  std::mutex op;
  kmutex_t G;
  member m[kMembers];
  std::deque<member*> order;  // queued members in schedule order (G held)
  std::uint64_t order_checks = 0;
  rng r{0};
};

class kcont_family final : public family {
 public:
  kcont_family() {
    acq_pc_ = kcont_workqueue_acquire(PRI_MEDHIGH, WQ_PERCPU);
    acq_one_ = kcont_workqueue_acquire(PRI_LOW, 0);
    if (acq_pc_ == nullptr || acq_one_ == nullptr) violation("kcont", 0, "acquire failed");
    kcont_wq_t* wqs[] = {wq_softnet, wq_prihigh,   wq_softserial, wq_primedlow,
                         acq_pc_,    wq_softclock, wq_prilow,     acq_one_};
    for (unsigned i = 0; i < kSlots; ++i) {
      slot& s = slots_[i];
      s.index = i;
      s.wq = wqs[(i / 2) % 8];
      s.percpu = s.wq != acq_one_;
      s.has_lock = i % 2 == 0;
      s.r = rng(g_seed * 7919 + i);
      mutex_init(&s.L, MUTEX_DEFAULT, IPL_NONE);
      create(s);
    }
    kcont_wq_t* gwqs[kGroups] = {wq_softnet, wq_prihigh, acq_pc_};
    for (unsigned k = 0; k < kGroups; ++k) {
      group& g = groups_[k];
      g.index = k;
      g.wq = gwqs[k];
      g.cpu = k % g_config.ncpu;
      g.r = rng(g_seed * 104729 + k);
      mutex_init(&g.G, MUTEX_DEFAULT, IPL_NONE);
      for (unsigned i = 0; i < kMembers; ++i) {
        g.m[i].index = i;
        g.m[i].g = &g;
        g.m[i].kc = kcont_create(g.wq, &g.G, run_member, &g.m[i], 0);
        if (g.m[i].kc == nullptr) violation("kcont", k, "kcont_create failed (group)");
      }
    }
  }
  ~kcont_family() override {
    for (auto& s : slots_) mutex_destroy(&s.L);
    for (auto& g : groups_) mutex_destroy(&g.G);
    if (kcont_workqueue_release(acq_pc_) != 0 || kcont_workqueue_release(acq_one_) != 0)
      violation("kcont", 0, "kcont_workqueue_release failed");
    if (kcont_workqueue_release(wq_softnet) != EINVAL)
      violation("kcont", 0, "kcont_workqueue_release of a predefined queue did not say EINVAL");
  }
  const char* name() const override { return "kcont"; }

  void op(thread_ctx& t) override {
    if (t.r.below(100) < 25) return group_op(t);
    slot& s = slots_[t.r.below(kSlots)];
    std::lock_guard<std::mutex> oplk(s.op);
    const unsigned what = t.r.below(100);
    if (what < 84) {
      lock(s);
      if (s.state == dead) {
        create(s);
        ++t.ops.n[op_kcont_create];
      } else if (s.state == live) {
        if (what < 40) {
          schedule(s, t.r, 0, "kcont_schedule (now)");
          ++t.ops.n[op_kcont_schedule_now];
        } else if (what < 62) {
          schedule(s, t.r, 1 + static_cast<int>(t.r.below(3)), "kcont_schedule (delay)");
          ++t.ops.n[op_kcont_schedule_delay];
        } else if (what < 80) {
          if (s.has_lock) {
            stop_locked(s);
          } else {
            kcont_stop(s.kc);  // cannot be settled under M (func may be waiting for it)
            unlock(s);
            kcont_halt(s.kc);
            lock(s);
            settle(s, "kcont_stop + kcont_halt");
          }
          ++t.ops.n[op_kcont_stop];
        } else if (s.has_lock) {
          if (outstanding(s) == 0) {
            if (kcont_ack(s.kc))
              violation("kcont", s.index, "kcont_ack true with nothing invoking");
            ++t.ops.n[op_kcont_ack];
          }
        } else {
          die(s);
        }
      }
      unlock(s);
      return;
    }
    lock(s);
    const bool is_live = s.state == live;
    unlock(s);
    if (!is_live) return;
    if (what < 91) {
      kcont_halt(s.kc);
      lock(s);
      settle(s, "kcont_halt");
      unlock(s);
      ++t.ops.n[op_kcont_halt];
    } else if (what < 97) {
      destroy_counted(s, "kcont_destroy");
      ++t.ops.n[op_kcont_destroy];
    } else if (s.has_lock) {
      lock(s);
      die(s);
      unlock(s);
    }
  }

  void finish() override {
    // First let everything scheduled run (funcs no longer reschedule: stopping()); only then
    // destroy. An invocation still outstanding after that was lost, not cancelled.
    for (auto& s : slots_) {
      std::lock_guard<std::mutex> oplk(s.op);
      auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      lock(s);
      while ((s.state == dying || (s.state == live && outstanding(s) != 0)) &&
             std::chrono::steady_clock::now() < give_up) {
        unlock(s);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        lock(s);
      }
      const int st = s.state;
      const std::int64_t o = outstanding(s);
      unlock(s);
      if (st == dying) {
        violation("kcont", s.index, "a func asked to destroy itself never ran");
      } else if (st == live && o != 0) {
        violation("kcont", s.index,
                  std::to_string(o) + " scheduled invocation(s) never ran within 30 s (lost)");
      }
      if (st == live) destroy_counted(s, "kcont_destroy (drain)");
    }
    for (auto& g : groups_) {
      std::lock_guard<std::mutex> oplk(g.op);
      auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      mutex_enter(&g.G);
      while (!g.order.empty() && std::chrono::steady_clock::now() < give_up) {
        mutex_exit(&g.G);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        mutex_enter(&g.G);
      }
      if (!g.order.empty())
        violation("kcont", 1000 + g.index * 10,
                  std::to_string(g.order.size()) + " group member(s) never ran within 30 s (lost)");
      mutex_exit(&g.G);
      for (auto& m : g.m) {
        kcont_halt(m.kc);
        mutex_enter(&g.G);
        if (m.queued) {
          ++m.cancelled;
          unqueue(g, &m);
        }
        mutex_exit(&g.G);
        kcont_destroy(m.kc);
      }
    }
  }

  std::vector<books> check() override {
    books b;
    b.api = "kcont";
    for (auto& s : slots_) {
      lock(s);
      b.add_object(s.index, s.scheduled, s.ran, s.cancelled);
      unlock(s);
    }
    for (auto& g : groups_) {
      mutex_enter(&g.G);
      for (auto& m : g.m)
        b.add_object(1000 + g.index * 10 + m.index, m.scheduled, m.ran, m.cancelled, "scheduled",
                     "cancelled", "group member: ");
      b.order_checks += g.order_checks;
      mutex_exit(&g.G);
    }
    b.note = "kcont_schedule==0 = runs + stop/halt/destroy/re-arm take-backs; {wq,lock,cpu} order";
    return {b};
  }

 private:
  static void lock(slot& s) {
    if (s.has_lock)
      mutex_enter(&s.L);
    else
      s.M.lock();
  }
  static void unlock(slot& s) {
    if (s.has_lock)
      mutex_exit(&s.L);
    else
      s.M.unlock();
  }
  static std::int64_t outstanding(const slot& s) {
    return static_cast<std::int64_t>(s.scheduled) - static_cast<std::int64_t>(s.ran + s.cancelled);
  }

  static void create(slot& s) {  // books held (or construction)
    s.kc = kcont_create(s.wq, s.has_lock ? &s.L : nullptr, run, &s, 0);
    if (s.kc == nullptr) {
      violation("kcont", s.index, "kcont_create failed");
      return;
    }
    ++s.gen;
    s.state = live;
    s.die = false;
    s.kind = none;
    s.expired_expected = false;
  }

  // kcont_schedule with the books held (by a torture thread, or by func on its own kc).
  static void schedule(slot& s, rng& r, int nticks, const char* what, bool self = false) {
    const unsigned c = r.below(g_config.ncpu + 1);
    cpu_info* ci = c < g_config.ncpu ? cpu_lookup(c) : nullptr;
    const std::int64_t o = outstanding(s);
    const int e = kcont_schedule(s.kc, ci, nticks);
    if (!s.percpu && ci != nullptr) {
      if (e != ENOENT)
        violation("kcont", s.index,
                  std::string(what) + " to a CPU on a single queue answered " + std::to_string(e) +
                      ", not ENOENT");
      return;
    }
    if (e == 0) {
      if (o >= 1) {
        if (o > 1 || (s.has_lock && s.kind != timed) || self)
          violation("kcont", s.index,
                    std::string(what) + " accepted with " + std::to_string(o) +
                        " outstanding that was not a pending timer");
        s.cancelled += static_cast<std::uint64_t>(o);  // the re-arm replaced the timer
      }
      ++s.scheduled;
      s.kind = nticks > 0 ? timed : now_;
      s.expired_expected = false;
    } else if (e == EBUSY) {
      if (self) violation("kcont", s.index, std::string(what) + " from its own func: EBUSY");
      if (s.has_lock && o != 1)
        violation("kcont", s.index,
                  std::string(what) + ": EBUSY with " + std::to_string(o) + " outstanding");
    } else {
      violation("kcont", s.index, std::string(what) + " answered " + std::to_string(e));
    }
  }

  static void stop_locked(slot& s) {  // has_lock, L held: func is not running
    const std::int64_t o = outstanding(s);
    const bool e = kcont_stop(s.kc);
    if (e && !(o == 1 ? s.kind == timed : s.expired_expected))
      violation("kcont", s.index, "kcont_stop reported EXPIRED after an untimed schedule");
    if (!e && o == 0 && s.expired_expected)
      violation("kcont", s.index, "kcont_stop lost EXPIRED of a timed invocation that ran");
    if (o < 0 || o > 1)
      violation("kcont", s.index, "kcont_stop: " + std::to_string(o) + " outstanding");
    if (o > 0) s.cancelled += static_cast<std::uint64_t>(o);
    if (kcont_invoking(s.kc) || kcont_pending(s.kc))
      violation("kcont", s.index, "INVOKING or PENDING after kcont_stop (func not running)");
    s.kind = none;
    s.expired_expected = false;
  }

  // After kcont_halt/destroy returned: nothing outstanding may run any more. Books held.
  static void settle(slot& s, const char* what) {
    const std::int64_t o = outstanding(s);
    if (o < 0 || o > 1)
      violation("kcont", s.index,
                std::string("after ") + what + ": " + std::to_string(o) + " outstanding");
    if (o > 0) s.cancelled += static_cast<std::uint64_t>(o);
    s.kind = none;
    s.expired_expected = false;
  }

  // kcont_destroy from a torture thread (books not held), then the books settled.
  static void destroy_counted(slot& s, const char* what) {
    kcont_destroy(s.kc);
    lock(s);
    settle(s, what);
    s.kc = nullptr;
    s.state = dead;
    unlock(s);
  }

  // Asks func to destroy its continuation on its next run (and makes sure there is one).
  static void die(slot& s) {  // books held, live
    if (!s.has_lock) {        // settle whatever is outstanding first (see the file comment)
      unlock(s);
      kcont_halt(s.kc);
      lock(s);
      settle(s, "kcont_halt (before a self-destroy)");
    }
    s.die = true;
    s.state = dying;
    const std::int64_t o = outstanding(s);
    const int e = kcont_schedule(s.kc, nullptr, 0);
    if (e == 0) {
      if (o > 0) s.cancelled += static_cast<std::uint64_t>(o);  // a replaced timer
      ++s.scheduled;
      s.kind = now_;
    } else if (e != EBUSY || o != 1) {
      violation("kcont", s.index,
                "kcont_schedule for a self-destroy answered " + std::to_string(e) + " with " +
                    std::to_string(o) + " outstanding");
    }
  }

  static void run(void* a, kcont_t* kc) {
    auto* s = static_cast<slot*>(a);
    if (s->has_lock) {
      if (!mutex_owned(&s->L)) violation("kcont", s->index, "func runs without its lock");
    } else {
      s->M.lock();
    }
    if (kc != s->kc) violation("kcont", s->index, "func called with another continuation");
    if (outstanding(*s) < 1)
      violation("kcont", s->index, "func ran with nothing outstanding (ran twice?)");
    ++s->ran;
    s->expired_expected = s->kind == timed;
    s->kind = none;
    if (!kcont_invoking(kc)) violation("kcont", s->index, "func runs without INVOKING");
    if (s->die) {
      kcont_destroy(kc);  // from inside func: released after func returns
      s->die = false;
      s->kc = nullptr;
      s->state = dead;
      count_handler_op(op_kcont_destroy_self);
    } else if (!stopping() && s->r.one_in(3)) {
      if (s->r.one_in(2) && !kcont_ack(kc))
        violation("kcont", s->index, "kcont_ack from func answered false");
      if (s->r.one_in(2))
        schedule(*s, s->r, 0, "kcont_schedule (now) from func", true);
      else
        schedule(*s, s->r, 1 + static_cast<int>(s->r.below(2)), "kcont_schedule (delay) from func",
                 true);
      count_handler_op(op_kcont_resched_self);
    }
    const bool fail = throw_now();
    if (!s->has_lock) s->M.unlock();
    if (fail) throw_on_purpose();  // with L held: kcont must release it
  }

  // ---- ordered groups
  static void unqueue(group& g, member* m) {
    auto it = std::find(g.order.begin(), g.order.end(), m);
    if (it != g.order.end()) g.order.erase(it);
    m->queued = false;
  }

  static void schedule_member(group& g, member& m, const char* what) {  // G held
    const int e = kcont_schedule(m.kc, cpu_lookup(g.cpu), 0);
    if (e == 0) {
      if (m.queued) violation("kcont", 1000 + g.index * 10 + m.index, "accepted while queued");
      ++m.scheduled;
      m.queued = true;
      g.order.push_back(&m);
    } else if (e != EBUSY || !m.queued) {
      violation("kcont", 1000 + g.index * 10 + m.index,
                std::string(what) + " answered " + std::to_string(e) +
                    (m.queued ? " while queued" : " with nothing queued"));
    }
  }

  void group_op(thread_ctx& t) {
    group& g = groups_[t.r.below(kGroups)];
    member& m = g.m[t.r.below(kMembers)];
    std::lock_guard<std::mutex> oplk(g.op);
    mutex_enter(&g.G);
    if (t.r.below(100) < 5) {
      // Hold the group's lock a while: its runnable members wait on the lock (the release
      // wakes their queue) while other groups' continuations run.
      std::this_thread::sleep_for(std::chrono::microseconds(50 + t.r.below(200)));
      ++t.ops.n[op_kcont_hold_group_lock];
    } else if (t.r.below(100) < 80) {
      schedule_member(g, m, "kcont_schedule (group)");
      ++t.ops.n[op_kcont_schedule_ordered];
    } else {
      if (kcont_stop(m.kc))
        violation("kcont", 1000 + g.index * 10 + m.index, "kcont_stop EXPIRED, never timed");
      if (m.queued) {
        ++m.cancelled;
        unqueue(g, &m);
      }
      ++t.ops.n[op_kcont_stop];
    }
    mutex_exit(&g.G);
  }

  static void run_member(void* a, kcont_t*) {
    auto* m = static_cast<member*>(a);
    group& g = *m->g;
    if (!mutex_owned(&g.G)) violation("kcont", 1000 + g.index * 10, "group func without G");
    if (g.order.empty() || g.order.front() != m) {
      violation("kcont", 1000 + g.index * 10 + m->index,
                g.order.empty() ? "ran with nothing queued"
                                : "ran before member " + std::to_string(g.order.front()->index) +
                                      ", scheduled earlier on the same {wq, lock, cpu}");
      unqueue(g, m);
    } else {
      g.order.pop_front();
      m->queued = false;
      ++g.order_checks;
    }
    ++m->ran;
    if (!stopping() && g.r.one_in(3)) {
      schedule_member(g, *m, "kcont_schedule (group, from func)");
      count_handler_op(op_kcont_resched_self);
    }
    if (throw_now()) throw_on_purpose();  // G held: kcont must release it, order must hold
  }

  kcont_wq_t* acq_pc_ = nullptr;
  kcont_wq_t* acq_one_ = nullptr;
  slot slots_[kSlots];
  group groups_[kGroups];
};

}  // namespace

std::unique_ptr<family> make_kcont_family() {
  return std::make_unique<kcont_family>();
}

}  // namespace torture
