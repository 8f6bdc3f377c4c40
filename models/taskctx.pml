/*
 * taskctx.pml -- the taskctx enter/leave protocol (OpenBSD 2015 taskctx diff / net/ifq.c
 * serialiser) as kcont implements it.
 *
 * Mirrors, at commit 7822a68 (branch main):
 *   workqueue/src/taskctx.cpp
 *     taskctx_enter           l.23-25   fetch_add(1) + 1 == 1
 *     taskctx_leave           l.27-30   CAS(1 -> 0)
 *     taskctx_next_work       l.34-44   store(1); lock; pop front; clear TASK_ONQUEUE; unlock
 *     taskctx_drain           l.47-53   do { while (next_work) run } while (!leave)
 *     taskctx_run             l.55-61
 *     task_dispatch           l.89-118  unlocked ONQUEUE test; one-CAS fast path (0 -> 1),
 *                                       run, leave-or-drain; else queue under tc_mtx (ONQUEUE
 *                                       re-tested) and taskctx_run
 *     taskctx_barrier         l.120-143 serializer == 0: return; dispatch a barrier task,
 *                                       wait for it, then wait for serializer == 0
 *   workqueue/include/kcont/task.h  struct taskctx (l.46-50): tc_mtx, tc_worklist,
 *                                   atomic tc_serializer; struct task t_flags (TASK_ONQUEUE)
 *
 * Abstractions: the atomics are seq_cst in the code and are single atomic steps here; tc_mtx
 * is a test-and-set lock; the worklist is a FIFO of task ids (a task is linked intrusively,
 * so "queued twice" is a corrupt list: asserted never to happen); a task body is one step
 * that checks mutual exclusion; the barrier's condition variable and its yield/sleep spin on
 * the serializer are blocking guards (same safety behaviour, no busy cycles); tasks do not
 * dispatch into other taskctxs (tl_running_ctx is only used for the misuse check).
 *
 * Processes (bounded): D0 dispatches T0 then T1; D1 dispatches T1 then T0; D2 dispatches T0
 * then calls taskctx_barrier (which dispatches the barrier task T2). Every pair of
 * dispatches of the same task can meet: fast path vs. queued path, a re-dispatch while
 * queued (coalesced by TASK_ONQUEUE) and while running (queued again, runs again).
 *
 * Properties:
 *   mutex   never two threads running tasks of the context (assert in RUN)
 *   once    a task is never on the worklist twice; a run always has an outstanding dispatch
 *   nolost  at the end (all dispatchers returned): worklist empty, no ONQUEUE flag left,
 *           serializer 0, and every accepted dispatch ran (runs == owed)   (checker process)
 *   barrier when taskctx_barrier returns, every dispatch that had returned before it was
 *           called has had its task run to completion, and the barrier saw the context left
 *   ltl     all_done: every process finishes (checked with -a -f, weak fairness)
 *
 *   (with STRICT_BARRIER) the documented contract, task.h l.11-14: when taskctx_barrier
 *           returns, every dispatch that had returned before it was called has had its
 *           task run.
 *
 * STRICT_BARRIER is a KNOWN ISSUE of the code as it is (expected to fail). Counterexample:
 * D0 finds the context busy and queues T0; the runner leaves (CAS 1 -> 0) before D0 bumps
 * the count; D1 dispatches T0, sees TASK_ONQUEUE and returns ("it will run"); D2's
 * taskctx_barrier reads tc_serializer == 0 and returns at once -- T0 has not run. (The
 * slow path has the same hole: the barrier task takes the fast path and runs ahead of the
 * queued T0.) FIX_BARRIER models the proposed fix -- decide under tc_mtx (serializer 0 and
 * worklist empty), else queue the barrier task behind the others and taskctx_run -- and
 * passes STRICT_BARRIER.
 *
 * BROKEN: the runner leaves by storing 0 without the CAS/recheck (the pre-taskctx
 * ifq serialiser bug): a task queued while the runner was on its way out is stranded.
  *
 * Since the model found it, the code does what FIX_BARRIER models (taskctx_barrier decides under tc_mtx and queues its task behind the others).
 */

#define NT 3            /* T0, T1, and the barrier task T2 */
#define NPROC 3

byte ser = 0;           /* tc_serializer */
bit mtx = 0;            /* tc_mtx */
chan worklist = [NT] of { byte };  /* tc_worklist (FIFO) */
bit onq[NT];            /* TASK_ONQUEUE per task */

/* ghosts */
byte running = 0;       /* threads running a task of the context now */
byte owed[NT];          /* dispatches accepted (fast path taken, or queued) */
byte runs[NT];          /* runs started */
byte ran[NT];           /* runs finished */
byte inq[NT];           /* copies on the worklist */
byte qgen[NT];          /* generation of the task's latest queued copy (1, 2, ...) */
byte donegen[NT];       /* generation of its latest queued copy that finished running */
byte retired[NT];       /* highest generation a returned dispatch of the task relies on */
bit bdone = 0;          /* barrier_state.done */
byte finished = 0;      /* processes that returned from everything */

#define LOCK    atomic { mtx == 0 -> mtx = 1 }
#define UNLOCK  mtx = 0

/* g: the generation of the queued copy being run, 0 for a fast-path run */
inline RUN(t, g) {
  atomic { assert(running == 0); running++; assert(runs[t] < owed[t]); runs[t]++ };
  atomic { running--; ran[t]++; if :: g > 0 -> donegen[t] = g :: else -> skip fi;
           if :: t == 2 -> bdone = 1 :: else -> skip fi }
}

/* taskctx_next_work + taskctx_drain (l.34-53). Caller is inside. */
inline DRAIN() {
  do
  :: ser = 1;                                   /* tc_serializer.store(1) */
     LOCK;
     if
     :: nempty(worklist) ->
          atomic { worklist ? cur; inq[cur]--; onq[cur] = 0; curgen = qgen[cur] }
          UNLOCK;                                /* popped, ONQUEUE cleared, copied */
          RUN(cur, curgen)
     :: empty(worklist) ->
          UNLOCK;
#ifdef BROKEN
          ser = 0;                              /* leave: plain store, no recheck */
          break
#else
          if                                    /* taskctx_leave: CAS(1 -> 0) */
          :: atomic { ser == 1 -> ser = 0 }; break
          :: atomic { ser != 1 -> skip }        /* a contender came: look again */
          fi
#endif
     fi
  od
}

inline DISPATCH(t) {
  if
  :: atomic { onq[t] -> need = qgen[t] }        /* l.94: already queued, it will run */
  :: else ->
     if
     :: atomic { ser == 0 -> ser = 1; owed[t]++ } ->   /* fast path CAS(0 -> 1) */
          RUN(t, 0);
#ifdef BROKEN
          ser = 0
#else
          if
          :: atomic { ser == 1 -> ser = 0 }
          :: atomic { ser != 1 -> skip }; DRAIN()
          fi
#endif
     :: atomic { ser != 0 -> skip } ->
          LOCK;
          if
          :: onq[t] == 0 ->
               atomic { assert(inq[t] == 0); onq[t] = 1; inq[t]++; worklist ! t; owed[t]++;
                        qgen[t]++; need = qgen[t] }
          :: else -> need = qgen[t]                 /* queued meanwhile: coalesced */
          fi;
          UNLOCK;
          /* taskctx_run: enter = fetch_add(1) + 1 == 1 */
          if
          :: atomic { ser == 0 -> ser = 1 }; DRAIN()
          :: atomic { ser != 0 -> ser++ }
          fi
     fi
  fi;
  /* returned: it relies on the run of queued copy `need` (0: it ran the task itself) */
  atomic { if :: retired[t] < need -> retired[t] = need :: else -> skip fi; need = 0 }
}

inline BARRIER() {
#ifndef FIX_BARRIER
  /* the code as it is (l.127-142) */
  if
  :: atomic { ser == 0 -> snap0 = retired[0]; snap1 = retired[1] }  /* nothing inside */
  :: atomic { ser != 0 -> snap0 = retired[0]; snap1 = retired[1] };
     DISPATCH(2);
     bdone == 1;                                  /* cv wait for the barrier task */
     atomic { ser == 0 -> left = 1 }              /* wait until the runner has left */
  fi;
#else
  /* proposed fix: decide under tc_mtx, and queue the barrier task behind what is queued
     (never the fast path, which would run it ahead of an older queued task) */
  atomic { snap0 = retired[0]; snap1 = retired[1] };
  LOCK;
  if
  :: ser == 0 && empty(worklist) -> UNLOCK       /* nothing inside, nothing queued */
  :: else ->
     atomic { onq[2] = 1; inq[2]++; worklist ! 2; owed[2]++; qgen[2]++ };
     UNLOCK;
     if
     :: atomic { ser == 0 -> ser = 1 }; DRAIN()
     :: atomic { ser != 0 -> ser++ }
     fi;
     bdone == 1;
     atomic { ser == 0 -> left = 1 }
  fi;
#endif
  /* the barrier returns: its task ran and the context was seen left (or it was never entered) */
  assert(bdone == left);
#ifdef STRICT_BARRIER
  /* task.h l.11-14: every task running or queued when it was called has run -- in particular
     every dispatch that had returned before the call (fast-path ones ran before returning) */
  assert(donegen[0] >= snap0 && donegen[1] >= snap1)
#endif
}

proctype D0() { byte cur, curgen, need; DISPATCH(0); DISPATCH(1); finished++ }
proctype D1() { byte cur, curgen, need; DISPATCH(1); DISPATCH(0); finished++ }
proctype D2() { byte cur, curgen, need; byte snap0, snap1; bit left; DISPATCH(0); BARRIER(); finished++ }

proctype Checker() {
  byte t;
  finished == NPROC;
  assert(ser == 0 && empty(worklist) && running == 0);
  for (t : 0 .. NT - 1) {
    assert(onq[t] == 0 && inq[t] == 0 && runs[t] == owed[t] && ran[t] == runs[t])
  }
}

init {
  atomic { run D0(); run D1(); run D2(); run Checker() }
}

ltl all_done { <> (finished == NPROC) }
