// runtime_config::from_env (issue 16, item 8): every KCONT_* variable it reads takes plain
// decimal digits in its range (or a backend name); anything else throws std::invalid_argument
// naming the variable, never a silently wrapped or ignored value. Unset or empty: the default.
#include <doctest/doctest.h>
#include <kcont/runtime.h>

#include <chrono>
#include <cstdlib>
#include <iterator>
#include <stdexcept>
#include <string>

namespace {

const char* const vars[] = {"KCONT_NCPU",          "KCONT_HZ",
                            "KCONT_PIN",           "KCONT_INITIAL_TICKS",
                            "KCONT_BACKEND",       "KCONT_SPIN_US",
                            "KCONT_BLOCKING_US",   "KCONT_ELASTIC_MAX",
                            "KCONT_MAX_WORKERS",   "KCONT_WORKER_IDLE_MS",
                            "KCONT_BLOCKING_PROBE"};

// Sets the KCONT_* variables for one case and restores them after it.
class env_guard {
 public:
  env_guard() {
    for (std::size_t i = 0; i < std::size(vars); ++i) {
      const char* v = std::getenv(vars[i]);
      had_[i] = v != nullptr;
      if (v) saved_[i] = v;
      ::unsetenv(vars[i]);
    }
  }
  ~env_guard() {
    for (std::size_t i = 0; i < std::size(vars); ++i) {
      if (had_[i])
        ::setenv(vars[i], saved_[i].c_str(), 1);
      else
        ::unsetenv(vars[i]);
    }
  }
  env_guard(const env_guard&) = delete;
  env_guard& operator=(const env_guard&) = delete;

 private:
  bool had_[std::size(vars)] = {};
  std::string saved_[std::size(vars)];
};

// from_env must throw std::invalid_argument whose message names the variable and its range.
void check_refused(const char* var, const char* value, const char* range) {
  env_guard g;
  ::setenv(var, value, 1);
  CAPTURE(var);
  CAPTURE(value);
  std::string what;
  try {
    (void)kcont::runtime_config::from_env();
  } catch (const std::invalid_argument& e) {
    what = e.what();
  }
  CHECK_MESSAGE(!what.empty(), "accepted");
  CHECK_MESSAGE(what.find(std::string(var) + "=") != std::string::npos, what);
  CHECK_MESSAGE(what.find(range) != std::string::npos, what);
}

}  // namespace

TEST_CASE("from_env refuses out-of-range and non-numeric KCONT_* values") {
  // The values the issue names: wrapped to 1 and to 1000 before.
  check_refused("KCONT_NCPU", "4294967297", "0..1024");
  check_refused("KCONT_HZ", "4294968296", "1..100000");
  for (const char* bad : {"-1", "1025", "abc", "4x", " 4", "4 ", "+4", "0x10", "1e2", "4.0", "nan",
                          "inf", "99999999999999999999999"})
    check_refused("KCONT_NCPU", bad, "0..1024");
  for (const char* bad : {"0", "100001", "-1000", "1000hz", "1e3", "18446744073709551616"})
    check_refused("KCONT_HZ", bad, "1..100000");
  for (const char* bad : {"2", "yes", "-1", "01x", "4294967297"})
    check_refused("KCONT_PIN", bad, "0..1");
  for (const char* bad : {"4294967296", "-1", "1e9", "0x7fffffff", "18446744073709551615"})
    check_refused("KCONT_INITIAL_TICKS", bad, "0..4294967295");
  for (const char* bad : {"boost", "ASIO", " asio", "libevent2"})
    check_refused("KCONT_BACKEND", bad, "asio or libevent");
  for (const char* bad : {"10001", "-1", "50us", "1e3", "18446744073709551616"})
    check_refused("KCONT_SPIN_US", bad, "0..10000");
  for (const char* bad : {"1", "19", "10000001", "-1", "1ms", "18446744073709551616"})
    check_refused("KCONT_BLOCKING_US", bad, "..10000000");
  for (const char* bad : {"0", "1025", "-1", "x"})
    check_refused("KCONT_ELASTIC_MAX", bad, "1..1024");
  for (const char* bad : {"0", "65537", "-1", "4096 "})
    check_refused("KCONT_MAX_WORKERS", bad, "1..65536");
  for (const char* bad : {"0", "86400001", "-1", "10s"})
    check_refused("KCONT_WORKER_IDLE_MS", bad, "1..86400000");
  for (const char* bad : {"2", "-1", "yes", "1 "})
    check_refused("KCONT_BLOCKING_PROBE", bad, "0..1");
}

TEST_CASE("from_env: the worker engine's knobs at their limits") {
  env_guard g;
  ::setenv("KCONT_BLOCKING_US", "20", 1);
  ::setenv("KCONT_ELASTIC_MAX", "1024", 1);
  ::setenv("KCONT_MAX_WORKERS", "1", 1);
  ::setenv("KCONT_WORKER_IDLE_MS", "86400000", 1);
  kcont::runtime_config c = kcont::runtime_config::from_env();
  CHECK(c.blocking_threshold == std::chrono::microseconds(20));
  CHECK(c.elastic_max_active == 1024);
  CHECK(c.max_workers == 1);
  CHECK(c.worker_idle_timeout == std::chrono::milliseconds(86400000));
  CHECK_FALSE(c.blocking_probe);  // off by default
  ::setenv("KCONT_BLOCKING_PROBE", "1", 1);
  CHECK(kcont::runtime_config::from_env().blocking_probe);
  ::setenv("KCONT_BLOCKING_US", "0", 1);
  ::setenv("KCONT_WORKER_IDLE_MS", "1", 1);
  c = kcont::runtime_config::from_env();
  CHECK(c.blocking_threshold.count() == 0);
  CHECK(c.worker_idle_timeout == std::chrono::milliseconds(1));
}

TEST_CASE("from_env takes every in-range value; unset or empty keeps the default") {
  {
    env_guard g;
    const kcont::runtime_config d;
    const kcont::runtime_config c = kcont::runtime_config::from_env();
    CHECK(c.ncpu == d.ncpu);
    CHECK(c.hz == d.hz);
    CHECK(c.pin_threads == d.pin_threads);
    CHECK(c.initial_ticks == d.initial_ticks);
    CHECK(c.backend == d.backend);
  }
  {
    env_guard g;
    for (const char* v : vars) ::setenv(v, "", 1);
    const kcont::runtime_config c = kcont::runtime_config::from_env();
    CHECK(c.hz == kcont::runtime_config{}.hz);
  }
  {
    env_guard g;
    ::setenv("KCONT_NCPU", "1024", 1);
    ::setenv("KCONT_HZ", "100000", 1);
    ::setenv("KCONT_PIN", "0", 1);
    ::setenv("KCONT_INITIAL_TICKS", "4294967295", 1);
    ::setenv("KCONT_BACKEND", "asio", 1);
    ::setenv("KCONT_SPIN_US", "10000", 1);
    const kcont::runtime_config c = kcont::runtime_config::from_env();
    CHECK(c.spin_before_sleep == std::chrono::microseconds(10000));
    CHECK(c.ncpu == 1024);
    CHECK(c.hz == 100000);
    CHECK_FALSE(c.pin_threads);
    CHECK(c.initial_ticks == 4294967295u);
  }
  {
    env_guard g;
    ::setenv("KCONT_NCPU", "0", 1);
    ::setenv("KCONT_HZ", "1", 1);
    ::setenv("KCONT_PIN", "1", 1);
    ::setenv("KCONT_INITIAL_TICKS", "0", 1);
    const kcont::runtime_config c = kcont::runtime_config::from_env();
    CHECK(c.ncpu == 0);
    CHECK(c.hz == 1);
    CHECK(c.pin_threads);
    CHECK(c.initial_ticks == 0);
  }
}
