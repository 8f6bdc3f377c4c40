// The exactly-once ledger, shared by kcont-torture and the stress tests (tests/test_*_stress.cpp
// and the other tallies): every piece of work an API accepted ends as exactly one run or one
// cancellation the API reported. Families add each object's figures; an object whose own
// figures do not balance is recorded (with its name for each figure), and the totals must
// balance too.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace torture {

struct books {
  books() = default;
  explicit books(std::string api_name) : api(std::move(api_name)) {}

  std::string api;
  std::uint64_t scheduled = 0, ran = 0, cancelled = 0;  // must balance
  std::uint64_t coalesced = 0;     // accepted but merged into a run that covered them (softint)
  std::uint64_t order_checks = 0;  // runs checked against the promised order
  std::string note;

  struct unbalanced_object {
    unsigned object;
    std::string what;  // e.g. "armed 7 != ran 5 + cancelled 1"
  };
  std::vector<unbalanced_object> unbalanced;

  // Adds one object's figures (named as the family counts them, e.g. "armed", "deleted").
  // Returns false, and records the object in `unbalanced`, when its figures do not balance.
  bool add_object(unsigned object, std::uint64_t object_scheduled, std::uint64_t object_ran,
                  std::uint64_t object_cancelled, const char* scheduled_name = "scheduled",
                  const char* cancelled_name = "cancelled", const std::string& where = "");

  // Every object and the totals balance.
  bool balanced() const { return unbalanced.empty() && scheduled == ran + cancelled; }
  // "<api>: <scheduled> scheduled = <ran> ran + <cancelled> cancelled[; N objects unbalanced,
  // the first: ...]" for a test's message or a report line.
  std::string summary() const;
};

}  // namespace torture
