// The exactly-once ledger (books.h).
#include "books.h"

namespace torture {

bool books::add_object(unsigned object, std::uint64_t object_scheduled, std::uint64_t object_ran,
                       std::uint64_t object_cancelled, const char* scheduled_name,
                       const char* cancelled_name, const std::string& where) {
  scheduled += object_scheduled;
  ran += object_ran;
  cancelled += object_cancelled;
  if (object_scheduled == object_ran + object_cancelled) return true;
  unbalanced.push_back({object, where + scheduled_name + " " + std::to_string(object_scheduled) +
                                    " != ran " + std::to_string(object_ran) + " + " +
                                    cancelled_name + " " + std::to_string(object_cancelled)});
  return false;
}

std::string books::summary() const {
  std::string s = api + ": " + std::to_string(scheduled) + " scheduled = " + std::to_string(ran) +
                  " ran + " + std::to_string(cancelled) + " cancelled";
  if (scheduled != ran + cancelled) s += " (totals do NOT balance)";
  if (!unbalanced.empty())
    s += "; " + std::to_string(unbalanced.size()) + " object(s) unbalanced, the first: object " +
         std::to_string(unbalanced.front().object) + " " + unbalanced.front().what;
  return s;
}

}  // namespace torture
