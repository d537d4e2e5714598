//! loom models of `Queue<T>` (`src/queue/mod.rs`): the segmented FIFO of layer 4, whose
//! claims check a bounded queue's capacity, and the two lines with their store-load waking
//! (a push then a look at the receivers' line, a pop or a dropped permit then a look at
//! the senders' line; a join of a line, a fence, then a look at the FIFO), which a lost
//! wake would turn into a deadlock here. Sends and receives across a segment boundary
//! (under loom a segment has 2 slots, so three items cross one), close racing sends and
//! receives, a cancelled receive racing a send, back-pressure on a queue of one place, a
//! freed place racing a sender that lines up, close while a receiver waits or an item
//! is in flight, and a hand-over (an item for a waiting receiver takes no place) that
//! frees a place for a sender lining up.
//!
//! Every model checks that each item sent with `Ok` is received exactly once (in the
//! producer's order), that a failed send hands its own item back, that `RecvError` (closed
//! and drained) is never reported while an `Ok`-sent item is still to come, and the final
//! state (`len`, `is_empty`, `is_full`, what `try_recv` says). A lost wake or a line that
//! never closes shows up as a loom deadlock (a waiter that never returns).

#![cfg(loom)]

use std::future::Future;
use std::pin::{pin, Pin};

use loom::future::block_on;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{model, model_bounded, poll_once};
use toro_sync::{Queue, RecvError, SendError, TryRecvError, TrySendError};

/// Receives with `recv_blocking` until `RecvError`, returning what came in order.
fn drain_blocking(q: &Queue<usize>) -> Vec<usize> {
    let mut got = Vec::new();
    while let Ok(item) = q.recv_blocking() {
        got.push(item);
    }
    got
}

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

/// The state of a queue that is empty and quiet: nothing inside, a free place (if
/// bounded), and `try_recv` reporting `Empty` (open) or `Closed` (closed and drained).
fn assert_quiet(q: &Queue<usize>) {
    assert_eq!(q.len(), 0);
    assert!(q.is_empty());
    assert!(!q.is_full());
    let expect = if q.is_closed() {
        TryRecvError::Closed
    } else {
        TryRecvError::Empty
    };
    assert_eq!(q.try_recv(), Err(expect));
}

/// Fills `q` (one place) with item 0 and returns a `send` of item 1, polled once: it waits
/// in the senders' line, its item in the future.
fn send_waiting_behind_item_0(
    q: &Queue<usize>,
) -> Pin<Box<impl Future<Output = Result<(), SendError<usize>>> + '_>> {
    q.try_send(0).unwrap();
    let mut fut = Box::pin(q.send(1));
    assert!(poll_once(fut.as_mut()).is_pending());
    fut
}

/// A thread that takes `before` with `try_recv`, in order, then says whether one more
/// item came (the one a waiting send's drop races: Q9, Q10).
fn receiver_after(q: &Arc<Queue<usize>>, before: &'static [usize]) -> thread::JoinHandle<bool> {
    let q = q.clone();
    thread::spawn(move || {
        for &item in before {
            assert_eq!(q.try_recv(), Ok(item));
        }
        q.try_recv().is_ok()
    })
}

/// After the send of `item` raced its own drop and `receiver`: `item` was received at most
/// once, by the receiver or by a `try_recv` now.
fn received_at_most_once(q: &Queue<usize>, receiver: thread::JoinHandle<bool>, item: usize) {
    let first = receiver.join().unwrap();
    let later = match q.try_recv() {
        Ok(got) => {
            assert_eq!(got, item);
            true
        }
        Err(e) => {
            assert_eq!(e, TryRecvError::Empty);
            false
        }
    };
    assert!(!(first && later), "item {item} received twice");
}

/// The outcome of a send that may race a close: `Some(item)` if it was sent, `None` if it
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

/// Model Q1: one producer sends 3 items through a queue of 2 places (`send_blocking`, so
/// the third waits in `slots` until the consumer frees one), one consumer receives them
/// with `recv().await`: the pushes and pops cross a segment boundary. Order preserved,
/// each item once, nothing left.
#[test]
fn bounded_send_recv_across_segment() {
    model("bounded_send_recv_across_segment", || {
        let q = Arc::new(Queue::bounded(2));
        let producer = {
            let q = q.clone();
            thread::spawn(move || {
                for i in 0..3 {
                    q.send_blocking(i).unwrap();
                }
            })
        };
        let got = block_on(async {
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(q.recv().await.unwrap());
            }
            got
        });
        producer.join().unwrap();

        assert_eq!(got, [0, 1, 2]);
        assert_quiet(&q);
        assert_eq!(q.capacity(), Some(2));
    });
}

/// Model Q1b: the same stream through an unbounded queue, an async producer and a
/// blocking consumer that parks in the receivers' line whenever it runs ahead.
#[test]
fn unbounded_send_recv_across_segment() {
    model("unbounded_send_recv_across_segment", || {
        let q = Arc::new(Queue::unbounded());
        let producer = {
            let q = q.clone();
            thread::spawn(move || {
                block_on(async {
                    for i in 0..3 {
                        q.send(i).await.unwrap();
                    }
                })
            })
        };
        let got: Vec<usize> = (0..3).map(|_| q.recv_blocking().unwrap()).collect();
        producer.join().unwrap();

        assert_eq!(got, [0, 1, 2]);
        assert_quiet(&q);
        assert_eq!(q.capacity(), None);
    });
}

/// Model Q2: close races a producer of 2 items (`send_blocking` into a queue of one place,
/// so the second may be waiting in `slots` when the close comes) and a consumer that
/// receives until `RecvError`. The `Ok` sends are a prefix of the stream (a closed queue
/// stays closed), each is received exactly once and in order before the consumer hears
/// `RecvError` (closed and drained is never reported early), a failed send hands its item
/// back, and nobody hangs.
#[test]
fn close_vs_send_vs_recv() {
    // Bound 2: three busy threads; bound 3 runs for over ten minutes.
    model_bounded("close_vs_send_vs_recv", 2, || {
        let q = Arc::new(Queue::bounded(1));
        let producer = {
            let q = q.clone();
            thread::spawn(move || {
                (0..2)
                    .filter(|&i| sent_or_handed_back(&q, i, q.send_blocking(i)))
                    .collect::<Vec<usize>>()
            })
        };
        let closer = {
            let q = q.clone();
            thread::spawn(move || q.close())
        };
        let got = drain_async(&q);
        let sent = producer.join().unwrap();
        closer.join().unwrap();

        assert!(sent.iter().copied().eq(0..sent.len()), "sent {sent:?}");
        assert_eq!(got, sent, "RecvError before every Ok-sent item came");
        assert!(q.is_closed());
        assert_quiet(&q);
        assert_eq!(q.send_blocking(9), Err(SendError(9)));
        assert_eq!(q.try_send(9), Err(TrySendError::Closed(9)));
    });
}

/// Model Q2b: the same race on an unbounded queue with an async producer and a blocking
/// consumer: here the close meets a sender between its slot and its push, never a waiting
/// one.
#[test]
fn close_vs_send_vs_recv_unbounded() {
    // Bound 2: three busy threads; bound 3 runs for over ten minutes.
    model_bounded("close_vs_send_vs_recv_unbounded", 2, || {
        let q = Arc::new(Queue::unbounded());
        let producer = {
            let q = q.clone();
            thread::spawn(move || {
                block_on(async {
                    let mut sent = Vec::new();
                    for i in 0..2 {
                        if sent_or_handed_back(&q, i, q.send(i).await) {
                            sent.push(i);
                        }
                    }
                    sent
                })
            })
        };
        let consumer = {
            let q = q.clone();
            thread::spawn(move || drain_blocking(&q))
        };
        // The main thread closes, and never parks before its joins: loom 0.7's `unpark`
        // would resume a join with a grant's late unpark (loom#249, see loom-tests/tests/
        // reserve.rs), a loom artefact.
        q.close();
        let got = consumer.join().unwrap();
        let sent = producer.join().unwrap();

        assert!(sent.iter().copied().eq(0..sent.len()), "sent {sent:?}");
        assert_eq!(got, sent, "RecvError before every Ok-sent item came");
        assert_quiet(&q);
    });
}

/// Model Q3: a `recv` future polled once on an empty queue (queued in the receivers'
/// line), then a send on another thread while this thread drops the future. If the send's
/// grant was handed to the future just before the drop, the cancel passes it on and the
/// item stays queued: `try_recv` gets it afterwards. Nothing lost, nothing doubled.
#[test]
fn cancelled_recv_vs_send() {
    model("cancelled_recv_vs_send", || {
        let q = Arc::new(Queue::unbounded());
        let mut fut = Box::pin(q.recv());
        assert!(poll_once(fut.as_mut()).is_pending());

        let sender = {
            let q = q.clone();
            thread::spawn(move || q.send_blocking(7).unwrap())
        };
        drop(fut);
        sender.join().unwrap();

        assert_eq!(q.len(), 1);
        assert_eq!(q.try_recv(), Ok(7), "the cancelled recv lost the item");
        assert_quiet(&q);
    });
}

/// Model Q3b: the same race with a second receiver, blocking on another thread and queued
/// behind the future (unless the future has already left): the cancel must hand it the
/// item, across a segment boundary (one item went through first, so 7 takes the last
/// slot of the first segment and 8 the first of the next).
#[test]
fn cancelled_recv_vs_send_second_receiver() {
    model("cancelled_recv_vs_send_second_receiver", || {
        let q = Arc::new(Queue::bounded(2));
        q.try_send(0).unwrap();
        assert_eq!(q.try_recv(), Ok(0));

        let mut fut = Box::pin(q.recv());
        assert!(poll_once(fut.as_mut()).is_pending());

        let sender = {
            let q = q.clone();
            thread::spawn(move || {
                q.send_blocking(7).unwrap();
                q.send_blocking(8).unwrap();
            })
        };
        let receiver = {
            let q = q.clone();
            thread::spawn(move || q.recv_blocking().unwrap())
        };
        drop(fut);
        sender.join().unwrap();
        let first = receiver.join().unwrap();

        // The receiver took the oldest item; the other one is still queued.
        assert_eq!(first, 7, "the cancelled recv lost the item, or FIFO broke");
        assert_eq!(q.try_recv(), Ok(8));
        assert_quiet(&q);
    });
}

/// Model Q4: back-pressure on a queue of one place: a blocking and an async sender race
/// for it, and one receiver takes both items. Each item arrives exactly once; afterwards
/// the queue is empty with its place free (the slot of each item came home), and that
/// place takes exactly one more item.
#[test]
fn bounded_one_back_pressure() {
    model("bounded_one_back_pressure", || {
        let q = Arc::new(Queue::bounded(1));
        let blocking = {
            let q = q.clone();
            thread::spawn(move || q.send_blocking(1).unwrap())
        };
        let asyncer = {
            let q = q.clone();
            thread::spawn(move || block_on(q.send(2)).unwrap())
        };
        let mut got: Vec<usize> = (0..2).map(|_| block_on(q.recv()).unwrap()).collect();
        blocking.join().unwrap();
        asyncer.join().unwrap();

        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert_quiet(&q);
        q.try_send(3).unwrap();
        assert!(q.is_full());
        assert_eq!(q.try_send(4), Err(TrySendError::Full(4)));
        assert_eq!(q.try_recv(), Ok(3));
        assert_quiet(&q);
    });
}

/// Model Q5: close while a blocking and an async receiver wait (or are about to wait) on an
/// empty queue: the close finds no permit out and closes the receivers' line, and both
/// receivers get `RecvError` without hanging.
#[test]
fn close_wakes_waiting_receivers() {
    model("close_wakes_waiting_receivers", || {
        let q = Arc::new(Queue::<usize>::bounded(1));
        let blocking = {
            let q = q.clone();
            thread::spawn(move || assert_eq!(q.recv_blocking(), Err(RecvError)))
        };
        let asyncer = {
            let q = q.clone();
            thread::spawn(move || assert_eq!(block_on(q.recv()), Err(RecvError)))
        };
        q.close();
        blocking.join().unwrap();
        asyncer.join().unwrap();

        assert!(q.is_closed());
        assert_quiet(&q);
    });
}

/// Model Q5b: close races a send while a receiver waits: the receiver gets the item or
/// `RecvError`. The send succeeds exactly when the receiver gets the item: an item whose
/// sender has pushed it is in the FIFO before the close's bit, and a sender that had not
/// pushed yet fails, so the receiver is never told "drained" while an item is on its way.
#[test]
fn close_vs_in_flight_send() {
    model("close_vs_in_flight_send", || {
        let q = Arc::new(Queue::bounded(1));
        let sender = {
            let q = q.clone();
            thread::spawn(move || {
                let r = q.send_blocking(5);
                sent_or_handed_back(&q, 5, r)
            })
        };
        let receiver = {
            let q = q.clone();
            thread::spawn(move || q.recv_blocking())
        };
        q.close();
        let sent = sender.join().unwrap();
        let got = receiver.join().unwrap();

        if sent {
            assert_eq!(got, Ok(5), "RecvError while an Ok-sent item was on its way");
        } else {
            assert_eq!(got, Err(RecvError));
        }
        assert_quiet(&q);
    });
}

/// Model Q5c: the same race with an async receiver polled once first (queued in the receivers' line
/// before anything happens), and the item's fate checked by a final `try_recv` too: an
/// `Ok`-sent item is received exactly once, by the receiver.
#[test]
fn close_vs_in_flight_send_queued_receiver() {
    model("close_vs_in_flight_send_queued_receiver", || {
        let q = Arc::new(Queue::unbounded());
        let mut fut = pin!(q.recv());
        assert!(poll_once(fut.as_mut()).is_pending());

        let sender = {
            let q = q.clone();
            thread::spawn(move || {
                let r = block_on(q.send(5));
                sent_or_handed_back(&q, 5, r)
            })
        };
        let closer = {
            let q = q.clone();
            thread::spawn(move || q.close())
        };
        let got = block_on(fut.as_mut());
        let sent = sender.join().unwrap();
        closer.join().unwrap();

        assert_eq!(got.is_ok(), sent, "sent {sent}, received {got:?}");
        if sent {
            assert_eq!(got, Ok(5));
        }
        assert_quiet(&q);
    });
}

/// Model Q6: a `send` future queued on a full queue of one place, a receiver's take that
/// frees the place, a close, and the future dropped unpolled. The take moves the item in
/// unless the close came first: then the item was sent and the receiver gets it, else it
/// is dropped with its future. Either way the queue ends closed and drained, the receiver
/// must then get `RecvError`, and the place must come back (the final `assert_quiet`).
/// (In the two-semaphore design this was a lost report and a hang, which loom found as a
/// deadlock.)
#[test]
fn cancelled_granted_send_vs_close() {
    model("cancelled_granted_send_vs_close", || {
        let q = Arc::new(Queue::bounded(1));
        let fut = send_waiting_behind_item_0(&q);

        let receiver = {
            let q = q.clone();
            thread::spawn(move || {
                assert_eq!(q.recv_blocking(), Ok(0));
                // Item 1 was moved in before the close, or is dropped with its future.
                match q.recv_blocking() {
                    Ok(1) => assert_eq!(q.recv_blocking(), Err(RecvError)),
                    other => assert_eq!(other, Err(RecvError)),
                }
            })
        };
        let closer = {
            let q = q.clone();
            thread::spawn(move || q.close())
        };
        drop(fut);
        receiver.join().unwrap();
        closer.join().unwrap();

        assert_quiet(&q);
    });
}

/// Model Q7: a place freed while a sender lines up for it, on a full `bounded(1)`: the
/// place is held by a permit that is dropped (a `fetch_sub` of the tail's reservations,
/// then a look at the senders' line), or by an item that is received (a pop's claim, then
/// the same look). The sender, blocking or async, joins the line, fences and looks at the
/// room. Either the freer sees the sender in line or the sender sees the room: a lost wake
/// deadlocks the model.
fn place_freed_vs_sender_lining_up(free_by_pop: bool, blocking: bool) {
    model("place_freed_vs_sender_lining_up", move || {
        let q = Arc::new(Queue::bounded(1));
        let permit = if free_by_pop {
            q.try_send(0).unwrap();
            None
        } else {
            Some(q.try_reserve().unwrap())
        };
        let sender = {
            let q = q.clone();
            thread::spawn(move || {
                if blocking {
                    q.send_blocking(1).unwrap();
                } else {
                    block_on(q.send(1)).unwrap();
                }
            })
        };
        match permit {
            Some(permit) => drop(permit),
            None => assert_eq!(q.try_recv(), Ok(0)),
        }
        sender.join().unwrap();
        assert_eq!(q.try_recv(), Ok(1));
        assert_quiet(&q);
    });
}

#[test]
fn permit_drop_vs_blocking_sender_lining_up() {
    place_freed_vs_sender_lining_up(false, true);
}

#[test]
fn permit_drop_vs_async_sender_lining_up() {
    place_freed_vs_sender_lining_up(false, false);
}

#[test]
fn pop_vs_blocking_sender_lining_up() {
    place_freed_vs_sender_lining_up(true, true);
}

#[test]
fn pop_vs_async_sender_lining_up() {
    place_freed_vs_sender_lining_up(true, false);
}

/// Model Q8: two places freed while two senders line up, on a full `bounded(2)`. The first
/// pop grants the first sender in line; the second may find nobody in line (that sender
/// has left it, the other has not joined yet) and grants nothing. The second sender then
/// joins and compares the free places with the grants out, while the first sender's grant
/// may still be counted: so a granted sender that pushed wakes the line again if a place
/// is still free. Without that wake the second sender waits forever (a loom deadlock).
#[test]
fn two_pops_vs_two_senders_lining_up() {
    model_bounded("two_pops_vs_two_senders_lining_up", 2, || {
        let q = Arc::new(Queue::bounded(2));
        q.try_send(0).unwrap();
        q.try_send(1).unwrap();
        let senders: Vec<_> = [2, 3]
            .into_iter()
            .map(|item| {
                let q = q.clone();
                thread::spawn(move || q.send_blocking(item).unwrap())
            })
            .collect();
        assert_eq!(q.try_recv(), Ok(0));
        assert_eq!(q.try_recv(), Ok(1));
        for s in senders {
            s.join().unwrap();
        }
        let mut rest = vec![q.try_recv().unwrap(), q.try_recv().unwrap()];
        rest.sort_unstable();
        assert_eq!(rest, [2, 3]);
        assert_quiet(&q);
    });
}

/// Model Q9: a waiting send's item moved in by the receive that empties the queue, racing
/// the send future's drop (a `select!` giving up on it). The receiver moves the item out
/// of the future under the senders' line's lock, the future leaves the line under that
/// lock before its item is dropped: loom checks the two accesses of the item's cell are
/// ordered. The item is received at most once, and only if it was moved in.
#[test]
fn moved_in_send_vs_cancelled_send() {
    model("moved_in_send_vs_cancelled_send", || {
        let q = Arc::new(Queue::bounded(1));
        let fut = send_waiting_behind_item_0(&q);
        let receiver = receiver_after(&q, &[0]);
        drop(fut);
        received_at_most_once(&q, receiver, 1);
        assert_quiet(&q);
    });
}

/// Model Q10: as Q9 on a queue of two places, where the receive that frees a place leaves
/// an item behind: the waiting send's item is moved in behind item 1 and its grant used
/// (uncounted) under the senders' line's lock, racing the send future's drop, which must
/// then give no grant back (one given back would be uncounted twice, and the queue would
/// stay full for good). Item 2 is received at most once, after item 1, and only if it was
/// moved in; the quiet queue at the end has both places free.
#[test]
fn moved_in_behind_an_item_vs_cancelled_send() {
    model("moved_in_behind_an_item_vs_cancelled_send", || {
        let q = Arc::new(Queue::bounded(2));
        q.try_send(0).unwrap();
        q.try_send(1).unwrap();
        let mut fut = Box::pin(q.send(2));
        assert!(poll_once(fut.as_mut()).is_pending());
        let receiver = receiver_after(&q, &[0, 1]);
        drop(fut);
        received_at_most_once(&q, receiver, 2);
        assert_eq!((q.try_send(3), q.try_send(4)), (Ok(()), Ok(())));
        assert_eq!((q.try_recv(), q.try_recv()), (Ok(3), Ok(4)));
        assert_quiet(&q);
    });
}

/// Model Q11: a receive that would wait takes an item granted to a receiver that has not
/// looked yet, when nobody else is in line (as its own look on joining would grant it).
/// Receiver A waits (polled once); a sender thread sends items 1 and 2 while receiver B,
/// on another thread, takes one with `recv_blocking`; then A is driven to completion.
/// Each item is received exactly once and nobody waits forever: a receiver whose item a
/// newcomer took lines up again and gets the next one.
#[test]
fn newcomer_recv_vs_granted_receiver() {
    model_bounded("newcomer_recv_vs_granted_receiver", 2, || {
        let q = Arc::new(Queue::unbounded());
        let mut a = Box::pin(q.recv());
        assert!(poll_once(a.as_mut()).is_pending());
        let sender = {
            let q = q.clone();
            thread::spawn(move || {
                q.try_send(1).unwrap();
                q.try_send(2).unwrap();
            })
        };
        let b = {
            let q = q.clone();
            thread::spawn(move || q.recv_blocking().unwrap())
        };
        let got_a = block_on(a).unwrap();
        sender.join().unwrap();
        let mut got = [got_a, b.join().unwrap()];
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert_quiet(&q);
    });
}

/// Model Q12: a hand-over frees a place for a sender lining up. On a `bounded(1)` with
/// receiver A waiting (polled once), two blocking senders send items 0 and 1. The first
/// push goes to A and takes no place (the head word's H), which lets the other item into
/// the place; but that sender may find the place taken (before the hand-over) and join the
/// senders' line. Then A takes its item, a pop that frees no counted place and so wakes
/// nobody: only the hand-over's own look at the senders' line (after its `SeqCst` claim,
/// against the joiner's fence and look at the room) lets the second item in. A lost wake
/// deadlocks the model. Afterwards the second item fills the one place, and the queue is
/// quiet once it is taken.
#[test]
fn hand_over_vs_sender_lining_up() {
    model("hand_over_vs_sender_lining_up", || {
        let q = Arc::new(Queue::bounded(1));
        let mut a = Box::pin(q.recv());
        assert!(poll_once(a.as_mut()).is_pending());
        let senders: Vec<_> = (0..2)
            .map(|item| {
                let q = q.clone();
                thread::spawn(move || q.send_blocking(item).unwrap())
            })
            .collect();
        let first = block_on(a).unwrap();
        for sender in senders {
            sender.join().unwrap();
        }
        assert!(q.is_full(), "the second item holds the one place");
        assert_eq!(q.try_recv(), Ok(1 - first));
        assert_quiet(&q);
    });
}
