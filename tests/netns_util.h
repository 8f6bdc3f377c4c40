// The test's own network namespace, kcont-test-<pid>, with the test's thread inside it: a test
// that makes a tap makes it there, never in the host's default namespace, and everything it
// then does by interface name or index (packet sockets, ioctls, link deletion) happens there
// too. Made by own_netns (stale ones swept, a reaper for a test killed mid-run) and removed
// when the object goes, the thread back where it was. Where no namespace can be made (not
// root, no `ip`, KCONT_NO_NETNS=1, ...) the test skips, saying why: there is no fallback.
#pragma once

#include <memory>
#include <string>

#include "netns.h"
#include "netns_thread.h"
#include "own_netns.h"

namespace kcont_test {

class test_netns {
 public:
  // false with why() set when there is no namespace (the caller skips).
  bool enter() {
    ns_ = kcont::net::own_netns::make(kcont::net::netns_prefix_test, why_);
    if (ns_) inside_ = kcont::net::netns_thread_scope::enter(ns_->handle(), why_);
    if (!inside_) ns_.reset();
    return inside_ != nullptr;
  }
  ~test_netns() {
    inside_.reset();  // the thread out first, then the namespace goes
    ns_.reset();
  }
  const std::string& why() const { return why_; }
  const kcont::net::netns_handle& handle() const { return ns_->handle(); }

 private:
  std::unique_ptr<kcont::net::own_netns> ns_;
  std::unique_ptr<kcont::net::netns_thread_scope> inside_;
  std::string why_;
};

inline std::string netns_skip_message(const std::string& why) {
  return "SKIPPED: no network namespace of the test's own here: " + why +
         "; a tap is never made in the host's default namespace instead";
}

}  // namespace kcont_test

// Puts the calling test's thread in a namespace of its own until the end of the enclosing
// block, or prints why there is none and returns from the test case (which then passes).
#define NETNS_OR_SKIP(var)                              \
  kcont_test::test_netns var;                           \
  if (!var.enter()) {                                   \
    MESSAGE(kcont_test::netns_skip_message(var.why())); \
    return;                                             \
  }
