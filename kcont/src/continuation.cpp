// kcont::continuation, the RAII face (kcont.h).
#include <kcont/kcont.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace kcont {

continuation::continuation(kcont_wq_t* wq, std::function<void()> fn, kmutex_t* lock)
    : continuation(runtime::current(), wq, std::move(fn), lock) {}

continuation::continuation(runtime& rt, kcont_wq_t* wq, std::function<void()> fn, kmutex_t* lock)
    : fn_(std::move(fn)) {
  runtime_scope scope(rt);
  if (int e = kcont_init(&kc_, wq, lock, &continuation::trampoline, this, 0); e != 0) {
    if (e == EINVAL) throw std::invalid_argument("kcont::continuation: NULL queue");
    throw std::system_error(e, std::generic_category(), "kcont::continuation");
  }
}

continuation::~continuation() {
  kcont_destroy(&kc_);
}

void continuation::trampoline(void* self, kcont_t*) {
  static_cast<continuation*>(self)->fn_();
}

}  // namespace kcont
