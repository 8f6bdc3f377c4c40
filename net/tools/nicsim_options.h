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

// Limits of the options that size something (the others' ranges are in --help).
inline constexpr unsigned ifq_len_max = 65536;
inline constexpr unsigned ncpu_max = 1024;  // the runtime's own limit
inline constexpr std::uint64_t packets_max = 1'000'000'000'000;
inline constexpr std::uint64_t pool_bytes_max = std::uint64_t{1} << 30;  // packet buffers

// Returns -1 to go on, or the exit code (0 after --help, 2 after a bad option, with a message).
// --intr-cpu is checked against the runtime's CPUs later, once the runtime exists.
int parse_nicsim_options(int argc, char** argv, nicsim_options& o);

// Packet buffers the run allocates up front: 4 x (tx ring + rx ring + send queue) per NIC.
std::uint64_t nicsim_pool_packets(const nicsim_options& o);

}  // namespace kcont::net
