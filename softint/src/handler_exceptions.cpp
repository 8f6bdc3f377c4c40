// The exception policy for handlers (see <kcont/runtime.h>): one reporter for every handler
// kind, so that a throwing softint, callout, task, work item or kcont func is reported the
// same way, once, and the layer that ran it can release what it held and go on.
#include <kcont/internal/machine_hooks.h>
#include <kcont/runtime.h>

#include <cxxabi.h>
#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <typeinfo>

namespace kcont {
namespace {

// Both atomic, process-wide. g_policy: -1 not decided yet (the environment is read at the
// first report or query).
std::atomic<int> g_policy{-1};
std::atomic<std::uint64_t> g_reported{0};  // exceptions reported so far

int policy_from_env() {
  const char* v = std::getenv("KCONT_ON_EXCEPTION");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "report") == 0)
    return static_cast<int>(exception_policy::report);
  if (std::strcmp(v, "abort") == 0) return static_cast<int>(exception_policy::abort);
  std::fprintf(stderr, "kcont: KCONT_ON_EXCEPTION=%s is not a policy (report or abort)\n", v);
  std::abort();
}

}  // namespace

void machine::describe_function(const void* fn, char* buf, std::size_t size) noexcept {
  Dl_info info{};
  if (fn == nullptr) {
    std::snprintf(buf, size, "?");
    return;
  }
  if (::dladdr(fn, &info) == 0) {
    std::snprintf(buf, size, "%p", fn);
    return;
  }
  const char* module = info.dli_fname != nullptr ? std::strrchr(info.dli_fname, '/') : nullptr;
  module = module != nullptr ? module + 1 : (info.dli_fname != nullptr ? info.dli_fname : "?");
  if (info.dli_sname == nullptr) {  // not exported (an executable not linked -rdynamic):
    // the offset in the module is what addr2line -e MODULE takes
    const auto in_module = static_cast<const char*>(fn) - static_cast<const char*>(info.dli_fbase);
    std::snprintf(buf, size, "%p (%s+%#tx)", fn, module, in_module);
    return;
  }
  int status = 0;
  char* demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
  const char* name = status == 0 && demangled != nullptr ? demangled : info.dli_sname;
  const auto offset = static_cast<const char*>(fn) - static_cast<const char*>(info.dli_saddr);
  if (offset != 0)
    std::snprintf(buf, size, "%s+%#tx (%s)", name, offset, module);
  else
    std::snprintf(buf, size, "%s (%s)", name, module);
  std::free(demangled);
}

void set_exception_policy(exception_policy policy) {
  g_policy.store(static_cast<int>(policy));
}

exception_policy current_exception_policy() {
  int p = g_policy.load();
  if (p < 0) {
    int decided = policy_from_env();
    g_policy.compare_exchange_strong(p, decided);
    p = g_policy.load();
  }
  return static_cast<exception_policy>(p);
}

std::uint64_t handler_exceptions() {
  return g_reported.load();
}

namespace machine {

void handler_threw(const char* kind, const char* queue, const void* fn) noexcept {
  char what[512] = "a non-standard exception";
  try {
    throw;  // the exception being handled by the caller's catch block
  } catch (const std::exception& e) {
    int status = 0;
    char* type = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
    std::snprintf(what, sizeof what, "%s: %s", status == 0 && type ? type : typeid(e).name(),
                  e.what());
    std::free(type);
  } catch (...) {
    if (const std::type_info* t = abi::__cxa_current_exception_type()) {
      int status = 0;
      char* type = abi::__cxa_demangle(t->name(), nullptr, nullptr, &status);
      std::snprintf(what, sizeof what, "an exception of type %s",
                    status == 0 && type ? type : t->name());
      std::free(type);
    }
  }
  char function[512];
  describe_function(fn, function, sizeof function);
  const bool abort = current_exception_policy() == exception_policy::abort;
  g_reported.fetch_add(1);
  // One write, so that reports from several threads do not interleave.
  std::fprintf(stderr, "kcont: a %s threw and was %s (queue %s, function %s): %s\n", kind,
               abort ? "not caught (KCONT_ON_EXCEPTION=abort)" : "abandoned",
               queue != nullptr ? queue : "-", function, what);
  if (abort) std::abort();
}

}  // namespace machine
}  // namespace kcont
