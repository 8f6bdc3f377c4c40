// Stress: every schedule is followed by a run that starts after it; no run after disestablish
// returns; start/stop cycles under load lose nothing.
#include <doctest/doctest.h>
#include <kcont/runtime.h>
#include <kcont/softint.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "test_util.h"

using namespace std::chrono_literals;
using kcont_test::wait_until;

namespace {

// Full size in every build (10^6 schedules take seconds even under TSan);
// KCONT_STRESS_SCALE (percent) scales it for longer or shorter runs.
unsigned scale_percent() {
  if (const char* s = std::getenv("KCONT_STRESS_SCALE")) return static_cast<unsigned>(std::atoi(s));
  return 100;
}

constexpr unsigned kCpus = 2;
constexpr unsigned kSoftints = 4;

// Per (softint, CPU): schedules are numbered; each run records the highest number it saw at
// its start. A run that starts after schedule k sees a number >= k.
struct alignas(64) track {
  std::atomic<std::uint64_t> requested{0};  // bumped just before each schedule
  std::atomic<std::uint64_t> seen{0};       // highest `requested` a run saw at its start
  std::atomic<std::uint64_t> runs{0};
  std::atomic<std::uint64_t> non_monotonic{0};
};

struct softint_rec {
  unsigned index;
  track per_cpu[kCpus];
  std::atomic<bool> gone{false};  // set after disestablish returned
  std::atomic<std::uint64_t> ran_after_gone{0};
  std::atomic<std::uint64_t> wrong_cpu{0};
};

void handler(void* a) {
  auto* r = static_cast<softint_rec*>(a);
  if (r->gone.load()) ++r->ran_after_gone;
  unsigned c = cpu_index(curcpu());
  if (c >= kCpus) {
    ++r->wrong_cpu;
    return;
  }
  track& t = r->per_cpu[c];
  std::uint64_t now = t.requested.load();
  std::uint64_t prev = t.seen.load(std::memory_order_relaxed);
  if (now < prev) ++t.non_monotonic;
  t.seen.store(now);
  ++t.runs;
}

bool all_caught_up(softint_rec* recs) {
  for (unsigned s = 0; s < kSoftints; ++s)
    for (unsigned c = 0; c < kCpus; ++c)
      if (recs[s].per_cpu[c].seen.load() != recs[s].per_cpu[c].requested.load()) return false;
  return true;
}

}  // namespace

TEST_CASE("stress: 10^6 schedules from foreign threads, each followed by a run after it") {
  kcont::runtime_config cfg = kcont::runtime_config::from_env();
  cfg.ncpu = kCpus;
  kcont::runtime rt(cfg);
  softint_rec recs[kSoftints];
  void* cookies[kSoftints];
  const unsigned levels[] = {SOFTINT_SERIAL, SOFTINT_NET, SOFTINT_BIO, SOFTINT_CLOCK};
  for (unsigned s = 0; s < kSoftints; ++s) {
    recs[s].index = s;
    cookies[s] = softint_establish_rt(rt, levels[s] | SOFTINT_MPSAFE, handler, &recs[s]);
    REQUIRE(cookies[s] != nullptr);
  }
  const std::uint64_t total = 1'000'000ull * scale_percent() / 100;
  const unsigned producers = 3;
  const std::uint64_t rounds = 200;
  const std::uint64_t per_round = total / rounds / producers;
  std::uint64_t scheduled = 0;
  for (std::uint64_t round = 0; round < rounds; ++round) {
    std::vector<std::thread> threads;
    for (unsigned p = 0; p < producers; ++p) {
      threads.emplace_back([&, p, round] {
        std::minstd_rand rng(static_cast<unsigned>(round * 7919 + p));
        for (std::uint64_t i = 0; i < per_round; ++i) {
          unsigned s = rng() % kSoftints, c = rng() % kCpus;
          recs[s].per_cpu[c].requested.fetch_add(1);
          softint_schedule_cpu(cookies[s], rt.cpu(c));
        }
      });
    }
    for (auto& t : threads) t.join();
    scheduled += per_round * producers;
    // Every CPU must catch up with the last schedule of the round: a lost wake-up or a
    // coalesced schedule without a later run shows up here as a timeout.
    INFO("round " << round);
    REQUIRE(wait_until([&] { return all_caught_up(recs); }, 30s));
  }
  std::uint64_t runs = 0, bad = 0;
  for (auto& r : recs) {
    for (auto& t : r.per_cpu) {
      runs += t.runs;
      bad += t.non_monotonic;
    }
    CHECK(r.wrong_cpu == 0);
  }
  CHECK(bad == 0);
  CHECK(runs <= scheduled);  // coalescing: never more runs than schedules
  CHECK(runs > 0);
  MESSAGE(scheduled << " schedules, " << runs << " runs (" << (scheduled - runs) << " coalesced)");
  for (auto* c : cookies) softint_disestablish(c);
}

TEST_CASE("stress: nothing runs after softint_disestablish returns") {
  kcont::runtime_config cfg = kcont::runtime_config::from_env();
  cfg.ncpu = kCpus;
  kcont::runtime rt(cfg);
  const unsigned cycles = 400 * scale_percent() / 100;
  std::uint64_t violations = 0;
  for (unsigned cycle = 0; cycle < cycles; ++cycle) {
    auto* rec = new softint_rec;  // outlives the softint: late runs can still be counted
    void* si = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, handler, rec);
    std::atomic<bool> stop{false};
    std::vector<std::thread> producers;
    for (unsigned p = 0; p < 2; ++p) {
      producers.emplace_back([&, p] {
        unsigned c = p;
        while (!stop.load(std::memory_order_relaxed)) {
          softint_schedule_cpu(si, rt.cpu(c));
          c = (c + 1) % kCpus;
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200 + (cycle % 5) * 100));
    stop = true;
    for (auto& t : producers) t.join();
    softint_disestablish(si);  // instances are pending and running right now
    rec->gone = true;
    std::this_thread::sleep_for(std::chrono::microseconds(300));
    violations += rec->ran_after_gone;
    delete rec;
  }
  CHECK(violations == 0);
}

TEST_CASE("stress: runtime start/stop cycles under load lose no schedule") {
  const unsigned cycles = 30 * scale_percent() / 100 + 3;
  for (unsigned cycle = 0; cycle < cycles; ++cycle) {
    kcont::runtime_config cfg = kcont::runtime_config::from_env();
    cfg.ncpu = kCpus;
    kcont::runtime rt(cfg);
    softint_rec recs[kSoftints];
    void* cookies[kSoftints];
    for (unsigned s = 0; s < kSoftints; ++s)
      cookies[s] = softint_establish_rt(rt, (s % 4) | SOFTINT_MPSAFE, handler, &recs[s]);
    std::atomic<bool> stop{false};
    std::vector<std::thread> producers;
    for (unsigned p = 0; p < 2; ++p) {
      producers.emplace_back([&, p] {
        std::minstd_rand rng(cycle * 31 + p);
        while (!stop.load(std::memory_order_relaxed)) {
          unsigned s = rng() % kSoftints, c = rng() % kCpus;
          recs[s].per_cpu[c].requested.fetch_add(1);
          softint_schedule_cpu(cookies[s], rt.cpu(c));
        }
      });
    }
    // Stop and start the runtime while the producers keep scheduling: work that arrives while
    // it is stopped is parked and must run after the restart.
    for (int i = 0; i < 3; ++i) {
      std::this_thread::sleep_for(2ms);
      kcont::stop_report r = rt.stop();
      CHECK(r.drained);
      std::this_thread::sleep_for(1ms);
      rt.start();
    }
    stop = true;
    for (auto& t : producers) t.join();
    REQUIRE(wait_until([&] { return all_caught_up(recs); }, 30s));
    for (auto* c : cookies) softint_disestablish(c);
    kcont::stop_report r = rt.stop();
    CHECK(r.drained);
    CHECK(r.left_pending == 0);
  }
}
