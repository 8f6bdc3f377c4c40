// What every thread kcont makes does first (a CPU's loop thread, a worker): a name that `top -H`
// and gdb show, and, where the runtime pins threads, one host core.
#pragma once

namespace kcont::internal {

// The host's online CPUs (at least 1).
unsigned online_cpus() noexcept;

// Names the calling thread; Linux keeps the first 15 characters.
void name_this_thread(const char* name) noexcept;

// Pins the calling thread to host core `index` modulo online_cpus(). False when the host
// refuses (a cpuset without that core): the thread then runs wherever the scheduler puts it.
bool pin_this_thread(unsigned index) noexcept;

// The runtime CPU a thread kcont made serves (a worker of CPU 1: 1), for reports about it
// (the stuck-handler watchdog); -1 until noted. A CPU's loop thread is known without it.
void note_this_thread_cpu(int index) noexcept;
int this_thread_cpu_note() noexcept;

}  // namespace kcont::internal
