// A hierarchical timing wheel (Varghese & Lauck) of callouts, one per CPU.
//
// Four levels of 256 buckets cover the whole 32-bit tick space. A callout due at tick d is kept
// at the level of the highest 8-bit digit in which d differs from `cur` (the next tick to be
// processed), in the bucket named by d's digit at that level. When `cur` reaches a tick whose
// low digits are all zero, the bucket of each level whose lower digits are zero is cascaded
// (its callouts re-inserted, landing lower), highest level first; then the level-0 bucket of
// `cur` holds exactly the callouts due at `cur`. Arming and cancelling are O(1) (an intrusive
// doubly linked bucket and a bitmap bit); a cascade moves each callout at most once per level.
//
// Invariants:
//   - every armed callout has (int32)(c_time - cur) >= 0 and sits in bucket
//     [L][digit_L(c_time)] with L = c_level = highest differing digit of c_time ^ cur at the
//     time it was placed (0 if equal);
//   - bit s of nonempty[L] is set iff bucket [L][s] is non-empty;
//   - bucket [L >= 1][digit_L(cur)] is empty (it was cascaded when cur entered it).
// Callouts due in the same tick run in the order they were armed: buckets are FIFO, a cascade
// keeps a bucket's order, and a callout that reaches a bucket by cascade was armed before any
// callout placed there directly (it was further away when armed). Wrap-around: all tick
// comparisons are (int32)(a - b).
//
// Tickless: next_event() is the first tick at which anything happens (a level-0 bucket comes
// due, or a non-empty higher bucket must cascade), so an idle CPU sleeps straight to it.
// Not thread-safe: the callout layer holds the CPU's wheel lock around every call.
#pragma once

#include <kcont/callout.h>
#include <boost/intrusive/list.hpp>

#include <bit>
#include <cstdint>

namespace kcont::detail {

using callout_list =
    boost::intrusive::list<::callout,
                           boost::intrusive::member_hook<
                               ::callout, boost::intrusive::list_member_hook<>, &::callout::c_link>,
                           boost::intrusive::constant_time_size<false>>;

class timing_wheel {
 public:
  static constexpr unsigned kLevels = 4;
  static constexpr unsigned kBits = 8;
  static constexpr unsigned kSlots = 1u << kBits;
  static constexpr std::uint32_t kNothing = std::uint32_t{1} << 31;  // next_event() offset

  explicit timing_wheel(std::uint32_t start_tick) : cur_(start_tick) {}

  std::uint32_t cur() const { return cur_; }
  std::uint64_t count() const { return count_; }

  // c->c_time must be set; a time before cur is treated as due at cur.
  void insert(::callout* c) {
    if (static_cast<std::int32_t>(c->c_time - cur_) < 0) c->c_time = cur_;
    place(c);
    ++count_;
  }

  // Brings cur forward to `now` (the current tick) when nothing is due or cascades before it.
  // A tickless CPU's wheel lags the clock while the CPU sleeps (no one advances it while nothing
  // is due), and a callout is placed by its distance from cur: without this, an arm after a
  // long sleep would measure its delay from a stale cur, and after 2^31 ticks of sleep that
  // distance wraps. Never moves cur backwards; when something is due or cascades before `now`
  // (the clock hook is late), cur is left for advance().
  void catch_up(std::uint32_t now) {
    if (count_ == 0) {
      // Empty: cur is at most now + 1 (advance() leaves it one past the tick it processed),
      // and any lag, even one beyond 2^31 ticks that int32 comparisons cannot see, is dropped.
      if (cur_ != now + 1) cur_ = now;
      return;
    }
    if (static_cast<std::int32_t>(now - cur_) > 0 &&
        static_cast<std::int32_t>(next_event() - now) >= 0)
      cur_ = now;
  }

  void remove(::callout* c) {
    unsigned level = c->c_level, slot = digit(c->c_time, level);
    callout_list& b = buckets_[level][slot];
    b.erase(b.iterator_to(*c));
    if (b.empty()) clear_bit(level, slot);
    --count_;
  }

  // Processes ticks cur..now (inclusive), appending due callouts to `out` in firing order,
  // and leaves cur = now + 1. Runs of ticks where nothing happens are skipped in one step.
  void advance(std::uint32_t now, callout_list& out) {
    while (static_cast<std::int32_t>(now - cur_) >= 0) {
      if ((cur_ & (kSlots - 1)) == 0) cascade_at_cur();
      unsigned slot = cur_ & (kSlots - 1);
      callout_list& b = buckets_[0][slot];
      if (!b.empty()) {
        for (::callout& c : b) (void)c, --count_;
        out.splice(out.end(), b);
        clear_bit(0, slot);
      }
      // Distances from cur, unsigned: "nothing armed" is 2^31 ahead, beyond any `now`.
      std::uint32_t next = next_event_from(cur_ + 1);
      if (next - cur_ > now + 1 - cur_) next = now + 1;
      cur_ = next;
    }
  }

  // The first tick >= cur at which advance() has something to do; cur + kNothing if the wheel
  // is empty.
  std::uint32_t next_event() const { return next_event_from(cur_); }

 private:
  static unsigned digit(std::uint32_t t, unsigned level) {
    return (t >> (level * kBits)) & (kSlots - 1);
  }
  void set_bit(unsigned level, unsigned slot) {
    nonempty_[level][slot / 64] |= std::uint64_t{1} << (slot % 64);
  }
  void clear_bit(unsigned level, unsigned slot) {
    nonempty_[level][slot / 64] &= ~(std::uint64_t{1} << (slot % 64));
  }

  void place(::callout* c) {
    std::uint32_t diff = c->c_time ^ cur_;
    unsigned level = diff == 0 ? 0 : (31 - static_cast<unsigned>(std::countl_zero(diff))) / kBits;
    unsigned slot = digit(c->c_time, level);
    c->c_level = static_cast<std::uint8_t>(level);
    buckets_[level][slot].push_back(*c);
    set_bit(level, slot);
  }

  // cur's low digit is zero: cascade every level whose lower digits are all zero, highest first.
  void cascade_at_cur() {
    unsigned top = 0;
    for (unsigned l = 1; l < kLevels; ++l) {
      if ((cur_ & ((std::uint32_t{1} << (l * kBits)) - 1)) != 0) break;
      top = l;
    }
    for (unsigned l = top; l >= 1; --l) {
      unsigned slot = digit(cur_, l);
      callout_list moving;
      moving.splice(moving.end(), buckets_[l][slot]);
      clear_bit(l, slot);
      while (!moving.empty()) {
        ::callout& c = moving.front();
        moving.pop_front();
        place(&c);
      }
    }
  }

  // First set bit of nonempty[level] at index >= from; kSlots if none.
  unsigned first_set(unsigned level, unsigned from) const {
    for (unsigned w = from / 64; w < kSlots / 64; ++w) {
      std::uint64_t bits = nonempty_[level][w];
      if (w == from / 64) bits &= ~std::uint64_t{0} << (from % 64);
      if (bits != 0) return w * 64 + static_cast<unsigned>(std::countr_zero(bits));
    }
    return kSlots;
  }

  std::uint32_t next_event_from(std::uint32_t t) const {
    std::uint32_t best = t + kNothing;
    if (count_ == 0) return best;
    auto consider = [&](std::uint32_t e) {
      if (static_cast<std::int32_t>(e - best) < 0) best = e;
    };
    unsigned s0 = first_set(0, digit(t, 0));  // level 0: later in this rotation
    if (s0 < kSlots) consider((t & ~(kSlots - 1u)) + s0);
    // Level l >= 1: the next cascade point (digit l names a non-empty bucket, lower digits
    // zero) at or after t, in this rotation of level l or the next.
    for (unsigned l = 1; l < kLevels; ++l) {
      std::uint32_t span = std::uint32_t{1} << (l * kBits);  // ticks per bucket of level l
      std::uint32_t base = t & ~(span - 1);                  // start of t's bucket
      unsigned d = digit(t, l);
      unsigned from = (t & (span - 1)) == 0 ? d : d + 1;
      unsigned s = from < kSlots ? first_set(l, from) : kSlots;
      if (s < kSlots) {
        consider(base + (s - d) * span);
      } else if (unsigned w = first_set(l, 0); w < kSlots) {
        consider(base + (kSlots - d + w) * span);  // wraps into the next rotation
      }
    }
    return best;
  }

  std::uint32_t cur_;
  std::uint64_t count_ = 0;
  callout_list buckets_[kLevels][kSlots];
  std::uint64_t nonempty_[kLevels][kSlots / 64] = {};
};

}  // namespace kcont::detail
