// Reads what kcont-bench --json writes, for `kcont-bench compare` and the smoke checker: a small
// JSON parser (objects, arrays, strings, numbers, true/false/null) and the record list.
#pragma once

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
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

// Arrays and objects nested deeper than this are refused (the parser recurses once per level;
// a kcont-bench file nests three deep).
inline constexpr int max_depth = 256;

class parser {
 public:
  explicit parser(const std::string& text) : s_(text) {}
  // Throws std::runtime_error with the offset on malformed input: not JSON, truncated, nested
  // deeper than max_depth, a number a double cannot hold.
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
            unsigned cp = 0;
            for (int k = 0; k < 4; ++k, ++i_) {
              const char h = s_[i_];
              const int d = h >= '0' && h <= '9'   ? h - '0'
                            : h >= 'a' && h <= 'f' ? h - 'a' + 10
                            : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                   : -1;
              if (d < 0) fail("bad \\u escape");
              cp = cp * 16 + static_cast<unsigned>(d);
            }
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
  // A JSON number (RFC 8259: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?), finite as a
  // double. strtod alone would take inf, nan, hex and leading blanks too.
  double parse_number() {
    const std::size_t start = i_;
    auto digits = [&] {
      const std::size_t from = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      return i_ > from;
    };
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ < s_.size() && s_[i_] == '0')
      ++i_;
    else if (!digits())
      fail("unexpected character");
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (!digits()) fail("bad number");
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (!digits()) fail("bad number");
    }
    const double d = std::strtod(s_.substr(start, i_ - start).c_str(), nullptr);
    if (!std::isfinite(d)) {
      i_ = start;
      fail("number out of range");
    }
    return d;  // a tiny one underflows to 0 or a denormal: harmless
  }
  // Counts the nesting of the array or object being parsed.
  struct depth_guard {
    parser& p;
    explicit depth_guard(parser& owner) : p(owner) {
      if (++p.depth_ > max_depth)
        p.fail("too deeply nested (more than " + std::to_string(max_depth) + " levels)");
    }
    ~depth_guard() { --p.depth_; }
    depth_guard(const depth_guard&) = delete;
    depth_guard& operator=(const depth_guard&) = delete;
  };
  value parse_value() {
    skip_ws();
    if (i_ >= s_.size()) fail("unexpected end");
    value v;
    char c = s_[i_];
    if (c == '{') {
      depth_guard nest(*this);
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
      depth_guard nest(*this);
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
      v.num = parse_number();
      v.kind = value::number_v;
    }
    return v;
  }
  const std::string& s_;
  std::size_t i_ = 0;
  int depth_ = 0;
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

// A kcont-bench --json file is some 100 KiB; anything above this is not one.
inline constexpr std::size_t max_file_bytes = 64u << 20;

// Loads a kcont-bench --json file; on failure returns false with `error` set.
inline bool load(const std::string& path, bench_file& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot open";
    return false;
  }
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > max_file_bytes) {
      error = path + ": not a kcont-bench file (larger than " +
              std::to_string(max_file_bytes >> 20) + " MiB)";
      return false;
    }
  }
  if (in.bad()) {
    error = path + ": cannot read";
    return false;
  }
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
