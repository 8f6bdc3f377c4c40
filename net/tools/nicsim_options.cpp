#include "nicsim_options.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace kcont::net {
namespace {

const char* const kHelp = R"(usage: kcont-nicsim [options]

Runs simulated NICs whose driver is written the way OpenBSD's myx(4) is after the 2015 taskctx
diff, on kcont's softints, callouts, task queues and continuations. Producer threads play the
network stack (ifq_enqueue + if_start); the NIC's DMA engine puts the frames on a wire; the
receiving NIC's RX interrupt hands them to input processing on wq_softnet continuations, which
checks every frame (flow, sequence number, checksum). Prints live statistics once a second and
a summary at the end. Ctrl-C stops cleanly (a tap is removed).

wire:
  --wire auto|tap|memory|pair  auto (default): a tap device if one can be made, else the
                         in-memory wire; tap: a tap device or exit 2; memory: one NIC looped
                         back in memory; pair: two NICs back to back in memory (A sends, B
                         receives). A tap is only ever made inside a network namespace of our
                         own, kcont-nicsim-PID, never in the host's default namespace; without
                         one (not root, no /dev/net/tun, no 'ip', KCONT_NO_NETNS=1) there is no
                         tap. The namespace goes on exit, as with --serve
  --tap-name NAME        tap interface name or pattern (default kcont%d). With a tap, the NIC's
                         frames go to the namespace's stack (watch with: ip netns exec
                         kcont-nicsim-PID tcpdump -i NAME) and frames it sends come back in;
                         nothing loops back, so rx counts only that stack's traffic.
driver:
  --mode taskctx|taskq|naive  start path (default taskctx): taskctx = the diff's fix (start
                         dispatched into the ifqueue serialiser, oactive cleared only inside it);
                         taskq = start deferred to a task queue; naive = txeof clears oactive
                         outside the serialiser (the race: watch for stalls)
  --tx-ring N            TX descriptors, a power of two (default 256)
  --rx-ring N            RX descriptors, a power of two (default 256)
  --ifq-len N            send queue length, 1..65536 (default 256). The packet buffers,
                         4 x (tx-ring + rx-ring + ifq-len) of about 2 KiB per NIC, must fit
                         in 1024 MiB
  --dma-pps N            TX DMA rate in frames/s, 0..1000000000 (default 0 = as fast as it
                         goes)
  --intr-cpu N           CPU for the completion interrupts and RX input, 0..ncpu-1 of the
                         runtime (default 0)
  --race-delay-us N      widen the oactive race: start pauses N us (0..1000000) between
                         finding the ring full and setting oactive (default 0)
  --no-recheck           taskctx/taskq: do not look at the ring again after setting oactive
                         (shows the window the diff alone leaves open)
  --stall-ms N           stall detector threshold, 1..600000 (default 200)
  --no-recover           report stalls but do not restart the interface
traffic:
  --seconds S            run time, above 0 and up to 86400 (default 10) unless --packets
                         is given
  --packets N            send N frames (1..1000000000000), then stop
  --producers N          producer threads, one flow each (default 2, at most 64)
  --frame-size N         frame length in bytes, 64..1518 (default 128)
  --drop                 producers drop a packet when the send queue is full (a UDP blaster);
                         by default they wait for room (back-pressure), so nothing is lost
serve (an IPv4 stack on the NIC, answering real traffic):
  --serve                make a network namespace kcont-nicsim-PID, a tap inside it (host side
                         10.77.0.1/24), give the NIC's IPv4 stack 10.77.0.2/24, and answer stock
                         ping and a UDP echo load from a socket in the namespace; first with
                         kcont (--mode), then with the floor (a one-thread epoll responder on the
                         same tap, no kcont). Without a tap or a namespace (not root, no
                         /dev/net/tun, no 'ip', KCONT_NO_NETNS=1) or with --wire memory: the same
                         stack on the in-memory wire with a built-in peer, saying why. The
                         namespace is removed on exit, Ctrl-C, SIGTERM and (by a reaper
                         process) kill -9; stale ones are swept at startup. Ping it yourself
                         meanwhile: ip netns exec kcont-nicsim-PID ping 10.77.0.2
  --responder kcont|floor|both  which phases run (default both: kcont, then the floor)
  --ping-count N         pings per phase, 0..10000000 (0: no ping; default: --seconds' worth)
  --ping-interval-us N   between two pings, 100..1000000 (default 1000)
  --udp-window N         UDP datagrams outstanding, 1..4096 (default 16)
  --udp-size N           UDP payload bytes, 8..1472 (default 64)
  --udp-pps N            UDP send rate, 0..10000000 (default 0: as fast as the window allows)
  --udp-count N          UDP datagrams per phase, 0..1000000000 (default 0: for --seconds);
                         the phase then ends once they are answered or lost and ping is done
  --push-pps N           datagrams/s the stack sends on its own (send_udp, resolving the host
                         through ARP) to the host's discard port, 0..100000 (default 100)
runtime:
  --ncpu N               virtual CPUs, 1..1024 (default: KCONT_NCPU, else the host's)
  --backend asio|libevent  the CPU loops' event library (default asio)
output:
  --quiet                no live lines, only the summary
  --json FILE            write the summary as JSON records {name, value, unit}
  --help                 this text
)";

// Plain decimal digits (no sign, blank, fraction, exponent, hex, inf or nan) that fit.
bool to_u64(const char* s, std::uint64_t& out) {
  if (s == nullptr || *s == '\0') return false;
  std::uint64_t x = 0;
  for (const char* p = s; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') return false;
    const unsigned d = static_cast<unsigned>(*p - '0');
    if (x > (UINT64_MAX - d) / 10) return false;
    x = x * 10 + d;
  }
  out = x;
  return true;
}

// A decimal number of seconds (exponent allowed; no blank, hex, inf or nan).
bool to_seconds(const char* s, double& out) {
  if (s == nullptr || *s == '\0') return false;
  for (const char* p = s; *p != '\0'; ++p)
    if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '-' ||
          *p == '+'))
      return false;
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(s, &end);
  if (*end != '\0' || errno != 0 || !std::isfinite(d)) return false;
  out = d;
  return true;
}

}  // namespace

int parse_nicsim_options(int argc, char** argv, nicsim_options& o) {
  auto bad = [](const std::string& what) {
    std::fprintf(stderr, "kcont-nicsim: %s (see --help)\n", what.c_str());
    return 2;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    std::uint64_t n = 0;
    auto number = [&](std::uint64_t lo, std::uint64_t hi) {
      if (!to_u64(v, n) || n < lo || n > hi) return false;
      ++i;
      return true;
    };
    auto range = [&](std::uint64_t lo, std::uint64_t hi) {
      return "'" + a + "' needs a whole number in " + std::to_string(lo) + ".." +
             std::to_string(hi) + ", not '" + (v ? v : "") + "'";
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kHelp, stdout);
      return 0;
    } else if (a == "--wire") {
      const std::string w = v ? v : "";
      if (w == "auto")
        o.wire = wire_choice::automatic;
      else if (w == "tap")
        o.wire = wire_choice::tap;
      else if (w == "memory")
        o.wire = wire_choice::memory;
      else if (w == "pair")
        o.wire = wire_choice::pair;
      else
        return bad("--wire takes auto, tap, memory or pair, not '" + w + "'");
      ++i;
    } else if (a == "--tap-name") {
      if (v == nullptr || std::strlen(v) == 0 || std::strlen(v) >= 16)
        return bad("--tap-name needs a name of 1..15 characters");
      o.tap_name = v;
      ++i;
    } else if (a == "--mode") {
      if (v == nullptr || !parse_start_mode(v, o.mode))
        return bad("--mode takes taskctx, taskq or naive");
      o.nic.mode = o.mode;
      ++i;
    } else if (a == "--tx-ring") {
      if (!number(4, 65536) || (n & (n - 1)) != 0)
        return bad("--tx-ring needs a power of two in 4..65536, not '" + std::string(v ? v : "") +
                   "'");
      o.nic.tx_ring = static_cast<unsigned>(n);
    } else if (a == "--rx-ring") {
      if (!number(4, 65536) || (n & (n - 1)) != 0)
        return bad("--rx-ring needs a power of two in 4..65536, not '" + std::string(v ? v : "") +
                   "'");
      o.nic.rx_ring = static_cast<unsigned>(n);
    } else if (a == "--ifq-len") {
      if (!number(1, ifq_len_max)) return bad(range(1, ifq_len_max));
      o.nic.ifq_maxlen = static_cast<unsigned>(n);
    } else if (a == "--dma-pps") {
      if (!number(0, 1'000'000'000)) return bad(range(0, 1'000'000'000));
      o.nic.dma_pps = n;
    } else if (a == "--intr-cpu") {
      if (!number(0, ncpu_max - 1)) return bad(range(0, ncpu_max - 1));
      o.nic.intr_cpu = static_cast<unsigned>(n);
    } else if (a == "--race-delay-us") {
      if (!number(0, 1'000'000)) return bad(range(0, 1'000'000));
      o.nic.race_delay_ns = static_cast<std::int64_t>(n) * 1000;
    } else if (a == "--no-recheck") {
      o.nic.oactive_recheck = false;
    } else if (a == "--stall-ms") {
      if (!number(1, 600'000)) return bad(range(1, 600'000));
      o.nic.stall_ms = static_cast<unsigned>(n);
    } else if (a == "--no-recover") {
      o.nic.watchdog_recover = false;
    } else if (a == "--seconds") {
      double s = 0;
      if (!to_seconds(v, s) || !(s > 0) || s > 86400)
        return bad("--seconds needs a number of seconds in (0, 86400], not '" +
                   std::string(v ? v : "") + "'");
      o.seconds = s;
      ++i;
    } else if (a == "--packets") {
      if (!number(1, packets_max)) return bad(range(1, packets_max));
      o.packets = n;
    } else if (a == "--producers") {
      if (!number(1, max_flows)) return bad(range(1, max_flows));
      o.producers = static_cast<unsigned>(n);
    } else if (a == "--frame-size") {
      if (!number(sim_frame_min, frame_max)) return bad(range(sim_frame_min, frame_max));
      o.frame_len = n;
    } else if (a == "--drop") {
      o.drop_when_full = true;
    } else if (a == "--quiet") {
      o.quiet = true;
    } else if (a == "--ncpu") {
      if (!number(1, ncpu_max)) return bad(range(1, ncpu_max));
      o.ncpu = static_cast<unsigned>(n);
    } else if (a == "--backend") {
      if (v == nullptr || !parse_backend(v, o.backend))
        return bad("--backend takes asio or libevent");
      if (!backend_available(o.backend))
        return bad("this build has no libevent backend (libevent-dev was not found)");
      ++i;
    } else if (a == "--serve") {
      o.serve = true;
    } else if (a == "--responder") {
      const std::string r = v ? v : "";
      if (r == "both")
        o.responder = responder_choice::both;
      else if (r == "kcont")
        o.responder = responder_choice::kcont;
      else if (r == "floor")
        o.responder = responder_choice::floor;
      else
        return bad("--responder takes kcont, floor or both, not '" + r + "'");
      ++i;
    } else if (a == "--ping-count") {
      if (!number(0, 10'000'000)) return bad(range(0, 10'000'000));
      o.ping_count = n;
    } else if (a == "--ping-interval-us") {
      if (!number(100, 1'000'000)) return bad(range(100, 1'000'000));
      o.ping_interval_us = static_cast<unsigned>(n);
    } else if (a == "--udp-window") {
      if (!number(1, 4096)) return bad(range(1, 4096));
      o.udp_window = n;
    } else if (a == "--udp-size") {
      if (!number(8, 1472)) return bad(range(8, 1472));
      o.udp_size = n;
    } else if (a == "--udp-pps") {
      if (!number(0, 10'000'000)) return bad(range(0, 10'000'000));
      o.udp_pps = n;
    } else if (a == "--udp-count") {
      if (!number(0, 1'000'000'000)) return bad(range(0, 1'000'000'000));
      o.udp_count = n;
    } else if (a == "--push-pps") {
      if (!number(0, 100'000)) return bad(range(0, 100'000));
      o.push_pps = n;
    } else if (a == "--json") {
      if (v == nullptr) return bad("--json needs a file name");
      o.json_path = v;
      ++i;
    } else {
      return bad("unknown option '" + a + "'");
    }
  }
  // Every ring and queue may be at its limit, but not all at once: the packet pool is
  // allocated up front.
  const std::uint64_t bytes = nicsim_pool_packets(o) * sizeof(pkt);
  if (bytes > pool_bytes_max)
    return bad("--tx-ring " + std::to_string(o.nic.tx_ring) + ", --rx-ring " +
               std::to_string(o.nic.rx_ring) + " and --ifq-len " +
               std::to_string(o.nic.ifq_maxlen) + " need " + std::to_string(bytes >> 20) +
               " MiB of packet buffers (4 x (tx-ring + rx-ring + ifq-len) per NIC, " +
               std::to_string(sizeof(pkt)) + " bytes each); the limit is " +
               std::to_string(pool_bytes_max >> 20) + " MiB");
  return -1;
}

std::uint64_t serve_ping_count(const nicsim_options& o) {
  if (o.ping_count != ping_count_auto) return o.ping_count;
  return static_cast<std::uint64_t>(o.seconds * 1e6 / o.ping_interval_us);
}

std::uint64_t nicsim_pool_packets(const nicsim_options& o) {
  // --serve on the in-memory wire: the stack's NIC and the built-in peer's.
  const std::uint64_t nnics = o.wire == wire_choice::pair || o.serve ? 2 : 1;
  return nnics * 4 *
         (std::uint64_t{o.nic.tx_ring} + std::uint64_t{o.nic.rx_ring} + o.nic.ifq_maxlen);
}

}  // namespace kcont::net
