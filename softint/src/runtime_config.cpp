// runtime_config from the environment (KCONT_*: strict whole numbers, refused otherwise), the
// loop backends by name, and the stop report's text.
#include <kcont/runtime.h>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace kcont {

bool parse_backend(const std::string& name, backend_kind& out) {
  if (name == "asio") {
    out = backend_kind::asio;
    return true;
  }
  if (name == "libevent") {
    out = backend_kind::libevent;
    return true;
  }
  return false;
}

bool backend_available(backend_kind kind) {
#ifdef KCONT_HAVE_LIBEVENT
  (void)kind;
  return true;
#else
  return kind == backend_kind::asio;
#endif
}

const char* backend_name(backend_kind kind) {
  return kind == backend_kind::asio ? "asio" : "libevent";
}

namespace {
// A KCONT_* variable that holds a whole number in lo..hi: digits only (no sign, blank,
// fraction or exponent). Unset or empty means `fallback`. Anything else throws
// std::invalid_argument naming the variable, its value and the range: never wrapped, never
// silently ignored.
std::uint64_t env_number(const char* var, std::uint64_t lo, std::uint64_t hi,
                         std::uint64_t fallback, const char* meaning) {
  const char* v = std::getenv(var);
  if (v == nullptr || *v == '\0') return fallback;
  std::uint64_t x = 0;
  bool ok = true;
  for (const char* p = v; *p != '\0' && ok; ++p) {
    const unsigned digit = static_cast<unsigned char>(*p) - static_cast<unsigned>('0');
    ok = digit <= 9 && digit <= hi && x <= (hi - digit) / 10;  // x * 10 + digit <= hi
    x = x * 10 + digit;
  }
  if (!ok || x < lo)
    throw std::invalid_argument(std::string("kcont: ") + var + "=" + v +
                                " is not valid: it takes a whole number in " + std::to_string(lo) +
                                ".." + std::to_string(hi) + meaning);
  return x;
}
}  // namespace

runtime_config runtime_config::from_env() {
  runtime_config c;
  c.ncpu = static_cast<unsigned>(
      env_number("KCONT_NCPU", 0, 1024, c.ncpu, " (0: the host's online CPUs)"));
  c.hz = static_cast<unsigned>(env_number("KCONT_HZ", 1, 100000, c.hz, " (ticks per second)"));
  c.pin_threads = env_number("KCONT_PIN", 0, 1, 1, " (1: pin the loop threads)") != 0;
  c.initial_ticks = static_cast<std::uint32_t>(
      env_number("KCONT_INITIAL_TICKS", 0, UINT32_MAX, 0, " (the tick counter's start)"));
  c.spin_before_sleep = std::chrono::microseconds(env_number(
      "KCONT_SPIN_US", 0, 10000, 0, " (microseconds a CPU loop polls before it sleeps)"));
  c.export_stats =
      env_number("KCONT_STATS", 0, 1, 0, " (1: export statistics for kcont-stat)") != 0;
  c.stuck_handler_threshold = std::chrono::milliseconds(env_number(
      "KCONT_WATCHDOG_MS", 0, 86400000, 0, " (milliseconds before a running handler is stuck)"));
  c.blocking_threshold = std::chrono::microseconds(
      env_number("KCONT_BLOCKING_US", 0, 10000000, c.blocking_threshold.count(),
                 " (microseconds asleep in a task before its worker counts as blocked; 0: "
                 "off, else at least 20)"));
  if (const auto b = c.blocking_threshold.count(); b > 0 && b < 20)
    throw std::invalid_argument("kcont: KCONT_BLOCKING_US=" + std::to_string(b) +
                                " is not valid: it takes 0 (off) or a whole number in "
                                "20..10000000 (microseconds)");
  c.blocking_probe = env_number("KCONT_BLOCKING_PROBE", 0, 1, c.blocking_probe,
                                " (1: an idle-class probe per CPU finds sleepers at once)") != 0;
  c.elastic_max_active =
      static_cast<unsigned>(env_number("KCONT_ELASTIC_MAX", 1, 1024, c.elastic_max_active,
                                       " (workers an elastic queue may have at once)"));
  c.max_workers = static_cast<unsigned>(env_number("KCONT_MAX_WORKERS", 1, 65536, c.max_workers,
                                                   " (worker threads of the runtime at most)"));
  c.worker_idle_timeout = std::chrono::milliseconds(
      env_number("KCONT_WORKER_IDLE_MS", 1, 86400000, c.worker_idle_timeout.count(),
                 " (milliseconds an idle worker waits before it exits)"));
  if (const char* b = std::getenv("KCONT_BACKEND"); b != nullptr && *b != '\0') {
    if (!parse_backend(b, c.backend))
      throw std::invalid_argument(std::string("kcont: KCONT_BACKEND=") + b +
                                  " is not valid: it takes asio or libevent");
  }
  return c;
}

std::string stop_report::summary() const {
  std::string s = drained ? "drained" : "NOT drained within drain_timeout";
  s += "; " + std::to_string(ran_during_drain) + " handler(s) ran during the drain";
  if (attached_unserved != 0)
    s += "; " + std::to_string(attached_unserved) +
         " attached CPU(s) not served by the server's loop within drain_timeout (was the loop "
         "running?)";
  if (left_pending != 0)
    s += "; " + std::to_string(left_pending) +
         " softint instance(s) left pending (parked: they run if the runtime starts again" +
         (attached_unserved != 0 ? std::string(" or on runtime::drain_attached()") : "") + ")";
  return s;
}

}  // namespace kcont
