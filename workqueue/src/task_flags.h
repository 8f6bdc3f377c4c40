// The private bits of task::t_flags (<kcont/task.h>), shared by every file that queues a task:
// engine.cpp (taskq and workqueue instances), taskctx.cpp and taskq.cpp. OpenBSD's name and
// value. Written under the lock of the list the task is on; read with an acquire load to ask
// "queued?" without it.
#pragma once

namespace kcont::detail {

inline constexpr unsigned TASK_ONQUEUE = 1u << 0;  // on a list; t_queue names whose

}  // namespace kcont::detail
