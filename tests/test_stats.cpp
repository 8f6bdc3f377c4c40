// Issue 21: the statistics API (runtime::cpu_stats, callout_stats, worker_pools), the exported
// segment (runtime_config::export_stats) and kcont-stat(1) reading it from another process.
#include "test_util.h"

#include <doctest/doctest.h>
#include <kcont/callout.h>
#include <kcont/runtime.h>
#include <kcont/softint.h>
#include <kcont/stats_segment.h>
#include <kcont/task.h>
#include <kcont/watchdog.h>
#include <kcont/worker_stats.h>
#include <kcont/workqueue.h>
#include <chrono>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using kcont_test::cpus;
using kcont_test::wait_until;

namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Runs a command; returns its exit status and what it printed on stdout and stderr.
int run(const std::string& cmd, std::string& out) {
  out.clear();
  std::FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const std::string kStat = KCONT_STAT_PATH;

// /dev/shm/kcont.<pid> is a process's first exporting runtime, kcont.<pid>.N its Nth.
unsigned runtime_number(const std::string& path) {
  const std::string pid = "kcont." + std::to_string(::getpid());
  const std::size_t at = path.find(pid);
  REQUIRE(at != std::string::npos);
  const std::string rest = path.substr(at + pid.size());
  return rest.empty() ? 1 : static_cast<unsigned>(std::stoul(rest.substr(1)));
}

}  // namespace

TEST_CASE("cpu_stats counts every softint run and hard interrupt on its CPU and level") {
  kcont::runtime rt(cpus(2));
  std::atomic<int> runs{0};
  auto bump = [](void* a) { static_cast<std::atomic<int>*>(a)->fetch_add(1); };
  void* net = softint_establish_rt(rt, SOFTINT_NET | SOFTINT_MPSAFE, bump, &runs);
  void* hard = softint_establish_rt(rt, SOFTINT_HARDINTR | SOFTINT_MPSAFE, bump, &runs);
  REQUIRE(net != nullptr);
  REQUIRE(hard != nullptr);
  const kcont::cpu_loop_stats before = rt.cpu_stats(1);
  for (int i = 1; i <= 100; ++i) {  // one at a time: a pending softint coalesces
    softint_schedule_cpu(i % 4 == 0 ? hard : net, rt.cpu(1));
    REQUIRE(wait_until([&] { return runs.load() == i; }));
  }
  const kcont::cpu_loop_stats after = rt.cpu_stats(1);
  CHECK(after.softint_net - before.softint_net == 75);
  CHECK(after.hard_interrupts - before.hard_interrupts == 25);
  CHECK(after.softint_serial == before.softint_serial);
  CHECK(after.awake_ns > before.awake_ns);
  CHECK(rt.cpu_stats(0).softint_net == 0);
  CHECK(rt.stats().handlers_run >= 100);
  CHECK_THROWS_AS(rt.cpu_stats(2), std::out_of_range);
  softint_disestablish(net);
  softint_disestablish(hard);
}

TEST_CASE("callout_stats: pending, armed, fired and cancelled per CPU") {
  kcont::runtime rt(cpus(2));
  CHECK(kcont::callout_stats(rt, 0).armed == 0);  // never armed: zeros, nothing made
  CHECK_THROWS_AS(kcont::callout_stats(rt, 2), std::out_of_range);
  constexpr int n = 40;
  std::atomic<int> fired{0};
  std::vector<std::unique_ptr<kcont::callout>> cs;
  for (int i = 0; i < n; ++i) {
    cs.push_back(std::make_unique<kcont::callout>(rt, [&] { fired.fetch_add(1); }));
    cs.back()->bind(rt.cpu(1));
    cs.back()->schedule(std::chrono::hours(1));
  }
  kcont::callout_cpu_stats s = kcont::callout_stats(rt, 1);
  CHECK(s.pending == n);
  CHECK(s.armed == n);
  for (int i = 0; i < n / 2; ++i) CHECK_FALSE(cs[static_cast<std::size_t>(i)]->stop());
  s = kcont::callout_stats(rt, 1);
  CHECK(s.pending == n / 2);
  CHECK(s.cancelled == n / 2);
  for (int i = n / 2; i < n; ++i)
    cs[static_cast<std::size_t>(i)]->schedule(std::chrono::milliseconds(2));
  REQUIRE(wait_until([&] { return fired.load() == n / 2; }));
  REQUIRE(wait_until([&] { return kcont::callout_stats(rt, 1).fired == n / 2; }));
  s = kcont::callout_stats(rt, 1);
  CHECK(s.pending == 0);
  CHECK(s.armed == n + n / 2);  // a re-arm counts
  CHECK(s.cancelled == n / 2);  // a re-arm of a pending callout is not a cancel
  CHECK(kcont::callout_stats(rt, 0).armed == 0);
}

TEST_CASE("worker_pools: empty until thread work, then the pool that ran it") {
  kcont::runtime rt(cpus(2));
  CHECK(kcont::worker_pools(rt).empty());  // reading does not start the engine
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("stats-test", 1, IPL_NONE, 0);
  REQUIRE(tq != nullptr);
  std::atomic<int> ran{0};
  task t;
  task_set(
      &t, [](void* a) { static_cast<std::atomic<int>*>(a)->fetch_add(1); }, &ran);
  task_add(tq, &t);
  REQUIRE(wait_until([&] { return ran.load() == 1; }));
  taskq_destroy(tq);
  const auto pools = kcont::worker_pools(rt);
  REQUIRE(pools.size() == 2 * 4);
  std::uint64_t created = 0;
  for (std::size_t i = 0; i < pools.size(); ++i) {
    CHECK(pools[i].cpu == i / 4);
    CHECK(pools[i].priority == i % 4);
    CHECK(pools[i].idle <= pools[i].workers);
    created += pools[i].created;
  }
  CHECK(created >= 1);
}

TEST_CASE("worker_pools: a worker inside a blocking point counts as blocked until it leaves") {
  kcont::runtime rt(cpus(2));
  kcont::runtime_scope scope(rt);
  taskq* tq = taskq_create("stats-blocked", 1, IPL_NONE, TASKQ_MPSAFE);
  REQUIRE(tq != nullptr);
  struct shared {
    std::atomic<bool> inside{false}, leave{false};
  } sh;
  task t;
  task_set(
      &t,
      [](void* a) {
        auto* s = static_cast<shared*>(a);
        kcont::blocking_scope sleeping;  // what kpause and a contended kmutex_t do
        s->inside = true;
        while (!s->leave.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      },
      &sh);
  REQUIRE(task_add(tq, &t) == 1);
  REQUIRE(wait_until([&] { return sh.inside.load(); }));
  auto blocked = [&] {
    unsigned n = 0;
    for (const auto& p : kcont::worker_pools(rt)) n += p.blocked;
    return n;
  };
  CHECK(blocked() == 1);
  sh.leave = true;
  taskq_barrier(tq);
  CHECK(blocked() == 0);
  taskq_destroy(tq);
}

TEST_CASE("export_stats: the segment appears, kcont-stat reads it live, and it goes away") {
  std::string path;
  {
    kcont::runtime_config c = cpus(2);
    c.export_stats = true;
    kcont::runtime rt(c);
    path = rt.stats_segment_path();
    REQUIRE(path == "/dev/shm/kcont." + std::to_string(::getpid()));
    CHECK(exists(path));
    std::atomic<int> runs{0};
    void* net = softint_establish_rt(
        rt, SOFTINT_NET | SOFTINT_MPSAFE,
        [](void* a) { static_cast<std::atomic<int>*>(a)->fetch_add(1); }, &runs);
    for (int i = 1; i <= 30; ++i) {
      softint_schedule_cpu(net, rt.cpu(1));
      REQUIRE(wait_until([&] { return runs.load() == i; }));
    }
    kcont::callout co(rt, [] {});
    co.bind(rt.cpu(0));
    co.schedule(std::chrono::hours(2));

    std::string out;
    REQUIRE(run(kStat + " --once --json " + std::to_string(::getpid()), out) == 0);
    CHECK(out.find("\"ncpu\":2") != std::string::npos);
    CHECK(out.find("{\"cpu\":1,") != std::string::npos);
    CHECK(out.find("\"softint_net\":30") != std::string::npos);
    CHECK(out.find("\"callouts_pending\":1,\"callouts_armed\":1") != std::string::npos);
    CHECK(out.find("\"handler_exceptions\":" + std::to_string(kcont::handler_exceptions()) +
                   ",\"stuck_handlers\":" +
                   std::to_string(kcont::stuck_handler_watchdog_stats().reported)) !=
          std::string::npos);
    INFO(out);

    REQUIRE(run(kStat + " --once " + std::to_string(::getpid()), out) == 0);
    CHECK(out.find("2 CPUs, hz " + std::to_string(rt.hz())) != std::string::npos);
    CHECK(out.find("worker pools") != std::string::npos);

    // Two live snapshots, rates per second.
    REQUIRE(run(kStat + " --interval 0.1 --count 2 " + std::to_string(::getpid()), out) == 0);
    CHECK(out.find("rates per second") != std::string::npos);

    // A second exporting runtime gets a segment of its own.
    kcont::runtime rt2(c);
    CHECK(rt2.stats_segment_path() == path + ".2");
    REQUIRE(run(kStat + " --once --runtime 2 --json " + std::to_string(::getpid()), out) == 0);
    CHECK(out.find("\"softint_net\":0") != std::string::npos);
    co.halt();
    softint_disestablish(net);
  }
  CHECK_FALSE(exists(path));
  CHECK_FALSE(exists(path + ".2"));
}

TEST_CASE("export_stats: a dead process's segment is swept by the next exporter") {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  REQUIRE(child > 0);
  int st = 0;
  REQUIRE(::waitpid(child, &st, 0) == child);
  const std::string stale = "/kcont." + std::to_string(child);
  const int fd = ::shm_open(stale.c_str(), O_CREAT | O_RDWR, 0600);
  REQUIRE(fd >= 0);
  ::close(fd);
  REQUIRE(exists("/dev/shm" + stale));
  kcont::runtime_config c = cpus(1);
  c.export_stats = true;
  kcont::runtime rt(c);
  CHECK_FALSE(exists("/dev/shm" + stale));
}

TEST_CASE("kcont-stat refuses what it cannot read, with a reason") {
  std::string out;
  CHECK(run(kStat, out) == 2);
  CHECK(out.find("which process") != std::string::npos);
  for (const char* bad :
       {"0", "-5", "12x", "99999999999", "--interval 0 1", "--interval nan 1", "--interval 1e9 1",
        "--count 0 1", "--count -1 1", "--runtime 0 1", "--bogus 1", "--queues -1 1",
        "--queues 100001 1", "--queues x 1", "--queues"}) {
    CAPTURE(bad);
    CHECK(run(kStat + " " + bad, out) == 2);
  }
  CHECK(run(kStat + " --help", out) == 0);

  // A live process without statistics (this one, no exporting runtime now).
  CHECK(run(kStat + " --once " + std::to_string(::getpid()), out) == 1);
  CHECK(out.find("exports no kcont statistics") != std::string::npos);
  CHECK(out.find("KCONT_STATS=1") != std::string::npos);

  // A process that is gone.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int st = 0;
  REQUIRE(::waitpid(child, &st, 0) == child);
  CHECK(run(kStat + " --once " + std::to_string(child), out) == 1);
  CHECK(out.find("no process") != std::string::npos);

  // A segment of another layout version, and one too short.
  const std::string name = "/kcont." + std::to_string(::getpid()) + ".7";
  int fd = ::shm_open(name.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
  REQUIRE(fd >= 0);
  kcont::stats_segment::header h{};
  std::memcpy(h.magic, kcont::stats_segment::kMagic, sizeof h.magic);
  h.version = 99;
  REQUIRE(::write(fd, &h, sizeof h) == static_cast<ssize_t>(sizeof h));
  CHECK(run(kStat + " --once --runtime 7 " + std::to_string(::getpid()), out) == 1);
  CHECK(out.find("layout version 99") != std::string::npos);
  // Version 1 (before the queue records): refused as well, naming both versions.
  h.version = 1;
  REQUIRE(::pwrite(fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h));
  CHECK(run(kStat + " --once --runtime 7 " + std::to_string(::getpid()), out) == 1);
  CHECK(out.find("layout version 1; this kcont-stat reads version 2") != std::string::npos);
  // The right version, but histograms of another shape.
  h.version = kcont::stats_segment::kVersion;
  h.header_bytes = sizeof h;
  h.cpu_record_bytes = sizeof(kcont::stats_segment::cpu_record);
  h.pool_record_bytes = sizeof(kcont::stats_segment::pool_record);
  h.queue_record_bytes = sizeof(kcont::stats_segment::queue_record);
  h.histogram_buckets = 7;
  h.ncpu = 1;
  h.npools = kcont::stats_segment::kPriorities;
  REQUIRE(::pwrite(fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h));
  REQUIRE(::ftruncate(fd, static_cast<off_t>(kcont::stats_segment::segment_bytes(1))) == 0);
  CHECK(run(kStat + " --once --runtime 7 " + std::to_string(::getpid()), out) == 1);
  CHECK(out.find("inconsistent header") != std::string::npos);
  REQUIRE(::ftruncate(fd, 8) == 0);
  CHECK(run(kStat + " --once --runtime 7 " + std::to_string(::getpid()), out) == 1);
  CHECK(out.find("too short") != std::string::npos);
  ::close(fd);
  ::shm_unlink(name.c_str());
}

TEST_CASE("KCONT_STATS is 0 or 1") {
  ::setenv("KCONT_STATS", "1", 1);
  CHECK(kcont::runtime_config::from_env().export_stats);
  ::setenv("KCONT_STATS", "2", 1);
  CHECK_THROWS_AS(kcont::runtime_config::from_env(), std::invalid_argument);
  ::setenv("KCONT_STATS", "yes", 1);
  CHECK_THROWS_AS(kcont::runtime_config::from_env(), std::invalid_argument);
  ::unsetenv("KCONT_STATS");
  CHECK_FALSE(kcont::runtime_config::from_env().export_stats);
}

TEST_CASE("kcont-stat lists a process's 1000 queues; the segment grows to hold them") {
  kcont::runtime_config cfg = cpus(2);
  cfg.export_stats = true;
  kcont::runtime rt(cfg);
  kcont::runtime_scope scope(rt);
  const std::string path = rt.stats_segment_path();
  REQUIRE(exists(path));
  struct stat before {};
  REQUIRE(::stat(path.c_str(), &before) == 0);
  constexpr int kQueues = 1000;
  std::vector<std::string> names(kQueues);
  std::vector<taskq*> tqs(kQueues);
  for (int i = 0; i < kQueues; ++i) {
    names[i] = "stat-q" + std::to_string(i);
    tqs[i] = taskq_create(names[i].c_str(), 1, 0, TASKQ_MPSAFE);
    REQUIRE(tqs[i] != nullptr);
  }
  // Queue 7 runs 33 tasks, so that its record can be told apart.
  std::atomic<int> ran{0};
  task t;
  task_set(
      &t, [](void* a) { static_cast<std::atomic<int>*>(a)->fetch_add(1); }, &ran);
  for (int i = 0; i < 33; ++i) {
    REQUIRE(task_add(tqs[7], &t) == 1);
    taskq_barrier(tqs[7]);
  }
  // This process's runtimes before this one exported too: which one is it?
  const std::string who =
      " --runtime " + std::to_string(runtime_number(path)) + " " + std::to_string(::getpid());
  std::string out;
  for (int i = 0; i < 3; ++i) {  // the first read also grows the segment
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(run(kStat + " --once --json" + who, out) == 0);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("kcont-stat --once --json of 2 CPUs and " << kQueues << "+ queues: " << ms
                                                      << " ms (process start included)");
  }
  std::size_t listed = 0;
  for (std::size_t at = 0; (at = out.find("\"name\":\"stat-q", at)) != std::string::npos; ++at)
    ++listed;
  CHECK(listed == kQueues);
  CHECK(out.find("\"name\":\"stat-q7\",\"cpu\":-1,\"depth\":0,\"max_depth\":1,\"enqueued\":33,"
                 "\"runs\":33,\"timed\":true") != std::string::npos);
  struct stat after {};
  REQUIRE(::stat(path.c_str(), &after) == 0);
  CHECK(after.st_size > before.st_size);
  CHECK(static_cast<std::uint64_t>(after.st_size) >=
        kcont::stats_segment::segment_bytes(2, kQueues));
  // The text view shows the top N only.
  REQUIRE(run(kStat + " --once --queues 3" + who, out) == 0);
  CHECK(out.find("by wait p99 since made, top 3") != std::string::npos);
  for (taskq* tq : tqs) taskq_destroy(tq);
  // Queues gone: the next snapshot lists none of them (the segment keeps its size).
  REQUIRE(run(kStat + " --once --json" + who, out) == 0);
  CHECK(out.find("stat-q") == std::string::npos);
}
