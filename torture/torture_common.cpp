// kcont-torture: operation names, violation log, globals.
#include <cstdlib>
#include <iostream>

#include "torture.h"

namespace torture {

std::atomic<std::uint64_t> g_handler_ops[op_count];
std::atomic<bool> g_stopping{false};
std::uint64_t g_seed = 1;
config g_config;

namespace {
std::mutex g_violation_mu;
std::uint64_t g_violations = 0;
constexpr std::uint64_t kPrinted = 25;
}  // namespace

void violation(const char* api, unsigned object, const std::string& what) {
  std::lock_guard<std::mutex> lk(g_violation_mu);
  if (++g_violations <= kPrinted) {
    std::cerr << "VIOLATION [" << api << " object " << object << "] " << what << " (seed " << g_seed
              << ")\n";
  } else if (g_violations == kPrinted + 1) {
    std::cerr << "... (further violations counted, not printed)\n";
  }
}

std::uint64_t violation_count() {
  std::lock_guard<std::mutex> lk(g_violation_mu);
  return g_violations;
}

std::atomic<std::uint64_t> g_thrown{0};

bool throw_now() {
  thread_local rng r{g_seed ^ reinterpret_cast<std::uintptr_t>(&r)};
  return !stopping() && r.one_in(kThrowOneIn);
}

const char* op_name(op o) {
  static const char* const names[op_count] = {"softint_establish",
                                              "softint_schedule",
                                              "softint_schedule_cpu",
                                              "softint_disestablish",
                                              "  ... from its handler",
                                              "  (quiet point: all covered)",
                                              "callout_init",
                                              "callout_reset",
                                              "callout_schedule",
                                              "callout_stop",
                                              "callout_halt",
                                              "callout_destroy",
                                              "callout_bind",
                                              "  re-arm from handler",
                                              "  halt+destroy from handler",
                                              "task_add",
                                              "task_del",
                                              "taskq_barrier",
                                              "taskq_del_barrier",
                                              "  task_add from its task",
                                              "task_dispatch",
                                              "taskctx_barrier",
                                              "workqueue_enqueue",
                                              "workqueue_wait",
                                              "  enqueue from its item",
                                              "kcont_create",
                                              "kcont_schedule now",
                                              "kcont_schedule delay",
                                              "kcont_schedule ordered",
                                              "kcont_stop",
                                              "kcont_ack",
                                              "kcont_halt",
                                              "kcont_destroy",
                                              "  reschedule from func",
                                              "  destroy from func",
                                              "handler threw (reported, abandoned)",
                                              "group lock held a while (waiters)"};
  return names[o];
}

const char* op_api(op o) {
  if (o == op_handler_throw) return "all";
  if (o <= op_softint_quiet_check) return "softint";
  if (o <= op_callout_halt_destroy_self) return "callout";
  if (o <= op_task_readd_self) return "task(9)";
  if (o <= op_taskctx_barrier) return "taskctx";
  if (o <= op_workqueue_reenqueue_self) return "workqueue";
  return "kcont";
}

}  // namespace torture
