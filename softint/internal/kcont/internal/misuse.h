// Misuse of a kcont interface (a NULL or destroyed object, a call from the wrong context, a
// rule of the manual page broken): the kernel would panic or corrupt memory; kcont prints what
// was wrong and aborts. One reporter for every layer, so every message reads
//   kcont: <face> misuse: <what> [(<kind> <object>)]
// and the death tests (tests/death_tests.cpp) can match them.
#pragma once

namespace kcont::internal {

[[noreturn]] void misuse(const char* face, const char* what) noexcept;
// ... (<kind> <address>), e.g. "(callout 0x5581...)".
[[noreturn]] void misuse_at(const char* face, const char* what, const char* kind,
                            const void* object) noexcept;
// ... (<kind> <name>), e.g. "(taskq systq)"; a null name prints as "?".
[[noreturn]] void misuse_named(const char* face, const char* what, const char* kind,
                               const char* name) noexcept;

}  // namespace kcont::internal
