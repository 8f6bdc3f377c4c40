// kmutex_t (std::mutex plus an owner tag) and the kernel lock of softints made without
// SOFTINT_MPSAFE.
#include <kcont/internal/lockdebug.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/internal/misuse.h>
#include <kcont/mutex.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace {

thread_local char tl_owner_tag;  // its address identifies this thread

[[noreturn]] void misuse(const char* what, const kmutex_t* m) {
  kcont::internal::misuse_at("mutex", what, "kmutex", m);
}

}  // namespace

#ifdef KCONT_LOCKDEBUG
#define KCONT_WHERE_PARAM , std::source_location where
#define KCONT_NOTE_TAKEN(m) \
  kcont::lockdebug::lock_taken(m, where.file_name(), where.line(), where.function_name())
#else
#define KCONT_WHERE_PARAM
#define KCONT_NOTE_TAKEN(m) (void)0
#endif

void mutex_init(kmutex_t* m, int, int KCONT_WHERE_PARAM) {
  m->owner.store(nullptr, std::memory_order_relaxed);
#ifdef KCONT_LOCKDEBUG
  m->init_where = where;
#endif
}

void mutex_destroy(kmutex_t* m) {
  if (m->owner.load(std::memory_order_relaxed) != nullptr)
    misuse("mutex_destroy of a held mutex", m);
}

void mutex_enter(kmutex_t* m KCONT_WHERE_PARAM) {
  if (m->owner.load(std::memory_order_relaxed) == &tl_owner_tag)
    misuse("mutex_enter of a mutex this thread already holds", m);
  if (!m->m.try_lock()) {  // contended: this thread is about to sleep
    kcont::machine::blocking_begin();
    m->m.lock();
    kcont::machine::blocking_end();
  }
  m->owner.store(&tl_owner_tag, std::memory_order_relaxed);
  KCONT_NOTE_TAKEN(m);
}

bool mutex_tryenter(kmutex_t* m KCONT_WHERE_PARAM) {
  if (!m->m.try_lock()) return false;
  m->owner.store(&tl_owner_tag, std::memory_order_relaxed);
  KCONT_NOTE_TAKEN(m);
  return true;
}

void mutex_exit(kmutex_t* m) {
  if (m->owner.load(std::memory_order_relaxed) != &tl_owner_tag)
    misuse("mutex_exit by a thread that does not hold it", m);
#ifdef KCONT_LOCKDEBUG
  kcont::lockdebug::lock_released(m);
#endif
  m->owner.store(nullptr, std::memory_order_relaxed);
  m->m.unlock();
  // Continuations waiting for this lock (lock_waiters.cpp): the fence pairs with a waiter's
  // store-then-trylock, so either it got the lock or we see it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (m->waiters.load(std::memory_order_relaxed) != nullptr) [[unlikely]]
    kcont::machine::detail_wake_lock_waiters(m);
}

bool mutex_owned(const kmutex_t* m) {
  return m->owner.load(std::memory_order_relaxed) == &tl_owner_tag;
}

namespace {
// Never destroyed: handlers run by static destructors may still take it.
std::recursive_mutex& the_kernel_lock() {
  static auto* m = new std::recursive_mutex;
  return *m;
}
}  // namespace
void kernel_lock() {
  the_kernel_lock().lock();
}
void kernel_unlock() {
  the_kernel_lock().unlock();
}
