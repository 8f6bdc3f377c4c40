// A network namespace of this process's own, PREFIX<pid>, cleaned up however the process
// ends: stale namespaces of dead processes are swept first, a reaper is started before the
// namespace exists (so a kill -9 between the two still leaves nothing), and the namespace is
// removed when the object goes (netns.h has the three parts). kcont-nicsim and the tests make
// theirs this way; one at a time per process (the name holds only the pid).
//
// Locks used to protect the fields of own_netns:
//   [I] immutable after construction
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "netns.h"

namespace kcont::net {

class own_netns {
 public:
  // `prefix` is one of netns.h's netns_prefix_*. nullptr with `why` naming what is
  // missing (KCONT_NO_NETNS set, no `ip`, not permitted, a fork that failed, ...). The names
  // the sweep removed go to `swept` (when given), for the caller to report.
  static std::unique_ptr<own_netns> make(const char* prefix, std::string& why,
                                         std::vector<std::string>* swept = nullptr);
  ~own_netns();  // the namespace first, then the reaper (which then finds nothing to do)
  own_netns(const own_netns&) = delete;
  own_netns& operator=(const own_netns&) = delete;

  const netns_handle& handle() const { return *ns_; }
  const std::string& name() const { return ns_->name(); }

 private:
  own_netns(std::unique_ptr<netns_reaper> reaper, std::unique_ptr<netns_handle> ns)
      : reaper_(std::move(reaper)), ns_(std::move(ns)) {}
  std::unique_ptr<netns_reaper> reaper_;  // [I]
  std::unique_ptr<netns_handle> ns_;      // [I]
};

}  // namespace kcont::net
