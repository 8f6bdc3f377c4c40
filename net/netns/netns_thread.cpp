#include "netns_thread.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "netns.h"

namespace kcont::net {

std::unique_ptr<netns_thread_scope> netns_thread_scope::enter(const netns_handle& ns,
                                                              std::string& why) {
  const int home = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) {
    why = std::string("recording this thread's network namespace (/proc/thread-self/ns/net): ") +
          std::strerror(errno);
    return nullptr;
  }
  if (!ns.enter_thread()) {
    why = "entering namespace " + ns.name() + ": " + std::strerror(errno);
    ::close(home);
    return nullptr;
  }
  return std::unique_ptr<netns_thread_scope>(new netns_thread_scope(home, ::gettid()));
}

netns_thread_scope::~netns_thread_scope() {
  // Left inside, the thread would go on working in a namespace about to be removed, and
  // whatever it did next by name would silently miss: say so loudly instead.
  if (::gettid() != tid_) {
    std::fprintf(stderr, "kcont: netns_thread_scope misuse: destroyed on another thread\n");
    std::abort();
  }
  if (::setns(home_fd_, CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "kcont: returning a thread to its network namespace failed: %s\n",
                 std::strerror(errno));
    std::abort();
  }
  ::close(home_fd_);
}

bool run_in_netns(const netns_handle& ns, const std::function<void()>& fn, std::string& why) {
  bool entered = false;
  std::thread([&] {
    if (!ns.enter_thread()) {
      why = "entering namespace " + ns.name() + ": " + std::strerror(errno);
      return;
    }
    entered = true;
    fn();
  }).join();
  return entered;
}

}  // namespace kcont::net
