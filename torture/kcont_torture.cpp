// kcont-torture: N threads issue a random mix of every kcont API with exact accounting; at the
// end everything is stopped and drained and the books of every object must balance
// (scheduled == ran + cancelled), in the promised order where one is promised. Exit status 0
// when no violation was found, 1 otherwise, 2 for bad options. See man/kcont-torture.1 and
// docs/reliability.md.
#include <kcont/runtime.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "torture.h"

namespace {

// The accepted ranges (checked by parse(); documented in --help and kcont-torture.1).
constexpr std::uint64_t ops_max = 1'000'000'000'000;  // 10^12: days at millions per second
constexpr double seconds_max = 604800;                // one week
constexpr unsigned threads_max = 256;
constexpr unsigned ncpu_max = 64;

struct options {
  std::uint64_t ops = 1'000'000;
  double seconds = 0;  // > 0: stop after this long (or at ops, whichever comes first)
  bool ops_given = false;
  std::uint64_t seed = 0;
  bool seed_given = false;
  unsigned threads = 4;
  unsigned ncpu = 2;
  std::string backend = "asio";
};

void usage(FILE* f) {
  std::fprintf(
      f,
      "usage: kcont-torture [options]\n"
      "  N threads issue a random mix of every kcont API (softint, callout, task(9),\n"
      "  taskctx, workqueue(9), kcont) with exact accounting; at the end every object\n"
      "  must balance: scheduled == ran + cancelled, in the promised order.\n"
      "  --ops N          total operations, 1..10^12 (default 1000000; with --seconds only\n"
      "                   if given); a whole number, 1e8 allowed\n"
      "  --seconds S      stop after S seconds, above 0 and up to 604800 (may be fractional)\n"
      "  --seed S         seed of the per-thread operation choice, 0..2^64-1 (default: from\n"
      "                   the clock; printed, so a run can be repeated)\n"
      "  --threads N      torture threads, 1..256 (default 4)\n"
      "  --ncpu N         virtual CPUs of the runtime, 1..64 (default 2)\n"
      "  --backend B      loop backend: asio (default) or libevent\n"
      "  --help           this text\n"
      "exit status: 0 no violation, 1 violation(s), 2 bad usage (also a bad KCONT_*\n"
      "environment variable)\n");
}

// A whole number in lo..hi. Plain digits always; with `exponent`, also a decimal mantissa and
// an exponent that make a whole number (1e8, 2.5e6). No sign, blank, hex, inf or nan.
bool parse_whole(const char* s, std::uint64_t lo, std::uint64_t hi, bool exponent,
                 std::uint64_t& out) {
  if (s == nullptr || *s == '\0') return false;
  bool digits_only = true;
  for (const char* p = s; *p != '\0'; ++p) {
    const bool digit = *p >= '0' && *p <= '9';
    if (!digit && !(exponent && (*p == '.' || *p == 'e' || *p == 'E'))) return false;
    digits_only = digits_only && digit;
  }
  if (digits_only) {
    std::uint64_t x = 0;
    for (const char* p = s; *p != '\0'; ++p) {
      const unsigned d = static_cast<unsigned>(*p - '0');
      if (x > (UINT64_MAX - d) / 10) return false;  // would overflow
      x = x * 10 + d;
    }
    if (x < lo || x > hi) return false;
    out = x;
    return true;
  }
  // Mantissa and exponent: only for ranges a double holds exactly (hi <= 2^53).
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(s, &end);
  if (*end != '\0' || errno != 0 || !std::isfinite(d) || d != std::floor(d) ||
      d < static_cast<double>(lo) || d > static_cast<double>(hi))
    return false;
  out = static_cast<std::uint64_t>(d);
  return true;
}

// A duration in seconds: a decimal number (exponent allowed) in (0, seconds_max].
bool parse_seconds(const char* s, double& out) {
  if (s == nullptr || *s == '\0') return false;
  for (const char* p = s; *p != '\0'; ++p)
    if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '-' ||
          *p == '+'))
      return false;  // no blank, hex, inf or nan
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(s, &end);
  if (*end != '\0' || errno != 0 || !(d > 0) || !(d <= seconds_max)) return false;
  out = d;
  return true;
}

int parse(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    std::uint64_t n = 0;
    // One line: the option, what it was given and what it takes.
    auto need = [&](bool ok, const char* range) {
      if (!ok)
        std::fprintf(stderr, "kcont-torture: %s %s%s%s: takes %s\n", a.c_str(),
                     v ? "'" : "(no value", v ? v : ")", v ? "'" : "", range);
      return ok;
    };
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else if (a == "--ops") {
      if (!need(parse_whole(v, 1, ops_max, true, n),
                "a whole number of operations in 1..1000000000000 (1e12)"))
        return 2;
      o.ops = n;
      o.ops_given = true;
    } else if (a == "--seconds") {
      if (!need(parse_seconds(v, o.seconds), "a number of seconds in (0, 604800]")) return 2;
    } else if (a == "--seed") {
      if (!need(parse_whole(v, 0, UINT64_MAX, false, n),
                "a whole number in 0..18446744073709551615 (digits only)"))
        return 2;
      o.seed = n;
      o.seed_given = true;
    } else if (a == "--threads") {
      if (!need(parse_whole(v, 1, threads_max, false, n), "a whole number in 1..256")) return 2;
      o.threads = static_cast<unsigned>(n);
    } else if (a == "--ncpu") {
      if (!need(parse_whole(v, 1, ncpu_max, false, n), "a whole number in 1..64")) return 2;
      o.ncpu = static_cast<unsigned>(n);
    } else if (a == "--backend") {
      kcont::backend_kind k;
      if (!need(v != nullptr && kcont::parse_backend(v, k), "asio or libevent")) return 2;
      if (!kcont::backend_available(k)) {
        std::fprintf(stderr, "kcont-torture: --backend %s: not built in; takes asio\n", v);
        return 2;
      }
      o.backend = v;
    } else {
      std::fprintf(stderr, "kcont-torture: unknown option %s\n", a.c_str());
      usage(stderr);
      return 2;
    }
    ++i;
  }
  if (o.seconds > 0 && !o.ops_given) o.ops = UINT64_MAX;
  return -1;
}

constexpr int stall_seconds = 30;

// No progress: most likely a deadlock. Abort, so a core dump or a debugger shows where.
[[noreturn]] void stall(const char* phase) {
  std::fprintf(stderr,
               "VIOLATION: no progress in the %s phase for %d s (deadlock?), seed %" PRIu64
               "; aborting\n",
               phase, stall_seconds, torture::g_seed);
  std::abort();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace torture;
  using clk = std::chrono::steady_clock;
  options o;
  if (int rc = parse(argc, argv, o); rc >= 0) return rc;
  if (!o.seed_given)
    o.seed = static_cast<std::uint64_t>(clk::now().time_since_epoch().count()) % 1000000007u;
  g_seed = o.seed;
  g_config.ncpu = o.ncpu;
  g_config.threads = o.threads;
  // Everything (systq, systqmp and the predefined kcont queues included) runs on the default
  // runtime, configured here before its first use.
  setenv("KCONT_NCPU", std::to_string(o.ncpu).c_str(), 1);
  setenv("KCONT_BACKEND", o.backend.c_str(), 1);
  // A bad KCONT_HZ, KCONT_PIN or KCONT_INITIAL_TICKS is a usage error like a bad option.
  kcont::runtime* rtp = nullptr;
  try {
    rtp = &kcont::runtime::default_runtime();
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "kcont-torture: %s\n", e.what());
    return 2;
  }
  kcont::runtime& rt = *rtp;
  std::printf("kcont-torture: seed %" PRIu64 ", %u threads, %u CPUs, backend %s, ", o.seed,
              o.threads, rt.ncpu(), o.backend.c_str());
  if (o.ops != UINT64_MAX) std::printf("%" PRIu64 " ops", o.ops);
  if (o.seconds > 0) std::printf("%s%.3g s", o.ops != UINT64_MAX ? ", at most " : "", o.seconds);
  std::printf("\n");
  std::fflush(stdout);

  std::unique_ptr<family> fams[] = {make_softint_family(), make_callout_family(),
                                    make_task_family(), make_workqueue_family(),
                                    make_kcont_family()};
  constexpr unsigned nfam = 5;
  // Weights: the cheap, racy operations most; every family gets a steady share.
  const unsigned weight[nfam] = {20, 20, 20, 15, 25};

  std::atomic<std::uint64_t> issued{0};
  const auto start = clk::now();
  const auto deadline = o.seconds > 0 ? start + std::chrono::duration_cast<clk::duration>(
                                                    std::chrono::duration<double>(o.seconds))
                                      : clk::time_point::max();
  std::vector<thread_ctx> ctxs;
  for (unsigned i = 0; i < o.threads; ++i)
    ctxs.push_back(thread_ctx{i, rng(o.seed * 0x100000001b3ull + i + 1), {}, 0});
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < o.threads; ++i) {
    threads.emplace_back([&, i] {
      thread_ctx& t = ctxs[i];
      for (;;) {
        // Claim a batch of operations, so the shared counter is not the bottleneck.
        const std::uint64_t batch = 64;
        const std::uint64_t first = issued.fetch_add(batch, std::memory_order_relaxed);
        if (first >= o.ops || done.load(std::memory_order_relaxed)) break;
        const std::uint64_t n = std::min<std::uint64_t>(batch, o.ops - first);
        for (std::uint64_t k = 0; k < n; ++k) {
          unsigned w = t.r.below(100), f = 0;
          while (w >= weight[f]) w -= weight[f++];
          fams[f]->op(t);
        }
        t.executed += n;
      }
    });
  }
  // Progress once a second; the time limit.
  std::uint64_t last = 0;
  auto next_report = start + std::chrono::seconds(1);
  std::uint64_t seen_progress = 0;
  auto last_progress = start;
  for (;;) {
    const std::uint64_t now_issued = issued.load();
    if (now_issued != seen_progress) {
      seen_progress = now_issued;
      last_progress = clk::now();
    } else if (clk::now() - last_progress > std::chrono::seconds(stall_seconds)) {
      stall("operations");
    }
    bool all_done = now_issued >= o.ops;
    if (clk::now() >= deadline) {
      done = true;
      all_done = true;
    }
    if (all_done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (clk::now() >= next_report) {
      const std::uint64_t now_ops = std::min(issued.load(), o.ops);
      const double secs = std::chrono::duration<double>(clk::now() - start).count();
      std::printf("  %6.1f s  %12" PRIu64 " ops  %10.0f ops/s  violations %" PRIu64 "\n", secs,
                  now_ops, static_cast<double>(now_ops - last), violation_count());
      std::fflush(stdout);
      last = now_ops;
      next_report += std::chrono::seconds(1);
    }
  }
  for (auto& t : threads) t.join();
  const double op_secs = std::chrono::duration<double>(clk::now() - start).count();

  // Stop: handlers stop re-arming, then each family cancels or drains what is left.
  g_stopping = true;
  const auto drain_start = clk::now();
  std::atomic<bool> drained{false};
  std::thread watchdog([&] {  // a drain that never ends is a finding too
    while (!drained.load()) {
      if (clk::now() - drain_start > std::chrono::seconds(4 * stall_seconds)) stall("drain");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  for (auto& f : fams) f->finish();
  drained = true;
  watchdog.join();
  const double drain_secs = std::chrono::duration<double>(clk::now() - drain_start).count();

  // Operation table.
  op_counts total;
  for (auto& t : ctxs)
    for (unsigned k = 0; k < op_count; ++k) total.n[k] += t.ops.n[k];
  std::uint64_t all = 0, calls = 0, handler_calls = 0;
  for (auto& t : ctxs) all += t.executed;
  for (unsigned k = 0; k < op_count; ++k) {
    calls += total.n[k];
    handler_calls += g_handler_ops[k].load();
  }
  std::printf("\n%" PRIu64 " operations in %.2f s: %.0f ops/s (drain %.2f s); %" PRIu64
              " API calls from the threads, %" PRIu64 " from handlers\n\n",
              all, op_secs, static_cast<double>(all) / op_secs, drain_secs, calls, handler_calls);
  std::printf("%-10s %-28s %14s %14s\n", "api", "operation", "threads", "handlers");
  for (unsigned k = 0; k < op_count; ++k)
    std::printf("%-10s %-28s %14" PRIu64 " %14" PRIu64 "\n", op_api(static_cast<op>(k)),
                op_name(static_cast<op>(k)), total.n[k], g_handler_ops[k].load());

  std::printf("\n%-13s %14s %14s %14s %12s %12s  %s\n", "books", "scheduled", "ran", "cancelled",
              "coalesced", "in-order", "balance");
  for (auto& f : fams) {
    for (const books& b : f->check()) {
      for (const auto& u : b.unbalanced) violation(b.api.c_str(), u.object, u.what);
      const bool ok = b.scheduled == b.ran + b.cancelled;
      std::printf("%-13s %14" PRIu64 " %14" PRIu64 " %14" PRIu64 " %12" PRIu64 " %12" PRIu64
                  "  %s\n",
                  b.api.c_str(), b.scheduled, b.ran, b.cancelled, b.coalesced, b.order_checks,
                  ok ? "ok" : "MISMATCH");
      if (!ok) violation(b.api.c_str(), 0, "totals do not balance");
      std::printf("%-13s   (%s)\n", "", b.note.c_str());
    }
  }
  for (auto& f : fams) f.reset();
  // Every exception a handler threw on purpose was reported once by kcont, and no other.
  const std::uint64_t thrown = g_thrown.load(), reported = kcont::handler_exceptions();
  std::printf("%-13s %14" PRIu64 " thrown by handlers, %" PRIu64 " reported by kcont  %s\n",
              "exceptions", thrown, reported, thrown == reported ? "ok" : "MISMATCH");
  if (thrown != reported)
    violation("exceptions", 0,
              "handlers threw " + std::to_string(thrown) + ", kcont reported " +
                  std::to_string(reported));
  const std::uint64_t v = violation_count();
  std::printf("\n%s: %" PRIu64 " violation(s), seed %" PRIu64 "\n", v == 0 ? "PASS" : "FAIL", v,
              o.seed);
  return v == 0 ? 0 : 1;
}
