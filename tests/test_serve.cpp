// kcont-nicsim --serve's parts with real traffic (issue 17, item 5): stock ping and a UDP
// socket in the test's own network namespace (kcont-test-<pid>), through a tap, against the kcont
// stack and the floor responder; ARP both ways; and the in-memory path with the built-in peer,
// which always runs. The namespace cases skip with the reason where no namespace or tap can be made
// (not root, no /dev/net/tun, no `ip`; KCONT_NO_NETNS=1 forces that, test_serve_no_netns). The
// program-level cases (the namespace gone after exit, Ctrl-C and kill -9, the startup sweep) are in
// tests/nicsim/check_nicsim.sh.
#include <doctest/doctest.h>
#include <kcont/inet.h>
#include <kcont/nicsim.h>
#include <kcont/tap_wire.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "floor_responder.h"
#include "mem_peer.h"
#include "netns.h"
#include "netns_tap.h"
#include "netns_thread.h"
#include "own_netns.h"
#include "ping_runner.h"
#include "test_util.h"
#include "udp_load.h"

using namespace kcont::net;
using namespace std::chrono_literals;

namespace {

constexpr ipv4_addr kHost = ipv4(10, 77, 0, 1);
constexpr ipv4_addr kNic = ipv4(10, 77, 0, 2);
constexpr ether_addr kNicMac{0x02, 0x6b, 0x63, 0x00, 0x00, 0x02};

inet_config stack_config() {
  inet_config c;
  c.mac = kNicMac;
  c.addr = kNic;
  c.prefix_len = 24;
  return c;
}

// The test's namespace, kcont-test-<pid>, with a tap inside (host side 10.77.0.1/24), or the
// reason there is none.
struct ns_tap {
  std::unique_ptr<own_netns> own;
  const netns_handle* ns = nullptr;
  std::unique_ptr<tap_wire> tap;
  std::string why;

  bool make() {
    own = own_netns::make(netns_prefix_test, why);
    if (own) tap = make_tap_in_netns(own->handle(), kHost, 24, why);
    if (!tap) own.reset();
    ns = own ? &own->handle() : nullptr;
    return tap != nullptr;
  }
  ~ns_tap() {
    tap.reset();  // the tap first: it lives in the namespace
    own.reset();
  }
};

bool make_or_skip(ns_tap& t) {
  if (t.make()) return true;
  MESSAGE("skipped: no tap in a network namespace here: " << t.why);
  return false;
}

// The kcont stack on the tap: a NIC, its IPv4 stack at 10.77.0.2.
struct kcont_rig {
  kcont::runtime rt{kcont_test::cpus(2)};
  pkt_pool pool{4096};
  std::unique_ptr<sim_nic> nic;
  std::unique_ptr<inet_stack> stack;

  explicit kcont_rig(tap_wire& tap, inet_config cfg = stack_config()) {
    nic_config c;
    c.name = tap.device().name();
    c.intr_cpu = 1;
    nic = std::make_unique<sim_nic>(rt, c, pool);
    tap.connect(*nic);
    stack = std::make_unique<inet_stack>(*nic, pool, cfg);
    nic->up();
  }
  ~kcont_rig() {
    nic->down();
    stack.reset();
    CHECK(pool.available() == pool.size());  // every buffer came back
  }
};

// A UDP socket made inside the namespace, bound to 10.77.0.1:port.
int ns_udp_socket(const netns_handle& ns, std::uint16_t port) {
  int fd = -1;
  std::string why;
  run_in_netns(
      ns,
      [&] {
        fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(kHost);
        a.sin_port = htons(port);
        if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
          ::close(fd);
          fd = -1;
        }
      },
      why);
  return fd;
}

ssize_t recv_within(int fd, std::uint8_t* buf, std::size_t cap, int ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, ms) != 1) return -1;
  return ::recv(fd, buf, cap, MSG_DONTWAIT);
}

}  // namespace

TEST_CASE(
    "in memory: the built-in peer's 1000 pings answered, none lost; UDP byte-exact; ARP "
    "both ways") {
  kcont::runtime rt{kcont_test::cpus(2)};
  pkt_pool pool{4096};
  memory_wire w;
  nic_config ca, cb;
  ca.name = "sim0";
  cb.name = "peer0";
  cb.intr_cpu = 1;
  sim_nic a(rt, ca, pool), b(rt, cb, pool);
  w.connect(a, &b);
  inet_stack stack(a, pool, stack_config());
  mem_peer_config pc;
  pc.addr = kHost;
  pc.target = kNic;
  pc.ping_count = 1000;
  pc.ping_interval_us = 200;
  pc.udp_count = 20000;
  pc.udp_window = 8;
  pc.udp_payload = 200;
  {
    mem_peer peer(b, pool, pc);
    a.up();
    b.up();
    // The stack resolves the peer first (its own datagram to the peer's discard port)...
    const std::uint8_t hello[5] = {'h', 'e', 'l', 'l', 'o'};
    REQUIRE(stack.send_udp(kHost, 9, 9, hello) == 0);
    CHECK(kcont_test::wait_until([&] { return peer.sunk() == 1; }, 10s));
    CHECK(peer.arp_answered() == 1);
    // ... then the peer resolves the stack, and pings and echoes.
    peer.start();
    REQUIRE(kcont_test::wait_until([&] { return peer.done(); }, 60s));
    const echo_counts p = peer.ping().counts();
    CHECK(peer.resolved());
    CHECK(p.sent == 1000);
    CHECK(p.answered == 1000);
    CHECK(p.lost == 0);
    CHECK(p.corrupt == 0);
    const echo_counts u = peer.udp().counts();
    CHECK(u.answered == 20000);
    CHECK(u.bytes == 20000 * 200);
    CHECK(u.lost + u.corrupt + u.duplicate + u.late == 0);
    CHECK(peer.bad_checksums() == 0);
    a.down();
    b.down();
  }
  const inet_stats st = stack.stats();
  CHECK(st.icmp_echoes_answered == 1000);
  CHECK(st.udp_echoed == 20000);
  CHECK(st.arp_requests_sent >= 1);
  CHECK(st.arp_replies_learned >= 1);
  CHECK(st.arp_requests_answered >= 1);
  stack.stop();
  CHECK(pool.available() == pool.size());
}

TEST_CASE("KCONT_NO_NETNS: no namespace is made, and the reason says why") {
  const char* was = std::getenv("KCONT_NO_NETNS");  // test_serve_no_netns sets it for all cases
  const std::string saved = was != nullptr ? was : "";
  ::setenv("KCONT_NO_NETNS", "1", 1);
  std::string why;
  auto ns = own_netns::make(netns_prefix_test, why);
  if (was != nullptr)
    ::setenv("KCONT_NO_NETNS", saved.c_str(), 1);
  else
    ::unsetenv("KCONT_NO_NETNS");
  CHECK(ns == nullptr);
  CHECK(why.find("KCONT_NO_NETNS") != std::string::npos);
}

TEST_CASE("namespace: 1000 pings of stock ping answered by the kcont stack, none lost") {
  ns_tap t;
  if (!make_or_skip(t)) return;
  if (find_program("ping").empty()) {
    MESSAGE("skipped: no 'ping' here (iputils-ping)");
    return;
  }
  kcont_rig rig(*t.tap);
  ping_runner ping;
  std::string why;
  REQUIRE_MESSAGE(ping.start(*t.ns, "10.77.0.2", 1000, 500, why), why);
  REQUIRE(kcont_test::wait_until([&] { return ping.done(); }, 30s));
  ping.stop();
  const ping_result r = ping.result();
  CHECK_MESSAGE(r.ran, r.problem);
  CHECK(r.transmitted == 1000);
  CHECK(r.received == 1000);
  CHECK(ping.answered() == 1000);
  // The stack counts an answer once the tap took it, so the host may see the last reply a moment
  // before the count moves.
  kcont_test::wait_until([&] { return rig.stack->stats().icmp_echoes_answered >= 1000; }, 5s);
  CHECK(rig.stack->stats().icmp_echoes_answered == 1000);
  CHECK(rig.stack->stats().arp_requests_answered >= 1);  // the host resolved us
}

TEST_CASE("namespace: 10^5 UDP datagrams from a socket echoed byte-exact and counted") {
  ns_tap t;
  if (!make_or_skip(t)) return;
  kcont_rig rig(*t.tap);
  udp_load_config c;
  c.local = kHost;
  c.remote = kNic;
  c.sink_port = 0;
  c.window = 32;
  c.payload = 100;
  c.count = 100000;
  c.timeout_ns = 5'000'000'000;  // generous: a loss here is a bug, not a slow machine
  udp_load load(c);
  load.start(*t.ns);
  REQUIRE(kcont_test::wait_until([&] { return load.done(); }, 120s));
  load.stop();
  CHECK(load.error().empty());
  CHECK(load.reached());
  const echo_counts u = load.tracker().counts();
  CHECK(u.sent == 100000);
  CHECK(u.answered == 100000);
  CHECK(u.bytes == 100000 * 100);
  CHECK(u.lost == 0);
  CHECK(u.corrupt + u.duplicate + u.late == 0);
  // The stack's own count: the load's echoes plus its warm-up probes.
  // Bytes, not datagrams: the warm-up probes count as echoed too, so the datagram count can
  // reach 10^5 while the load's last echo is still being counted.
  kcont_test::wait_until([&] { return rig.stack->stats().udp_echoed_bytes >= 100000 * 100; }, 5s);
  const inet_stats st = rig.stack->stats();
  CHECK(st.udp_echoed >= 100000);
  CHECK(st.udp_echoed_bytes >= 100000 * 100);
}

TEST_CASE("namespace: ARP resolution both ways through the tap") {
  ns_tap t;
  if (!make_or_skip(t)) return;
  // Entries expire quickly, so the stack has to ask for the host itself after the host asked.
  inet_config cfg = stack_config();
  cfg.arp_keep = 50ms;
  kcont_rig rig(*t.tap, cfg);
  const int echo = ns_udp_socket(*t.ns, 40000), sink = ns_udp_socket(*t.ns, 9);
  REQUIRE(echo >= 0);
  REQUIRE(sink >= 0);
  std::uint8_t buf[256];

  // The host resolves the stack: its first datagram waits for the stack's ARP reply.
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(kNic);
  to.sin_port = htons(7);
  const char msg[] = "who has 10.77.0.2";
  REQUIRE(::sendto(echo, msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) ==
          static_cast<ssize_t>(sizeof msg));
  CHECK(recv_within(echo, buf, sizeof buf, 5000) == static_cast<ssize_t>(sizeof msg));
  CHECK(std::memcmp(buf, msg, sizeof msg) == 0);
  CHECK(rig.stack->stats().arp_requests_answered >= 1);

  // The stack resolves the host: what it learned from the host's request has expired.
  std::this_thread::sleep_for(150ms);
  const inet_stats before = rig.stack->stats();
  const std::uint8_t hello[] = {'h', 'e', 'l', 'l', 'o', ' ', 'h', 'o', 's', 't'};
  REQUIRE(rig.stack->send_udp(kHost, 9, 9, hello) == 0);
  CHECK(recv_within(sink, buf, sizeof buf, 5000) == static_cast<ssize_t>(sizeof hello));
  CHECK(std::memcmp(buf, hello, sizeof hello) == 0);
  // Should the host also have asked for us meanwhile, the datagram may have gone on what its
  // request taught; the reply to ours still comes.
  kcont_test::wait_until(
      [&] { return rig.stack->stats().arp_replies_learned > before.arp_replies_learned; }, 5s);
  const inet_stats after = rig.stack->stats();
  CHECK(after.arp_requests_sent > before.arp_requests_sent);
  CHECK(after.arp_replies_learned > before.arp_replies_learned);
  ::close(echo);
  ::close(sink);
}

TEST_CASE("namespace: the floor responder answers ARP, stock ping and the UDP load") {
  ns_tap t;
  if (!make_or_skip(t)) return;
  nicsim_floor::floor_config fc;
  fc.mac = kNicMac;
  fc.addr = kNic;
  nicsim_floor::floor_responder floor(t.tap->device().fd(), fc);
  udp_load_config c;
  c.local = kHost;
  c.remote = kNic;
  c.sink_port = 0;
  c.count = 20000;
  c.timeout_ns = 5'000'000'000;
  udp_load load(c);
  load.start(*t.ns);
  ping_runner ping;
  std::string why;
  const bool pinging = ping.start(*t.ns, "10.77.0.2", 200, 1000, why);
  if (!pinging) MESSAGE("ping part skipped: " << why);
  REQUIRE(kcont_test::wait_until([&] { return load.done() && (!pinging || ping.done()); }, 60s));
  load.stop();
  ping.stop();
  const echo_counts u = load.tracker().counts();
  CHECK(u.answered == 20000);
  CHECK(u.lost + u.corrupt + u.duplicate + u.late == 0);
  if (pinging) {
    CHECK(ping.result().received == 200);
    CHECK(ping.result().transmitted == 200);
  }
  floor.stop();
  const nicsim_floor::floor_stats s = floor.stats();
  CHECK(s.arp_answered >= 1);
  CHECK(s.udp_echoed >= 20000);
  CHECK(s.icmp_answered == (pinging ? 200u : 0u));
  CHECK(s.tx == s.arp_answered + s.icmp_answered + s.udp_echoed);
}
