/*
 * nic_tx.pml -- the simulated NIC's transmit side: the DMA engine thread, the doorbell, and
 * start putting a few frames on the wire itself while the engine sleeps.
 *
 * Mirrors net/src/nic_engine.cpp (as of the commit that adds this model, after 38a14b5):
 *   ring_doorbell   bell = 1; if engine_sleeping: CAS it 1 -> 0 and write the eventfd
 *   wake_engine     (the bell set) if engine_sleeping: CAS it 1 -> 0, write the eventfd
 *   post_transmit   (start, inside the serialiser, after posting frames) bell = 1; engine
 *                   awake: return; more than kInlineFrames posted beyond tx_hw, or tx_busy
 *                   already held (exchange): wake_engine; else transmit from tx_hw to
 *                   tx_prod, give tx_busy back, and ring_doorbell if frames are left
 *   engine_main     take tx_busy (spin on exchange); bell = 0; transmit from tx_hw up to
 *                   tx_prod (re-read when reached); give tx_busy back; if it sent any, go
 *                   round; else engine_sleeping = 1; bell exchanged for 0 was set: awake
 *                   again and go round; else block until the eventfd is written
 * Abstractions: one start at a time (the serialiser), so start is one process posting N
 * frames in starts of one or two; the 64-frame pass limit, the DMA rate limit (inline_tx is
 * off with one) and engine_stop are not modelled; every atomic is seq_cst here (the code's
 * doorbell accesses are; tx_busy is acquire/release and guards only what it orders); a frame
 * "on the wire" is a counter per slot.
 *
 * Properties:
 *   every frame goes on the wire exactly once, only after it was posted, in ring order (tx_hw
 *   only grows: each transmit is of slot tx_hw);
 *   no frame is left behind: when nothing can move any more (start done, the engine blocked
 *   on its eventfd), every posted frame was sent (the timeout process).
 *
 * BROKEN=1: start transmits without taking tx_busy: the engine, waking for its bell, sends
 *           the same frames beside it (a frame twice).
 * BROKEN=2: start looks at engine_sleeping without setting the bell first: an engine about
 *           to sleep misses the frames (left behind).
 */

#ifndef N
#define N 4          /* frames start posts in all */
#endif
#ifndef K
#define K 1          /* kInlineFrames (4 in the code; 1 here reaches both ways with few frames) */
#endif

byte prod = 0;       /* tx_prod: written by start */
byte hw = 0;         /* tx_hw: written by whoever holds tx_busy */
bit bell = 0;
bit sleeping = 0;    /* engine_sleeping */
bit busy = 0;        /* tx_busy */
byte efd = 0;        /* the eventfd's count */
byte sent[N];        /* times each slot's frame went on the wire */
bit start_done = 0;

inline transmit_slot() {
  assert(hw < prod);
  sent[hw]++;
  assert(sent[hw] == 1);
  hw++
}

inline wake_engine() {
  atomic {
    if
    :: sleeping == 1 -> sleeping = 0; efd++
    :: else -> skip
    fi
  }
}

inline ring_doorbell() {
  bell = 1;
  wake_engine()
}

proctype Start() {
  bit held;
  do
  :: prod < N ->
     /* a start that posts one frame, or two (one queued behind another's start) */
     if
     :: prod++
     :: prod + 2 <= N -> prod = prod + 2
     fi;
     /* post_transmit */
#if BROKEN != 2
     bell = 1;
#endif
     if
     :: sleeping == 0 ->
#if BROKEN == 2
        bell = 1;
#endif
        skip
     :: else ->
        if
        :: prod - hw > K -> wake_engine()
        :: else ->
#if BROKEN == 1
           held = 0;
#else
           atomic { held = busy; busy = 1 }
#endif
           if
           :: held -> wake_engine()
           :: else ->
              do
              :: hw != prod -> transmit_slot()
              :: else -> break
              od;
#if BROKEN != 1
              busy = 0;
#endif
              if
              :: hw != prod -> ring_doorbell()
              :: else -> skip
              fi
           fi
        fi
     fi
  :: else -> break
  od;
  start_done = 1
}

proctype Engine() {
  byte p;
  bit did;
again:
  atomic { busy == 0 -> busy = 1 };
  bell = 0;
  did = 0;
  p = prod;
  do
  :: hw != p ->
     transmit_slot();
     did = 1;
     if
     :: hw == p -> p = prod
     :: else -> skip
     fi
  :: else -> break
  od;
  busy = 0;
  if
  :: did -> goto again
  :: else -> skip
  fi;
  sleeping = 1;
  if
  :: atomic { bell == 1 -> bell = 0 } -> sleeping = 0; goto again
  :: atomic { bell == 0 -> skip }
  fi;
end_wait:
  atomic { efd > 0 -> efd = 0 };
  sleeping = 0;
  goto again
}

/* Nothing can move: start has posted everything and the engine sleeps. */
active proctype Quiet() {
  timeout -> assert(start_done && hw == prod && prod == N)
}

init {
  atomic { run Start(); run Engine() }
}
