// Services the machine layer offers to kcont's higher layers (callout, workqueue, kcont, net).
// A lower layer never includes a higher one: where the machine needs a higher layer (the CPU
// loop must know when the next callout is due) the higher layer registers a hook here.
// Not meant for applications.
#pragma once

#include <kcont/runtime.h>

#include <cstdint>

namespace kcont::machine {

// Called on a CPU's loop thread when the time it asked for with request_clock has come.
using clock_hook = void (*)(cpu_info* ci, std::int64_t now_ns);

// One clock hook per runtime (the callout layer's). Set it before the first request_clock.
void set_clock_hook(runtime& rt, clock_hook hook);

// Any thread: make ci's loop call the clock hook once steady_clock reaches `ns`. Keeps the
// earliest of several requests; wakes the loop only if it sleeps past `ns`. The loop clears
// its request before calling the hook, so the hook must ask again for its next time.
void request_clock(cpu_info* ci, std::int64_t ns);

runtime& runtime_of(const cpu_info* ci);
// The CPU whose loop thread this is, or nullptr on any other thread (unlike curcpu(), which
// also answers for foreign threads).
cpu_info* this_thread_cpu();
// curcpu() within `rt`, whatever runtime::current() is on this thread.
cpu_info* current_cpu(runtime& rt);
std::int64_t now_ns();               // steady_clock, nanoseconds since its epoch
std::int64_t epoch_ns(runtime& rt);  // when the runtime was created: its tick 0

// Called around a blocking wait in the machine layer (a contended kmutex_t), so that the
// worker engine can let another worker run while this one sleeps. Process-wide; set once.
void set_blocking_hooks(void (*begin)(), void (*end)());
void blocking_begin();  // calls this thread's observer and the hooks, where set
void blocking_end();

// This thread's observer of blocking points, told (before the process-wide hook) when code
// it runs is about to sleep. The kcont layer sets it around a thread-queue continuation so
// that lower-priority queues of that CPU may run while it sleeps. Returns the previous one.
struct block_observer {
  void (*begin)(void* arg) = nullptr;
  void* arg = nullptr;
};
block_observer set_thread_block_observer(block_observer observer);

// Per-runtime state of a higher layer: created on first use by `create`, destroyed by
// `destroy` when the runtime is destroyed (after its CPUs have stopped), highest layer first.
enum class layer : unsigned { callout = 0, workqueue, kcont, net, count };
void* layer_state(runtime& rt, layer which, void* (*create)(runtime&), void (*destroy)(void*));

}  // namespace kcont::machine
