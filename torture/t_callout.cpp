// callout(9) under torture: init / reset / schedule / stop / halt / destroy / bind from torture
// threads; handlers that re-arm themselves, and handlers that halt and destroy their callout.
//
// Books, per callout, under its lock L (the handler takes L first thing, CALLOUT_MPSAFE or
// not): `armed` counts resets/schedules (each replaces the previous arm), `ran` handler runs,
// `cancelled` arms the API reported stopped:
//   - callout_stop: an arm was cancelled iff the callout was PENDING just before and
//     callout_stop says it had not EXPIRED (NetBSD's rule: EXPIRED means the handler was or
//     will be called);
//   - callout_halt(c, &L): afterwards nothing is pending or running, so every arm not yet run
//     was cancelled (at most two: the one it stopped first, and a re-arm by the handler it
//     waited for, which ran and counted);
//   - a reset replaces the previous arm: it is accounted as a stop first.
// Checked under L: 0 <= armed - ran - cancelled <= 2 (an arm whose handler waits for L, plus
// one re-arm); callout_stop may report EXPIRED only if something was armed since the last
// stop; a bound callout runs on its CPU; at the end armed == ran + cancelled.
#include <kcont/callout.h>
#include <kcont/mutex.h>
#include <kcont/runtime.h>

#include <chrono>
#include <thread>

#include "torture.h"

namespace torture {
namespace {

constexpr unsigned kSlots = 48;

enum : int { dead, live, dying };

struct alignas(64) slot {
  unsigned index = 0;
  std::mutex op;  // torture threads, one at a time; the handler never takes it
  kmutex_t L;     // the handler's lock; guards everything below
  callout c{};
  int state = dead;
  bool die = false;  // the next run halts and destroys the callout
  bool armed_since_stop = false;
  int bound = -1;  // CPU it is bound to in this generation
  unsigned gen = 0;
  std::uint64_t armed = 0, ran = 0, cancelled = 0;
  rng r{0};  // the handler's choices
};

class callout_family final : public family {
 public:
  callout_family() {
    for (unsigned i = 0; i < kSlots; ++i) {
      slot& s = slots_[i];
      s.index = i;
      s.r = rng(g_seed * 31 + i);
      mutex_init(&s.L, MUTEX_DEFAULT, IPL_NONE);
      mutex_enter(&s.L);
      init(s);
      mutex_exit(&s.L);
    }
  }
  ~callout_family() override {
    for (auto& s : slots_) mutex_destroy(&s.L);
  }
  const char* name() const override { return "callout"; }

  void op(thread_ctx& t) override {
    slot& s = slots_[t.r.below(kSlots)];
    std::lock_guard<std::mutex> oplk(s.op);
    mutex_enter(&s.L);
    const unsigned what = t.r.below(100);
    if (s.state == dead) {
      init(s);
      ++t.ops.n[op_callout_init];
    } else if (s.state == dying) {
      // its handler takes it down; nothing to do
    } else if (what < 35) {
      stop_counted(s);
      callout_reset(&s.c, static_cast<int>(t.r.below(4)), fire, &s);
      arm(s);
      ++t.ops.n[op_callout_reset];
    } else if (what < 55) {
      stop_counted(s);
      callout_schedule(&s.c, static_cast<int>(t.r.below(4)));
      arm(s);
      ++t.ops.n[op_callout_schedule];
    } else if (what < 80) {
      stop_counted(s);
      ++t.ops.n[op_callout_stop];
    } else if (what < 88) {
      halt_counted(s);
      ++t.ops.n[op_callout_halt];
    } else if (what < 92) {
      halt_counted(s);
      callout_destroy(&s.c);
      s.state = dead;
      ++t.ops.n[op_callout_destroy];
    } else if (what < 96) {
      halt_counted(s);  // binding while the handler runs elsewhere is refused: halt first
      s.bound = static_cast<int>(t.r.below(g_config.ncpu));
      callout_bind(&s.c, cpu_lookup(static_cast<unsigned>(s.bound)));
      ++t.ops.n[op_callout_bind];
    } else {  // the handler halts and destroys its own callout
      stop_counted(s);
      s.die = true;
      s.state = dying;
      callout_schedule(&s.c, 1);
      arm(s);
    }
    mutex_exit(&s.L);
  }

  void finish() override {
    // First let every armed callout fire (handlers no longer re-arm: stopping()); only then
    // halt. An arm still outstanding after that was lost, not cancelled.
    for (auto& s : slots_) {
      std::lock_guard<std::mutex> oplk(s.op);
      mutex_enter(&s.L);
      auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while ((s.state == dying || (s.state == live && outstanding(s) != 0)) &&
             std::chrono::steady_clock::now() < give_up) {
        mutex_exit(&s.L);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        mutex_enter(&s.L);
      }
      if (s.state == dying) {
        violation("callout", s.index, "a handler asked to destroy itself never ran");
      } else if (s.state == live && outstanding(s) != 0) {
        violation("callout", s.index,
                  std::to_string(outstanding(s)) + " arm(s) never fired within 30 s (lost)");
      }
      if (s.state == live) {
        halt_counted(s);
        callout_destroy(&s.c);
        s.state = dead;
      }
      mutex_exit(&s.L);
    }
  }

  std::vector<books> check() override {
    books b;
    b.api = "callout";
    for (auto& s : slots_) {
      mutex_enter(&s.L);
      b.add_object(s.index, s.armed, s.ran, s.cancelled, "armed");
      mutex_exit(&s.L);
    }
    b.note = "arms (reset/schedule) = handler runs + stops/halts that cancelled";
    return {b};
  }

 private:
  static std::int64_t outstanding(const slot& s) {
    return static_cast<std::int64_t>(s.armed) - static_cast<std::int64_t>(s.ran + s.cancelled);
  }
  static void check_outstanding(slot& s, std::int64_t most, const char* after) {
    const std::int64_t o = outstanding(s);
    if (o < 0 || o > most)
      violation("callout", s.index,
                std::string("after ") + after + ": " + std::to_string(o) +
                    " arms outstanding (gen " + std::to_string(s.gen) + ")");
  }

  static void init(slot& s) {  // L held
    ++s.gen;
    callout_init(&s.c, s.gen % 3 == 0 ? 0u : CALLOUT_MPSAFE);
    callout_setfunc(&s.c, fire, &s);
    s.state = live;
    s.die = false;
    s.bound = -1;
    s.armed_since_stop = false;
  }

  static void arm(slot& s) {  // L held, after a reset/schedule
    ++s.armed;
    s.armed_since_stop = true;
    check_outstanding(s, 2, "arm");
  }

  // Stops the current arm, counting it as cancelled if it had not fired. L held.
  static void stop_counted(slot& s) {
    const bool was_pending = callout_pending(&s.c);
    const bool expired = callout_stop(&s.c);
    if (expired && !s.armed_since_stop)
      violation("callout", s.index, "callout_stop reported EXPIRED with nothing armed since");
    if (was_pending && !expired) ++s.cancelled;
    s.armed_since_stop = false;
    check_outstanding(s, 1, "callout_stop");  // at most a handler waiting for L
  }

  // callout_halt with L as the interlock: afterwards no arm is pending or running; whatever
  // has not run was cancelled. L held (dropped inside while waiting).
  static void halt_counted(slot& s) {
    callout_halt(&s.c, &s.L);
    if (callout_pending(&s.c)) violation("callout", s.index, "pending after callout_halt");
    // Up to two: the arm halt stopped before waiting, and one the handler it waited for made
    // (halt stops again after the wait).
    const std::int64_t o = outstanding(s);
    if (o < 0 || o > 2)
      violation("callout", s.index, "after callout_halt: " + std::to_string(o) + " outstanding");
    if (o > 0) s.cancelled += static_cast<std::uint64_t>(o);
    s.armed_since_stop = false;
  }

  static void fire(void* a) {
    auto* s = static_cast<slot*>(a);
    mutex_enter(&s->L);
    ++s->ran;
    check_outstanding(*s, 1, "handler entry");
    if (s->bound >= 0 && cpu_index(curcpu()) != static_cast<unsigned>(s->bound))
      violation("callout", s->index,
                "bound to CPU " + std::to_string(s->bound) + " but ran on CPU " +
                    std::to_string(cpu_index(curcpu())));
    if (s->die) {
      callout_halt(&s->c, &s->L);  // from its own handler: does not wait
      const std::int64_t o = outstanding(*s);
      if (o > 0) s->cancelled += static_cast<std::uint64_t>(o);
      callout_destroy(&s->c);  // from its own handler: allowed
      s->die = false;
      s->state = dead;
      count_handler_op(op_callout_halt_destroy_self);
    } else if (!stopping() && s->r.one_in(4)) {
      // A torture thread may have re-armed it while this run waited for L: the re-arm here
      // replaces that arm, so account for it as a stop first.
      stop_counted(*s);
      if (s->r.one_in(2))
        callout_schedule(&s->c, static_cast<int>(s->r.below(3)));
      else
        callout_reset(&s->c, static_cast<int>(s->r.below(3)), fire, s);
      ++s->armed;
      s->armed_since_stop = true;
      count_handler_op(op_callout_rearm_self);
    }
    mutex_exit(&s->L);
    if (throw_now()) throw_on_purpose();
  }

  slot slots_[kSlots];
};

}  // namespace

std::unique_ptr<family> make_callout_family() {
  return std::make_unique<callout_family>();
}

}  // namespace torture
