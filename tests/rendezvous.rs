//! The rendezvous queue, `Queue::bounded(0)` and `channel::bounded(0)`: a send completes
//! only when a receiver takes its item; `try_send` and `reserve` succeed only while a
//! receiver waits unmatched; every receive form (async, try, blocking, timeout, deadline,
//! the channel's `Stream`) meets senders of every form; cancelled and timed-out receives
//! give their offer back, so no later send completes without a receiver; close wakes
//! everyone and drains what is in flight; many senders and receivers, tasks and threads,
//! deliver every item exactly once.
//!
//! Tests that need a thread to be waiting before something happens give it `SETTLE`.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;

use futures::executor::block_on;
use futures::StreamExt;
use toro_sync::{
    channel, Closed, Queue, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};

mod common;
use common::*;

/// A queue shared with threads.
fn rendezvous<T>() -> Arc<Queue<T>> {
    Arc::new(Queue::bounded(0))
}

#[test]
fn counters_of_a_rendezvous() {
    let q = Queue::<u8>::bounded(0);
    assert_eq!(q.capacity(), Some(0));
    assert_eq!(q.len(), 0);
    assert!(q.is_empty());
    assert!(q.is_full(), "no receiver waits, so no place is free");
    assert!(!q.is_closed());
}

#[test]
fn try_send_and_try_recv_alone_find_nothing() {
    let q = Queue::bounded(0);
    assert_eq!(q.try_send(1), Err(TrySendError::Full(1)));
    assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
    // Neither left anything behind: the try_recv took its offer back.
    assert_eq!(q.try_send(2), Err(TrySendError::Full(2)));
    assert!(q.try_reserve().is_err());
    assert!(q.is_full() && q.is_empty());
}

#[test]
fn send_blocking_completes_only_when_taken() {
    let q = rendezvous();
    let sent = Arc::new(AtomicBool::new(false));
    let rx = {
        let (q, sent) = (q.clone(), sent.clone());
        spawn(move || {
            q.send_blocking(7).unwrap();
            sent.store(true, SeqCst);
        })
    };
    thread::sleep(SETTLE);
    assert!(!sent.load(SeqCst), "the send finished with no receiver");
    assert!(q.is_empty(), "a rendezvous holds no item");
    assert_eq!(q.recv_blocking(), Ok(7));
    recv(&rx);
    assert!(sent.load(SeqCst));
    assert!(q.is_full() && q.is_empty());
}

#[test]
fn async_send_waits_for_a_blocking_receiver() {
    let q = rendezvous();
    let mut send = pin!(q.send(5));
    assert!(poll_once(send.as_mut()).is_pending());
    let rx = {
        let q = q.clone();
        spawn(move || q.recv_blocking())
    };
    // The receiver's offer goes to the queued send, whose next poll hands the item over.
    // The receiver may have made it already (then this poll is that one); otherwise the
    // send waits for it and is woken.
    let (count, waker) = counting_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let sent = match send.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(sent) => sent,
        std::task::Poll::Pending => {
            let deadline = std::time::Instant::now() + HANG;
            while count.0.load(SeqCst) == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the send was never woken"
                );
                thread::yield_now();
            }
            ready(poll_once(send.as_mut()))
        }
    };
    assert_eq!(sent, Ok(()));
    assert_eq!(recv(&rx), Ok(5));
}

#[test]
fn try_send_succeeds_while_a_receiver_waits() {
    let q = rendezvous();
    let rx = {
        let q = q.clone();
        spawn(move || q.recv_blocking())
    };
    thread::sleep(SETTLE);
    assert!(!q.is_full(), "a waiting receiver lends a place");
    assert_eq!(q.try_send(3), Ok(()));
    assert_eq!(recv(&rx), Ok(3));
    assert_eq!(
        q.try_send(4),
        Err(TrySendError::Full(4)),
        "one receiver, one item"
    );
}

#[test]
fn try_send_succeeds_for_a_pending_async_receiver() {
    let q = Queue::bounded(0);
    let mut recv = pin!(q.recv());
    assert!(poll_once(recv.as_mut()).is_pending());
    assert_eq!(q.try_send(9), Ok(()));
    assert_eq!(q.try_send(10), Err(TrySendError::Full(10)));
    assert_eq!(ready(poll_once(recv.as_mut())), Ok(9));
    assert!(q.is_full() && q.is_empty());
}

#[test]
fn try_recv_takes_from_a_waiting_blocking_sender() {
    let q = rendezvous();
    let rx = {
        let q = q.clone();
        spawn(move || q.send_blocking(11))
    };
    thread::sleep(SETTLE);
    // The offer goes to the parked sender; the item arrives within this call's spin or
    // waits inside for the next receive. Either way a few tries get it, and nothing else.
    let mut got = None;
    for _ in 0..1000 {
        match q.try_recv() {
            Ok(item) => {
                got = Some(item);
                break;
            }
            Err(TryRecvError::Empty) => thread::sleep(ms(1)),
            Err(TryRecvError::Closed) => panic!("not closed"),
        }
    }
    assert_eq!(got, Some(11));
    assert_eq!(recv(&rx), Ok(()));
    assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
    assert!(q.is_full() && q.is_empty());
}

#[test]
fn try_recv_takes_from_a_pending_async_sender() {
    let q = Queue::bounded(0);
    let mut send = pin!(q.send(12));
    assert!(poll_once(send.as_mut()).is_pending());
    // The sender task cannot run inside try_recv: the first try hands it the place...
    assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
    // ...and its next poll sends into it, for the next receive.
    assert_eq!(ready(poll_once(send.as_mut())), Ok(()));
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_recv(), Ok(12));
    assert!(q.is_full() && q.is_empty());
}

#[test]
fn senders_are_served_in_order() {
    let q = rendezvous();
    let mut rxs = Vec::new();
    for i in 0..4 {
        let q2 = q.clone();
        rxs.push(spawn(move || q2.send_blocking(i)));
        thread::sleep(ms(50));
    }
    thread::sleep(SETTLE);
    for i in 0..4 {
        assert_eq!(q.recv_timeout(HANG), Ok(i));
    }
    for rx in &rxs {
        assert_eq!(recv(rx), Ok(()));
    }
}

#[test]
fn receivers_are_served_in_order() {
    let q = rendezvous();
    let mut rxs = Vec::new();
    for _ in 0..4 {
        let q2 = q.clone();
        rxs.push(spawn(move || q2.recv_blocking()));
        thread::sleep(ms(50));
    }
    thread::sleep(SETTLE);
    for (i, rx) in rxs.iter().enumerate() {
        q.send_timeout(i, HANG).unwrap();
        // The receiver first in line gets `i`; the next send waits for it to return (a
        // sleep here was not always enough on a loaded machine).
        assert_eq!(recv(rx), Ok(i), "receivers served out of order");
    }
}

#[test]
fn cancelled_recv_gives_its_place_back() {
    let q = Queue::bounded(0);
    {
        let mut recv = pin!(q.recv());
        assert!(poll_once(recv.as_mut()).is_pending());
        assert!(!q.is_full());
    }
    assert!(q.is_full(), "the dropped receive withdrew its offer");
    assert_eq!(q.try_send(1), Err(TrySendError::Full(1)));
}

#[test]
fn cancelled_recv_after_its_place_was_taken_leaves_the_item_for_the_next() {
    let q = Queue::bounded(0);
    {
        let mut recv = pin!(q.recv());
        assert!(poll_once(recv.as_mut()).is_pending());
        assert_eq!(q.try_send(1), Ok(()));
        // Dropped with the item handed to it and not yet taken.
    }
    assert_eq!(q.len(), 1, "the item stays for the next receiver");
    assert_eq!(q.try_recv(), Ok(1));
    assert_eq!(q.try_send(2), Err(TrySendError::Full(2)));
    assert!(q.is_full() && q.is_empty());
}

#[test]
fn timed_out_recv_gives_its_place_back() {
    let q = Queue::<u8>::bounded(0);
    assert_eq!(q.recv_timeout(ms(20)), Err(RecvTimeoutError::Timeout));
    assert_eq!(q.recv_deadline(past()), Err(RecvTimeoutError::Timeout));
    assert!(q.is_full());
    assert_eq!(q.try_send(1), Err(TrySendError::Full(1)));
}

#[test]
fn past_deadline_recv_takes_from_a_waiting_sender() {
    let q = rendezvous();
    let rx = {
        let q = q.clone();
        spawn(move || q.send_blocking(21))
    };
    thread::sleep(SETTLE);
    let mut got = None;
    for _ in 0..1000 {
        match q.recv_deadline(past()) {
            Ok(item) => {
                got = Some(item);
                break;
            }
            Err(RecvTimeoutError::Timeout) => thread::sleep(ms(1)),
            Err(RecvTimeoutError::Closed) => panic!("not closed"),
        }
    }
    assert_eq!(got, Some(21));
    assert_eq!(recv(&rx), Ok(()));
}

#[test]
fn send_timeout_without_receiver_times_out_with_its_item() {
    let q = Queue::bounded(0);
    assert_eq!(q.send_timeout(1, ms(20)), Err(SendTimeoutError::Timeout(1)));
    assert_eq!(
        q.send_deadline(2, past()),
        Err(SendTimeoutError::Timeout(2))
    );
    assert!(q.is_empty());
}

#[test]
fn cancelled_send_has_not_sent() {
    let q = Queue::bounded(0);
    {
        let mut send = pin!(q.send(1));
        assert!(poll_once(send.as_mut()).is_pending());
    }
    let mut recv = pin!(q.recv());
    assert!(poll_once(recv.as_mut()).is_pending());
    assert_eq!(q.try_send(2), Ok(()));
    assert_eq!(ready(poll_once(recv.as_mut())), Ok(2));
}

#[test]
fn reserve_is_granted_only_while_a_receiver_waits() {
    let q = Queue::bounded(0);
    assert!(matches!(q.try_reserve(), Err(TrySendError::Full(()))));
    let mut reserve = pin!(q.reserve());
    assert!(poll_once(reserve.as_mut()).is_pending());
    let mut recv = pin!(q.recv());
    assert!(poll_once(recv.as_mut()).is_pending());
    let permit = ready(poll_once(reserve.as_mut())).unwrap();
    assert!(
        poll_once(recv.as_mut()).is_pending(),
        "a permit holds no item yet"
    );
    permit.send(4);
    assert_eq!(ready(poll_once(recv.as_mut())), Ok(4));
}

#[test]
fn dropped_permit_gives_the_place_to_the_next_sender() {
    let q = Queue::bounded(0);
    let mut recv = pin!(q.recv());
    assert!(poll_once(recv.as_mut()).is_pending());
    let permit = q.try_reserve().unwrap();
    assert_eq!(q.try_send(1), Err(TrySendError::Full(1)));
    drop(permit);
    assert_eq!(q.try_send(2), Ok(()));
    assert_eq!(ready(poll_once(recv.as_mut())), Ok(2));
}

#[test]
fn close_fails_waiting_senders_and_receivers() {
    let q = rendezvous::<i32>();
    let send = {
        let q = q.clone();
        spawn(move || q.send_blocking(1))
    };
    thread::sleep(SETTLE);
    q.close();
    assert_eq!(recv(&send), Err(SendError(1)));
    assert_eq!(q.recv_blocking(), Err(RecvError));
    assert_eq!(q.try_recv(), Err(TryRecvError::Closed));

    let q = rendezvous::<i32>();
    let rx = {
        let q = q.clone();
        spawn(move || q.recv_blocking())
    };
    thread::sleep(SETTLE);
    q.close();
    assert_eq!(recv(&rx), Err(RecvError));
    assert_eq!(q.try_send(2), Err(TrySendError::Closed(2)));
}

#[test]
fn close_with_an_outstanding_permit_drains_it_first() {
    let q = Queue::bounded(0);
    let mut first = pin!(q.recv());
    assert!(poll_once(first.as_mut()).is_pending());
    let permit = q.try_reserve().unwrap();
    q.close();
    // The receiver waits for the permit's item rather than failing.
    assert!(poll_once(first.as_mut()).is_pending());
    permit.send(8);
    assert_eq!(ready(poll_once(first.as_mut())), Ok(8));
    assert_eq!(q.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(block_on(q.recv()), Err(RecvError));
}

#[test]
fn close_with_an_outstanding_permit_dropped_ends_receivers() {
    let q = Queue::<u8>::bounded(0);
    let mut first = pin!(q.recv());
    assert!(poll_once(first.as_mut()).is_pending());
    let permit = q.try_reserve().unwrap();
    q.close();
    assert!(poll_once(first.as_mut()).is_pending());
    drop(permit);
    assert_eq!(ready(poll_once(first.as_mut())), Err(RecvError));
}

#[test]
fn close_after_an_orphaned_item_still_delivers_it() {
    let q = Queue::bounded(0);
    {
        let mut recv = pin!(q.recv());
        assert!(poll_once(recv.as_mut()).is_pending());
        q.try_send(5).unwrap();
    }
    q.close();
    assert_eq!(q.try_recv(), Ok(5));
    assert_eq!(q.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn channel_rendezvous_with_stream_and_drops() {
    let (tx, mut rx) = channel::bounded::<u32>(0);
    assert_eq!(tx.capacity(), Some(0));
    let producer = {
        let tx = tx.clone();
        spawn(move || {
            for i in 0..100 {
                tx.send_blocking(i).unwrap();
            }
        })
    };
    drop(tx);
    let got: Vec<u32> = block_on(async {
        let mut got = Vec::new();
        while let Some(item) = rx.next().await {
            got.push(item);
        }
        got
    });
    recv(&producer);
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

#[test]
fn dropped_stream_wait_gives_its_place_back() {
    let (tx, mut rx) = channel::bounded::<u32>(0);
    {
        let mut next = pin!(rx.next());
        assert!(poll_once(next.as_mut()).is_pending());
    }
    // The stream's wait is kept in the receiver between polls: its place is still lent.
    assert_eq!(tx.try_send(1), Ok(()));
    assert_eq!(block_on(rx.next()), Some(1));
    assert!(poll_once(pin!(rx.next())).is_pending());
    drop(rx); // with its stream wait pending: the channel closes, the offer is moot
    assert!(matches!(tx.try_send(2), Err(TrySendError::Closed(2))));

    let (tx, mut rx) = channel::bounded::<u32>(0);
    let _rx2 = rx.clone();
    assert!(poll_once(pin!(rx.next())).is_pending());
    drop(rx); // another receiver keeps the channel open; the offer must go
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
}

#[test]
fn reserve_owned_on_a_channel_rendezvous() {
    let (tx, rx) = channel::bounded::<u32>(0);
    let recv = spawn(move || rx.recv_blocking());
    let permit = block_on(tx.reserve_owned()).unwrap();
    let tx = permit.send(6);
    assert_eq!(recv.recv_timeout(HANG).unwrap(), Ok(6));
    drop(tx);
}

#[test]
fn closed_reserve_fails() {
    let q = Queue::<u8>::bounded(0);
    q.close();
    assert_eq!(block_on(q.reserve()).err(), Some(Closed));
}

#[test]
fn many_senders_and_receivers_threads_and_tasks() {
    const PER: usize = if cfg!(miri) { 20 } else { 2_000 };
    const SENDERS: usize = 4;
    let q = rendezvous::<usize>();
    let total = Arc::new(AtomicUsize::new(0));
    let count = Arc::new(AtomicUsize::new(0));
    let rt = multi_thread_rt(2);
    let mut done = Vec::new();
    for s in 0..SENDERS {
        let q = q.clone();
        if s % 2 == 0 {
            done.push(spawn(move || {
                for i in 0..PER {
                    q.send_blocking(s * PER + i).unwrap();
                }
            }));
        } else {
            let (tx, rx) = std::sync::mpsc::channel();
            rt.spawn(async move {
                for i in 0..PER {
                    q.send(s * PER + i).await.unwrap();
                }
                let _ = tx.send(());
            });
            done.push(rx);
        }
    }
    let mut receivers = Vec::new();
    for r in 0..3 {
        let (q, total, count) = (q.clone(), total.clone(), count.clone());
        let body = move |item: usize| {
            total.fetch_add(item, SeqCst);
            count.fetch_add(1, SeqCst);
        };
        if r == 0 {
            receivers.push(spawn(move || {
                while let Ok(item) = q.recv_blocking() {
                    body(item);
                }
            }));
        } else if r == 1 {
            let (tx, rx) = std::sync::mpsc::channel();
            rt.spawn(async move {
                while let Ok(item) = q.recv().await {
                    body(item);
                }
                let _ = tx.send(());
            });
            receivers.push(rx);
        } else {
            receivers.push(spawn(move || loop {
                match q.recv_timeout(ms(1)) {
                    Ok(item) => body(item),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Closed) => break,
                }
            }));
        }
    }
    for d in &done {
        recv(d);
    }
    q.close();
    for r in &receivers {
        recv(r);
    }
    let n = SENDERS * PER;
    assert_eq!(count.load(SeqCst), n);
    assert_eq!(total.load(SeqCst), n * (n - 1) / 2);
}
