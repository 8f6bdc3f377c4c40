// The misuse reporter (kcont/internal/misuse.h).
#include <kcont/internal/misuse.h>

#include <cstdio>
#include <cstdlib>

namespace kcont::internal {

void misuse(const char* face, const char* what) noexcept {
  std::fprintf(stderr, "kcont: %s misuse: %s\n", face, what);
  std::abort();
}

void misuse_at(const char* face, const char* what, const char* kind, const void* object) noexcept {
  std::fprintf(stderr, "kcont: %s misuse: %s (%s %p)\n", face, what, kind, object);
  std::abort();
}

void misuse_named(const char* face, const char* what, const char* kind, const char* name) noexcept {
  std::fprintf(stderr, "kcont: %s misuse: %s (%s %s)\n", face, what, kind,
               name != nullptr ? name : "?");
  std::abort();
}

}  // namespace kcont::internal
