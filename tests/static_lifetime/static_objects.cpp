// Namespace-scope kcont objects: constructed before main (the default runtime starts during
// their construction, before kcont's own statics may be initialised) and destroyed after it.
// Exit status 0 when each ran exactly as scheduled.
#include <kcont/callout.h>
#include <kcont/kcont.h>
#include <kcont/softint.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

namespace {
std::atomic<int> softint_runs{0}, callout_runs{0}, kcont_runs{0};
}  // namespace

kcont::softint g_softint(SOFTINT_NET | SOFTINT_MPSAFE, [] { ++softint_runs; });
kcont::callout g_callout([] { ++callout_runs; });
kcont::continuation g_soft_kcont(wq_softnet, [] { ++kcont_runs; });
kcont::continuation g_thread_kcont(wq_prihigh, [] { ++kcont_runs; });

int main() {
  g_softint.schedule();
  g_callout.schedule(std::chrono::milliseconds(1));
  g_soft_kcont.schedule();
  g_thread_kcont.schedule(std::chrono::milliseconds(2));
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while ((softint_runs < 1 || callout_runs < 1 || kcont_runs < 2) &&
         std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::printf("softint %d, callout %d, kcont %d\n", softint_runs.load(), callout_runs.load(),
              kcont_runs.load());
  return softint_runs == 1 && callout_runs == 1 && kcont_runs == 2 ? 0 : 1;
}
