//! loom models of `Queue::reserve*` and `SendPermit` (`src/queue/permit.rs`), against the
//! contract: a permit holds capacity, not a place in line; an item sent through a permit
//! after close is still delivered; receivers of a closed, empty queue wait while permits
//! are out (as tokio); dropping a permit gives its place back and wakes a waiting sender.
//! (The queue keeps this with one word of permits out plus a closed bit: a close that
//! sees no permit out, or the last permit to end after a close, closes the receivers'
//! line, "closed and drained". The models only use the public API, so they hold any
//! engine to the same contract.)
//!
//! Models:
//! - P1: a `reserve` (blocking or async) on a full queue of one place races a close and
//!   the receiver whose take frees the place (or, unbounded, races the close alone): it
//!   fails with `Closed` holding nothing, or gets the place. The permit then outlives the
//!   close, and the receiver waits on the closed, empty queue until the permit is sent (it
//!   gets the item) or dropped (it gets `RecvError`), never `RecvError` while it is out.
//! - P2: permits dropped racing a close while receivers wait (bounded and unbounded): they
//!   end with `RecvError`.
//! - P3: a sender waiting on a full queue of one place while the permit that fills it is
//!   dropped racing a close: it gets the place and its item is received, or gets its item
//!   back; the queue drains and the receiver ends with `RecvError`.
//! - P4: a `reserve` future polled once (`Pending`, queued behind a permit) and dropped,
//!   racing the drop of that permit and a close (or, open, a second sender): no slot lost.
//!
//! P1a-d and P3 run with a preemption bound of 2 (45 s for the file; with 3 they took 12
//! minutes on two cores); `LOOM_MAX_PREEMPTIONS=3` runs them deeper at release time.
//!
//! Every model checks the outcome (exactly-once delivery, the error kinds) and the final
//! state (`len`, `is_full`, `try_recv`, `try_reserve`). A lost wake, a slot that never
//! comes home or a receivers' line that never closes shows up as a loom deadlock.
//!
//! One rule of shape, from loom 0.7: a thread that joins another never makes a blocking
//! (parking) wait before it. The semaphore may unpark a waiter after the waiter has seen
//! its grant (the wake fires after the lock is dropped): std allows that, loom turns it
//! into `assertion failed: state.notified` inside `JoinHandle::join` (tokio-rs/loom#249).
//! So the main thread, which joins, waits only through `block_on` (a waker, not an
//! unpark), and blocking waits run on threads that join nothing. A permit borrows its
//! queue and cannot leave its thread, so each permit is used where it was taken.

#![cfg(loom)]

use std::pin::pin;
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
use std::task::Poll;

use loom::future::block_on;
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{model, model_bounded, poll_once};
use toro_sync::{Closed, Queue, RecvError, SendError, SendPermit, TryRecvError, TrySendError};

/// Receives with `recv().await` until `RecvError`, returning what came in order.
fn drain_async(q: &Queue<usize>) -> Vec<usize> {
    block_on(async {
        let mut got = Vec::new();
        while let Ok(item) = q.recv().await {
            got.push(item);
        }
        got
    })
}

/// The state of a queue that is closed and drained: nothing inside, every place home
/// (not full), and every way in or out says so: `try_recv` `Closed`, `recv` `RecvError`,
/// `try_reserve` and `try_send` `Closed`.
fn assert_drained(q: &Queue<usize>) {
    assert!(q.is_closed());
    assert_eq!(q.len(), 0);
    assert!(q.is_empty());
    assert!(!q.is_full(), "a closed queue lost a slot");
    assert_eq!(
        q.try_recv(),
        Err(TryRecvError::Closed),
        "closed, not drained"
    );
    assert_eq!(block_on(q.recv()), Err(RecvError));
    assert!(matches!(q.try_reserve(), Err(TrySendError::Closed(()))));
    assert_eq!(q.try_send(9), Err(TrySendError::Closed(9)));
}

/// The state of an open queue that is empty and quiet, with its whole capacity free:
/// `try_reserve` succeeds exactly `cap` times, then the queue is full; the permits go back.
fn assert_whole(q: &Queue<usize>, cap: usize) {
    assert!(!q.is_closed());
    assert_eq!(q.len(), 0);
    assert!(!q.is_full(), "an open queue lost a slot");
    assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
    let permits: Vec<SendPermit<'_, usize>> = (0..cap)
        .map(|_| q.try_reserve().expect("a slot was lost"))
        .collect();
    assert!(q.is_full());
    assert!(
        matches!(q.try_reserve(), Err(TrySendError::Full(()))),
        "more places than the capacity"
    );
    drop(permits);
    assert!(!q.is_full());
    assert_eq!(q.len(), 0);
}

/// The outcome of a send that may race a close: `true` if it was sent, `false` if it
/// failed, after checking that the failure handed back the very item and came from a close.
fn sent_or_handed_back(q: &Queue<usize>, item: usize, r: Result<(), SendError<usize>>) -> bool {
    match r {
        Ok(()) => true,
        Err(SendError(back)) => {
            assert_eq!(back, item, "a failed send handed back another item");
            assert!(q.is_closed(), "a send failed on an open queue");
            false
        }
    }
}

/// How a model waits for a place: parking the thread, or `.await`.
#[derive(Clone, Copy)]
enum How {
    Blocking,
    Async,
}

/// What a model does with a permit it got: fill it, or give the place back.
#[derive(Clone, Copy)]
enum Then {
    Send,
    Drop,
}

/// Model P1 (the body): a queue of one place holds item 0, so the reserve (on a reserver
/// thread) waits on `slots`; a receiver thread takes 0 (freeing the place: it goes to the
/// reserve) and then waits for a second item; the main thread closes. (On an unbounded
/// queue there is no item 0: the reserve never waits, the receiver waits for one item.)
/// The reserver waits until it sees the close, then:
///
/// - reserve `Err(Closed)`: it holds nothing, so the close (or the take) brought every slot
///   home and the receiver's last receive is `RecvError`;
/// - reserve `Ok(permit)`: the queue is closed, empty and (if bounded) full (the permit
///   holds the only place), `try_recv` says `Empty` (not `Closed`), and the receiver has
///   not returned; then the permit is sent (the receiver gets exactly that item) or
///   dropped (the receiver gets `RecvError`).
///
/// Either way the queue ends closed and drained.
fn reserve_vs_close(q: Queue<usize>, how: How, then: Then) {
    let bounded = q.capacity().is_some();
    let q = Arc::new(q);
    if bounded {
        q.try_send(0).unwrap();
    }
    let returned = Arc::new(AtomicBool::new(false));

    let receiver = {
        let q = q.clone();
        let returned = returned.clone();
        thread::spawn(move || {
            if bounded {
                // Item 0 was sent before anything else: the close never hides it.
                assert_eq!(q.recv_blocking(), Ok(0));
            }
            let second = q.recv_blocking();
            returned.store(true, SeqCst);
            second
        })
    };
    let reserver = {
        let q = q.clone();
        thread::spawn(move || {
            let reserved = match how {
                How::Blocking => q.reserve_blocking(),
                How::Async => block_on(q.reserve()),
            };
            // What follows happens after the close.
            while !q.is_closed() {
                thread::yield_now();
            }
            let permit = match reserved {
                // Nothing changed: the failed reserve holds no place (the receiver's
                // `RecvError` below shows the line closed).
                Err(Closed) => return false,
                Ok(permit) => permit,
            };
            // The permit is out after the close: closed, empty, and not drained.
            assert_eq!(q.len(), 0);
            assert_eq!(q.is_full(), bounded, "the permit's place is not held");
            assert_eq!(
                q.try_recv(),
                Err(TryRecvError::Empty),
                "closed and drained reported while a permit was out"
            );
            assert!(
                !returned.load(SeqCst),
                "a receiver returned while a permit was out"
            );
            match then {
                Then::Send => permit.send(7),
                Then::Drop => drop(permit),
            }
            true
        })
    };
    q.close();
    let reserved = reserver.join().unwrap();
    let second = receiver.join().unwrap();

    match (reserved, then) {
        (true, Then::Send) => assert_eq!(
            second,
            Ok(7),
            "an item sent through a permit after close was not delivered"
        ),
        (true, Then::Drop) | (false, _) => assert_eq!(second, Err(RecvError)),
    }
    assert_drained(&q);
}

/// Model P1a: `reserve_blocking` racing close, the permit then sent after the close.
#[test]
fn reserve_blocking_vs_close_then_send() {
    model_bounded("reserve_blocking_vs_close_then_send", 2, || {
        reserve_vs_close(Queue::bounded(1), How::Blocking, Then::Send)
    });
}

/// Model P1b: `reserve_blocking` racing close, the permit then dropped after the close.
#[test]
fn reserve_blocking_vs_close_then_drop() {
    model_bounded("reserve_blocking_vs_close_then_drop", 2, || {
        reserve_vs_close(Queue::bounded(1), How::Blocking, Then::Drop)
    });
}

/// Model P1c: `reserve().await` racing close, the permit then sent after the close.
#[test]
fn reserve_async_vs_close_then_send() {
    model_bounded("reserve_async_vs_close_then_send", 2, || {
        reserve_vs_close(Queue::bounded(1), How::Async, Then::Send)
    });
}

/// Model P1d: `reserve().await` racing close, the permit then dropped after the close.
#[test]
fn reserve_async_vs_close_then_drop() {
    model_bounded("reserve_async_vs_close_then_drop", 2, || {
        reserve_vs_close(Queue::bounded(1), How::Async, Then::Drop)
    });
}

/// Model P1e: an unbounded queue, whose `reserve().await` never waits: the reserve races
/// the close head on; a permit that won keeps the closed queue from draining until its
/// item, sent after the close, is received.
#[test]
fn unbounded_reserve_async_vs_close_then_send() {
    model("unbounded_reserve_async_vs_close_then_send", || {
        reserve_vs_close(Queue::unbounded(), How::Async, Then::Send)
    });
}

/// Model P1f: the same with `reserve_blocking`, the permit dropped after the close.
#[test]
fn unbounded_reserve_blocking_vs_close_then_drop() {
    model("unbounded_reserve_blocking_vs_close_then_drop", || {
        reserve_vs_close(Queue::unbounded(), How::Blocking, Then::Drop)
    });
}

/// Model P2 (the body): a permit (the only place of a queue of one, or one of an unbounded
/// queue) is dropped (main thread) racing a close, while a blocking receiver waits on the
/// empty queue. Whichever of the drop's release and the close comes second sees every slot
/// home and closes the receivers' line: the receiver ends with `RecvError` (a lost report is a loom
/// deadlock), and the queue is drained.
fn permit_drop_vs_close_waiting_receiver(q: Queue<usize>) {
    let bounded = q.capacity().is_some();
    let q = Arc::new(q);
    let permit = q.try_reserve().unwrap();
    assert_eq!(q.is_full(), bounded);

    let receiver = {
        let q = q.clone();
        thread::spawn(move || q.recv_blocking())
    };
    let closer = {
        let q = q.clone();
        thread::spawn(move || q.close())
    };
    drop(permit);
    closer.join().unwrap();

    assert_eq!(receiver.join().unwrap(), Err(RecvError));
    assert_drained(&q);
}

/// Model P2a: on a queue of one place.
#[test]
fn permit_drop_vs_close_waiting_receiver_bounded() {
    model("permit_drop_vs_close_waiting_receiver_bounded", || {
        permit_drop_vs_close_waiting_receiver(Queue::bounded(1))
    });
}

/// Model P2b: on an unbounded queue.
#[test]
fn permit_drop_vs_close_waiting_receiver_unbounded() {
    model("permit_drop_vs_close_waiting_receiver_unbounded", || {
        permit_drop_vs_close_waiting_receiver(Queue::unbounded())
    });
}

/// Model P2c: a queue of two places; the main thread holds one permit, and an async
/// receiver is queued in the receivers' line (first poll `Pending`). A second thread takes
/// the other place with `try_reserve` (or finds the queue closed) and drops it, a third closes, and
/// the main thread drops its permit and awaits the receiver. Whichever of the two drops
/// and the close comes last brings the last slot home and closes the receivers' line: the queued
/// receiver ends with `RecvError`.
#[test]
fn two_permit_drops_vs_close_queued_receiver() {
    model("two_permit_drops_vs_close_queued_receiver", || {
        let q = Arc::new(Queue::<usize>::bounded(2));
        let mine = q.try_reserve().unwrap();
        let mut fut = pin!(q.recv());
        assert!(poll_once(fut.as_mut()).is_pending());

        let other = {
            let q = q.clone();
            thread::spawn(move || match q.try_reserve() {
                Ok(permit) => drop(permit),
                Err(e) => {
                    assert!(matches!(e, TrySendError::Closed(())), "{e:?}");
                    assert!(q.is_closed());
                }
            })
        };
        let closer = {
            let q = q.clone();
            thread::spawn(move || q.close())
        };
        drop(mine);
        assert_eq!(block_on(fut.as_mut()), Err(RecvError));
        other.join().unwrap();
        closer.join().unwrap();

        assert_drained(&q);
    });
}

/// Model P3 (the body): a queue of one place is full with a permit (main thread); a sender
/// thread sends 5 (it waits on `slots`, or finds the queue closed); a closer thread closes;
/// the main thread drops the permit and receives (`recv().await`) until `RecvError`. The
/// dropped place goes to the waiting sender unless the close came first: the sender got
/// the place exactly when the receiver got 5, a failed send hands 5 back, and the queue
/// ends drained.
fn permit_drop_vs_close_waiting_sender(how: How) {
    let q = Arc::new(Queue::bounded(1));
    let permit = q.try_reserve().unwrap();

    let sender = {
        let q = q.clone();
        thread::spawn(move || {
            let r = match how {
                How::Blocking => q.send_blocking(5),
                How::Async => block_on(q.send(5)),
            };
            sent_or_handed_back(&q, 5, r)
        })
    };
    let closer = {
        let q = q.clone();
        thread::spawn(move || q.close())
    };
    drop(permit);
    let got = drain_async(&q);
    let sent = sender.join().unwrap();
    closer.join().unwrap();

    if sent {
        assert_eq!(got, [5], "an Ok-sent item was not received exactly once");
    } else {
        assert_eq!(got, [], "a failed send's item was received");
    }
    assert_drained(&q);
}

/// Model P3a: the waiting sender is `send_blocking`.
#[test]
fn permit_drop_vs_close_waiting_sender_blocking() {
    model_bounded("permit_drop_vs_close_waiting_sender_blocking", 2, || {
        permit_drop_vs_close_waiting_sender(How::Blocking)
    });
}

/// Model P3b: the waiting sender is `send().await`.
#[test]
fn permit_drop_vs_close_waiting_sender_async() {
    model_bounded("permit_drop_vs_close_waiting_sender_async", 2, || {
        permit_drop_vs_close_waiting_sender(How::Async)
    });
}

/// A `reserve()` future polled once and then dropped, the cancelled reserve of model P4.
/// While the main thread's permit is out the poll is `Pending` (the future queues on
/// `slots`), and the drop cancels it: a place granted to it meanwhile must pass on.
/// Counts those executions in `pending` (loom may run the poll after the permit's drop,
/// when it gets the place or sees the close; that permit is dropped too).
fn reserve_poll_once_then_drop(q: &Queue<usize>, pending: &StdAtomicUsize) {
    let mut fut = pin!(q.reserve());
    match poll_once(fut.as_mut()) {
        Poll::Pending => {
            // std's atomic: a count outside the model.
            pending.fetch_add(1, StdOrdering::Relaxed);
        }
        Poll::Ready(Ok(permit)) => drop(permit),
        Poll::Ready(Err(Closed)) => assert!(q.is_closed()),
    }
}

/// Model P4a: a queue of one place is full with a permit (main thread). A canceller thread
/// polls a `reserve()` future once and drops it, a closer thread closes, and the main
/// thread drops its permit (its place may be handed straight to the queued future) and
/// awaits a receive. A place granted to the cancelled future goes back with a report, so
/// whichever release or close comes last closes the receivers' line: the receiver gets `RecvError`
/// and the queue reports closed and drained, its place home. The model also checks that
/// loom ran the poll-`Pending`-then-drop case.
#[test]
fn cancelled_reserve_vs_permit_drop_vs_close() {
    let pending = std::sync::Arc::new(StdAtomicUsize::new(0));
    let counted = pending.clone();
    model("cancelled_reserve_vs_permit_drop_vs_close", move || {
        let q = Arc::new(Queue::bounded(1));
        let permit = q.try_reserve().unwrap();

        let canceller = {
            let q = q.clone();
            let counted = counted.clone();
            thread::spawn(move || reserve_poll_once_then_drop(&q, &counted))
        };
        let closer = {
            let q = q.clone();
            thread::spawn(move || q.close())
        };
        drop(permit);
        assert_eq!(block_on(q.recv()), Err(RecvError));
        canceller.join().unwrap();
        closer.join().unwrap();

        assert_drained(&q);
    });
    assert!(pending.load(StdOrdering::Relaxed) > 0, "never cancelled");
}

/// Model P4b: the open variant. As P4a, but instead of a close a sender thread
/// (`reserve_blocking`, queued behind the future or finding the queue full) wants the
/// place and sends 9 through it. The place passes from the dropped permit, through the
/// cancelled future if it was granted there, to the sender (a lost slot is a loom
/// deadlock); afterwards 9 is received once and the capacity is whole again.
#[test]
fn cancelled_reserve_vs_permit_drop_open() {
    let pending = std::sync::Arc::new(StdAtomicUsize::new(0));
    let counted = pending.clone();
    model("cancelled_reserve_vs_permit_drop_open", move || {
        let q = Arc::new(Queue::bounded(1));
        let permit = q.try_reserve().unwrap();

        let canceller = {
            let q = q.clone();
            let counted = counted.clone();
            thread::spawn(move || reserve_poll_once_then_drop(&q, &counted))
        };
        let sender = {
            let q = q.clone();
            thread::spawn(move || q.reserve_blocking().unwrap().send(9))
        };
        drop(permit);
        canceller.join().unwrap();
        sender.join().unwrap();

        assert_eq!(q.len(), 1);
        assert!(q.is_full());
        assert_eq!(q.try_recv(), Ok(9));
        assert_whole(&q, 1);
    });
    assert!(pending.load(StdOrdering::Relaxed) > 0, "never cancelled");
}
