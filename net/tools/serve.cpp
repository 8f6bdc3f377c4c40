// kcont-nicsim --serve (serve.h): opens the namespace and the tap (or says why not), runs the
// phases (serve_phases.h) one after the other, prints the summary and writes the JSON file.
#include "serve.h"

#include <cstdio>
#include <memory>
#include <stdexcept>

#include "netns.h"
#include "nicsim_runtime.h"
#include "nicsim_tap.h"
#include "serve_phases.h"
#include "serve_report.h"

namespace kcont::net {
namespace {

void print_header(const nicsim_options& o, const std::string& where) {
  std::printf(
      "kcont-nicsim --serve: %s; stack 10.77.0.2/24, mode %s, TX ring %u, RX ring %u, send "
      "queue %u; load: ping x%llu every %u us, UDP echo window %zu of %zu bytes%s\n",
      where.c_str(), start_mode_name(o.nic.mode), o.nic.tx_ring, o.nic.rx_ring, o.nic.ifq_maxlen,
      static_cast<unsigned long long>(serve_ping_count(o)), o.ping_interval_us, o.udp_window,
      o.udp_size,
      o.udp_count != 0 ? (", " + std::to_string(o.udp_count) + " datagrams").c_str() : "");
  std::fflush(stdout);
}

int finish(const nicsim_options& o, const std::vector<serve_phase>& phases, bool ok) {
  std::printf("kcont-nicsim --serve summary\n");
  for (const auto& p : phases) print_serve_phase(p);
  if (phases.size() == 2) print_serve_ratios(phases[0], phases[1]);
  for (const auto& p : phases)
    if (p.total.udp.corrupt != 0) ok = false;
  if (!o.json_path.empty() && !write_serve_json(o.json_path, phases)) return 1;
  return ok ? 0 : 1;
}

}  // namespace

int run_serve(const nicsim_options& o, const volatile std::sig_atomic_t& interrupted) {
  std::string why;
  std::unique_ptr<nicsim_tap> net;  // the namespace and the tap in it, or nullptr and why
  if (o.wire == wire_choice::automatic || o.wire == wire_choice::tap) {
    net = open_nicsim_tap("", tap_host_side{serve_host, serve_prefix_len}, why);
    if (!net && o.wire == wire_choice::tap) {
      std::fprintf(stderr, "kcont-nicsim: --wire tap: %s\n", why.c_str());
      return 2;
    }
  } else {
    why = "--wire memory was asked for";
  }
  tap_wire* const tap = net ? net->tap.get() : nullptr;

  std::unique_ptr<kcont::runtime> rt;
  const bool kcont_phase = o.responder != responder_choice::floor || !tap;
  if (kcont_phase) {
    try {
      rt = make_nicsim_runtime(o);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kcont-nicsim: %s\n", e.what());
      return 2;
    }
  }
  std::vector<serve_phase> phases;
  bool ok = true;
  if (!tap) {
    std::printf(
        "kcont-nicsim: no tap in a namespace of our own (%s); serving on the in-memory "
        "wire with a built-in peer instead\n",
        why.c_str());
    print_header(o, "in-memory wire, built-in peer 10.77.0.1");
    if (o.responder == responder_choice::floor)
      std::printf("kcont-nicsim: the floor needs a tap: running the kcont phase instead\n");
    phases.push_back(serve_kcont_in_memory(o, *rt, interrupted, ok));
    return finish(o, phases, ok);
  }
  const netns_handle& ns = net->ns->handle();
  print_header(o, "namespace " + ns.name() + ", tap " + tap->device().name() +
                      " (host side 10.77.0.1/24 in the namespace)");
  std::printf("kcont-nicsim: ping it yourself meanwhile: ip netns exec %s ping %s\n",
              ns.name().c_str(), serve_nic_text);
  std::fflush(stdout);
  if (o.responder != responder_choice::floor)
    phases.push_back(serve_kcont_on_tap(o, *rt, *tap, ns, interrupted, ok));
  if (o.responder != responder_choice::kcont && interrupted == 0)
    phases.push_back(serve_floor_on_tap(o, *tap, ns, interrupted));
  if (interrupted != 0) std::printf("kcont-nicsim: interrupted; shutting down cleanly\n");
  const int rc = finish(o, phases, ok);
  rt.reset();
  net.reset();  // the tap goes with its fd, then the namespace, then the reaper
  return rc;
}

}  // namespace kcont::net
