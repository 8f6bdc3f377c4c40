// kcont-nicsim's command line.
#pragma once

#include <kcont/nicsim.h>
#include <kcont/runtime.h>

#include <cstdint>
#include <string>

namespace kcont::net {

enum class wire_choice { automatic, tap, memory, pair };
// --serve: which responders answer the load, one phase each (kcont, then the floor).
enum class responder_choice { both, kcont, floor };
inline constexpr std::uint64_t ping_count_auto = ~std::uint64_t{0};

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
  // --serve (serve.cpp): an IPv4 stack on the NIC, answering ping and a UDP load
  bool serve = false;
  responder_choice responder = responder_choice::both;
  std::uint64_t ping_count = ping_count_auto;  // auto: --seconds at --ping-interval-us
  unsigned ping_interval_us = 1000;
  std::size_t udp_window = 16;   // datagrams outstanding
  std::size_t udp_size = 64;     // payload bytes
  std::uint64_t udp_pps = 0;     // 0: as fast as the window allows
  std::uint64_t udp_count = 0;   // 0: for --seconds
  std::uint64_t push_pps = 100;  // the stack's own send_udp to the host's discard port
};

// Limits of the options that size something (the others' ranges are in --help).
inline constexpr unsigned ifq_len_max = 65536;
inline constexpr unsigned ncpu_max = 1024;  // the runtime's own limit
inline constexpr std::uint64_t packets_max = 1'000'000'000'000;
inline constexpr std::uint64_t pool_bytes_max = std::uint64_t{1} << 30;  // packet buffers

// Returns -1 to go on, or the exit code (0 after --help, 2 after a bad option, with a message).
// --intr-cpu is checked against the runtime's CPUs later, once the runtime exists.
int parse_nicsim_options(int argc, char** argv, nicsim_options& o);

// --serve's ping count: --ping-count, or as many as --seconds holds at --ping-interval-us.
std::uint64_t serve_ping_count(const nicsim_options& o);

// Packet buffers the run allocates up front: 4 x (tx ring + rx ring + send queue) per NIC.
std::uint64_t nicsim_pool_packets(const nicsim_options& o);

}  // namespace kcont::net
