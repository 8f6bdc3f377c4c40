// The simulated NIC on the in-memory wire: every frame delivered once and in order in taskctx
// mode with no stall (10^7 frames in the plain build); the naive driver's oactive race
// reproduced with an injected delay and caught by the stall detector; the same delay harmless
// in taskctx mode; taskq mode; two NICs back to back; bad frames dropped and counted.
#include <doctest/doctest.h>
#include <kcont/histogram.h>
#include <kcont/nicsim.h>
#include <kcont/traffic.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "test_util.h"

using namespace kcont::net;
using namespace std::chrono_literals;

namespace {

#if defined(KCONT_SANITIZE_THREAD) || defined(KCONT_SANITIZE_ADDRESS)
constexpr std::uint64_t kLongRun = 1'000'000;  // sanitizers run ~10x slower
#else
constexpr std::uint64_t kLongRun = 10'000'000;
#endif

std::uint64_t packets_from_env(std::uint64_t dflt) {
  const char* v = std::getenv("KCONT_NET_TEST_PACKETS");
  return v != nullptr ? std::strtoull(v, nullptr, 10) : dflt;
}

struct events {
  std::atomic<int> stalls{0};
  std::string last;
  std::mutex mu;
  void operator()(const std::string& line) {
    std::lock_guard<std::mutex> lk(mu);
    last = line;
    if (line.find("stall") != std::string::npos) ++stalls;
  }
};

// Runs `packets` through one NIC looped back on the in-memory wire; returns its stats.
nic_stats run_loopback(kcont::runtime& rt, nic_config cfg, std::uint64_t packets,
                       unsigned producers, events* ev = nullptr,
                       std::chrono::seconds limit = 600s) {
  pkt_pool pool(4 * (cfg.tx_ring + cfg.rx_ring + cfg.ifq_maxlen));
  sim_nic nic(rt, cfg, pool);
  if (ev != nullptr) nic.set_event_handler([ev](const std::string& l) { (*ev)(l); });
  memory_wire w;
  w.connect(nic);
  nic.up();
  traffic_source src(nic, pool, {producers, packets, 64, /*retry_when_full=*/true});
  src.start();
  const bool finished =
      kcont_test::wait_until([&] { return nic.stats().rx_delivered >= packets; }, limit);
  src.stop();
  src.join();
  nic_stats s = nic.stats();
  MESSAGE(std::string(start_mode_name(cfg.mode))
          << ": delivered " << s.rx_delivered << ", oactive sets " << s.oactive_sets
          << ", restarts " << s.restarts << ", stalls " << s.stalls << ", interrupts "
          << s.interrupts);
  if (!finished)
    MESSAGE("not every frame arrived in time: " << s.rx_delivered << " of " << packets);
  nic.down();
  CHECK(pool.available() == pool.size());  // every buffer came back: nothing leaked
  return s;
}

struct race_result {
  nic_stats stats;
  std::uint64_t sent = 0;
  bool all_delivered = false;
};

// Sends until the stall detector has reported `stalls_wanted` stalls or `limit` passes, then
// stops the producers and waits for every sent frame (the detector's restart recovers).
race_result run_race(kcont::runtime& rt, nic_config cfg, int stalls_wanted, events& ev,
                     std::chrono::seconds limit) {
  pkt_pool pool(4 * (cfg.tx_ring + cfg.rx_ring + cfg.ifq_maxlen));
  sim_nic nic(rt, cfg, pool);
  nic.set_event_handler([&ev](const std::string& l) { ev(l); });
  memory_wire w;
  w.connect(nic);
  nic.up();
  traffic_source src(nic, pool, {3, 0, 64, true});
  src.start();
  kcont_test::wait_until([&] { return ev.stalls.load() >= stalls_wanted; }, limit);
  src.stop();
  src.join();
  race_result r;
  r.sent = src.sent();
  r.all_delivered = kcont_test::wait_until([&] { return nic.stats().rx_delivered == r.sent; }, 60s);
  r.stats = nic.stats();
  const std::string mode =
      std::string(start_mode_name(cfg.mode)) + (cfg.oactive_recheck ? "" : " (no re-check)");
  MESSAGE(mode << ": sent " << r.sent << ", oactive sets " << r.stats.oactive_sets << ", stalls "
               << r.stats.stalls);
  nic.down();
  CHECK(pool.available() == pool.size());
  return r;
}

nic_config race_config(start_mode mode) {
  nic_config cfg;
  cfg.mode = mode;
  cfg.intr_cpu = 1;
  cfg.tx_ring = 16;
  // A send queue shorter than the ring: the producers' own if_start calls (direct dispatch)
  // are the ones that fill the ring, off the interrupt CPU, where the race lives.
  cfg.ifq_maxlen = 4;
  cfg.race_delay_ns = 200'000;  // start dawdles between "ring full" and setting oactive
  cfg.stall_ms = 20;
  cfg.watchdog_recover = true;  // report, restart, go on: so every frame still arrives
  return cfg;
}

}  // namespace

TEST_CASE("taskctx mode: every frame delivered exactly once, in order, no stall") {
  kcont::runtime rt(kcont_test::cpus(2));
  const std::uint64_t n = packets_from_env(kLongRun);
  nic_config cfg;
  cfg.mode = start_mode::taskctx;
  cfg.intr_cpu = 1;
  events ev;
  nic_stats s = run_loopback(rt, cfg, n, 3, &ev);
  CHECK(s.tx_enqueued == n);
  CHECK(s.tx_frames == n);
  CHECK(s.rx_delivered == n);
  CHECK(s.rx_out_of_order == 0);
  CHECK(s.rx_gaps == 0);
  CHECK(s.rx_malformed == 0);
  CHECK(s.stalls == 0);
  CHECK(ev.stalls == 0);
  MESSAGE("oactive transitions " << s.oactive_sets << ", restarts " << s.restarts << ", interrupts "
                                 << s.interrupts);
}

TEST_CASE("naive mode: the oactive race stalls the interface and the detector catches it") {
  kcont::runtime rt(kcont_test::cpus(2));
  events ev;
  race_result r = run_race(rt, race_config(start_mode::naive), 1, ev, 60s);
  CHECK(r.stats.stalls >= 1);
  CHECK(ev.stalls >= 1);
  MESSAGE("last report: " << ev.last);
  CHECK(r.all_delivered);  // recovered each time: nothing lost, still in order
  CHECK(r.stats.rx_out_of_order == 0);
}

TEST_CASE("taskctx mode with the same injected delay does not stall") {
  kcont::runtime rt(kcont_test::cpus(2));
  events ev;
  // As long as the naive run's limit, at the same delay: no stall may be reported.
  race_result r = run_race(rt, race_config(start_mode::taskctx), 1, ev, 3s);
  CHECK(r.stats.stalls == 0);
  CHECK(r.all_delivered);
  CHECK(r.stats.oactive_sets > 100);  // the ring did fill: the window was exercised
}

TEST_CASE("the diff alone leaves a window: taskctx without the re-check stalls too") {
  kcont::runtime rt(kcont_test::cpus(2));
  nic_config cfg = race_config(start_mode::taskctx);
  cfg.oactive_recheck = false;
  events ev;
  race_result r = run_race(rt, cfg, 1, ev, 60s);
  CHECK(r.stats.stalls >= 1);
  CHECK(r.all_delivered);
}

TEST_CASE("taskq mode delivers everything in order") {
  kcont::runtime rt(kcont_test::cpus(2));
  nic_config cfg;
  cfg.mode = start_mode::taskq;
  cfg.intr_cpu = 0;
  nic_stats s = run_loopback(rt, cfg, 200'000, 2);
  CHECK(s.rx_delivered == 200'000);
  CHECK(s.rx_out_of_order == 0);
  CHECK(s.stalls == 0);
}

TEST_CASE("two NICs back to back: A's frames arrive at B") {
  kcont::runtime rt(kcont_test::cpus(2));
  pkt_pool pool(4096);
  nic_config ca, cb;
  ca.name = "simA";
  ca.intr_cpu = 0;
  cb.name = "simB";
  cb.intr_cpu = 1;
  sim_nic a(rt, ca, pool), b(rt, cb, pool);
  std::atomic<std::uint64_t> at_b{0};
  std::atomic<int> wrong_cpu{0};
  b.set_rx_handler([&](const frame_info&, const pkt&) {
    // Input runs on B's interrupt CPU, in softint context.
    if (cpu_index(curcpu()) != 1 || !kcont::in_interrupt_context()) ++wrong_cpu;
    ++at_b;
  });
  memory_wire w;
  w.connect(a, &b);
  a.up();
  b.up();
  traffic_source src(a, pool, {2, 100'000, 256, true});
  src.start();
  REQUIRE(kcont_test::wait_until([&] { return at_b.load() == 100'000; }, 300s));
  src.join();
  CHECK(a.stats().rx_delivered == 0);
  CHECK(b.stats().rx_delivered == 100'000);
  CHECK(b.stats().rx_out_of_order == 0);
  CHECK(b.stats().rx_bytes == 100'000ull * 256);
  CHECK(wrong_cpu == 0);
  a.down();
  b.down();
  CHECK(pool.available() == pool.size());
}

TEST_CASE("the DMA engine never sends faster than its configured rate") {
  kcont::runtime rt(kcont_test::cpus(2));
  pkt_pool pool(4096);
  nic_config cfg;
  cfg.dma_pps = 20'000;
  sim_nic nic(rt, cfg, pool);
  memory_wire w;
  w.connect(nic);
  nic.up();
  traffic_source src(nic, pool, {2, 0, 64, true});
  const auto t0 = std::chrono::steady_clock::now();
  src.start();
  std::this_thread::sleep_for(300ms);
  const std::uint64_t sent = nic.stats().tx_frames;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  src.stop();
  src.join();
  nic.down();
  // A ceiling, not a speed bar: at most one frame per 50 us since the start (plus the first).
  CHECK(static_cast<double>(sent) <= 20'000 * elapsed + 1);
  CHECK(sent > 0);
}

TEST_CASE("bad frames from the wire are dropped and counted, never delivered") {
  kcont::runtime rt(kcont_test::cpus(2));
  pkt_pool pool(2048);
  nic_config cfg;
  sim_nic nic(rt, cfg, pool);
  memory_wire w;
  w.connect(nic);
  nic.up();
  std::uint8_t buf[4000];
  std::memset(buf, 0xab, sizeof buf);
  CHECK(nic.hw_receive(buf, 0) == sim_nic::rx_result::runt);
  CHECK(nic.hw_receive(buf, 13) == sim_nic::rx_result::runt);
  CHECK(nic.hw_receive(buf, 1519) == sim_nic::rx_result::oversized);
  CHECK(nic.hw_receive(buf, sizeof buf) == sim_nic::rx_result::oversized);
  // A foreign frame (host traffic), and our EtherType with damage of each kind.
  pkt good;
  const std::uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
  build_frame(good, 100, 0, 0, 0, mac);
  CHECK(check_frame(good.data, good.len, nullptr) == frame_check::ok);
  std::uint8_t f[200];
  std::memcpy(f, good.data, good.len);
  f[12] = 0x08;  // IPv4
  f[13] = 0x00;
  CHECK(nic.hw_receive(f, good.len) == sim_nic::rx_result::accepted);
  std::memcpy(f, good.data, good.len);
  f[80] ^= 1;  // payload bit flip: checksum fails
  CHECK(nic.hw_receive(f, good.len) == sim_nic::rx_result::accepted);
  CHECK(nic.hw_receive(good.data, 30) == sim_nic::rx_result::accepted);  // truncated header
  CHECK(nic.hw_receive(good.data, good.len - 1) == sim_nic::rx_result::accepted);  // length lies
  CHECK(nic.hw_receive(good.data, good.len) == sim_nic::rx_result::accepted);      // one good one
  REQUIRE(kcont_test::wait_until([&] { return nic.stats().rx_delivered == 1; }));
  REQUIRE(kcont_test::wait_until([&] { return nic.stats().rx_malformed == 3; }));
  nic_stats s = nic.stats();
  CHECK(s.rx_runts == 2);
  CHECK(s.rx_oversized == 2);
  CHECK(s.rx_foreign == 1);
  nic.down();
  CHECK(pool.available() == pool.size());
}

TEST_CASE("bad configuration is refused with a message") {
  kcont::runtime rt(kcont_test::cpus(2));
  pkt_pool pool(16);
  nic_config cfg;
  cfg.tx_ring = 100;
  CHECK_THROWS_WITH_AS(sim_nic(rt, cfg, pool), doctest::Contains("powers of two"),
                       std::invalid_argument);
  cfg.tx_ring = 256;
  cfg.intr_cpu = 7;
  CHECK_THROWS_WITH_AS(sim_nic(rt, cfg, pool), doctest::Contains("intr_cpu"),
                       std::invalid_argument);
  cfg.intr_cpu = 0;
  sim_nic nic(rt, cfg, pool);
  CHECK_THROWS_AS(nic.up(), std::logic_error);  // no wire attached
  pkt p;
  CHECK(nic.output(&p) == ENETDOWN);
}

TEST_CASE(
    "latency_histogram: the CDF has a point per non-empty bucket and agrees with percentile") {
  using kcont::net::latency_histogram;
  latency_histogram h;
  CHECK(h.take().cdf().empty());
  const std::pair<std::uint64_t, int> values[] = {{10, 50}, {100, 30}, {1000, 15}, {1'000'000, 5}};
  for (const auto& [ns, n] : values)
    for (int i = 0; i < n; ++i) h.record(ns);
  const auto cdf = h.take().cdf();
  REQUIRE(cdf.size() == 4);
  const double fractions[] = {0.5, 0.8, 0.95, 1.0};
  for (std::size_t i = 0; i < cdf.size(); ++i) {
    CHECK(cdf[i].fraction == doctest::Approx(fractions[i]));
    // The bucket's upper bound: at or above the value, within the histogram's 3%.
    CHECK(cdf[i].ns >= values[i].first);
    CHECK(static_cast<double>(cdf[i].ns) <= static_cast<double>(values[i].first) * 1.035);
  }
  CHECK(cdf[0].ns == 10);  // exact below 64 ns
  CHECK(cdf.back().fraction == 1.0);
  const latency_histogram::snapshot s = h.take();
  for (double q : {0.01, 0.5, 0.51, 0.8, 0.81, 0.95, 0.99, 1.0}) {
    std::uint64_t first = 0;
    for (const auto& p : cdf)
      if (p.fraction >= q) {
        first = p.ns;
        break;
      }
    CHECK_MESSAGE(s.percentile(q) == first, "q " << q);
  }
  // The difference of two snapshots: only what came between them.
  const latency_histogram::snapshot before = h.take();
  for (int i = 0; i < 3; ++i) h.record(5000);
  const auto later = (h.take() - before).cdf();
  REQUIRE(later.size() == 1);
  CHECK(later[0].fraction == 1.0);
  CHECK(later[0].ns >= 5000);
}
