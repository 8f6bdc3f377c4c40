// A differential fuzzer: a byte string drives a sequence of callout / kcont / task(9) calls on
// a runtime with a manual clock, and after every step the results are checked against the
// executable model in model.h (return values, every state query, what ran and in which
// order). Built as a libFuzzer target with clang (KCONT_FUZZ) and, with any compiler, with a
// standalone driver (standalone_main.cpp) that replays the corpus and then random inputs.
//
// Determinism: the runtime has one CPU, and between settle points a hard-interrupt handler
// holds that CPU (so no softint, callout or soft-queue continuation runs) and a gate task
// holds the task queue's worker. A settle op advances the manual clock, lets both go, waits
// until the CPU is quiescent and the task queue drained, and compares; then holds them again.
#include "model.h"

#include <kcont/callout.h>
#include <kcont/kcont.h>
#include <kcont/runtime.h>
#include <kcont/softint.h>
#include <kcont/task.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace kcont_fuzz;
constexpr int kObjects = 3;

const std::uint8_t* g_input = nullptr;  // for the divergence report
std::size_t g_input_size = 0;

void spin_until(const std::atomic<bool>& flag, const char* what) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!flag.load()) {
    if (std::chrono::steady_clock::now() > give_up) {
      std::fprintf(stderr, "fuzz_kcont: timed out waiting for %s\n", what);
      std::abort();
    }
    std::this_thread::yield();
  }
}

// The runtime and the two holds; created once, kept for the whole process.
struct rig {
  kcont::runtime rt{config()};
  void* blocker = nullptr;
  std::atomic<bool> cpu_hold{false}, cpu_held{false};
  taskq* tq = nullptr;
  task gate{};
  std::atomic<bool> tq_hold{false}, tq_held{false};

  static kcont::runtime_config config() {
    kcont::runtime_config c;
    c.ncpu = 1;
    c.hz = 1000;
    c.manual_clock = true;
    c.pin_threads = false;
    return c;
  }
  rig() {
    kcont::runtime_scope scope(rt);
    blocker = softint_establish_rt(
        rt, SOFTINT_HARDINTR | SOFTINT_MPSAFE,
        [](void* p) {
          auto* r = static_cast<rig*>(p);
          r->cpu_held = true;
          while (r->cpu_hold.load()) std::this_thread::yield();
        },
        this);
    tq = taskq_create("fuzz", 1, 0, TASKQ_MPSAFE);
    task_set(
        &gate,
        [](void* p) {
          auto* r = static_cast<rig*>(p);
          r->tq_held = true;
          while (r->tq_hold.load()) std::this_thread::yield();
        },
        this);
  }
  void hold() {
    cpu_hold = true;
    cpu_held = false;
    softint_schedule_cpu(blocker, rt.cpu(0));
    spin_until(cpu_held, "the CPU to be held");
    tq_hold = true;
    tq_held = false;
    task_add(tq, &gate);
    spin_until(tq_held, "the task queue to be held");
  }
  // Lets both go and waits until everything they had queued has run.
  void release_and_settle() {
    cpu_hold = false;
    tq_hold = false;
    std::atomic<bool> fenced{false};
    task fence{};
    task_set(
        &fence, [](void* f) { static_cast<std::atomic<bool>*>(f)->store(true); }, &fenced);
    task_add(tq, &fence);
    spin_until(fenced, "the task queue to drain");
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!rt.quiescent()) {
      if (std::chrono::steady_clock::now() > give_up) {
        std::fprintf(stderr, "fuzz_kcont: the CPU did not go quiet\n");
        std::abort();
      }
      std::this_thread::yield();
    }
  }
};

rig& the_rig() {
  static rig* r = new rig;  // never destroyed: its threads outlive every input
  return *r;
}

struct objects {
  callout c[kObjects];
  kcont_t k[kObjects];
  task t[kObjects];
  std::atomic<int> c_runs[kObjects] = {};
  std::atomic<int> k_runs[kObjects] = {};
  std::mutex order_mu;
  std::vector<int> task_order;
  struct task_arg {
    objects* o;
    int id;
  } targs[kObjects];

  callout_model cm[kObjects];
  kcont_model km[kObjects];
  taskq_model tm;
  std::int64_t now = 0;  // model ticks since the input began
  std::string log;       // the ops so far, for the report
};

[[noreturn]] void diverged(const objects& o, const std::string& what) {
  std::fprintf(stderr, "fuzz_kcont: DIVERGENCE from the model: %s\n  ops: %s\n", what.c_str(),
               o.log.c_str());
  if (FILE* f = std::fopen("fuzz-divergence.bin", "wb")) {
    std::fwrite(g_input, 1, g_input_size, f);
    std::fclose(f);
    std::fprintf(stderr, "  input written to fuzz-divergence.bin\n");
  }
  std::abort();
}

void expect(objects& o, bool ok, const std::string& what) {
  if (!ok) diverged(o, what);
}

void check_states(objects& o) {
  for (int i = 0; i < kObjects; ++i) {
    const std::string c = "callout " + std::to_string(i) + ": ";
    expect(o, callout_pending(&o.c[i]) == o.cm[i].pending, c + "pending");
    expect(o, callout_expired(&o.c[i]) == o.cm[i].expired, c + "expired");
    expect(o, callout_invoking(&o.c[i]) == o.cm[i].invoking, c + "invoking");
    expect(o, callout_active(&o.c[i]) == (o.cm[i].pending || o.cm[i].expired), c + "active");
    const std::string k = "kcont " + std::to_string(i) + ": ";
    expect(o, kcont_pending(&o.k[i]) == o.km[i].pending, k + "pending");
    expect(o, kcont_expired(&o.k[i]) == o.km[i].expired, k + "expired");
    expect(o, kcont_invoking(&o.k[i]) == o.km[i].invoking, k + "invoking");
    expect(o, kcont_active(&o.k[i]) == (o.km[i].pending || o.km[i].expired), k + "active");
    expect(o, task_pending(&o.t[i]) == o.tm.pending(i), "task " + std::to_string(i) + ": pending");
  }
}

void settle(rig& r, objects& o, int ticks) {
  r.rt.advance_clock(std::chrono::milliseconds(ticks));  // hz 1000: a tick is 1 ms
  r.release_and_settle();
  o.now += ticks;
  for (int i = 0; i < kObjects; ++i) {
    o.cm[i].advance(o.now);
    // Already-queued invocations drain (softnet) before the clock is processed; a timer that
    // expires then queues a second one (an acked, queued continuation can also be pending).
    o.km[i].run();
    o.km[i].expire(o.now);
    o.km[i].run();
  }
  o.tm.run_all();
  for (int i = 0; i < kObjects; ++i) {
    expect(o, o.c_runs[i].load() == o.cm[i].runs, "callout " + std::to_string(i) + ": runs");
    expect(o, o.k_runs[i].load() == o.km[i].runs, "kcont " + std::to_string(i) + ": runs");
  }
  {
    std::lock_guard<std::mutex> lk(o.order_mu);
    expect(o, o.task_order == o.tm.ran, "task queue: what ran, in which order");
  }
  check_states(o);
  r.hold();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  rig& r = the_rig();
  kcont::runtime_scope scope(r.rt);
  g_input = data;
  g_input_size = size;
  auto* o = new objects;
  for (int i = 0; i < kObjects; ++i) {
    callout_init(&o->c[i], CALLOUT_MPSAFE);
    callout_setfunc(
        &o->c[i], [](void* p) { ++*static_cast<std::atomic<int>*>(p); }, &o->c_runs[i]);
    kcont_init(
        &o->k[i], wq_softnet, nullptr,
        [](void* p, kcont_t*) { ++*static_cast<std::atomic<int>*>(p); }, &o->k_runs[i], 0);
    o->targs[i] = {o, i};
    task_set(
        &o->t[i],
        [](void* p) {
          auto* a = static_cast<objects::task_arg*>(p);
          std::lock_guard<std::mutex> lk(a->o->order_mu);
          a->o->task_order.push_back(a->id);
        },
        &o->targs[i]);
  }
  r.hold();
  std::size_t pos = 0;
  auto next = [&]() -> unsigned { return pos < size ? data[pos++] : 0; };
  constexpr unsigned kOps = 14;
  while (pos < size && pos < 512) {
    const unsigned b = next();
    const unsigned op = b % kOps;
    const int i = static_cast<int>((b / kOps) % kObjects);
    const std::string id = std::to_string(i);
    switch (op) {
      case 0: {
        const int n = static_cast<int>(next() % 9);  // 0 is taken as 1
        callout_reset(
            &o->c[i], n, [](void* p) { ++*static_cast<std::atomic<int>*>(p); }, &o->c_runs[i]);
        o->cm[i].reset(o->now, n);
        o->log += "callout_reset(" + id + "," + std::to_string(n) + ") ";
        break;
      }
      case 1: {
        const int n = static_cast<int>(next() % 9);
        callout_schedule(&o->c[i], n);
        o->cm[i].reset(o->now, n);
        o->log += "callout_schedule(" + id + "," + std::to_string(n) + ") ";
        break;
      }
      case 2:
        o->log += "callout_stop(" + id + ") ";
        expect(*o, callout_stop(&o->c[i]) == o->cm[i].stop(), "callout_stop's return");
        break;
      case 3:
        o->log += "callout_halt(" + id + ") ";
        expect(*o, callout_halt(&o->c[i], nullptr) == o->cm[i].stop(), "callout_halt's return");
        break;
      case 4:
        o->log += "callout_ack(" + id + ") ";
        callout_ack(&o->c[i]);
        o->cm[i].ack();
        break;
      case 5:
        o->log += "kcont_schedule(" + id + ",0) ";
        expect(*o, kcont_schedule(&o->k[i], nullptr, 0) == o->km[i].schedule(o->now, 0),
               "kcont_schedule(0)'s return");
        break;
      case 6: {
        const int n = 1 + static_cast<int>(next() % 8);
        o->log += "kcont_schedule(" + id + "," + std::to_string(n) + ") ";
        expect(*o, kcont_schedule(&o->k[i], nullptr, n) == o->km[i].schedule(o->now, n),
               "kcont_schedule(n)'s return");
        break;
      }
      case 7:
        o->log += "kcont_stop(" + id + ") ";
        expect(*o, kcont_stop(&o->k[i]) == o->km[i].stop(), "kcont_stop's return");
        break;
      case 8:
        o->log += "kcont_ack(" + id + ") ";
        expect(*o, kcont_ack(&o->k[i]) == o->km[i].ack(), "kcont_ack's return");
        break;
      case 9:
        o->log += "kcont_halt(" + id + ") ";
        expect(*o, kcont_halt(&o->k[i]) == o->km[i].stop(), "kcont_halt's return");
        break;
      case 10:
        o->log += "task_add(" + id + ") ";
        expect(*o, task_add(r.tq, &o->t[i]) == o->tm.add(i), "task_add's return");
        break;
      case 11:
        o->log += "task_del(" + id + ") ";
        expect(*o, task_del(r.tq, &o->t[i]) == o->tm.del(i), "task_del's return");
        break;
      default: {  // 12, 13: settle, advancing the clock 0..9 ticks
        const int ticks = static_cast<int>(next() % 10);
        o->log += "settle(" + std::to_string(ticks) + ") ";
        settle(r, *o, ticks);
        break;
      }
    }
    check_states(*o);
  }
  settle(r, *o, 0);  // everything queued runs; then tear down with the CPU held
  for (int i = 0; i < kObjects; ++i) {
    callout_halt(&o->c[i], nullptr);
    callout_destroy(&o->c[i]);
    kcont_destroy(&o->k[i]);
    task_del(r.tq, &o->t[i]);
  }
  r.release_and_settle();
  delete o;
  return 0;
}
