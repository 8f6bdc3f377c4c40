// Reads what kcont-bench --json writes, for `kcont-bench compare` and the smoke checker: a small
// JSON parser (objects, arrays, strings, numbers, true/false/null) and the record list.
#pragma once

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace kcont_bench::json {

struct value {
  enum kind_t { null_v, bool_v, number_v, string_v, array_v, object_v } kind = null_v;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<value> arr;
  std::vector<std::pair<std::string, value>> obj;
  const value* get(const std::string& key) const {
    for (const auto& [k, v] : obj)
      if (k == key) return &v;
    return nullptr;
  }
};

class parser {
 public:
  explicit parser(const std::string& text) : s_(text) {}
  // Throws std::runtime_error with the offset on malformed input.
  value parse() {
    value v = parse_value();
    skip_ws();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error(what + " at offset " + std::to_string(i_));
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r'))
      ++i_;
  }
  bool take(char c) {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!take(c)) fail(std::string("expected '") + c + "'");
  }
  bool literal(const char* word) {
    const std::string w(word);
    if (s_.compare(i_, w.size(), w) == 0) {
      i_ += w.size();
      return true;
    }
    return false;
  }
  std::string parse_string() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c == '\\') {
        if (i_ >= s_.size()) fail("bad escape");
        char e = s_[i_++];
        switch (e) {
          case 'n':
            out += '\n';
            break;
          case 't':
            out += '\t';
            break;
          case 'r':
            out += '\r';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'u': {
            if (i_ + 4 > s_.size()) fail("bad \\u escape");
            unsigned cp = static_cast<unsigned>(std::stoul(s_.substr(i_, 4), nullptr, 16));
            i_ += 4;
            out += cp < 0x80 ? static_cast<char>(cp) : '?';
            break;
          }
          default:
            out += e;
        }
      } else {
        out += c;
      }
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  value parse_value() {
    skip_ws();
    if (i_ >= s_.size()) fail("unexpected end");
    value v;
    char c = s_[i_];
    if (c == '{') {
      ++i_;
      v.kind = value::object_v;
      if (take('}')) return v;
      do {
        skip_ws();
        std::string k = parse_string();
        expect(':');
        v.obj.emplace_back(std::move(k), parse_value());
      } while (take(','));
      expect('}');
    } else if (c == '[') {
      ++i_;
      v.kind = value::array_v;
      if (take(']')) return v;
      do {
        v.arr.push_back(parse_value());
      } while (take(','));
      expect(']');
    } else if (c == '"') {
      v.kind = value::string_v;
      v.str = parse_string();
    } else if (literal("null")) {
      v.kind = value::null_v;
    } else if (literal("true")) {
      v.kind = value::bool_v;
      v.b = true;
    } else if (literal("false")) {
      v.kind = value::bool_v;
    } else {
      const char* start = s_.c_str() + i_;
      char* end = nullptr;
      v.num = std::strtod(start, &end);
      if (end == start) fail("unexpected character");
      v.kind = value::number_v;
      i_ += static_cast<std::size_t>(end - start);
    }
    return v;
  }
  const std::string& s_;
  std::size_t i_ = 0;
};

struct figure {
  double value = NAN;  // NaN: null in the file
  std::string unit;
  bool has_spread = false;
  double min = NAN, max = NAN;
};

struct bench_file {
  value machine;
  std::vector<std::string> order;  // record names in file order
  std::map<std::string, figure> figures;
};

// Loads a kcont-bench --json file; on failure returns false with `error` set.
inline bool load(const std::string& path, bench_file& out, std::string& error) {
  std::ifstream in(path);
  if (!in) {
    error = path + ": cannot open";
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  value root;
  try {
    root = parser(text).parse();
  } catch (const std::exception& e) {
    error = path + ": not JSON: " + e.what();
    return false;
  }
  const value* recs = root.kind == value::object_v ? root.get("records") : nullptr;
  if (!recs || recs->kind != value::array_v) {
    error = path + ": not a kcont-bench file (no \"records\" array)";
    return false;
  }
  if (const value* m = root.get("machine")) out.machine = *m;
  for (const value& r : recs->arr) {
    const value* name = r.get("name");
    const value* val = r.get("value");
    const value* unit = r.get("unit");
    if (r.kind != value::object_v || !name || name->kind != value::string_v || !val ||
        (val->kind != value::number_v && val->kind != value::null_v)) {
      error = path + ": a record without a name or a numeric value";
      return false;
    }
    figure f;
    f.value = val->kind == value::number_v ? val->num : NAN;
    if (unit && unit->kind == value::string_v) f.unit = unit->str;
    const value* mn = r.get("min");
    const value* mx = r.get("max");
    if (mn && mx && mn->kind == value::number_v && mx->kind == value::number_v) {
      f.has_spread = true;
      f.min = mn->num;
      f.max = mx->num;
    }
    if (!out.figures.count(name->str)) out.order.push_back(name->str);
    out.figures[name->str] = f;
  }
  return true;
}

}  // namespace kcont_bench::json
