// The simulated NIC on a real tap device: the host sees every frame the NIC sends (as tcpdump
// would), frames the host sends arrive and bad ones are dropped and counted, and deleting the
// link mid-run is reported and shut down cleanly with nothing leaked. Every tap is made in the
// test's own network namespace (netns_util.h), never the host's default one; the runtime's
// threads stay outside it and use the tap's fd from there. Every case skips with the reason
// when no namespace or no tap can be made here (not root, no `ip`, KCONT_NO_NETNS=1, no
// /dev/net/tun, no CAP_NET_ADMIN).
#include <doctest/doctest.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/nicsim.h>
#include <kcont/tap_wire.h>
#include <kcont/traffic.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <map>
#include <string>
#include <thread>

#include "netns_util.h"
#include "tap_util.h"
#include "test_util.h"

using namespace kcont::net;
using namespace std::chrono_literals;

namespace {

struct tap_rig {
  kcont::runtime rt{kcont_test::cpus(2)};  // made before the thread enters the namespace
  pkt_pool pool{4096};
  kcont_test::test_netns ns;  // the test's thread inside until the rig goes (after the tap)
  std::unique_ptr<tap_wire> wire;
  std::unique_ptr<sim_nic> nic;
  std::atomic<int> gone_reports{0};
  std::string why;

  bool make(unsigned rx_ring = 256) {
    if (!ns.enter()) {
      why = ns.why() + "; a tap is never made in the host's default namespace instead";
      return false;
    }
    wire = tap_wire::create("kctest%d", 1500, why);
    if (!wire) return false;
    nic_config cfg;
    cfg.rx_ring = rx_ring;
    cfg.name = wire->device().name();
    cfg.intr_cpu = 1;
    nic = std::make_unique<sim_nic>(rt, cfg, pool);
    nic->set_event_handler([this](const std::string& l) {
      if (l.find("gone") != std::string::npos) ++gone_reports;
    });
    wire->connect(*nic);
    nic->up();
    return true;
  }
};

// Makes the rig, or says why this machine cannot and returns false (the test then skips).
bool make_or_skip(tap_rig& rig, unsigned rx_ring = 256) {
  if (rig.make(rx_ring)) return true;
  MESSAGE("skipped: no tap in a network namespace of the test's own here: " << rig.why);
  return false;
}

// What the host captured of n simulator frames: how many arrived, how many failed the check,
// and how many broke their flow's order (each flow numbered from 0).
struct captured {
  std::uint64_t seen = 0, bad = 0, out_of_order = 0;
};
captured capture_in_order(kcont_test::raw_socket& host, std::uint64_t n) {
  captured c;
  std::map<std::uint16_t, std::uint64_t> next;
  while (c.seen < n) {
    auto f = host.recv_frame(5s);
    if (!f) break;
    frame_info fi;
    if (check_frame(f->data(), f->size(), &fi) != frame_check::ok) {
      ++c.bad;
      continue;
    }
    if (fi.seq != next[fi.flow]) ++c.out_of_order;
    next[fi.flow] = fi.seq + 1;
    ++c.seen;
  }
  return c;
}

}  // namespace

TEST_CASE("tap: the host captures every frame the NIC sends, intact and in order") {
  tap_rig rig;
  if (!make_or_skip(rig)) return;
  kcont_test::raw_socket host(rig.wire->device().ifindex());
  REQUIRE_MESSAGE(host.ok(), host.error());
  constexpr std::uint64_t n = 2000;
  traffic_source src(*rig.nic, rig.pool, {2, n, 200, /*retry_when_full=*/true});
  src.start();
  const captured c = capture_in_order(host, n);
  src.join();
  CHECK(c.seen == n);
  CHECK(c.bad == 0);
  CHECK(c.out_of_order == 0);
  // The driver counts a frame once its write to the tap returned: the host may have it first.
  CHECK(kcont_test::wait_until([&] { return rig.nic->stats().tx_frames == n; }));
  CHECK(rig.nic->stats().tx_frames == n);
}

TEST_CASE(
    "tap: start transmits frames itself while the engine sleeps, beside the engine's passes; "
    "every frame once and in order") {
  tap_rig rig;
  if (!make_or_skip(rig)) return;
  kcont_test::raw_socket host(rig.wire->device().ifindex());
  REQUIRE_MESSAGE(host.ok(), host.error());
  const std::uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x42};
  // Two threads, one flow each: lone frames 300 us apart (the engine asleep in between: start
  // sends them), then bursts of 64 (the two threads' starts meet in the serialiser, and a
  // start that posts more than a few frames rings the engine), three times over.
  constexpr std::uint64_t kLone = 100, kBurst = 64, kRounds = 3;
  constexpr std::uint64_t per_flow = kRounds * (kLone + kBurst);
  auto producer = [&](std::uint16_t flow) {
    std::uint64_t seq = 0;
    auto send = [&] {
      pkt* m;
      while ((m = rig.pool.get()) == nullptr) std::this_thread::yield();
      build_frame(*m, 128, flow, seq, kcont::machine::now_ns(), mac);
      while (rig.nic->output(m) == ENOBUFS) std::this_thread::yield();
      ++seq;
    };
    for (std::uint64_t r = 0; r < kRounds; ++r) {
      for (std::uint64_t i = 0; i < kLone; ++i) {
        send();
        std::this_thread::sleep_for(300us);
      }
      for (std::uint64_t i = 0; i < kBurst; ++i) send();
    }
  };
  std::thread a(producer, 0), b(producer, 1);
  const captured c = capture_in_order(host, 2 * per_flow);
  a.join();
  b.join();
  CHECK(c.seen == 2 * per_flow);
  CHECK(c.bad == 0);
  CHECK(c.out_of_order == 0);
  CHECK(kcont_test::wait_until([&] { return rig.nic->stats().tx_frames == 2 * per_flow; }));
  const nic_stats st = rig.nic->stats();
  CHECK(st.tx_frames == 2 * per_flow);
  CHECK(st.tx_wire_drops == 0);
  MESSAGE("sent by start itself: " << st.tx_from_start << " of " << st.tx_frames);
  CHECK(st.tx_from_start > 0);  // the lone frames, at least
  CHECK(st.tx_from_start <= st.tx_frames);
}

TEST_CASE("tap: frames from the host arrive; foreign, malformed and runt frames are counted") {
  tap_rig rig;
  if (!make_or_skip(rig)) return;
  kcont_test::raw_socket host(rig.wire->device().ifindex());
  REQUIRE_MESSAGE(host.ok(), host.error());
  const nic_stats before = rig.nic->stats();  // the host may already have sent IPv6 chatter
  pkt good;
  const std::uint8_t mac[6] = {2, 0, 0, 0, 0, 9};
  for (std::uint64_t seq = 0; seq < 100; ++seq) {
    build_frame(good, 300, 5, seq, kcont::machine::now_ns(), mac);
    REQUIRE(host.send(good.data, good.len) == static_cast<ssize_t>(good.len));
  }
  std::uint8_t damaged[300];
  std::memcpy(damaged, good.data, good.len);
  damaged[200] ^= 0x40;
  REQUIRE(host.send(damaged, good.len) == static_cast<ssize_t>(good.len));
  REQUIRE(host.send(good.data, 40) == 40);  // truncated inside the sim header
  REQUIRE(kcont_test::wait_until([&] { return rig.nic->stats().rx_delivered == 100; }));
  REQUIRE(kcont_test::wait_until([&] { return rig.nic->stats().rx_malformed == 2; }));
  const nic_stats s = rig.nic->stats();
  CHECK(s.rx_out_of_order == 0);
  CHECK(s.rx_gaps == 0);
  CHECK(s.rx_delivered - before.rx_delivered == 100);
  // Runts: the kernel refuses to send one through a packet socket (EINVAL); when it does
  // deliver one, it must be counted, never delivered.
  std::uint8_t runt[10] = {};
  if (host.send(runt, sizeof runt) == static_cast<ssize_t>(sizeof runt))
    CHECK(kcont_test::wait_until([&] { return rig.nic->stats().rx_runts >= 1; }));
}

TEST_CASE("tap: a full RX ring pauses reading the tap; nothing lost, order kept") {
  tap_rig rig;
  if (!make_or_skip(rig, 4)) return;  // 4 RX descriptors: the ring fills at once
  kcont_test::raw_socket host(rig.wire->device().ifindex());
  REQUIRE_MESSAGE(host.ok(), host.error());
  pkt f;
  const std::uint8_t mac[6] = {2, 0, 0, 0, 0, 7};
  for (std::uint64_t seq = 0; seq < 300; ++seq) {  // well below the tap's queue (1000 frames)
    build_frame(f, 120, 3, seq, kcont::machine::now_ns(), mac);
    REQUIRE(host.send(f.data, f.len) == static_cast<ssize_t>(f.len));
  }
  REQUIRE(kcont_test::wait_until([&] { return rig.nic->stats().rx_delivered == 300; }));
  CHECK(rig.nic->stats().rx_out_of_order == 0);
  CHECK(rig.nic->stats().rx_gaps == 0);
}

TEST_CASE("tap: the link deleted mid-run is reported, and shutdown is clean") {
  const int fds_before = kcont_test::count_open_fds();
  {
    tap_rig rig;
    if (!make_or_skip(rig)) return;
    traffic_source src(*rig.nic, rig.pool, {2, 0, 128, false});
    src.start();
    REQUIRE(kcont_test::wait_until([&] { return rig.nic->stats().tx_frames > 1000; }));
    std::string why;
    REQUIRE_MESSAGE(kcont_test::delete_link(rig.wire->device().ifindex(), why), why);
    // The engine notices on its next poll of the tap (a frame written, or the fd's error).
    CHECK(kcont_test::wait_until([&] { return rig.nic->wire_gone(); }));
    // The report is made just after the flag is set (on the interrupt CPU): wait for it, then
    // make sure no second one follows.
    CHECK(kcont_test::wait_until([&] { return rig.gone_reports.load() >= 1; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(rig.gone_reports.load() == 1);
    src.stop();
    src.join();
    rig.nic->down();
    CHECK(rig.pool.available() == rig.pool.size());
  }
  CHECK(kcont_test::count_open_fds() == fds_before);
}

// down() while the interrupt CPU keeps pausing and resuming the tap watch (a 4-descriptor ring
// under a burst): down() must withdraw the watch from refill_rx before freeing it (it used to
// clear the pause flag from the control thread and leave refill_rx a window to resume a watch
// being freed, or a NULL one). Up and down again many times; ASan and TSan watch the rest.
TEST_CASE("tap: down() amid RX pause/resume never resumes a freed watch; up again works") {
  tap_rig rig;
  if (!make_or_skip(rig, 4)) return;
  kcont_test::raw_socket host(rig.wire->device().ifindex());
  REQUIRE_MESSAGE(host.ok(), host.error());
  pkt f;
  const std::uint8_t mac[6] = {2, 0, 0, 0, 0, 7};
  std::uint64_t seq = 0;
  for (int round = 0; round < 40; ++round) {
    for (int i = 0; i < 150; ++i) {
      build_frame(f, 120, 3, seq++, kcont::machine::now_ns(), mac);
      host.send(f.data, f.len);  // the tap may drop some while the NIC is down: not counted
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200 * (round % 5)));
    rig.nic->down();
    rig.nic->up();
  }
  // Still receiving after all that.
  const std::uint64_t before = rig.nic->stats().rx_delivered;
  for (int i = 0; i < 50; ++i) {
    build_frame(f, 120, 4, i, kcont::machine::now_ns(), mac);
    REQUIRE(host.send(f.data, f.len) == static_cast<ssize_t>(f.len));
  }
  CHECK(kcont_test::wait_until([&] { return rig.nic->stats().rx_delivered >= before + 50; }));
}
