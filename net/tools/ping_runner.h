// Stock ping (iputils) run inside our namespace at the simulated NIC's address, its output
// read line by line: each reply's RTT goes into a histogram as it comes, and ping's own
// summary ("N packets transmitted, M received") gives the final counts.
//
// Locks used to protect the fields of ping_runner:
//   [I] immutable after start()
//   [P] the reader thread until it has finished (done() true, acquire), then the control thread
//   [a] atomic, relaxed (read by the live line)
#pragma once

#include <kcont/histogram.h>

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

namespace kcont::net {

class netns_handle;

struct ping_result {
  bool ran = false;  // ping started and printed its summary
  std::uint64_t transmitted = 0, received = 0;
  std::string problem;  // why it did not run, or what it printed that was not a reply
};

class ping_runner {
 public:
  ~ping_runner();  // stop()
  // ping -n -i INTERVAL -c COUNT -W 1 TARGET in `ns`. false with `why`
  // when it cannot be started (no ping).
  bool start(const netns_handle& ns, const std::string& target, std::uint64_t count,
             unsigned interval_us, std::string& why);
  bool done() const { return done_.load(std::memory_order_acquire); }
  // Interrupts ping (SIGINT: it prints its summary) unless it has finished, and waits for it.
  void stop();
  std::uint64_t answered() const { return answered_.load(std::memory_order_relaxed); }
  const latency_histogram& rtt() const { return rtt_; }
  ping_result result() const;  // after stop()

 private:
  void read_output(int fd);  // the reader thread
  void parse_line(const std::string& line);

  std::atomic<pid_t> pid_{-1};  // [a] set by the reader thread once forked
  std::atomic<bool> done_{false};
  std::atomic<std::uint64_t> answered_{0};  // [a]
  latency_histogram rtt_;                   // [a]
  ping_result res_;                         // [P]
  std::thread reader_;                      // [I]
};

}  // namespace kcont::net
