// softint(9) under torture: establish / schedule / schedule_cpu / disestablish (from a torture
// thread, and from the softint's own handler).
//
// Books, per softint generation and CPU: `requested` is bumped just before each schedule; a
// run stores the `requested` it sees at its start into `seen`. Coalescing promises that every
// schedule is covered by a run that starts after it, so once quiet `seen == requested` on every
// CPU of a live softint: checked at random quiet points (a torture thread holds the softint's
// gate, so nothing schedules it, and waits) and at the end. A disestablished one may leave
// `requested - seen` schedules uncovered: those were discarded (softint_disestablish discards
// pending schedules; that is its report). Also checked: never two runs at once on one CPU, `seen`
// never goes back, runs <= requested, no run after softint_disestablish returned (or, for a
// self-disestablish, on that CPU after).
#include <kcont/runtime.h>
#include <kcont/softint.h>

#include <chrono>
#include <memory>
#include <shared_mutex>
#include <thread>

#include "torture.h"

namespace torture {
namespace {

constexpr unsigned kSlots = 8;

struct alignas(64) track {
  std::atomic<std::uint64_t> requested{0}, seen{0}, runs{0};
  std::atomic<int> inside{0};
};

struct slot;

struct rec {  // one softint generation; its books are folded into the totals when it is freed
  slot* s = nullptr;
  unsigned gen = 0;
  void* cookie = nullptr;
  std::unique_ptr<track[]> t;
  std::atomic<bool> die{false};     // a run disestablishes it from its own handler ...
  std::atomic<bool> die_go{false};  // ... once the scheduling call that asked has returned
  std::atomic<bool> gone{false};    // softint_disestablish returned (from a torture thread)
  std::atomic<int> gone_cpu{-1};    // disestablished from its handler on this CPU
  bool disestablished = false;
};

enum : int { dead, live, dying };

struct slot {
  unsigned index = 0;
  std::shared_mutex gate;  // shared: schedule; exclusive: establish, disestablish, die
  std::atomic<int> state{dead};
  rec* cur = nullptr;          // guarded by gate; handlers read it under try_lock_shared
  std::unique_ptr<rec> owner;  // cur's storage, until it is retired (gate held exclusively)
  unsigned gens = 0;
};

// Disestablished generations wait on a retire list and are freed (their books folded into the
// totals) only after a grace period: a marker softint has run on every CPU after they were
// retired, so no handler that could still hold one is running (a CPU loop runs one handler at
// a time, and no run of a disestablished softint starts). Without this a 10^8-operation run
// keeps two million softints' books, and under TSan that is over 16 GB.
constexpr std::size_t kRetireBatch = 4096;

struct alignas(64) marker_track {
  std::atomic<std::uint64_t> asked{0}, seen{0};
};

class softint_family final : public family {
 public:
  softint_family() {
    marks_ = std::make_unique<marker_track[]>(g_config.ncpu);
    marker_ = softint_establish(SOFTINT_CLOCK | SOFTINT_MPSAFE, marker_fn, this);
    if (marker_ == nullptr) violation("softint", 0, "softint_establish (marker) failed");
    for (unsigned i = 0; i < kSlots; ++i) {
      slots_[i].index = i;
      establish(slots_[i]);
    }
  }
  const char* name() const override { return "softint"; }

  void op(thread_ctx& t) override {
    if (retired_count_.load(std::memory_order_relaxed) >= kRetireBatch) reclaim();
    slot& s = slots_[t.r.below(kSlots)];
    const unsigned what = t.r.below(100);
    if (what < 76) {  // schedule_cpu (the common case)
      std::shared_lock<std::shared_mutex> lk(s.gate);
      if (s.state.load() != live) return;
      unsigned c = homed(s) ? home(s) : t.r.below(g_config.ncpu);
      s.cur->t[c].requested.fetch_add(1);
      softint_schedule_cpu(s.cur->cookie, cpu_lookup(c));
      ++t.ops.n[op_softint_schedule_cpu];
      return;
    }
    std::unique_lock<std::shared_mutex> lk(s.gate);
    const int st = s.state.load();
    if (st == live && what < 80) {
      quiet_check(s);
      ++t.ops.n[op_softint_quiet_check];
    } else if (st == dead) {
      establish(s);
      ++t.ops.n[op_softint_establish];
    } else if (st == live && what < 92) {
      softint_disestablish(s.cur->cookie);
      s.cur->gone.store(true);
      s.cur->disestablished = true;
      s.state.store(dead);
      retire(std::move(s.owner));
      ++t.ops.n[op_softint_disestablish];
    } else if (st == live) {
      // Let its handler disestablish it (it must not wait for the softint's instances on the
      // other CPUs: tests/test_softint_self_disestablish.cpp).
      unsigned c = homed(s) ? home(s) : t.r.below(g_config.ncpu);
      s.state.store(dying);
      s.cur->die.store(true);
      s.cur->t[c].requested.fetch_add(1);
      softint_schedule_cpu(s.cur->cookie, cpu_lookup(c));
      s.cur->die_go.store(true);  // only now may the handler free it (we are out of the call)
    }
  }

  void finish() override {
    using namespace std::chrono;
    for (auto& s : slots_) {
      auto give_up = steady_clock::now() + seconds(30);
      while (s.state.load() == dying && steady_clock::now() < give_up)
        std::this_thread::sleep_for(microseconds(200));
      std::unique_lock<std::shared_mutex> lk(s.gate);
      if (s.state.load() == dying) {
        violation("softint", s.index,
                  "self-disestablish never ran (gen " + std::to_string(s.cur->gen) + ")");
        continue;
      }
      if (s.state.load() != live) continue;
      rec* r = s.cur;
      quiet_check(s);
      softint_disestablish(r->cookie);
      r->gone.store(true);
      r->disestablished = true;
      s.state.store(dead);
    }
    for (auto& s : slots_) {
      std::unique_lock<std::shared_mutex> lk(s.gate);
      if (s.state.load() == dead) retire(std::move(s.owner));
    }
    reclaim(true);
    softint_disestablish(marker_);
  }

  std::vector<books> check() override {
    std::lock_guard<std::mutex> lk(totals_mu_);
    books b = totals_;
    b.api = "softint";
    b.coalesced = b.ran - runs_;
    b.order_checks = runs_;  // each run checked: starts after every schedule it covers
    b.note = std::to_string(softints_) + " softints, " + std::to_string(runs_) +
             " handler runs; cancelled = discarded by disestablish";
    if (softints_ != established_)
      violation("softint", 0,
                std::to_string(established_ - softints_) + " softint(s) never accounted for");
    return {b};
  }

 private:
  static void handler(void* a) {
    auto* r = static_cast<rec*>(a);
    const unsigned c = cpu_index(curcpu());
    if (r->gone.load()) violation("softint", r->s->index, "ran after softint_disestablish");
    if (r->gone_cpu.load() == static_cast<int>(c))
      violation("softint", r->s->index, "ran again after disestablishing itself on this CPU");
    track& t = r->t[c];
    if (t.inside.exchange(1) != 0) violation("softint", r->s->index, "two runs at once on a CPU");
    const std::uint64_t now = t.requested.load();
    if (now < t.seen.load(std::memory_order_relaxed))
      violation("softint", r->s->index, "a run saw fewer schedules than an earlier one");
    t.seen.store(now);
    t.runs.fetch_add(1);
    slot& s = *r->s;
    // die_go is read only after die was seen set: reading die once for the test and again for
    // the exchange let a run disestablish (and free) the softint while the asking thread was
    // still inside softint_schedule_cpu (TSan caught the use after free in the 10^8 run).
    const bool asked = r->die.load();
    if (asked && !r->die_go.load()) {  // asked, but the asking call is still inside
      t.requested.fetch_add(1);
      softint_schedule(r->cookie);  // look again on the next run
      count_handler_op(op_softint_schedule);
      t.inside.store(0);
      std::this_thread::yield();  // let the asking thread leave softint_schedule_cpu
      return;
    } else if (asked && r->die.exchange(false)) {
      softint_disestablish(r->cookie);  // from its own handler: returns at once
      count_handler_op(op_softint_disestablish_self);
      r->gone_cpu.store(static_cast<int>(c));
      r->disestablished = true;
      t.inside.store(0);
      s.state.store(dead);  // last touch of the slot; r stays alive until a grace period
      return;
    }
    // Now and then schedule itself or another softint on this CPU (softint_schedule: curcpu()
    // is fixed in a handler). Only while that softint is live and no one may be taking it
    // down: a handler must not block, so try the gate.
    if (!stopping() && (now & 7) == 1) {
      auto* fam = r->s;  // slot array neighbour: self or the next slot
      slot* target = (now & 8) ? fam : fam - fam->index + (fam->index + 1) % kSlots;
      if ((!homed(*target) || home(*target) == c) && target->gate.try_lock_shared()) {
        if (target->state.load() == live) {
          target->cur->t[c].requested.fetch_add(1);
          softint_schedule(target->cur->cookie);
          count_handler_op(op_softint_schedule);
        }
        target->gate.unlock_shared();
      }
    }
    t.inside.store(0);
    if (throw_now()) throw_on_purpose();
  }

  // A quiet point: with the gate held exclusively nothing schedules this softint (handlers
  // only try the gate), so every schedule made so far must now be covered by a run that starts
  // after it, soon. Catches a lost run that no later schedule happened to heal.
  static void quiet_check(slot& s) {
    using namespace std::chrono;
    rec* r = s.cur;
    const auto give_up = steady_clock::now() + seconds(10);
    for (unsigned c = 0; c < g_config.ncpu; ++c) {
      while (r->t[c].seen.load() != r->t[c].requested.load() && steady_clock::now() < give_up)
        std::this_thread::yield();
      if (r->t[c].seen.load() != r->t[c].requested.load())
        violation("softint", s.index,
                  "gen " + std::to_string(r->gen) + " cpu " + std::to_string(c) + ": " +
                      std::to_string(r->t[c].requested.load() - r->t[c].seen.load()) +
                      " schedule(s) not covered by a run within 10 s of a quiet point (lost)");
    }
  }

  static void marker_fn(void* self) {
    auto* f = static_cast<softint_family*>(self);
    marker_track& m = f->marks_[cpu_index(curcpu())];
    m.seen.store(m.asked.load());
  }

  // A marker run that started after this call, on every CPU (see kRetireBatch).
  void grace_period() {
    using namespace std::chrono;
    for (unsigned c = 0; c < g_config.ncpu; ++c) {
      const std::uint64_t ticket = marks_[c].asked.fetch_add(1) + 1;
      softint_schedule_cpu(marker_, cpu_lookup(c));
      const auto give_up = steady_clock::now() + seconds(30);
      while (marks_[c].seen.load() < ticket && steady_clock::now() < give_up)
        std::this_thread::sleep_for(microseconds(50));
      if (marks_[c].seen.load() < ticket)
        violation("softint", 0, "the marker softint did not run on CPU " + std::to_string(c));
    }
  }

  void retire(std::unique_ptr<rec> r) {  // r is disestablished
    if (!r) return;
    std::lock_guard<std::mutex> lk(retire_mu_);
    retired_.push_back(std::move(r));
    retired_count_.store(retired_.size(), std::memory_order_relaxed);
  }

  // Frees what was retired before a grace period, folding its books into the totals.
  void reclaim(bool all = false) {
    std::vector<std::unique_ptr<rec>> batch;
    {
      std::lock_guard<std::mutex> lk(retire_mu_);
      if (!all && retired_.size() < kRetireBatch) return;  // another thread took the batch
      batch.swap(retired_);
      retired_count_.store(0, std::memory_order_relaxed);
    }
    grace_period();
    std::lock_guard<std::mutex> lk(totals_mu_);
    for (auto& r : batch) {
      ++softints_;
      for (unsigned c = 0; c < g_config.ncpu; ++c) {
        track& t = r->t[c];
        totals_.scheduled += t.requested;
        totals_.ran += t.seen;  // schedules covered by a run that started after them
        totals_.cancelled += t.requested - t.seen;
        runs_ += t.runs;
        if (t.runs > t.requested)
          violation("softint", r->s->index,
                    "gen " + std::to_string(r->gen) + " cpu " + std::to_string(c) + ": " +
                        std::to_string(t.runs) + " runs for " + std::to_string(t.requested) +
                        " schedules");
      }
    }
  }

  // Slots 4..7 are scheduled on one CPU only (and may disestablish themselves); 0..3 anywhere.
  static bool homed(const slot& s) { return s.index >= kSlots / 2; }
  static unsigned home(const slot& s) { return s.index % g_config.ncpu; }

  void establish(slot& s) {      // gate held exclusively (or construction)
    retire(std::move(s.owner));  // a generation that disestablished itself
    auto r = std::make_unique<rec>();
    r->s = &s;
    r->gen = s.gens++;
    r->t = std::make_unique<track[]>(g_config.ncpu);
    unsigned flags = (s.index % 4) | (s.index % 3 != 0 ? SOFTINT_MPSAFE : 0u);
    r->cookie = softint_establish(flags, handler, r.get());
    if (r->cookie == nullptr) {
      violation("softint", s.index, "softint_establish failed");
      return;
    }
    s.cur = r.get();
    s.owner = std::move(r);
    {
      std::lock_guard<std::mutex> lk(totals_mu_);
      ++established_;
    }
    s.state.store(live);
  }

  slot slots_[kSlots];
  void* marker_ = nullptr;
  std::unique_ptr<marker_track[]> marks_;
  std::mutex retire_mu_;
  std::vector<std::unique_ptr<rec>> retired_;
  std::atomic<std::size_t> retired_count_{0};
  std::mutex totals_mu_;
  books totals_;
  std::uint64_t runs_ = 0, softints_ = 0, established_ = 0;
};

}  // namespace

std::unique_ptr<family> make_softint_family() {
  return std::make_unique<softint_family>();
}

}  // namespace torture
