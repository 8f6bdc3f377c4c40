// Naming and pinning kcont's threads (kcont/internal/thread_setup.h).
#include <kcont/internal/thread_setup.h>

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

namespace kcont::internal {
namespace {
thread_local int tl_cpu_note = -1;
}  // namespace

unsigned online_cpus() noexcept {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1u;
}

void name_this_thread(const char* name) noexcept {
  char cut[16] = {};  // pthread_setname_np refuses names longer than 15 characters
  for (unsigned i = 0; i + 1 < sizeof cut && name[i] != '\0'; ++i) cut[i] = name[i];
  ::pthread_setname_np(::pthread_self(), cut);
}

bool pin_this_thread(unsigned index) noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(index % online_cpus(), &set);
  return ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set) == 0;
}

void note_this_thread_cpu(int index) noexcept {
  tl_cpu_note = index;
}

int this_thread_cpu_note() noexcept {
  return tl_cpu_note;
}

}  // namespace kcont::internal
