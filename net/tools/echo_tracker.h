// The books of an echo load (UDP echo datagrams or ICMP echo requests): which probes are out,
// whether each answer is byte-exact, the round-trip times, and what was lost.
//
// Each probe's payload is made from its sequence number alone (8 bytes of sequence number,
// then a pattern of it), so an answer is checked byte for byte without keeping a copy. At
// most `window` probes are outstanding, counted from the oldest unanswered one (a sliding
// window, as TCP's): a lost probe holds the window until its timeout.
//
// Locks used to protect the fields of echo_tracker:
//   [I] immutable after construction
//   [M] mu_ (the sender and the thread that receives answers may differ: the in-memory peer
//       answers on a CPU of the runtime)
//   [a] atomic, relaxed
#pragma once

#include <kcont/histogram.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace kcont::net {

struct echo_counts {
  std::uint64_t sent = 0;       // probes that left
  std::uint64_t answered = 0;   // byte-exact answers to outstanding probes
  std::uint64_t lost = 0;       // no answer within the timeout (or by the end)
  std::uint64_t late = 0;       // an answer after its probe was counted lost
  std::uint64_t duplicate = 0;  // a second answer to the same probe
  std::uint64_t corrupt = 0;    // wrong length, or a byte not as sent
  std::uint64_t bytes = 0;      // payload bytes answered
};

class echo_tracker {
 public:
  static constexpr std::size_t min_payload = 8;
  static constexpr std::size_t max_window = 1 << 16;

  // window 1..max_window, payload >= min_payload bytes.
  echo_tracker(std::size_t window, std::size_t payload, std::int64_t timeout_ns);

  std::size_t payload() const { return payload_; }
  // Fills `out` (payload() bytes) with the next probe and books it as sent at `now`; false
  // when the window is full. `seq_out` gets its sequence number.
  bool next(std::uint8_t* out, std::int64_t now, std::uint64_t* seq_out = nullptr);
  // The probe just booked could not be sent after all: forget it (counted as not sent).
  void unsend(std::uint64_t seq);
  // An answer: checked against what was sent; RTT recorded if it is the first byte-exact one.
  void answer(const std::uint8_t* p, std::size_t len, std::int64_t now);
  // Counts probes older than the timeout as lost. Returns when the oldest outstanding probe
  // times out (0: none outstanding).
  std::int64_t expire(std::int64_t now);
  // End of the run: every outstanding probe is lost.
  void give_up();
  std::size_t outstanding() const;

  echo_counts counts() const;
  const latency_histogram& rtt() const { return rtt_; }

 private:
  struct slot {
    std::uint64_t seq = 0;
    std::int64_t sent_ns = 0;
    bool out = false;
  };
  void advance();  // [M] moves oldest_ past answered and lost probes

  const std::size_t window_;    // [I]
  const std::size_t payload_;   // [I]
  const std::int64_t timeout_;  // [I]
  const std::size_t mask_;      // [I] slots_ has mask_ + 1 entries (>= window_)
  mutable std::mutex mu_;
  std::unique_ptr<slot[]> slots_;  // [I] the array; entries [M]
  std::uint64_t next_seq_ = 0;     // [M]
  std::uint64_t oldest_ = 0;       // [M] the oldest probe that may be outstanding
  echo_counts c_;                  // [M]
  latency_histogram rtt_;          // [a]
};

}  // namespace kcont::net
