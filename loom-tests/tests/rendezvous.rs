//! loom models of the rendezvous queue, `Queue::bounded(0)` (`src/queue/mod.rs`,
//! "Rendezvous"): every receive lends a place (one `slots` permit) before it takes (or
//! waits in the receivers' line), takes spend the offer, and a receive that ends without
//! an item withdraws it, or, if a sender took it, counts the item on its way as `surplus`
//! for the next receive. A closed rendezvous is drained like any queue: closed, no permit
//! out, nothing inside.
//!
//! Each model checks exactly-once delivery, that a send completes only after its item
//! was handed to the receivers, and the final state: nothing inside, no place free
//! (`is_full`, `try_send` refused), so no later send can complete without a receiver.
//! A lost offer or a receivers' line that never closes is a loom deadlock.

#![cfg(loom)]

use loom::future::block_on;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{model, poll_once};
use toro_sync::{Queue, RecvError, SendError, TryRecvError, TrySendError};

/// A rendezvous with no receiver and no sender left: nothing inside, no free place.
fn assert_quiet(q: &Queue<usize>) {
    assert_eq!(q.len(), 0, "an item was left inside");
    if q.is_closed() {
        assert_eq!(q.try_recv(), Err(TryRecvError::Closed));
        assert_eq!(q.try_send(99), Err(TrySendError::Closed(99)));
    } else {
        assert!(q.is_full(), "a place is free with no receiver waiting");
        assert_eq!(q.try_send(99), Err(TrySendError::Full(99)));
        assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
        assert!(q.is_full(), "try_recv left its offer behind");
    }
}

/// Model R1: a blocking sender meets an async receiver; the receiver may come first (its
/// offer goes free, or to the queued sender) or second.
#[test]
fn send_blocking_meets_async_recv() {
    model("send_blocking_meets_async_recv", || {
        let q = Arc::new(Queue::bounded(0));
        let sender = {
            let q = q.clone();
            thread::spawn(move || q.send_blocking(1).unwrap())
        };
        assert_eq!(block_on(q.recv()), Ok(1));
        sender.join().unwrap();
        assert_quiet(&q);
    });
}

/// Model R2: an async sender and a blocking receiver, each on its own thread, and a
/// `try_send` on the main thread racing them: it succeeds only by taking the receiver's
/// place, and then the async sender's item is the one left for a second receive.
#[test]
fn try_send_races_a_waiting_sender_for_one_receiver() {
    model("try_send_races_a_waiting_sender_for_one_receiver", || {
        let q = Arc::new(Queue::bounded(0));
        let receiver = {
            let q = q.clone();
            thread::spawn(move || q.recv_blocking().unwrap())
        };
        let sender = {
            let q = q.clone();
            thread::spawn(move || block_on(q.send(1)).unwrap())
        };
        let tried = q.try_send(2);
        let first = receiver.join().unwrap();
        match tried {
            Ok(()) => {
                // Two items, one receiver: the second needs a second receive.
                let second = q.recv_blocking().unwrap();
                let mut got = [first, second];
                got.sort_unstable();
                assert_eq!(got, [1, 2]);
            }
            Err(TrySendError::Full(2)) => {
                assert_eq!(first, 1);
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
        sender.join().unwrap();
        assert_quiet(&q);
    });
}

/// Model R3: a receive polled once (its place lent), then dropped while another thread
/// `try_send`s. Either the send found the place and its item stays for the next receive
/// (the dropped receive counted it as surplus, so that receive lends no new place), or
/// the place was withdrawn first and the send was refused.
#[test]
fn cancelled_recv_vs_try_send() {
    model("cancelled_recv_vs_try_send", || {
        let q = Arc::new(Queue::bounded(0));
        let mut fut = Box::pin(q.recv());
        assert!(poll_once(fut.as_mut()).is_pending());
        let sender = {
            let q = q.clone();
            thread::spawn(move || q.try_send(7))
        };
        drop(fut);
        match sender.join().unwrap() {
            Ok(()) => {
                assert_eq!(q.len(), 1);
                assert_eq!(q.try_recv(), Ok(7), "the cancelled recv lost the item");
            }
            Err(TrySendError::Full(7)) => assert_eq!(q.len(), 0),
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert_quiet(&q);
    });
}

/// Model R4: `try_recv` against a sender that is queued or about to queue: the try hands
/// its place to the sender, and (loom's spin budget is zero) usually leaves before the
/// item comes; the item then waits inside for the next receive, which takes it without
/// lending a place of its own.
#[test]
fn try_recv_vs_send_blocking() {
    model("try_recv_vs_send_blocking", || {
        let q = Arc::new(Queue::bounded(0));
        let sender = {
            let q = q.clone();
            thread::spawn(move || q.send_blocking(5).unwrap())
        };
        let got = match q.try_recv() {
            Ok(item) => item,
            Err(TryRecvError::Empty) => q.recv_blocking().unwrap(),
            Err(e) => panic!("unexpected {e:?}"),
        };
        assert_eq!(got, 5);
        sender.join().unwrap();
        assert_quiet(&q);
    });
}

/// Model R5: close racing a blocking sender and a blocking receiver. If the send
/// completed, the receiver got its item; otherwise the sender has its item back and the
/// receiver ends with `RecvError`. Either way the queue ends closed and drained.
#[test]
fn close_vs_send_vs_recv() {
    model("close_vs_send_vs_recv", || {
        let q = Arc::new(Queue::bounded(0));
        let sender = {
            let q = q.clone();
            thread::spawn(move || q.send_blocking(3))
        };
        let receiver = {
            let q = q.clone();
            thread::spawn(move || q.recv_blocking())
        };
        q.close();
        let sent = sender.join().unwrap();
        let got = receiver.join().unwrap();
        match sent {
            Ok(()) => assert_eq!(got, Ok(3)),
            Err(SendError(3)) => assert_eq!(got, Err(RecvError)),
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert_quiet(&q);
    });
}

/// Model R6: a permit reserved on a receiver's place, racing close and then sent: the
/// item is still delivered (the receiver waits while the permit is out), and then a
/// receive sees the end.
///
/// The reserve is async and the second receive runs after the joins: loom 0.7's `unpark`
/// makes a thread runnable whatever it is blocked on, so a blocking waiter that saw its
/// grant and went on to block on a mutex or a join would be resumed by the grant's late
/// unpark and trip a loom assertion ("expected to be able to acquire lock", or
/// `state.notified` in a join): a loom artefact, not a race of the queue.
#[test]
fn reserved_place_vs_close() {
    model("reserved_place_vs_close", || {
        let q = Arc::new(Queue::bounded(0));
        let receiver = {
            let q = q.clone();
            thread::spawn(move || q.recv_blocking())
        };
        let permit = block_on(q.reserve());
        let closer = {
            let q = q.clone();
            thread::spawn(move || q.close())
        };
        permit.unwrap().send(4);
        closer.join().unwrap();
        assert_eq!(receiver.join().unwrap(), Ok(4));
        assert_eq!(q.recv_blocking(), Err(RecvError));
        assert_quiet(&q);
    });
}
