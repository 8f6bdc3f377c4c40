// kcont used from a static destructor. `first` : kcont is used for the first time there (the
// default runtime starts during exit). `again`: main used kcont too, so the default runtime
// was stopped at exit before this destructor runs (it starts again). Each kind of work must
// run; a failure ends the process with status 1 (main has already returned 0).
#include <kcont/callout.h>
#include <kcont/kcont.h>
#include <kcont/softint.h>
#include <kcont/task.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace {

bool wait_for(std::atomic<int>& n, int want) {
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (n < want && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return n >= want;
}

void expect(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "FAILED in a static destructor: %s\n", what);
  std::_Exit(1);
}

void bump(void* p) {
  ++*static_cast<std::atomic<int>*>(p);
}

// Constructed before main: destroyed after the default runtime's stop at exit.
struct uses_kcont_when_destroyed {
  ~uses_kcont_when_destroyed() {
    std::atomic<int> n{0};
    {
      kcont::softint si(SOFTINT_NET | SOFTINT_MPSAFE, [&] { ++n; });
      si.schedule();
      expect(wait_for(n, 1), "softint ran");
    }
    {
      kcont::callout co([&] { ++n; });
      co.schedule(std::chrono::milliseconds(2));
      expect(wait_for(n, 2), "callout fired");
    }
    {
      kcont::continuation k(wq_prihigh, [&] { ++n; });
      k.schedule();
      expect(wait_for(n, 3), "thread-queue continuation ran");
    }
    {
      kcont::continuation k(wq_softnet, [&] { ++n; });
      k.schedule();
      expect(wait_for(n, 4), "soft-queue continuation ran");
    }
    task t = TASK_INITIALIZER(bump, &n);
    task_add(systqmp, &t);
    taskq_barrier(systqmp);
    expect(n == 5, "systqmp task ran before taskq_barrier returned");
    std::fprintf(stderr, "static destructor: all 5 ran\n");
  }
} g_late;

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || (std::strcmp(argv[1], "first") != 0 && std::strcmp(argv[1], "again") != 0)) {
    std::fprintf(stderr, "usage: static_destructor_use first|again\n");
    return 2;
  }
  if (std::strcmp(argv[1], "again") == 0) {
    std::atomic<int> n{0};
    kcont::continuation k(wq_prihigh, [&] { ++n; });
    k.schedule();
    expect(wait_for(n, 1), "continuation ran in main");
  }
  return 0;
}
