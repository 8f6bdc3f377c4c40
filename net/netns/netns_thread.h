// Moving one thread into a namespace of ours and back. setns(2) with CLONE_NEWNET changes only
// the calling thread, and what it creates there stays there: a tap made inside is an interface
// of that namespace (never of the host's default one), a socket made inside talks there. The
// descriptors keep working from any thread in any namespace afterwards (test_tap checks that
// for a tap's fd), so only the making has to happen inside.
//
// Locks used to protect the fields of netns_thread_scope:
//   [I] immutable after construction (used by the thread that made it only)
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>

namespace kcont::net {

class netns_handle;

// The calling thread inside `ns` for the object's life; the destructor returns it to the
// namespace it was in (on the same thread: anything else is misuse and aborts). For a test's
// own thread, so everything the test does by name (if_nametoindex, ioctls, packet sockets)
// happens inside; threads it starts meanwhile start inside too.
class netns_thread_scope {
 public:
  // nullptr with `why` when the thread cannot enter (or its namespace cannot be recorded).
  static std::unique_ptr<netns_thread_scope> enter(const netns_handle& ns, std::string& why);
  ~netns_thread_scope();
  netns_thread_scope(const netns_thread_scope&) = delete;
  netns_thread_scope& operator=(const netns_thread_scope&) = delete;

 private:
  netns_thread_scope(int home_fd, pid_t tid) : home_fd_(home_fd), tid_(tid) {}
  int home_fd_;  // [I] the namespace the thread came from
  pid_t tid_;    // [I]
};

// Runs `fn` on a thread of its own that has entered `ns`, and waits for it: no other thread's
// namespace changes. false with `why` when the thread could not enter (fn did not run).
bool run_in_netns(const netns_handle& ns, const std::function<void()>& fn, std::string& why);

}  // namespace kcont::net
