// STUB for test_seed_code only: OpenBSD code includes <sys/task.h> for task(9) and taskctx;
// kcont's header for them is <kcont/task.h>. Nothing else belongs here.
#pragma once
#include <kcont/task.h>
