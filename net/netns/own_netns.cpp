#include "own_netns.h"

#include <unistd.h>

#include <atomic>

namespace kcont::net {
namespace {

// Namespaces this process holds: while there is one, a name with our pid is ours, not stale.
std::atomic<int> g_live{0};

}  // namespace

std::unique_ptr<own_netns> own_netns::make(const char* prefix, std::string& why,
                                           std::vector<std::string>* swept) {
  if (!netns_possible(why)) return nullptr;
  std::vector<std::string> removed = netns_sweep_stale(g_live.load() == 0);
  if (swept != nullptr) *swept = std::move(removed);
  const std::string name = netns_name_for(prefix, ::getpid());
  auto reaper = netns_reaper::start(name, why);
  if (!reaper) return nullptr;
  auto ns = netns_handle::create(name, why);
  if (!ns) return nullptr;
  ++g_live;
  return std::unique_ptr<own_netns>(new own_netns(std::move(reaper), std::move(ns)));
}

own_netns::~own_netns() {
  ns_.reset();
  reaper_.reset();
  --g_live;
}

}  // namespace kcont::net
