// kcont-nicsim's runtime: KCONT_* variables, then --ncpu and --backend; --intr-cpu checked
// against the CPUs it has.
#pragma once

#include <kcont/runtime.h>

#include <memory>

#include "nicsim_options.h"

namespace kcont::net {

// Throws std::invalid_argument (a bad KCONT_* variable, --intr-cpu beyond the runtime's CPUs)
// with the message to print; the caller exits 2.
std::unique_ptr<kcont::runtime> make_nicsim_runtime(const nicsim_options& o);

}  // namespace kcont::net
