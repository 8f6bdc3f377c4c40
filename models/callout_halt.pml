/*
 * callout_halt.pml -- callout_halt against a handler that re-arms itself, the halting
 * thread on another CPU than the handler, an interlock that the handler also takes.
 *
 * Mirrors, at commit 7822a68 (branch main), callout/src/callout.cpp:
 *   stop_locked       l.177-182  EXPIRED read; PENDING unlinked; PENDING|EXPIRED cleared
 *   schedule          l.207-253  (from the handler: c is running, so no migration, l.230)
 *                                EXPIRED|INVOKING cleared, PENDING set, on the wheel
 *   softclock         l.255-275  pop the expired list; PENDING -> EXPIRED|INVOKING;
 *                                running = c; unlock; handler; lock; running = 0; notify;
 *                                the callout itself is not touched after the handler
 *   clock_hook        l.277-298  the due callout moves from the wheel to the expired list
 *   callout_halt      l.356-374  stop; while (running == c && not the handler's own CPU)
 *                                { drop interlock; wait for running != c; unlock; take
 *                                interlock; relock; stop again }
 * Abstractions: one callout, one CPU wheel (migration between CPUs and callout_lock()'s
 * c_cpu re-check are not modelled: a callout whose handler is running does not migrate,
 * l.230); time is "the clock may fire whenever the callout is on the wheel"; the
 * condition_variable wait (predicate form) is one atomic step "running != c, and take the
 * lock"; halt_waiters/notify are implied by that; kernel_lock (non-MPSAFE) is not modelled.
 *
 * Processes:
 *   Cpu0   CPU 0's loop thread: clock_hook and softclock; runs the handler, which takes the
 *          interlock, then either re-arms the callout (at most REARMS times in all), or calls
 *          callout_halt on itself (once: must not wait for itself), or does nothing.
 *   Halter a thread on another CPU: arms the callout, takes the interlock, callout_halt, and
 *          releases the interlock.
 * Properties:
 *   after callout_halt returns (still under the caller's lock): the handler is not running
 *   and the callout is not pending; and the handler never starts again afterwards (nobody
 *   else re-arms it here). callout_halt from the handler returns without waiting and leaves
 *   it not pending. Halt terminates: no invalid end state (deadlock), and the LTL property
 *   halt_returns ([] (halt_called -> <> halt_done)), checked with -a.
 *
 * BROKEN=1: callout_halt waits once and does not stop again after the handler returned
 *           (NetBSD's callout_halt race with a re-arming handler): it returns with the
 *           callout pending, and the handler runs after the halt.
 * BROKEN=2: callout_halt waits while holding the interlock: the handler blocks on the
 *           interlock, the halter waits for the handler -- deadlock.
 */

#ifndef REARMS
#define REARMS 2
#endif

#define NONE    0
#define WHEEL   1
#define EXPLIST 2

bit cclock = 0;        /* callout_cpu::lock */
bit ilock = 0;         /* the interlock (a kmutex the handler takes too) */
bit pending = 0;       /* F_PENDING */
bit expired = 0;       /* F_EXPIRED */
bit invoking = 0;      /* F_INVOKING */
byte where = NONE;     /* wheel, expired list, or neither */
bit running = 0;       /* cc.running == c */

/* ghosts */
bit halt_called = 0, halt_done = 0;
bit in_handler = 0;
byte rearms = 0;
bit selfhalt_done = 0;

#define LOCK(l)   atomic { l == 0 -> l = 1 }
#define UNLOCK(l) l = 0

/* stop_locked (l.177-182): cclock held */
inline STOP_LOCKED(ret) {
  atomic {
    ret = ret | expired;
    if :: pending -> where = NONE :: else -> skip fi;
    pending = 0; expired = 0
  }
}

/* schedule (l.207-253) for a callout that is running (no migration): cclock taken here */
inline SCHEDULE() {
  LOCK(cclock);
  atomic {
    expired = 0; invoking = 0;
    pending = 1; where = WHEEL      /* re-inserted on the wheel (unlink first if pending) */
  };
  UNLOCK(cclock)
}

/* callout_halt (l.356-374); self: called from the handler on CPU 0's own thread */
inline HALT(self, ret) {
  LOCK(cclock);
  STOP_LOCKED(ret);
#if BROKEN == 1
  if
  :: running && !self ->
     UNLOCK(ilock);
     atomic { cclock = 0 };                    /* cv wait: unlock ... */
     atomic { running == 0 && cclock == 0 -> cclock = 1 };   /* ... woken, relocked */
     UNLOCK(cclock);
     LOCK(ilock);
     LOCK(cclock)                              /* and no second stop */
  :: else -> skip
  fi;
#else
  do
  :: running && !self ->
#if BROKEN == 2
     skip;                                     /* keeps the interlock while waiting */
#else
     UNLOCK(ilock);                            /* mutex_exit(interlock) */
#endif
     atomic { cclock = 0 };                    /* done_cv.wait: unlock ... */
     atomic { running == 0 && cclock == 0 -> cclock = 1 };   /* ... until running != c */
     UNLOCK(cclock);
#if BROKEN != 2
     LOCK(ilock);                              /* mutex_enter(interlock) */
#endif
     LOCK(cclock);                             /* callout_lock */
     STOP_LOCKED(ret)
  :: else -> break
  od;
#endif
  if
  :: !self -> assert(!running && !pending && where == NONE)
  :: else -> assert(!pending && where == NONE)
  fi;
  UNLOCK(cclock)
}

proctype Cpu0() {
  bit r;
  do
  :: /* clock_hook, when the callout's tick has come: it goes to the expired list.
        (Idle passes of clock_hook/softclock change nothing and are left out.) */
     where == WHEEL;
     LOCK(cclock);
     if
     :: where == WHEEL -> where = EXPLIST
     :: else -> skip
     fi;
     UNLOCK(cclock)
  :: /* softclock, scheduled by clock_hook */
     where == EXPLIST;
     LOCK(cclock);
     if
     :: where == EXPLIST ->
          atomic {
            where = NONE; pending = 0; expired = 1; invoking = 1;
            running = 1
          };
          UNLOCK(cclock);
          /* the handler */
          atomic { assert(!halt_done); in_handler = 1 };
          LOCK(ilock);
          if
          :: rearms < REARMS -> rearms++; SCHEDULE()
          :: !selfhalt_done -> selfhalt_done = 1; r = 0; HALT(1, r)
          :: skip
          fi;
          UNLOCK(ilock);
          in_handler = 0;
          /* back in softclock: only cc is touched now */
          LOCK(cclock);
          running = 0;
          UNLOCK(cclock)
     :: else -> UNLOCK(cclock)
     fi
  :: atomic { halt_done && where == NONE -> break }
  od
}

proctype Halter() {
  bit r = 0;
  SCHEDULE();                    /* callout_reset from this CPU (c not running yet) */
  LOCK(ilock);
  halt_called = 1;
  HALT(0, r);
  halt_done = 1;
  UNLOCK(ilock)
}

init {
  atomic { run Cpu0(); run Halter() }
}

ltl halt_returns { [] (halt_called -> <> halt_done) }
