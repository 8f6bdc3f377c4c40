#include "echo_tracker.h"

#include <stdexcept>

namespace kcont::net {
namespace {

std::uint8_t pattern(std::uint64_t seq, std::size_t i) {
  return static_cast<std::uint8_t>(seq * 131 + i * 7 + (i >> 8));
}

void fill(std::uint8_t* out, std::uint64_t seq, std::size_t len) {
  for (std::size_t i = 0; i < 8; ++i) out[i] = static_cast<std::uint8_t>(seq >> (56 - 8 * i));
  for (std::size_t i = 8; i < len; ++i) out[i] = pattern(seq, i);
}

}  // namespace

echo_tracker::echo_tracker(std::size_t window, std::size_t payload, std::int64_t timeout_ns)
    : window_(window), payload_(payload), timeout_(timeout_ns), mask_([window] {
        std::size_t n = 1;
        while (n < window) n <<= 1;
        return n - 1;
      }()) {
  if (window == 0 || window > max_window || payload < min_payload)
    throw std::invalid_argument("echo_tracker: window 1..65536, payload >= 8 bytes");
  slots_ = std::make_unique<slot[]>(mask_ + 1);
}

bool echo_tracker::next(std::uint8_t* out, std::int64_t now, std::uint64_t* seq_out) {
  std::lock_guard lk(mu_);
  if (next_seq_ - oldest_ >= window_) return false;
  const std::uint64_t seq = next_seq_++;
  slots_[seq & mask_] = {seq, now, true};
  ++c_.sent;
  fill(out, seq, payload_);
  if (seq_out != nullptr) *seq_out = seq;
  return true;
}

void echo_tracker::unsend(std::uint64_t seq) {
  std::lock_guard lk(mu_);
  slot& s = slots_[seq & mask_];
  if (s.out && s.seq == seq) {
    s.out = false;
    --c_.sent;
    advance();
  }
}

void echo_tracker::answer(const std::uint8_t* p, std::size_t len, std::int64_t now) {
  std::uint64_t seq = 0;
  if (len >= 8)
    for (std::size_t i = 0; i < 8; ++i) seq = seq << 8 | p[i];
  std::lock_guard lk(mu_);
  if (len < 8 || seq >= next_seq_) {
    ++c_.corrupt;
    return;
  }
  if (seq < oldest_) {
    ++c_.late;  // counted lost already (or answered twice long ago: indistinguishable)
    return;
  }
  slot& s = slots_[seq & mask_];
  if (!s.out || s.seq != seq) {
    ++c_.duplicate;
    return;
  }
  bool exact = len == payload_;
  for (std::size_t i = 8; exact && i < len; ++i) exact = p[i] == pattern(seq, i);
  if (!exact) {
    ++c_.corrupt;  // the probe stays outstanding: a good answer may still come
    return;
  }
  s.out = false;
  ++c_.answered;
  c_.bytes += len;
  rtt_.record(static_cast<std::uint64_t>(now - s.sent_ns));
  advance();
}

void echo_tracker::advance() {
  while (oldest_ < next_seq_ && !slots_[oldest_ & mask_].out) ++oldest_;
}

std::int64_t echo_tracker::expire(std::int64_t now) {
  std::lock_guard lk(mu_);
  for (; oldest_ < next_seq_; ++oldest_) {
    slot& s = slots_[oldest_ & mask_];
    if (!s.out) continue;
    if (now - s.sent_ns < timeout_) return s.sent_ns + timeout_;
    s.out = false;
    ++c_.lost;
  }
  return 0;
}

void echo_tracker::give_up() {
  std::lock_guard lk(mu_);
  for (; oldest_ < next_seq_; ++oldest_) {
    slot& s = slots_[oldest_ & mask_];
    if (s.out) ++c_.lost;
    s.out = false;
  }
}

std::size_t echo_tracker::outstanding() const {
  std::lock_guard lk(mu_);
  std::size_t n = 0;
  for (std::uint64_t s = oldest_; s < next_seq_; ++s) n += slots_[s & mask_].out ? 1 : 0;
  return n;
}

echo_counts echo_tracker::counts() const {
  std::lock_guard lk(mu_);
  return c_;
}

}  // namespace kcont::net
