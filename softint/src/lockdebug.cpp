// Wait-under-lock detection; see kcont/internal/lockdebug.h. Compiled to nothing without
// KCONT_LOCKDEBUG. Debug-build cost only: a thread-local list of held locks, a thread-local
// stack of running handlers, and a global table (under one mutex) of the locks each handler
// object was seen to take.
#include <kcont/internal/lockdebug.h>

#ifdef KCONT_LOCKDEBUG

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace kcont::lockdebug {
namespace {

struct site {
  const char* file = "?";
  unsigned line = 0;
  const char* function = "?";
};

struct held_lock {
  const kmutex_t* m;
  site where;
};

struct learned_lock {
  const kmutex_t* m;
  site where;  // where a handler of the object first took it
};

// Locks: the thread-locals are their thread's own; [g] g_mu.
thread_local std::vector<held_lock> tl_held;        // locks this thread holds, in order
thread_local std::vector<const void*> tl_handlers;  // handler scopes this thread is in

std::mutex g_mu;  // a plain std::mutex: not itself tracked
// [g] what each object's handlers have taken
std::unordered_map<const void*, std::vector<learned_lock>>& learned() {
  static auto* table = new std::unordered_map<const void*, std::vector<learned_lock>>;
  return *table;  // never destroyed: handlers may still run during static destruction
}

const learned_lock* find_learned(const void* key, const kmutex_t* m) {
  auto it = learned().find(key);
  if (it == learned().end()) return nullptr;
  for (const auto& l : it->second)
    if (l.m == m) return &l;
  return nullptr;
}

[[noreturn]] void report(const char* wait, const void* key, const held_lock& h,
                         const site* handler_site) {
  const std::source_location& init = h.m->init_where;
  std::fprintf(stderr,
               "kcont: lockdebug: %s(%p) would deadlock: it waits for a handler that takes "
               "kmutex_t %p (initialised at %s:%u), which this thread holds\n"
               "  held by the waiting thread since %s:%u (%s)\n",
               wait, key, static_cast<const void*>(h.m),
               init.file_name()[0] ? init.file_name() : "?", static_cast<unsigned>(init.line()),
               h.where.file, h.where.line, h.where.function);
  if (handler_site != nullptr)
    std::fprintf(stderr, "  taken by the handler at %s:%u (%s)\n", handler_site->file,
                 handler_site->line, handler_site->function);
  else
    std::fprintf(stderr, "  the handler runs holding it (the continuation's own lock)\n");
  std::fflush(stderr);
  std::abort();
}

}  // namespace

handler_scope::handler_scope(const void* key) {
  tl_handlers.push_back(key);
}

handler_scope::~handler_scope() {
  tl_handlers.pop_back();
}

void lock_taken(const kmutex_t* m, const char* file, unsigned line, const char* function) {
  const site where{file, line, function};
  tl_held.push_back({m, where});
  if (tl_handlers.empty()) return;
  std::lock_guard<std::mutex> lk(g_mu);
  for (const void* key : tl_handlers)
    if (find_learned(key, m) == nullptr) learned()[key].push_back({m, where});
}

void lock_released(const kmutex_t* m) {
  // Locks are usually released in reverse order: search from the back.
  for (auto it = tl_held.rbegin(); it != tl_held.rend(); ++it) {
    if (it->m == m) {
      tl_held.erase(std::next(it).base());
      return;
    }
  }
}

void check_wait(const char* wait, const void* key, const kmutex_t* interlock, const void* key2) {
  if (tl_held.empty()) return;
  std::lock_guard<std::mutex> lk(g_mu);
  for (const held_lock& h : tl_held) {
    if (h.m == interlock) continue;
    const learned_lock* l = find_learned(key, h.m);
    if (l == nullptr && key2 != nullptr) l = find_learned(key2, h.m);
    if (l != nullptr) report(wait, key, h, &l->where);
  }
}

void check_wait_for_lock(const char* wait, const void* key, const kmutex_t* lock) {
  if (lock == nullptr) return;
  for (const held_lock& h : tl_held)
    if (h.m == lock) report(wait, key, h, nullptr);
}

void forget(const void* key) {
  std::lock_guard<std::mutex> lk(g_mu);
  learned().erase(key);
}

}  // namespace kcont::lockdebug

#endif  // KCONT_LOCKDEBUG
