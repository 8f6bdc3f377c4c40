// Wait-under-lock detection (WITNESS/lockdep in miniature), in builds with KCONT_LOCKDEBUG
// (the default for Debug builds; the CMake option KCONT_LOCKDEBUG). Not meant for
// applications: kcont's layers call it.
//
// Every kmutex_t a thread takes is recorded with where it was taken. While a handler runs
// (a softint, a callout, a task of a taskq or taskctx, a workqueue item, a kcont func), the
// code marks it with a handler_scope naming the object the handler belongs to; each lock taken
// inside is learned for that object. A wait for an object's handlers (callout_halt,
// softint_disestablish, taskq_barrier, taskq_del_barrier, taskq_destroy, workqueue_wait,
// workqueue_destroy, taskctx_barrier, kcont_halt, kcont_destroy) first checks the locks the
// waiting thread holds against the ones learned for that object, and a kcont wait for a
// running func also against the continuation's own lock: a match is the classic deadlock (the
// handler would block on a lock held by the thread waiting for it), reported with the wait, the
// lock, where the waiter took it and where the handler took it, and then abort() — instead of
// hanging. Like lockdep, it reports the possibility: the handler need not be blocked right now, it
// only has to have taken the lock once before.
//
// Without KCONT_LOCKDEBUG every call below is an empty inline function: nothing is recorded
// and nothing costs.
#pragma once

#include <kcont/mutex.h>

namespace kcont::lockdebug {

#ifdef KCONT_LOCKDEBUG
inline constexpr bool enabled = true;

// The handler of `key` runs on this thread until the scope ends (scopes nest).
class handler_scope {
 public:
  explicit handler_scope(const void* key);
  ~handler_scope();
  handler_scope(const handler_scope&) = delete;
  handler_scope& operator=(const handler_scope&) = delete;
};

// Before `wait` waits for the handlers of `key` (and of `key2` when not null): reports and
// aborts if this thread holds a lock, other than `interlock` (released while waiting), that
// those handlers have taken.
void check_wait(const char* wait, const void* key, const kmutex_t* interlock = nullptr,
                const void* key2 = nullptr);
// Before `wait` waits for a handler that is running and needs `lock` back before it can
// return (a kcont func that gave its associated lock up for a while).
void check_wait_for_lock(const char* wait, const void* key, const kmutex_t* lock);
// `key`'s object is going away (its address may be reused): forget what was learned.
void forget(const void* key);

// Called by mutex(9) itself.
void lock_taken(const kmutex_t* m, const char* file, unsigned line, const char* function);
void lock_released(const kmutex_t* m);
#else
inline constexpr bool enabled = false;
class handler_scope {
 public:
  explicit handler_scope(const void*) {}
};
inline void check_wait(const char*, const void*, const kmutex_t* = nullptr, const void* = nullptr) {
}
inline void check_wait_for_lock(const char*, const void*, const kmutex_t*) {}
inline void forget(const void*) {}
#endif

}  // namespace kcont::lockdebug
