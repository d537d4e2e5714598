//! Unit tests of the queue layer's unsafe path: a waiting sender's item, which whoever
//! frees a place may move into the queue from the sender's pinned future (or its thread's
//! stack). Hand-polled futures and small thread races, so they also run under Miri:
//! `cargo +nightly miri test --lib`.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;

use crate::test_waker::waker;
use crate::{Queue, SendError, TryRecvError};

fn poll<F: Future>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

/// An item that counts its drops, so a test sees each item dropped exactly once.
#[derive(Debug)]
struct Item(usize, Arc<AtomicUsize>);

impl Drop for Item {
    fn drop(&mut self) {
        self.1.fetch_add(1, SeqCst);
    }
}

/// Waits until `q`'s senders' line has someone in it (a thread that has joined it).
fn until_a_sender_waits<T>(q: &Queue<T>) {
    while !q.tx.waiters.has_waiters() {
        thread::yield_now();
    }
}

#[test]
fn a_receive_that_empties_the_queue_moves_a_waiting_send_in() {
    let drops = Arc::new(AtomicUsize::new(0));
    let q = Queue::bounded(1);
    q.try_send(Item(0, drops.clone())).unwrap();
    let (wakes, w) = waker();
    let mut send = Box::pin(q.send(Item(1, drops.clone())));
    assert!(poll(send.as_mut(), &w).is_pending());
    assert_eq!(q.try_recv().unwrap().0, 0);
    // Item 1 is in before its sender runs again; the sender is woken to learn it.
    assert_eq!(q.len(), 1);
    assert_eq!(wakes.0.load(SeqCst), 1);
    assert!(matches!(poll(send.as_mut(), &w), Poll::Ready(Ok(()))));
    assert_eq!(q.try_recv().unwrap().0, 1);
    assert_eq!(drops.load(SeqCst), 2);
}

#[test]
fn a_send_dropped_after_its_item_was_moved_in_has_sent_it() {
    let drops = Arc::new(AtomicUsize::new(0));
    let q = Queue::bounded(1);
    q.try_send(Item(0, drops.clone())).unwrap();
    let (_, w) = waker();
    let mut send = Box::pin(q.send(Item(1, drops.clone())));
    assert!(poll(send.as_mut(), &w).is_pending());
    assert_eq!(q.try_recv().unwrap().0, 0);
    drop(send); // its item is not dropped with it: it is in the queue
    assert_eq!(drops.load(SeqCst), 1);
    assert_eq!(q.try_recv().unwrap().0, 1);
    assert_eq!(q.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(drops.load(SeqCst), 2);
}

/// Fills `q` (two places) with items 0 and 1, polls a `send` of item 2 once (it waits,
/// woken through `w`), then receives item 0: item 2 is moved in behind item 1.
fn send_moved_in_behind_item_1<'a>(
    q: &'a Queue<i32>,
    w: &Waker,
) -> Pin<Box<impl Future<Output = Result<(), SendError<i32>>> + 'a>> {
    q.try_send(0).unwrap();
    q.try_send(1).unwrap();
    let mut send = Box::pin(q.send(2));
    assert!(poll(send.as_mut(), w).is_pending());
    assert_eq!(q.try_recv(), Ok(0));
    send
}

#[test]
fn a_waiting_send_is_moved_in_behind_the_items_left() {
    let q = Queue::bounded(2);
    let (wakes, w) = waker();
    let mut send = send_moved_in_behind_item_1(&q, &w);
    // Moved in behind item 1 as the place freed; the sender is woken to learn it.
    assert_eq!(wakes.0.load(SeqCst), 1);
    assert_eq!(q.len(), 2);
    assert!(q.is_full());
    // The grant was used by the move: a place freed before the sender runs again is free
    // for anyone, not promised to it.
    assert_eq!(q.try_recv(), Ok(1));
    assert!(!q.is_full(), "a moved-in send's grant still counted");
    assert_eq!(q.try_send(3), Ok(()));
    assert!(matches!(poll(send.as_mut(), &w), Poll::Ready(Ok(()))));
    assert_eq!((q.try_recv(), q.try_recv()), (Ok(2), Ok(3)));
    assert!(!q.is_full());
}

#[test]
fn a_moved_in_send_dropped_before_it_runs_again_passes_no_grant_on() {
    let q = Queue::bounded(2);
    let (_, w) = waker();
    let send = send_moved_in_behind_item_1(&q, &w);
    drop(send); // sent: its item is in, and its grant was used by the move
    assert_eq!((q.try_recv(), q.try_recv()), (Ok(1), Ok(2)));
    assert!(!q.is_full(), "the dropped send gave a used grant back");
    assert_eq!((q.try_send(3), q.try_send(4)), (Ok(()), Ok(())));
    assert_eq!((q.try_recv(), q.try_recv()), (Ok(3), Ok(4)));
}

#[test]
fn a_waiting_reserve_is_granted_not_served() {
    let q = Queue::bounded(1);
    q.try_send(0).unwrap();
    let (_, w) = waker();
    let mut reserve = Box::pin(q.reserve());
    assert!(poll(reserve.as_mut(), &w).is_pending());
    assert_eq!(q.try_recv(), Ok(0));
    assert!(q.is_empty(), "a reserve brings no item");
    let Poll::Ready(Ok(permit)) = poll(reserve.as_mut(), &w) else {
        panic!("the freed place goes to the reserve");
    };
    permit.send(1);
    assert_eq!(q.try_recv(), Ok(1));
}

#[test]
fn a_close_before_the_place_frees_hands_the_waiting_item_back() {
    let q = Queue::bounded(1);
    q.try_send(0).unwrap();
    let (wakes, w) = waker();
    let mut send = Box::pin(q.send(1));
    assert!(poll(send.as_mut(), &w).is_pending());
    q.close();
    assert_eq!(wakes.0.load(SeqCst), 1);
    assert_eq!(poll(send.as_mut(), &w), Poll::Ready(Err(SendError(1))));
    assert_eq!(q.try_recv(), Ok(0));
    assert_eq!(q.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn a_blocking_send_is_moved_in_from_its_thread() {
    let drops = Arc::new(AtomicUsize::new(0));
    let q = Arc::new(Queue::bounded(1));
    q.try_send(Item(0, drops.clone())).unwrap();
    let sender = {
        let (q, drops) = (q.clone(), drops.clone());
        thread::spawn(move || q.send_blocking(Item(1, drops)).is_ok())
    };
    until_a_sender_waits(&q);
    assert_eq!(q.recv_blocking().unwrap().0, 0);
    assert_eq!(q.recv_blocking().unwrap().0, 1);
    assert!(sender.join().unwrap());
    assert_eq!(drops.load(SeqCst), 2);
}

/// A send future dropped on one thread while a receive on another frees its place: the
/// item is received once or dropped with the future, never both, never neither.
#[test]
fn a_send_cancelled_while_a_receive_frees_its_place_keeps_the_item_once() {
    const ROUNDS: usize = if cfg!(miri) { 8 } else { 200 };
    for _ in 0..ROUNDS {
        let drops = Arc::new(AtomicUsize::new(0));
        let q = Arc::new(Queue::bounded(1));
        q.try_send(Item(0, drops.clone())).unwrap();
        let lined_up = Arc::new(Barrier::new(2));
        let canceller = {
            let (q, drops, lined_up) = (q.clone(), drops.clone(), lined_up.clone());
            thread::spawn(move || {
                let (_, w) = waker();
                let mut send = Box::pin(q.send(Item(1, drops)));
                assert!(poll(send.as_mut(), &w).is_pending());
                lined_up.wait();
                drop(send);
            })
        };
        lined_up.wait();
        assert_eq!(q.try_recv().unwrap().0, 0);
        canceller.join().unwrap();
        let received = match q.try_recv() {
            Ok(item) => {
                assert_eq!(item.0, 1);
                1
            }
            Err(e) => {
                assert_eq!(e, TryRecvError::Empty);
                0
            }
        };
        assert_eq!(q.try_recv().unwrap_err(), TryRecvError::Empty);
        assert!(received <= 1);
        assert_eq!(drops.load(SeqCst), 2, "item 1 dropped exactly once");
    }
}

#[test]
fn a_receive_takes_an_item_granted_to_a_receiver_that_has_not_looked_yet() {
    let q = Queue::unbounded();
    let (wakes, w) = waker();
    let mut first = Box::pin(q.recv());
    assert!(poll(first.as_mut(), &w).is_pending());
    q.try_send(1).unwrap();
    assert_eq!(
        wakes.0.load(SeqCst),
        1,
        "the waiting receiver is granted item 1"
    );
    // `try_recv` leaves the item to that receiver...
    assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
    // ...but a receive that would wait takes it: it would be granted it on joining the
    // empty line.
    let mut second = Box::pin(q.recv());
    assert_eq!(poll(second.as_mut(), &w), Poll::Ready(Ok(1)));
    // The first receiver finds nothing, lines up again, and gets the next item.
    assert!(poll(first.as_mut(), &w).is_pending());
    q.try_send(2).unwrap();
    assert_eq!(poll(first.as_mut(), &w), Poll::Ready(Ok(2)));
    assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn the_send_and_receive_futures_are_small_enough_to_move_in_registers() {
    use core::mem::size_of;
    // 128 bytes: what a fixed-size copy takes before the compiler calls `memcpy` on
    // x86-64 (eight 16-byte moves). The async fns they replaced were 216 and 192.
    assert!(size_of::<crate::RecvFuture<'static, u64>>() <= 128);
    assert!(size_of::<crate::RecvFuture<'static, [u64; 32]>>() <= 128);
    assert!(size_of::<crate::SendFuture<'static, u64>>() <= 128);
}

#[test]
fn a_waiting_receive_keeps_its_place_in_its_pinned_future_and_gets_the_next_item() {
    let q = Queue::unbounded();
    let (wakes, w) = waker();
    // Moved freely before its first poll (as into a combinator), then pinned.
    let recv = q.recv();
    let mut recv = Box::pin(recv);
    assert!(poll(recv.as_mut(), &w).is_pending());
    assert!(q.rx.waiters.has_waiters());
    q.try_send(7).unwrap();
    assert_eq!(wakes.0.load(SeqCst), 1);
    assert!(matches!(poll(recv.as_mut(), &w), Poll::Ready(Ok(7))));
    assert!(!q.rx.waiters.has_waiters());
}

#[test]
#[should_panic(expected = "`RecvFuture` polled after completion")]
fn a_receive_polled_after_completion_panics() {
    let q = Queue::unbounded();
    q.try_send(1).unwrap();
    q.try_send(2).unwrap();
    let (_, w) = waker();
    let mut recv = Box::pin(q.recv());
    assert!(matches!(poll(recv.as_mut(), &w), Poll::Ready(Ok(1))));
    // A second poll would take a second item: it panics instead.
    let _ = poll(recv.as_mut(), &w);
}

#[test]
fn a_rendezvous_receive_dropped_while_waiting_takes_its_offer_back() {
    let q = Queue::<u32>::bounded(0);
    let (_, w) = waker();
    let mut recv = Box::pin(q.recv());
    assert!(poll(recv.as_mut(), &w).is_pending());
    // The waiting receive lent a place: a sender may go ahead.
    assert_eq!(q.slots.available(), 1);
    drop(recv);
    // Gone with the receive: a send now finds nobody to take its item.
    assert_eq!(q.slots.available(), 0);
    assert!(q.try_send(1).is_err());
}

#[test]
#[should_panic(expected = "`SendFuture` polled after completion")]
fn a_send_polled_after_completion_panics() {
    let q = Queue::unbounded();
    let (_, w) = waker();
    let mut send = Box::pin(q.send(1));
    assert!(matches!(poll(send.as_mut(), &w), Poll::Ready(Ok(()))));
    // A second poll has no item to send: it panics.
    let _ = poll(send.as_mut(), &w);
}

#[test]
fn a_rendezvous_send_waits_for_a_receiver_then_hands_its_item_over() {
    let q = Queue::bounded(0);
    let (send_wakes, w) = waker();
    let mut send = Box::pin(q.send(5));
    assert!(poll(send.as_mut(), &w).is_pending());
    let (_, rw) = waker();
    let mut recv = Box::pin(q.recv());
    // The receive lends a place, which wakes the send; the item is then pushed.
    assert!(poll(recv.as_mut(), &rw).is_pending());
    assert_eq!(send_wakes.0.load(SeqCst), 1);
    assert!(matches!(poll(send.as_mut(), &w), Poll::Ready(Ok(()))));
    assert!(matches!(poll(recv.as_mut(), &rw), Poll::Ready(Ok(5))));
}

#[test]
fn a_send_waiting_on_a_closed_queue_gets_its_item_back() {
    let drops = Arc::new(AtomicUsize::new(0));
    let q = Queue::bounded(1);
    q.try_send(Item(0, drops.clone())).unwrap();
    let (wakes, w) = waker();
    let mut send = Box::pin(q.send(Item(1, drops.clone())));
    assert!(poll(send.as_mut(), &w).is_pending());
    q.close();
    assert_eq!(wakes.0.load(SeqCst), 1);
    match poll(send.as_mut(), &w) {
        Poll::Ready(Err(SendError(item))) => assert_eq!(item.0, 1),
        other => panic!("expected the item back, got {:?}", other.map(|r| r.is_ok())),
    }
    drop(send);
    drop(q);
    assert_eq!(drops.load(SeqCst), 2);
}

#[test]
fn an_item_handed_to_a_waiting_receiver_takes_no_place() {
    let q = Queue::bounded(1);
    let (wakes, w) = waker();
    let mut recv = Box::pin(q.recv());
    assert!(poll(recv.as_mut(), &w).is_pending());
    // Item 1 goes to the waiting receiver (Toro's `put` to a waiting `get`), so the one
    // place is still free for item 2.
    q.try_send(1).unwrap();
    assert_eq!(wakes.0.load(SeqCst), 1);
    assert!(!q.is_full(), "a handed item takes no place");
    q.try_send(2).unwrap();
    assert_eq!(q.len(), 2, "len counts the handed item too");
    assert!(q.is_full());
    assert_eq!(q.try_send(3), Err(crate::TrySendError::Full(3)));
    assert_eq!(poll(recv.as_mut(), &w), Poll::Ready(Ok(1)));
    // The hand-over is used: item 2 fills the bound again.
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_send(3), Err(crate::TrySendError::Full(3)));
    assert_eq!(q.try_recv(), Ok(2));
    q.try_send(3).unwrap();
    assert_eq!(q.try_recv(), Ok(3));
    assert!(q.is_empty());
}
