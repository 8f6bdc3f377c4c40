// The workqueue area's blocking rows (issue 19): a mix where half the items block 1 ms where
// kcont cannot see it (read(2) on a timerfd, or sleep_for) and half compute 50 us, spread over
// both CPUs' queues, on
//   - kcont fixed: the same WQ_PERCPU queue without WQ_ELASTIC (one item at a time per CPU);
//   - kcont WQ_ELASTIC with the sampled blocking watch (defaults: threshold 1 ms);
//   - kcont WQ_ELASTIC with the idle probe as well (runtime_config::blocking_probe);
//   - kcont WQ_ELASTIC blocking in kpause (a kcont blocking point: declared, no detection);
//   - a fixed thread pool as folly's CPUThreadPoolExecutor or a oneTBB arena runs it (N threads
//     on one mutex+condvar queue, unpinned), of 2 threads (one per CPU, as kcont fixed) and of
//     32 (as many as kcont's elastic queue may use on 2 CPUs: 16 per CPU).
// Items/s (median of the repetitions), and the time a blocked item held its queue back (from
// its entering the block to the start of the next item of its CPU's queue: what detection
// costs a user), p50/p99. Then the same queues on non-blocking work (all items compute), the
// overhead of the watch and the probe, and the wake-ups per second of an idle runtime that
// has just run elastic work.
#include <kcont/runtime.h>
#include <kcont/worker_stats.h>
#include <kcont/workqueue.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <dirent.h>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kcont_bench.h"

namespace kcont_bench {

namespace {

enum class block_kind { read_timerfd, sleep_for, kpause, none };

// Blocks about 1 ms in read(2): a timerfd of this thread's, armed for 1 ms.
void block_in_read() {
  struct fd_holder {
    int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    ~fd_holder() { ::close(fd); }
  };
  thread_local fd_holder t;
  itimerspec its{};
  its.it_value.tv_nsec = 1'000'000;
  ::timerfd_settime(t.fd, 0, &its, nullptr);
  std::uint64_t expirations;
  [[maybe_unused]] ssize_t n = ::read(t.fd, &expirations, sizeof expirations);
}

struct mix_item {
  work wk;
  block_kind how = block_kind::none;
  std::int64_t block_ns = 0, start_ns = 0;  // when it entered its block; when it started
};

void run_mix_item(mix_item& it) {
  it.start_ns = now_ns();
  switch (it.how) {
    case block_kind::read_timerfd:
      it.block_ns = now_ns();
      block_in_read();
      break;
    case block_kind::sleep_for:
      it.block_ns = now_ns();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      break;
    case block_kind::kpause:
      it.block_ns = now_ns();
      kpause("bench", false, 1, nullptr);
      break;
    case block_kind::none:
      spin_for(50'000);
      break;
  }
}

// Items i = 0, 1, ...: CPU i % 2; blocking when (i / 2) % 2 == 0 (each CPU's queue alternates
// blocking and computing items), unless `how` is none.
std::vector<mix_item> make_mix(int n, block_kind how) {
  std::vector<mix_item> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    v[static_cast<std::size_t>(i)].how = (i / 2) % 2 == 0 ? how : block_kind::none;
  return v;
}

// The held-back times (ns) of a run: for each blocking item, the next item of its CPU's queue
// (i + 2) started this long after it blocked.
void add_held(const std::vector<mix_item>& v, std::vector<double>& held) {
  for (std::size_t i = 0; i + 2 < v.size(); ++i)
    if (v[i].how != block_kind::none)
      held.push_back(static_cast<double>(v[i + 2].start_ns - v[i].block_ns));
}

// The engine's own books on its detections (<kcont/worker_stats.h>), summed over the pools.
struct detections {
  std::uint64_t count = 0, ns_total = 0, ns_max = 0;
};
detections detections_of(kcont::runtime& rt) {
  detections d;
  for (const auto& p : kcont::worker_pools(rt)) {
    d.count += p.blocked_detected;
    d.ns_total += p.detect_ns_total;
    d.ns_max = std::max(d.ns_max, p.detect_ns_max);
  }
  return d;
}

// One run of the mix on a kcont workqueue of rt; items/s.
double kcont_mix(kcont::runtime& rt, int flags, std::vector<mix_item>& v) {
  kcont::runtime_scope scope(rt);
  workqueue* wq = nullptr;
  workqueue_create(
      &wq, "blocking mix", [](work* wk, void*) { run_mix_item(*reinterpret_cast<mix_item*>(wk)); },
      nullptr, PRI_MEDHIGH, 0, flags);
  const std::int64_t t0 = now_ns();
  for (std::size_t i = 0; i < v.size(); ++i) workqueue_enqueue(wq, &v[i].wk, rt.cpu(i % 2));
  workqueue_destroy(wq);  // returns when every item has run
  return static_cast<double>(v.size()) / (static_cast<double>(now_ns() - t0) / 1e9);
}

// A fixed pool as folly's CPUThreadPoolExecutor or TBB's arena: N threads, one queue.
class fixed_pool {
 public:
  explicit fixed_pool(unsigned n) {
    unpin_this_thread();  // its threads run anywhere, as such pools' threads do
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
    pin_this_thread(0);
  }
  ~fixed_pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void add(mix_item* it) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      queue_.push_back(it);
      ++outstanding_;
    }
    cv_.notify_one();
  }
  void wait_idle() {
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return outstanding_ == 0; });
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      mix_item* it = queue_.front();
      queue_.pop_front();
      lk.unlock();
      run_mix_item(*it);
      lk.lock();
      if (--outstanding_ == 0) done_cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<mix_item*> queue_;
  std::size_t outstanding_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

double pool_mix(fixed_pool& pool, std::vector<mix_item>& v) {
  const std::int64_t t0 = now_ns();
  for (auto& it : v) pool.add(&it);
  pool.wait_idle();
  return static_cast<double>(v.size()) / (static_cast<double>(now_ns() - t0) / 1e9);
}

// Voluntary and involuntary context switches of every thread of this process but the caller.
std::uint64_t others_switches() {
  std::uint64_t sum = 0;
  const std::string self = std::to_string(::gettid());
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.' || self == e->d_name) continue;
      std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/status");
      for (std::string line; std::getline(f, line);)
        if (line.rfind("voluntary_ctxt_switches:", 0) == 0 ||
            line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
          sum += std::stoull(line.substr(line.find(':') + 1));
    }
    ::closedir(d);
  }
  return sum;
}

// A kcont variant of the mix: its runtime's configuration and the queue's flags.
struct kcont_variant {
  const char* key;    // record name part
  const char* label;  // row label
  bool probe;
  int flags;
  block_kind how;  // the blocking items' block
};

}  // namespace

void workqueue_blocking_rows(context& ctx) {
  const int items = ctx.pick(400, 2000);
  const int reps = ctx.pick(3, 5);
  constexpr int elastic = WQ_MPSAFE | WQ_PERCPU | WQ_ELASTIC;
  constexpr int fixed = WQ_MPSAFE | WQ_PERCPU;
  const kcont_variant variants[] = {
      {"kcont_fixed", "kcont fixed (no WQ_ELASTIC), read()", false, fixed,
       block_kind::read_timerfd},
      {"elastic_watch", "WQ_ELASTIC, sampled watch, read()", false, elastic,
       block_kind::read_timerfd},
      {"elastic_probe", "WQ_ELASTIC + idle probe, read()", true, elastic, block_kind::read_timerfd},
      {"elastic_watch_sleep", "WQ_ELASTIC, sampled watch, sleep_for", false, elastic,
       block_kind::sleep_for},
      {"elastic_probe_sleep", "WQ_ELASTIC + idle probe, sleep_for", true, elastic,
       block_kind::sleep_for},
      {"elastic_kpause", "WQ_ELASTIC, kpause (declared)", false, elastic, block_kind::kpause},
  };
  struct result {
    std::vector<double> rate, held;
    std::uint64_t detected = 0, detect_ns = 0;  // the engine's count, and its time in task
  };
  std::vector<result> kres(std::size(variants));
  std::vector<result> pres(2);
  const unsigned pool_sizes[] = {2, 32};
  // One runtime per probe setting, made once (its pools warm up in the first repetition).
  kcont::runtime_config plain_cfg = ctx.runtime_cfg(), probe_cfg = ctx.runtime_cfg();
  probe_cfg.blocking_probe = true;
  kcont::runtime plain_rt(plain_cfg), probe_rt(probe_cfg);
  {
    ctx.step("blocking mix: warm-up");
    auto w = make_mix(200, block_kind::read_timerfd);
    kcont_mix(plain_rt, elastic, w);
    w = make_mix(200, block_kind::read_timerfd);
    kcont_mix(probe_rt, elastic, w);
  }
  fixed_pool pool2(pool_sizes[0]), pool32(pool_sizes[1]);
  for (int r = 0; r < reps; ++r) {
    ctx.step("blocking mix, repetition " + std::to_string(r + 1) + "/" + std::to_string(reps));
    for (std::size_t k = 0; k < std::size(variants); ++k) {
      const kcont_variant& var = variants[k];
      auto v = make_mix(items, var.how);
      kcont::runtime& rt = var.probe ? probe_rt : plain_rt;
      const detections before = detections_of(rt);
      kres[k].rate.push_back(kcont_mix(rt, var.flags, v));
      const detections after = detections_of(rt);
      add_held(v, kres[k].held);
      kres[k].detected += after.count - before.count;
      kres[k].detect_ns += after.ns_total - before.ns_total;
    }
    for (std::size_t k = 0; k < 2; ++k) {
      auto v = make_mix(items, block_kind::read_timerfd);
      pres[k].rate.push_back(pool_mix(k == 0 ? pool2 : pool32, v));
      add_held(v, pres[k].held);
    }
  }
  ctx.cost_header("blocking mix: " + std::to_string(items) +
                      " items, half blocking 1 ms, half computing 50 us, 2 CPUs (" +
                      std::to_string(reps) + " reps)",
                  "items/s");
  std::vector<spread> krate;
  for (std::size_t k = 0; k < std::size(variants); ++k)
    krate.push_back(ctx.cost_row(std::string("workqueue.blocking.") + variants[k].key,
                                 variants[k].label, kres[k].rate, "items/s"));
  spread prate[2];
  for (std::size_t k = 0; k < 2; ++k)
    prate[k] = ctx.cost_row(
        "workqueue.blocking.fixed_pool_" + std::to_string(pool_sizes[k]),
        "fixed pool, " + std::to_string(pool_sizes[k]) + " threads (folly/TBB style), read()",
        pres[k].rate, "items/s");
  for (std::size_t k = 1; k < std::size(variants); ++k)
    ctx.ratio(std::string("workqueue.blocking.") + variants[k].key + "_over_fixed",
              std::string(variants[k].label) + " / kcont fixed", krate[k].value / krate[0].value);
  for (std::size_t k = 0; k < 2; ++k)
    ctx.ratio("workqueue.blocking.elastic_probe_over_pool_" + std::to_string(pool_sizes[k]),
              "WQ_ELASTIC + probe / fixed pool of " + std::to_string(pool_sizes[k]),
              krate[2].value / prate[k].value);

  ctx.latency_header(
      "blocking mix: a blocked item held its CPU's queue back (block -> next "
      "item starts, ns)");
  for (std::size_t k = 0; k < std::size(variants); ++k)
    ctx.latency_row(std::string("workqueue.blocking.held.") + variants[k].key, variants[k].label,
                    kres[k].held);
  for (std::size_t k = 0; k < 2; ++k)
    ctx.latency_row("workqueue.blocking.held.fixed_pool_" + std::to_string(pool_sizes[k]),
                    "fixed pool, " + std::to_string(pool_sizes[k]) + " threads", pres[k].held);
  ctx.cost_header(
      "blocking mix: the engine's detections (worker_pools(): blocked_detected, "
      "mean time in the task when found)",
      "per run / us");
  for (std::size_t k = 1; k < 5; ++k) {  // the watched variants
    const double runs = static_cast<double>(reps);
    const std::string key = std::string("workqueue.blocking.detect.") + variants[k].key;
    ctx.cost_row(key + ".count", std::string(variants[k].label) + ": found per run",
                 {static_cast<double>(kres[k].detected) / runs}, "per run");
    ctx.cost_row(key + ".mean_us", std::string(variants[k].label) + ": mean time in task",
                 {kres[k].detected == 0 ? 0.0
                                        : static_cast<double>(kres[k].detect_ns) /
                                              static_cast<double>(kres[k].detected) / 1e3},
                 "us");
  }

  // Non-blocking work: what the watch and the probe cost where nothing blocks.
  const int busy_items = ctx.pick(2000, 10000);
  std::vector<double> nb_fixed, nb_watch, nb_probe;
  for (int r = 0; r < reps; ++r) {
    ctx.step("non-blocking work, repetition " + std::to_string(r + 1) + "/" + std::to_string(reps));
    auto v = make_mix(busy_items, block_kind::none);
    nb_fixed.push_back(kcont_mix(plain_rt, fixed, v));
    v = make_mix(busy_items, block_kind::none);
    nb_watch.push_back(kcont_mix(plain_rt, elastic, v));
    v = make_mix(busy_items, block_kind::none);
    nb_probe.push_back(kcont_mix(probe_rt, elastic, v));
  }
  ctx.cost_header("non-blocking: " + std::to_string(busy_items) + " items computing 50 us (" +
                      std::to_string(reps) + " reps)",
                  "items/s");
  spread f =
      ctx.cost_row("workqueue.nonblocking.fixed", "kcont fixed (no watch)", nb_fixed, "items/s");
  spread w = ctx.cost_row("workqueue.nonblocking.elastic_watch", "WQ_ELASTIC, sampled watch",
                          nb_watch, "items/s");
  spread p = ctx.cost_row("workqueue.nonblocking.elastic_probe", "WQ_ELASTIC + idle probe",
                          nb_probe, "items/s");
  ctx.cost_row("workqueue.nonblocking.watch_overhead_pct", "sampled watch: fixed / elastic - 1",
               {(f.value / w.value - 1) * 100}, "%");
  ctx.cost_row("workqueue.nonblocking.probe_overhead_pct", "idle probe: fixed / elastic+probe - 1",
               {(f.value / p.value - 1) * 100}, "%");

  // Idle: wake-ups of the runtimes' threads in one second after all that work.
  ctx.step("idle wake-ups");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the watch notices it is idle
  const std::uint64_t before = others_switches();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const std::uint64_t after = others_switches();
  ctx.cost_header("idle, after the runs above (both runtimes, the fixed pools parked)",
                  "switches/s");
  ctx.cost_row("workqueue.idle.context_switches_per_s",
               "context switches of all other threads in 1 s",
               {static_cast<double>(after - before)}, "switches/s");
}

}  // namespace kcont_bench
