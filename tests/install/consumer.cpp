// A tiny program built against an installed kcont (find_package and pkg-config): it schedules
// a softint on CPU 1 and exits 0 once the handler ran there.
#include <kcont/runtime.h>
#include <kcont/softint.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

int main() {
  kcont::runtime_config cfg;
  cfg.ncpu = 2;
  kcont::runtime rt(cfg);
  std::atomic<int> ran_on{-1};
  void* si = softint_establish_rt(
      rt, SOFTINT_NET | SOFTINT_MPSAFE,
      [](void* a) {
        static_cast<std::atomic<int>*>(a)->store(static_cast<int>(cpu_index(curcpu())));
      },
      &ran_on);
  softint_schedule_cpu(si, rt.cpu(1));
  for (int i = 0; i < 10000 && ran_on.load() < 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  softint_disestablish(si);
  std::printf("consumer: handler ran on CPU %d\n", ran_on.load());
  return ran_on.load() == 1 ? 0 : 1;
}
