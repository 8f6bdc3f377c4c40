/*
 * kcont_state.pml -- the kcont_t state machine: PENDING / EXPIRED / INVOKING and the
 * internal QUEUED / RUNNING, across a timer expiry, one executor and two callers.
 *
 * Mirrors, at commit 7822a68 (branch main), kcont/src/kcont.cpp:
 *   make_runnable     l.281-287  QUEUED; kick unless RUNNING
 *   kick              l.238-245  thread queue: enqueue the drain work unless drain_queued
 *   expire            l.289-296  the timer's handler: PENDING? -> EXPIRED|INVOKING, runnable
 *   run_queue         l.310-388  drain_queued = false; take the oldest whose lock can be
 *                                tryentered: QUEUED -> RUNNING; unlock; func; lock; clear
 *                                RUNNING, INVOKING unless re-QUEUED; release the lock only
 *                                then (l.353-354); notify `ran`; only blocked work left:
 *                                pause, kick
 *   inside_own_func   l.391-393
 *   stop_locked       l.396-406  callout_stop if PENDING; a QUEUED one is taken off (INVOKING
 *                                cleared unless RUNNING); PENDING|EXPIRED cleared
 *   kcont_schedule    l.453-492  EBUSY while INVOKING unless from its own func and not
 *                                re-queued; nticks 0: stop the timer, INVOKING, runnable;
 *                                nticks > 0: PENDING (own func: INVOKING cleared), arm timer
 *   kcont_stop        l.494-499;  kcont_halt l.501-511;  kcont_destroy l.513-534 (from
 *                                another thread: halt, callout_halt of the timer, stop, dead)
 *   kcont_ack         l.596-603
 * Abstractions: one continuation on one thread kqueue (per-CPU moves, l.464-478, are not
 * modelled: one CPU); its lock L (a kmutex, tryentered by the executor); the priority-level
 * gates (set_ready/stand_aside) are left out; one executor (the workqueue runs a queue
 * instance on at most one worker at a time: workqueue.cpp l.56, max_active 1); the timer is
 * a callout reduced to "armed" and "handler running" (callout_stop clears armed, callout_halt
 * also waits for the handler) -- the callout itself is model (b); kpause is a step; the
 * condition variable `ran` is "wait until RUNNING clears"; func does nothing but the calls
 * below; destroy from inside func (S_DYING) and setmutex are not modelled.
 *
 * Processes:
 *   Exec    the workqueue worker running the drain work (run_queue); runs func, which
 *           nondeterministically does nothing, kcont_ack, or (once in all) kcont_schedule of
 *           itself with nticks 0 or > 0
 *   Timer   the kc_timer callout firing expire()
 *   A       AOPS (3) operations, each one of: schedule(0) holding L, schedule(ticks), stop, ack
 *   B       schedule(0) or schedule(ticks), then (after A is done: no use after free)
 *           kcont_destroy or nothing
 * Properties (assertions):
 *   func never runs twice concurrently, never after kcont_destroy returned; the executor and
 *   the timer handler never touch the continuation after destroy returned;
 *   exactly once: a run always consumes an outstanding successful schedule (ghost owed_q /
 *   owed_p: a schedule that returned 0, carried over by expiry and coalesced by re-arming)
 *   and at the end nothing is owed -- every schedule that returned 0 ran or was cancelled
 *   by a stop/destroy; nothing is left QUEUED (no lost kick);
 *   after kcont_stop: neither PENDING nor QUEUED (an expired-but-not-run one is cancelled);
 *   a kcont_schedule made holding L is refused (EBUSY) only while a run is QUEUED (which
 *   will then see what the caller did under L) -- i.e. whoever takes L after func returned
 *   sees the invocation finished;
 *   invariants whenever the kqueue mutex is released: INVOKING -> QUEUED or RUNNING;
 *   QUEUED or RUNNING -> INVOKING unless acked since; not PENDING and EXPIRED both.
 *
 * CHECK_EARLY (known issue, expected to fail on the code as it is): a run caused by a timer
 *   expiry belongs to the current arming. Counterexample: the timer fires (softclock has
 *   called expire, which waits for q->mu), a caller re-arms with kcont_schedule(kc, nticks
 *   > 0) (allowed: the previous invocation was acked or func re-armed itself), then the
 *   stale expire finds PENDING and queues the continuation at once, nticks early; the new
 *   arming later finds it not PENDING and does nothing. FIX_EARLY models the proposed fix
 *   (expire returns when the callout is pending again) and passes with CHECK_EARLY.
 *
 * Re-scheduling from its own func without the lock (kcont/src/state.cpp "Re-scheduling",
 * drain.cpp run_again), added 2026-12-06: the word kc_resched (rs: OK_, ASK_). The executor
 * sets OK_ as func starts if the state is just INVOKING (allow_resched); func's schedule(0)
 * is a compare-and-swap OK_ -> OK_|ASK_ (returns 0) and else the locked path; every locked
 * operation that may change the state (schedule from its own func, stop, halt, ack, destroy)
 * first takes the word by exchange and queues an ask it finds (SETTLE); the executor settles
 * as func returns. NOLOCK: the continuation has no lock (A's locked schedule becomes a plain
 * one) and the executor may run func again at once, without mu, by compare-and-swap
 * OK_|ASK_ -> OK_ (run_again); func may then re-schedule itself twice in all.
 * BROKEN=4 (with NOLOCK): OK_ set whatever the state (an acked invocation too): another
 *           thread's schedule and func's ask both return 0 for one run.
 * BROKEN=5: stop does not settle: an ask made before the stop is left to run.
 *
 * BROKEN=1: the executor releases L before it relocks and marks the invocation finished
 *           (the order our exactly-once stress test caught).
 * BROKEN=2: INVOKING cleared when the executor dequeues instead of when func returns.
  *
 * Since the model found it, the code does what FIX_EARLY models (expire() ignores a stale firing when the timer was re-armed).
 */

#define P_  1
#define E_  2
#define I_  4
#define Q_  8
#define R_  16

#define OK_  1
#define ASK_ 2

#define EXEC 1
#define CA   2
#define CB   3
#define EBUSY 16

byte st = 0;            /* kc_state */
byte rs = 0;            /* kc_resched: OK_ | ASK_ */
bit mu = 0;             /* kqueue::mu */
byte L = 0;             /* kc_lock: 0 free, else the holder */
bit tpend = 0;          /* kc_timer armed */
bit trun = 0;           /* kc_timer's handler (expire) running */
bit wk = 0;             /* the drain work item is on the workqueue */
bit drain_queued = 0;

/* ghosts */
bit infunc = 0, destroyed = 0, acked = 0;
bit owed_q = 0, owed_p = 0;
#ifdef NOLOCK
byte self_budget = 2;
#else
byte self_budget = 1;
#endif
bit adone = 0, bdone = 0, exbusy = 0, timerdone = 0, execdone = 0;

#define HAS(b)  ((st & (b)) != 0)
#define INV     ((!HAS(I_) || HAS(Q_) || HAS(R_)) && \
                 (!(HAS(Q_) || HAS(R_)) || HAS(I_) || acked) && \
                 !(HAS(P_) && HAS(E_)))
#define LOCKMU    atomic { mu == 0 -> mu = 1 }
#define UNLOCKMU  atomic { assert(INV); mu = 0 }
#define LOCKL(me) atomic { L == 0 -> L = me }
#define UNLOCKL   L = 0

inline KICK() {
  if
  :: !drain_queued -> drain_queued = 1; wk = 1
  :: else -> skip
  fi
}

inline MAKE_RUNNABLE() {
  if
  :: HAS(Q_) -> skip
  :: else -> st = st | Q_; if :: !HAS(R_) -> KICK() :: else -> skip fi
  fi
}

/* mu held: queue_now (state.cpp) */
inline QUEUE_NOW() {
  if :: HAS(P_) -> tpend = 0 :: else -> skip fi;
  st = (st & ~(P_ | E_)) | I_; acked = 0;
  owed_p = 0;
  MAKE_RUNNABLE()
}

/* mu held, by an operation that may change the state: settle_resched */
inline SETTLE() {
  atomic { if :: (rs & ASK_) -> assert(owed_q); QUEUE_NOW() :: else -> skip fi; rs = 0 }
}

/* mu held */
inline STOP_LOCKED() {
  atomic {
    if :: HAS(P_) -> tpend = 0; owed_p = 0 :: else -> skip fi;   /* callout_stop */
    if
    :: HAS(Q_) -> st = st & ~Q_; owed_q = 0;
                  if :: !HAS(R_) -> st = st & ~I_ :: else -> skip fi
    :: else -> skip
    fi;
    st = st & ~(P_ | E_)
  }
}

/* kcont_schedule (l.453-492); self: from its own func; holdl: the caller holds L */
inline SCHEDULE(self, ticks, holdl, ret) {
  LOCKMU;
  if :: self -> SETTLE() :: else -> skip fi;
  atomic {
    if
    :: HAS(I_) && !(self && !HAS(Q_)) ->
         ret = EBUSY;
         assert(!holdl || HAS(Q_))     /* refused under L only while a run is queued */
    :: else ->
         ret = 0;
         if
         :: !ticks ->
              if :: HAS(P_) -> tpend = 0 :: else -> skip fi;
              st = (st & ~(P_ | E_)) | I_; acked = 0;
              owed_p = 0; owed_q = 1;
              MAKE_RUNNABLE()
         :: ticks ->
              st = (st & ~E_) | P_;
              if :: self -> st = st & ~I_; acked = 1 :: else -> skip fi;
              tpend = 1; owed_p = 1
         fi
    fi
  };
  UNLOCKMU
}

inline ACK() {
  LOCKMU;
  SETTLE();
  atomic { st = st & ~I_; acked = 1 };
  UNLOCKMU
}

inline STOP() {
  LOCKMU;
#if BROKEN != 5
  SETTLE();
#endif
  STOP_LOCKED();
  assert(!HAS(P_) && !HAS(Q_) && !(rs & ASK_) && !owed_q);  /* an ask made before is cancelled */
  UNLOCKMU
}

#ifdef NOLOCK
#define FUNC_HOLDS_L 0
#else
#define FUNC_HOLDS_L 1
#endif

/* func's kcont_schedule(self, NULL, 0): the unlocked ask, else the locked path */
inline ASK_OR_SCHEDULE() {
  if
  :: atomic { rs == OK_ -> rs = OK_ | ASK_; fret = 0; owed_q = 1 }
  :: atomic { rs != OK_ -> skip }; SCHEDULE(1, 0, FUNC_HOLDS_L, fret)
  fi
}

inline FUNC() {
  atomic { assert(infunc == 0 && !destroyed && (!FUNC_HOLDS_L || L == EXEC)); infunc = 1 };
  if
  :: skip
  :: ACK()
  :: atomic { self_budget > 0 -> self_budget-- }; ASK_OR_SCHEDULE()
  :: atomic { self_budget > 0 -> self_budget-- }; SCHEDULE(1, 1, FUNC_HOLDS_L, fret)
  fi;
  infunc = 0
}

proctype Exec() {
  byte fret; bit got;
  do
  :: atomic { wk -> wk = 0; exbusy = 1 };
     LOCKMU;
     drain_queued = 0;
     do
     :: HAS(Q_) ->
#ifdef NOLOCK
          got = 1;
#else
          atomic { if :: L == 0 -> L = EXEC; got = 1 :: else -> got = 0 fi };  /* tryenter */
#endif
          if
          :: got ->
               atomic {
                 assert(!destroyed);
                 st = (st & ~Q_) | R_;
#if BROKEN == 2
                 st = st & ~I_;
#endif
                 assert(owed_q); owed_q = 0;
                 /* allow_resched */
#if BROKEN == 4
                 rs = OK_
#else
                 if :: (st & (P_ | E_ | I_)) == I_ -> rs = OK_ :: else -> rs = 0 fi
#endif
               };
               UNLOCKMU;
               FUNC();
#ifdef NOLOCK
               do                         /* run_again: no mu */
               :: atomic { rs == (OK_ | ASK_) -> rs = OK_; assert(owed_q); owed_q = 0 };
                  FUNC()
               :: else -> break
               od;
#endif
#if BROKEN == 1
               UNLOCKL;
#endif
               LOCKMU;
               SETTLE();
               atomic {
                 assert(!destroyed);
                 st = st & ~R_;
                 if :: !HAS(Q_) -> st = st & ~I_ :: else -> skip fi
               };
#if BROKEN != 1 && !defined(NOLOCK)
               UNLOCKL                   /* only now (l.353-354) */
#endif
          :: else -> break               /* its lock is held elsewhere */
          fi
     :: else -> break
     od;
     if
     :: HAS(Q_) ->                        /* only blocked work: kpause, kick */
          UNLOCKMU; LOCKMU; KICK()
     :: else -> skip
     fi;
     atomic { UNLOCKMU; exbusy = 0 }
  :: atomic { wk == 0 && adone && bdone && timerdone -> execdone = 1; break }
  od
}

proctype Timer() {
  do
  :: atomic { tpend -> tpend = 0; trun = 1 };
     /* expire (l.289-296) */
     LOCKMU;
     atomic {
       assert(!destroyed);
       if
#ifdef FIX_EARLY
       /* proposed fix: a firing whose callout was re-armed meanwhile is stale: the new
          arming fires later (callout_pending(&kc->kc_timer) checked in expire) */
       :: HAS(P_) && tpend -> skip
       :: HAS(P_) && !tpend ->
#else
       :: HAS(P_) ->
#endif
#ifdef CHECK_EARLY
                     assert(!tpend);       /* this firing is the current arming's */
#endif
                     st = (st & ~P_) | E_ | I_; acked = 0;
                     owed_p = 0; owed_q = 1;
                     MAKE_RUNNABLE()
       :: else -> assert(!owed_p)           /* stopped meanwhile */
       fi
     };
     atomic { UNLOCKMU; trun = 0 }
  :: atomic { !tpend && adone && bdone && wk == 0 && !exbusy -> timerdone = 1; break }
  od
}

inline CALLER_OP(me) {
  if
#ifdef NOLOCK
  :: SCHEDULE(0, 0, 0, ret)
#else
  :: LOCKL(me); SCHEDULE(0, 0, 1, ret); UNLOCKL
#endif
  :: SCHEDULE(0, 1, 0, ret)
  :: STOP()
  :: ACK()
  fi
}

/* kcont_destroy from another thread (l.513-534) */
inline DESTROY() {
  LOCKMU; SETTLE(); UNLOCKMU;            /* not inside its own func */
  /* kcont_halt */
  LOCKMU;
  SETTLE();
  STOP_LOCKED();
  do
  :: HAS(R_) ->
       mu = 0;                            /* ran.wait(lk) ... */
       atomic { !HAS(R_) && mu == 0 -> mu = 1 };
       STOP_LOCKED()
  :: else -> break
  od;
  UNLOCKMU;
  /* callout_halt(&kc->kc_timer) */
  tpend = 0;
  trun == 0;
  LOCKMU;
  SETTLE();
  STOP_LOCKED();
  UNLOCKMU;
  atomic {
    destroyed = 1;
    assert(!HAS(Q_) && !HAS(R_) && !HAS(P_) && !tpend && !trun && !infunc)
  }
}

#ifndef AOPS
#define AOPS 3
#endif
proctype A() {
  byte ret, n = 0;
  do
  :: n < AOPS -> CALLER_OP(CA); n++
  :: else -> break
  od;
  adone = 1
}

proctype B() {
  byte ret;
  if
  :: SCHEDULE(0, 0, 0, ret)
  :: SCHEDULE(0, 1, 0, ret)
  fi;
  adone;
  if
  :: DESTROY()
  :: skip
  fi;
  bdone = 1
}

proctype Checker() {
  execdone && timerdone;
  assert(!HAS(Q_) && !HAS(R_) && !owed_q && !owed_p && L == 0 && !tpend && !(rs & ASK_))
}

init {
  atomic { run Exec(); run Timer(); run A(); run B(); run Checker() }
}
