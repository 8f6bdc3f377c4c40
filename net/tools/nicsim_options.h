// kcont-nicsim's command line.
#pragma once

#include <kcont/nicsim.h>
#include <kcont/runtime.h>

#include <cstdint>
#include <string>

namespace kcont::net {

enum class wire_choice { automatic, tap, memory, pair };

struct nicsim_options {
  wire_choice wire = wire_choice::automatic;
  std::string tap_name = "kcont%d";
  start_mode mode = start_mode::taskctx;
  double seconds = 10;
  std::uint64_t packets = 0;  // 0: run for `seconds`
  unsigned producers = 2;
  std::size_t frame_len = 128;
  bool drop_when_full = false;  // producers drop instead of waiting for room
  bool quiet = false;
  unsigned ncpu = 0;
  backend_kind backend = backend_kind::asio;
  std::string json_path;
  nic_config nic;
};

// Returns -1 to go on, or the exit code (0 after --help, 2 after a bad option, with a message).
int parse_nicsim_options(int argc, char** argv, nicsim_options& o);

}  // namespace kcont::net
