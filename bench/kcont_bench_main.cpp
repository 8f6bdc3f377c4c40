// kcont-bench: every benchmark area of kcont in one program (see kcont_bench.h and --help).
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "kcont_bench.h"

using namespace kcont_bench;

const std::vector<area>& kcont_bench::all_areas() {
  static const std::vector<area> areas = {
      {"softint", "softint_schedule -> handler latency, coalesced schedule cost", area_softint},
      {"callout", "arm+cancel cost at 10^3..10^6 pending (earliest and among), firing lateness",
       area_callout},
      {"task", "task_add -> run latency and task_add cost (taskq)", area_task},
      {"taskctx", "task_dispatch vs std::mutex and asio::strand", area_taskctx},
      {"workqueue", "cross-CPU enqueue latency, WQ_ELASTIC vs fixed workers", area_workqueue},
      {"kcont", "continuations: soft/thread queues, timer path, lock-associated ordering",
       area_kcont},
      {"net",
       "simulated NIC: pps and TX-completion -> next start by start mode; UDP echo per start "
       "mode beside the floor, through a tap in a namespace of our own",
       area_net},
      {"coro", "coroutine hop onto a queue and sleep+cancel, beside Asio's awaitables", area_coro},
  };
  return areas;
}

namespace {

void usage() {
  std::printf(
      "usage: kcont-bench [--quick] [--only AREA,...] [--json FILE] [--plots DIR]\n"
      "                   [--backend asio|libevent] [--samples N] [--gap-us N] [--observe]\n"
      "       kcont-bench compare OLD.json NEW.json\n"
      "\n"
      "Measures kcont beside the peers a user would pick instead (Boost.Asio post, strand and\n"
      "steady_timer; libevent event_active and evtimer; a mutex+condvar queue; std::mutex),\n"
      "in the same run, against an eventfd floor (an idle cross-core wake-up). Latencies are\n"
      "one-way, sender on core 0, receiver on core 1, as p50/p99/p99.9; costs are the median\n"
      "over repetitions with min..max.\n"
      "\n"
      "  --quick        every area in under a minute (fewer samples and repetitions)\n"
      "  --only LIST    run only these areas (comma-separated), in the order below\n"
      "  --json FILE    write {\"machine\": {...}, \"records\": [{name, value, unit[, min, max,\n"
      "                 reps]}]}: every figure, with its spread over repetitions where it has one\n"
      "  --plots DIR    write data files and PNG plots there (needs gnuplot)\n"
      "  --backend B    loop backend of the main runtime (default asio); rows that depend on\n"
      "                 the loop run on every built-in backend anyway, side by side\n"
      "  --samples N    latency samples per row (default 20000, --quick 3000)\n"
      "  --gap-us N     spin between latency samples, so the receiver is asleep (default 30)\n"
      "  --observe      every runtime exports its statistics (KCONT_STATS=1) and runs the\n"
      "                 stuck-handler watchdog (1 s), as kcont-nicsim does: run with and\n"
      "                 without it and compare to see what observability costs\n"
      "  --observe-stats  the same without the watchdog: the statistics' own cost\n"
      "  compare        print each figure's change between two --json files and flag those\n"
      "                 that moved beyond the noise of their repetitions (exit 0; 2 on a bad\n"
      "                 file)\n"
      "\nareas:\n");
  for (const auto& a : all_areas()) std::printf("  %-10s %s\n", a.name, a.what);
}

// A whole number in [lo, hi], or a message and exit 2.
int number_in(const std::string& option, const std::string& text, long lo, long hi) {
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < lo || v > hi) {
    std::fprintf(stderr, "kcont-bench: %s needs a number in %ld..%ld, not '%s'\n", option.c_str(),
                 lo, hi, text.c_str());
    std::exit(2);
  }
  return static_cast<int>(v);
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "compare") == 0) {
    if (argc != 4) {
      std::fprintf(stderr, "usage: kcont-bench compare OLD.json NEW.json\n");
      return 2;
    }
    return compare_main(argv[2], argv[3]);
  }
  bool quick = false;
  bool observe = false, watchdog = true;  // --observe: both; --observe-stats: no watchdog
  std::string json, plots, only;
  kcont::backend_kind backend = kcont::backend_kind::asio;
  latency_options lat;
  int samples = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "kcont-bench: %s needs a value (try --help)\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--quick") {
      quick = true;
    } else if (a == "--only") {
      only = next();
    } else if (a == "--json") {
      json = next();
    } else if (a == "--plots") {
      plots = next();
    } else if (a == "--backend") {
      std::string b = next();
      if (!kcont::parse_backend(b, backend) || !kcont::backend_available(backend)) {
        std::fprintf(stderr, "kcont-bench: --backend takes asio%s, not %s\n",
                     kcont::backend_available(kcont::backend_kind::libevent) ? " or libevent" : "",
                     b.c_str());
        return 2;
      }
    } else if (a == "--samples") {
      samples = number_in(a, next(), 100, 10'000'000);
    } else if (a == "--observe") {
      observe = true;
    } else if (a == "--observe-stats") {
      observe = true;
      watchdog = false;
    } else if (a == "--gap-us") {
      lat.gap_us = number_in(a, next(), 0, 1'000'000);
    } else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "kcont-bench: unknown option %s (try --help)\n", a.c_str());
      return 2;
    }
  }
  lat.samples = samples > 0 ? samples : (quick ? 3000 : 20000);
  // A bad KCONT_* variable is a usage error, refused before anything runs (the default
  // runtime, which systq and the kcont queues start, reads them).
  try {
    (void)kcont::runtime_config::from_env();
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "kcont-bench: %s\n", e.what());
    return 2;
  }

  std::vector<const area*> run;
  if (only.empty()) {
    for (const auto& a : all_areas()) run.push_back(&a);
  } else {
    auto wanted = split_list(only);
    for (const auto& w : wanted) {
      bool known = false;
      for (const auto& a : all_areas()) known = known || w == a.name;
      if (!known) {
        std::fprintf(stderr, "kcont-bench: unknown area %s (try --help)\n", w.c_str());
        return 2;
      }
    }
    for (const auto& a : all_areas())
      if (std::find(wanted.begin(), wanted.end(), a.name) != wanted.end()) run.push_back(&a);
  }

  // The sender side runs on core 0; a second thread is started once because glibc's mutex
  // skips its atomics until the process has had two threads (the mutex peers would cheat).
  pin_this_thread(0);
  std::thread([] {}).join();
  if (std::thread::hardware_concurrency() < 2)
    std::printf("note: one core only: cross-core figures measure time slicing, not wake-ups\n");
  std::printf("kcont-bench (%s mode) — %s\n", quick ? "quick" : "full", machine_line().c_str());
  std::printf("main runtime: 2 CPUs, %s backend; latency rows: %d samples, %d us apart%s\n",
              kcont::backend_name(backend), lat.samples, lat.gap_us,
              !observe   ? ""
              : watchdog ? "; observed (statistics exported, watchdog at 1 s)"
                         : "; observed (statistics exported, no watchdog)");

  if (observe) {  // the default runtime (systq, the kcont queues) reads these
    ::setenv("KCONT_STATS", "1", 1);
    if (watchdog) ::setenv("KCONT_WATCHDOG_MS", "1000", 1);
  }
  context ctx(quick, backend, lat, observe, observe && watchdog);
  std::vector<std::string> names;
  for (std::size_t i = 0; i < run.size(); ++i) {
    std::string left;
    for (std::size_t j = i + 1; j < run.size(); ++j)
      left += (left.empty() ? "" : ", ") + std::string(run[j]->name);
    ctx.begin_area(static_cast<unsigned>(i + 1), static_cast<unsigned>(run.size()), run[i]->name,
                   left);
    std::printf("\n======== %s: %s ========\n", run[i]->name, run[i]->what);
    run[i]->run(ctx);
    names.push_back(run[i]->name);
  }
  std::fprintf(stderr, "kcont-bench: done in %.1f s\n", ctx.elapsed_s());
  std::printf("\n%zu figures in %.1f s\n", ctx.rep().records().size(), ctx.elapsed_s());

  int rc = 0;
  if (!json.empty()) {
    if (write_json(json, machine_json(ctx, names), ctx.rep()))
      std::printf("wrote %zu records to %s\n", ctx.rep().records().size(), json.c_str());
    else
      rc = 1;
  }
  if (!plots.empty()) std::printf("%s\n", write_plots(plots, ctx.plots()).c_str());
  return rc;
}
