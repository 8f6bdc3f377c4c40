// kcont-nicsim's --json file: a JSON array of {name, value, unit} records, the shape
// kcont-bench's records take, written as they come.
#pragma once

#include <cstdio>
#include <fstream>
#include <string>

namespace kcont::net {

class json_records {
 public:
  // Opens `path`; when it cannot, says so on stderr and ok() is false.
  explicit json_records(const std::string& path) : out_(path) {
    if (!out_)
      std::fprintf(stderr, "kcont-nicsim: cannot write %s\n", path.c_str());
    else
      out_ << "[\n";
  }
  bool ok() const { return static_cast<bool>(out_); }
  void add(const std::string& name, double value, const char* unit) {
    out_ << (first_ ? "" : ",\n") << "  {\"name\": \"" << name << "\", \"value\": " << value
         << ", \"unit\": \"" << unit << "\"}";
    first_ = false;
  }
  // Closes the array; whether everything was written.
  bool finish() {
    out_ << "\n]\n";
    out_.flush();
    return static_cast<bool>(out_);
  }

 private:
  std::ofstream out_;
  bool first_ = true;
};

}  // namespace kcont::net
