// The bridge from the CPU loop to softint.cpp: run one queued softint instance.
#pragma once

#include "cpu.h"

namespace kcont::detail {

// Loop thread only: `n` was just popped from ci's queue.
void softint_run(cpu_info* ci, pending_node* n);

}  // namespace kcont::detail
