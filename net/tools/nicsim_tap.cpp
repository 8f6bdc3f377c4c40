#include "nicsim_tap.h"

#include <cstdio>
#include <cstring>

#include "netns_tap.h"

namespace kcont::net {

std::unique_ptr<nicsim_tap> open_nicsim_tap(const std::string& name_pattern,
                                            std::optional<tap_host_side> host, std::string& why,
                                            const char* prefix) {
  auto t = std::make_unique<nicsim_tap>();
  std::vector<std::string> swept;
  t->ns = own_netns::make(prefix, why, &swept);
  const std::string program(prefix, std::strlen(prefix) - 1);  // "kcont-nicsim-" -> kcont-nicsim
  for (const std::string& n : swept)
    std::printf("%s: removed stale namespace %s (its program is gone)\n", program.c_str(),
                n.c_str());
  if (!t->ns) return nullptr;
  t->tap = host ? make_tap_in_netns(t->ns->handle(), host->addr, host->prefix_len, why)
                : make_tap_in_netns(t->ns->handle(), name_pattern, 1500, why);
  if (!t->tap) return nullptr;
  return t;
}

}  // namespace kcont::net
