//! `toro_sync::channel` through the public API: bounded and unbounded channels in all five
//! forms, clones (MPMC) across threads and tokio tasks, closing by the last `Sender` and by
//! the last `Receiver`, the handle counts, `WeakSender`, owned permits (`reserve_owned`,
//! `try_reserve_owned`), `Receiver` as a `Stream` (cancellation included), drop counts,
//! a forgotten `Sender`, `close` on either half, and `Debug` without `T: Debug`.
//!
//! Tests that need a blocking thread to be queued before something else happens give it
//! `SETTLE` to get there; no test asserts how fast anything is.

use std::collections::HashSet;
use std::future::Future;
use std::mem;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll};
use std::thread;

use futures::executor::block_on;
use futures::stream::StreamExt;
use futures::task::noop_waker_ref;
use toro_sync::channel::{self, OwnedSendPermit, Receiver, Sender, WeakSender};
use toro_sync::{
    Closed, RecvError, RecvTimeoutError, SendError, SendPermit, SendTimeoutError, TryRecvError,
    TrySendError,
};

mod common;
use common::*;

/// An item that counts its drops.
struct Item(Arc<AtomicUsize>);

impl Drop for Item {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A type without `Debug`.
struct NoDebug;

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>(_: &T) {}

#[test]
fn handles_are_send_and_sync() {
    assert_send_sync::<Sender<i32>>();
    assert_send_sync::<Receiver<i32>>();
    assert_send_sync::<WeakSender<i32>>();
    assert_send_sync::<OwnedSendPermit<i32>>();
    assert_send_sync::<SendPermit<'static, i32>>();
    let (tx, mut rx) = channel::bounded::<i32>(1);
    assert_send(&tx.send(1));
    assert_send(&tx.reserve());
    assert_send(&tx.clone().reserve_owned());
    assert_send(&rx.recv());
    assert_send(&rx.next());
}

// ---- bounded and unbounded, the five forms ----

#[test]
fn bounded_sends_and_receives_in_all_five_forms() {
    let (tx, rx) = channel::bounded(5);
    assert_eq!(tx.capacity(), Some(5));
    assert_eq!(rx.capacity(), Some(5));
    block_on(tx.send(1)).unwrap();
    tx.try_send(2).unwrap();
    tx.send_blocking(3).unwrap();
    tx.send_timeout(4, LONG).unwrap();
    tx.send_deadline(5, past()).unwrap();
    assert!(tx.is_full() && rx.is_full());
    assert_eq!((tx.len(), rx.len()), (5, 5));
    assert_eq!(tx.try_send(6), Err(TrySendError::Full(6)));
    assert_eq!(
        tx.send_timeout(6, ms(20)),
        Err(SendTimeoutError::Timeout(6))
    );
    assert_eq!(
        tx.send_deadline(6, past()),
        Err(SendTimeoutError::Timeout(6))
    );
    assert_eq!(block_on(rx.recv()), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.recv_blocking(), Ok(3));
    assert_eq!(rx.recv_timeout(LONG), Ok(4));
    assert_eq!(rx.recv_deadline(past()), Ok(5));
    assert!(rx.is_empty() && tx.is_empty());
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(rx.recv_timeout(ms(20)), Err(RecvTimeoutError::Timeout));
    assert_eq!(rx.recv_deadline(past()), Err(RecvTimeoutError::Timeout));
}

#[test]
fn unbounded_never_fills() {
    let (tx, rx) = channel::unbounded();
    assert_eq!(tx.capacity(), None);
    for i in 0..10_000 {
        tx.try_send(i).unwrap();
    }
    tx.send_blocking(10_000).unwrap();
    tx.send_deadline(10_001, past()).unwrap();
    block_on(tx.send(10_002)).unwrap();
    assert!(!tx.is_full());
    assert_eq!(rx.len(), 10_003);
    for i in 0..10_003 {
        assert_eq!(rx.try_recv(), Ok(i));
    }
    assert!(rx.is_empty());
}

#[test]
fn a_blocking_sender_waits_for_a_receiver() {
    let (tx, rx) = channel::bounded(1);
    tx.try_send(1).unwrap();
    let tx2 = tx.clone();
    let r = blocks_until(
        move || tx2.send_blocking(2),
        || assert_eq!(rx.try_recv(), Ok(1)),
    );
    assert_eq!(r, Ok(()));
    assert_eq!(rx.try_recv(), Ok(2));
}

#[test]
fn a_blocking_receiver_waits_for_a_sender() {
    let (tx, rx) = channel::bounded(1);
    let rx2 = rx.clone();
    let r = blocks_until(move || rx2.recv_timeout(LONG), || tx.try_send(7).unwrap());
    assert_eq!(r, Ok(7));
}

// ---- clones: MPMC ----

#[test]
fn mpmc_across_threads_delivers_every_item_once_in_each_senders_order() {
    const SENDERS: usize = 4;
    const RECEIVERS: usize = 4;
    const PER: usize = 1000;
    let (tx, rx) = channel::bounded::<(usize, usize)>(4);
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..PER {
                    match i % 3 {
                        0 => tx.send_blocking((s, i)).unwrap(),
                        1 => tx.send_timeout((s, i), LONG).unwrap(),
                        _ => block_on(tx.send((s, i))).unwrap(),
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let receivers: Vec<_> = (0..RECEIVERS)
        .map(|_| {
            let rx = rx.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(item) = rx.recv_blocking() {
                    got.push(item);
                }
                got
            })
        })
        .collect();
    drop(rx);
    for s in senders {
        s.join().unwrap();
    }
    let mut all = HashSet::new();
    for r in receivers {
        let got = r.join().unwrap();
        // One receiver sees each sender's items in the order they were sent.
        let mut last = [None; SENDERS];
        for &(s, i) in &got {
            assert!(last[s] < Some(i), "sender {s}'s items out of order");
            last[s] = Some(i);
        }
        for item in got {
            assert!(all.insert(item), "{item:?} received twice");
        }
    }
    assert_eq!(all.len(), SENDERS * PER);
}

#[test]
fn mpmc_across_tokio_tasks() {
    const SENDERS: usize = 4;
    const RECEIVERS: usize = 3;
    const PER: usize = 500;
    let rt = multi_thread_rt(3);
    let (tx, rx) = channel::bounded::<usize>(2);
    let mut total = rt.block_on(async move {
        let mut senders = Vec::new();
        for s in 0..SENDERS {
            let tx = tx.clone();
            senders.push(tokio::spawn(async move {
                for i in 0..PER {
                    tx.send(s * PER + i).await.unwrap();
                }
            }));
        }
        drop(tx);
        let mut receivers = Vec::new();
        for _ in 0..RECEIVERS {
            let rx = rx.clone();
            receivers.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Ok(x) = rx.recv().await {
                    got.push(x);
                }
                got
            }));
        }
        drop(rx);
        for s in senders {
            s.await.unwrap();
        }
        let mut all = Vec::new();
        for r in receivers {
            all.extend(r.await.unwrap());
        }
        all
    });
    total.sort_unstable();
    assert_eq!(total, (0..SENDERS * PER).collect::<Vec<_>>());
}

#[test]
fn threads_and_tasks_share_one_channel() {
    let rt = multi_thread_rt(3);
    let (tx, rx) = channel::bounded::<usize>(1);
    let thread_sender = {
        let tx = tx.clone();
        thread::spawn(move || {
            for i in 0..200 {
                tx.send_blocking(i).unwrap();
            }
        })
    };
    let task_sender = {
        let tx = tx.clone();
        rt.spawn(async move {
            for i in 200..400 {
                tx.send(i).await.unwrap();
            }
        })
    };
    drop(tx);
    let task_receiver = {
        let rx = rx.clone();
        rt.spawn(async move {
            let mut n = 0;
            while rx.recv().await.is_ok() {
                n += 1;
            }
            n
        })
    };
    let mut n = 0;
    while rx.recv_blocking().is_ok() {
        n += 1;
    }
    thread_sender.join().unwrap();
    rt.block_on(task_sender).unwrap();
    n += rt.block_on(task_receiver).unwrap();
    assert_eq!(n, 400);
}

// ---- closing by the last handle ----

#[test]
fn the_last_sender_dropped_closes_and_receivers_drain() {
    let (tx, rx) = channel::unbounded();
    let tx2 = tx.clone();
    tx.try_send(1).unwrap();
    tx2.try_send(2).unwrap();
    drop(tx);
    assert!(!rx.is_closed());
    tx2.try_send(3).unwrap();
    drop(tx2);
    assert!(rx.is_closed());
    assert_eq!(rx.len(), 3);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(block_on(rx.recv()), Ok(2));
    assert_eq!(rx.recv_timeout(LONG), Ok(3));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(block_on(rx.recv()), Err(RecvError));
    assert_eq!(rx.recv_blocking(), Err(RecvError));
    assert_eq!(rx.recv_timeout(LONG), Err(RecvTimeoutError::Closed));
    assert_eq!(rx.recv_deadline(past()), Err(RecvTimeoutError::Closed));
}

#[test]
fn the_last_sender_dropped_wakes_waiting_receivers() {
    let (tx, rx) = channel::bounded::<i32>(1);
    let (count, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let mut f = Box::pin(rx.recv());
    assert!(f.as_mut().poll(&mut cx).is_pending());
    let rx2 = rx.clone();
    let r = blocks_until(move || rx2.recv_blocking(), move || drop(tx));
    assert_eq!(r, Err(RecvError));
    assert!(count.0.load(SeqCst) >= 1);
    assert_eq!(ready(f.as_mut().poll(&mut cx)), Err(RecvError));
}

#[test]
fn the_last_receiver_dropped_closes_and_senders_get_the_item_back() {
    let (tx, rx) = channel::bounded(2);
    let rx2 = rx.clone();
    drop(rx);
    assert!(!tx.is_closed());
    tx.try_send(1).unwrap();
    drop(rx2);
    assert!(tx.is_closed());
    assert_eq!(tx.try_send(2), Err(TrySendError::Closed(2)));
    assert_eq!(block_on(tx.send(3)), Err(SendError(3)));
    assert_eq!(tx.send_blocking(4), Err(SendError(4)));
    assert_eq!(tx.send_timeout(5, LONG), Err(SendTimeoutError::Closed(5)));
    assert_eq!(
        tx.send_deadline(6, past()),
        Err(SendTimeoutError::Closed(6))
    );
    assert_eq!(tx.send_blocking(7).unwrap_err().into_inner(), 7);
    assert_eq!(tx.try_reserve().err(), Some(TrySendError::Closed(())));
    assert_eq!(block_on(tx.reserve()).err(), Some(Closed));
}

#[test]
fn the_last_receiver_dropped_wakes_waiting_senders() {
    let (tx, rx) = channel::bounded(1);
    tx.try_send(1).unwrap();
    let (count, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let mut f = Box::pin(tx.send(2));
    assert!(f.as_mut().poll(&mut cx).is_pending());
    let tx2 = tx.clone();
    let r = blocks_until(move || tx2.send_blocking(3), move || drop(rx));
    assert_eq!(r, Err(SendError(3)));
    assert!(count.0.load(SeqCst) >= 1);
    assert_eq!(ready(f.as_mut().poll(&mut cx)), Err(SendError(2)));
}

#[test]
fn sender_and_receiver_counts() {
    let (tx, rx) = channel::bounded::<i32>(1);
    assert_eq!((tx.sender_count(), tx.receiver_count()), (1, 1));
    let tx2 = tx.clone();
    let tx3 = tx2.clone();
    let rx2 = rx.clone();
    assert_eq!((rx.sender_count(), rx.receiver_count()), (3, 2));
    let weak = tx.downgrade();
    assert_eq!(rx.sender_count(), 3, "a WeakSender is not a sender");
    drop(tx3);
    drop(rx2);
    assert_eq!((tx.sender_count(), tx.receiver_count()), (2, 1));
    let up = weak.upgrade().unwrap();
    assert_eq!(rx.sender_count(), 3);
    drop(up);
    drop(tx2);
    assert_eq!(rx.sender_count(), 1);
    drop(tx);
    assert_eq!((rx.sender_count(), rx.receiver_count()), (0, 1));
    assert!(rx.is_closed());
}

// ---- WeakSender ----

#[test]
fn weak_sender_upgrades_while_a_sender_lives() {
    let (tx, rx) = channel::unbounded();
    let weak = tx.downgrade();
    let weak2 = weak.clone();
    let up = weak.upgrade().expect("a sender lives");
    up.try_send(1).unwrap();
    drop(tx);
    assert!(!rx.is_closed(), "the upgraded sender keeps it open");
    let up2 = weak2.upgrade().expect("a sender still lives");
    drop(up);
    up2.try_send(2).unwrap();
    drop(up2);
    assert!(weak.upgrade().is_none());
    assert!(weak2.upgrade().is_none());
    assert!(weak.clone().upgrade().is_none());
    assert!(rx.is_closed());
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn weak_sender_does_not_keep_the_channel_open() {
    let (tx, rx) = channel::bounded::<i32>(1);
    let weak = tx.downgrade();
    let rx2 = rx.clone();
    let r = blocks_until(move || rx2.recv_blocking(), move || drop(tx));
    assert_eq!(r, Err(RecvError));
    assert!(rx.is_closed());
    assert!(weak.upgrade().is_none());
    drop(weak);
}

#[test]
fn weak_sender_upgrades_after_an_explicit_close_while_senders_live() {
    let (tx, rx) = channel::bounded(1);
    let weak = tx.downgrade();
    rx.close();
    let up = weak.upgrade().expect("a sender still lives");
    assert!(up.is_closed());
    assert_eq!(up.try_send(1), Err(TrySendError::Closed(1)));
    drop(tx);
    drop(up);
    assert!(weak.upgrade().is_none());
}

#[test]
fn weak_upgrade_races_the_last_drop() {
    for _ in 0..100 {
        let (tx, rx) = channel::unbounded::<i32>();
        let weak = tx.downgrade();
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let upgrader = thread::spawn(move || {
            b.wait();
            weak.upgrade().map(|s| s.try_send(1).is_ok())
        });
        barrier.wait();
        drop(tx);
        // Upgraded in time: the send went in (the channel closed only after).
        if let Some(sent) = upgrader.join().unwrap() {
            assert!(sent);
            assert_eq!(rx.recv_timeout(HANG), Ok(1));
        }
        assert_eq!(rx.recv_timeout(HANG), Err(RecvTimeoutError::Closed));
        assert_eq!(rx.sender_count(), 0);
    }
}

// ---- owned permits ----

#[test]
fn reserve_owned_keeps_the_channel_open_and_send_returns_the_sender() {
    let (tx, rx) = channel::bounded(1);
    let p = block_on(tx.reserve_owned()).unwrap();
    assert_eq!(rx.sender_count(), 1, "the permit holds the sender");
    assert!(!rx.is_closed());
    assert!(rx.is_full() && rx.is_empty());
    assert_eq!(rx.recv_timeout(ms(100)), Err(RecvTimeoutError::Timeout));
    let tx = p.send(5);
    assert_eq!(rx.recv_timeout(LONG), Ok(5));
    tx.try_send(6).unwrap();
    drop(tx);
    assert_eq!(rx.recv_blocking(), Ok(6));
    assert_eq!(rx.recv_blocking(), Err(RecvError));
}

#[test]
fn an_owned_permit_keeps_the_channel_open_after_every_other_sender_is_dropped() {
    let (tx, rx) = channel::bounded(2);
    let other = tx.clone();
    let p = tx.try_reserve_owned().unwrap();
    drop(other);
    assert_eq!(rx.sender_count(), 1);
    assert!(!rx.is_closed());
    let rx2 = rx.clone();
    let r = blocks_until(
        move || rx2.recv_blocking(),
        move || {
            let tx = p.send(1);
            drop(tx);
        },
    );
    assert_eq!(r, Ok(1));
    assert!(rx.is_closed());
    assert_eq!(rx.recv_blocking(), Err(RecvError));
}

#[test]
fn dropping_the_last_owned_permit_gives_the_slot_back_and_closes() {
    let (tx, rx) = channel::bounded::<i32>(1);
    let p = tx.try_reserve_owned().unwrap();
    let rx2 = rx.clone();
    let r = blocks_until(move || rx2.recv_blocking(), move || drop(p));
    assert_eq!(r, Err(RecvError));
    assert!(rx.is_closed());
    assert!(!rx.is_full());
    assert_eq!(rx.sender_count(), 0);
}

#[test]
fn dropping_an_owned_permit_gives_the_slot_to_a_waiting_sender() {
    let (tx, rx) = channel::bounded(1);
    let p = tx.clone().try_reserve_owned().unwrap();
    assert!(tx.is_full());
    let tx2 = tx.clone();
    let r = blocks_until(move || tx2.send_blocking(1), move || drop(p));
    assert_eq!(r, Ok(()));
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.sender_count(), 1);
}

#[test]
fn try_reserve_owned_hands_the_sender_back_when_full_or_closed() {
    let (tx, rx) = channel::bounded(1);
    tx.try_send(1).unwrap();
    let tx = match tx.try_reserve_owned() {
        Err(TrySendError::Full(tx)) => tx,
        Err(TrySendError::Closed(_)) => panic!("not closed"),
        Ok(_) => panic!("reserved on a full channel"),
    };
    assert_eq!(rx.sender_count(), 1);
    assert!(!rx.is_closed());
    assert_eq!(rx.try_recv(), Ok(1));
    let p = tx.try_reserve_owned().expect("a slot is free");
    let tx = p.send(2);
    assert_eq!(rx.try_recv(), Ok(2));
    rx.close();
    let tx = match tx.try_reserve_owned() {
        Err(TrySendError::Closed(tx)) => tx,
        Err(TrySendError::Full(_)) => panic!("not full"),
        Ok(_) => panic!("reserved on a closed channel"),
    };
    assert_eq!(rx.sender_count(), 1);
    assert!(TrySendError::Closed(tx).is_closed());
    assert_eq!(rx.sender_count(), 0);
}

#[test]
fn reserve_owned_on_a_closed_channel_fails_and_drops_the_sender() {
    let (tx, rx) = channel::bounded::<i32>(1);
    let tx2 = tx.clone();
    rx.close();
    assert_eq!(block_on(tx2.reserve_owned()).err(), Some(Closed));
    assert_eq!(rx.sender_count(), 1);
    drop(tx);
}

#[test]
fn reserve_owned_waits_then_the_permit_moves_to_another_thread() {
    let (tx, rx) = channel::bounded(1);
    tx.try_send(1).unwrap();
    let rt = multi_thread_rt(3);
    let rx2 = rx.clone();
    let p = rt.block_on(async move {
        let taker = tokio::spawn(async move {
            tokio::time::sleep(ms(20)).await;
            rx2.recv().await
        });
        let p = tx.reserve_owned().await.unwrap();
        assert_eq!(taker.await.unwrap(), Ok(1));
        p
    });
    let t = thread::spawn(move || drop(p.send(2)));
    t.join().unwrap();
    assert_eq!(rx.recv_blocking(), Ok(2));
    assert_eq!(rx.recv_blocking(), Err(RecvError));
}

#[test]
fn reserve_owned_waiting_gets_closed() {
    let (tx, rx) = channel::bounded(1);
    tx.try_send(1).unwrap();
    let mut f = Box::pin(tx.clone().reserve_owned());
    assert!(poll_once(f.as_mut()).is_pending());
    assert_eq!(rx.sender_count(), 2);
    tx.close();
    assert_eq!(ready(poll_once(f.as_mut())).err(), Some(Closed));
    drop(f);
    assert_eq!(rx.sender_count(), 1);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn an_owned_permit_sent_after_close_is_delivered() {
    let (tx, rx) = channel::bounded(1);
    let p = tx.try_reserve_owned().unwrap();
    rx.close();
    assert_eq!(rx.recv_timeout(ms(100)), Err(RecvTimeoutError::Timeout));
    let tx = p.send(3);
    assert_eq!(rx.recv_blocking(), Ok(3));
    assert_eq!(rx.recv_blocking(), Err(RecvError));
    drop(tx);
}

#[test]
fn a_cancelled_reserve_owned_passes_the_slot_on_and_drops_its_sender() {
    let (tx, rx) = channel::bounded(1);
    tx.try_send(0).unwrap();
    let mut first = Box::pin(tx.clone().reserve_owned());
    let mut next = Box::pin(tx.clone().reserve_owned());
    assert!(poll_once(first.as_mut()).is_pending());
    assert!(poll_once(next.as_mut()).is_pending());
    assert_eq!(rx.sender_count(), 3);
    assert_eq!(rx.try_recv(), Ok(0)); // granted to `first`
    drop(first);
    assert_eq!(rx.sender_count(), 2);
    let tx2 = ready(poll_once(next.as_mut())).unwrap().send(1);
    drop(tx2);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.sender_count(), 1);
    drop(tx);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

/// The last sender's `reserve_owned` is granted, then dropped: the slot comes home and
/// then the sender goes, so the channel closes drained.
#[test]
fn the_last_senders_granted_reserve_owned_dropped_closes_the_channel() {
    let (tx, rx) = channel::bounded(1);
    tx.try_send(0).unwrap();
    let mut f = Box::pin(tx.reserve_owned());
    assert!(poll_once(f.as_mut()).is_pending());
    assert_eq!(rx.try_recv(), Ok(0));
    drop(f);
    assert_eq!(rx.sender_count(), 0);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

// ---- Receiver as a Stream ----

#[test]
fn stream_yields_items_in_order_and_ends_after_close_and_drain() {
    let (tx, rx) = channel::unbounded();
    for i in 0..100 {
        tx.try_send(i).unwrap();
    }
    drop(tx);
    let got: Vec<i32> = block_on(rx.collect());
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

#[test]
fn stream_returns_none_again_after_the_end() {
    let (tx, mut rx) = channel::bounded(4);
    tx.try_send(1).unwrap();
    tx.close();
    assert_eq!(block_on(rx.next()), Some(1));
    assert_eq!(block_on(rx.next()), None);
    assert_eq!(block_on(rx.next()), None);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn stream_waits_and_is_woken_by_a_send() {
    let (tx, mut rx) = channel::bounded(1);
    let (count, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(rx.poll_next_unpin(&mut cx).is_pending());
    assert!(rx.poll_next_unpin(&mut cx).is_pending());
    tx.try_send(1).unwrap();
    assert!(count.0.load(SeqCst) >= 1, "the send woke no stream");
    assert_eq!(rx.poll_next_unpin(&mut cx), Poll::Ready(Some(1)));
    assert!(rx.poll_next_unpin(&mut cx).is_pending());
    tx.try_send(2).unwrap();
    assert_eq!(rx.poll_next_unpin(&mut cx), Poll::Ready(Some(2)));
    drop(tx);
    assert_eq!(rx.poll_next_unpin(&mut cx), Poll::Ready(None));
}

#[test]
fn stream_and_recv_take_turns_on_one_receiver() {
    let (tx, mut rx) = channel::unbounded();
    for i in 0..6 {
        tx.try_send(i).unwrap();
    }
    drop(tx);
    assert_eq!(block_on(rx.next()), Some(0));
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(block_on(rx.next()), Some(2));
    assert_eq!(block_on(rx.recv()), Ok(3));
    let rest: Vec<_> = block_on((&mut rx).collect());
    assert_eq!(rest, [4, 5]);
    assert_eq!(rx.recv_blocking(), Err(RecvError));
}

#[test]
fn stream_waits_while_a_permit_is_out_after_close() {
    let (tx, mut rx) = channel::bounded::<i32>(1);
    let p = tx.try_reserve().unwrap();
    tx.close();
    let (count, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(rx.poll_next_unpin(&mut cx).is_pending());
    p.send(9);
    assert!(count.0.load(SeqCst) >= 1);
    assert_eq!(rx.poll_next_unpin(&mut cx), Poll::Ready(Some(9)));
    assert_eq!(rx.poll_next_unpin(&mut cx), Poll::Ready(None));
}

#[test]
fn streams_of_several_receivers_on_tokio_share_the_items() {
    let rt = multi_thread_rt(3);
    let (tx, rx) = channel::bounded::<usize>(3);
    let mut all = rt.block_on(async move {
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                tokio::spawn(async move { rx.collect::<Vec<_>>().await })
            })
            .collect();
        drop(rx);
        for i in 0..600 {
            tx.send(i).await.unwrap();
        }
        drop(tx);
        let mut all = Vec::new();
        for c in consumers {
            let got = c.await.unwrap();
            assert!(got.windows(2).all(|w| w[0] < w[1]), "a stream out of order");
            all.extend(got);
        }
        all
    });
    all.sort_unstable();
    assert_eq!(all, (0..600).collect::<Vec<_>>());
}

#[test]
fn a_pending_stream_dropped_after_a_send_passes_the_item_to_a_waiting_clone() {
    let (tx, mut rx) = channel::bounded(1);
    let rx2 = rx.clone();
    assert!(rx
        .poll_next_unpin(&mut Context::from_waker(noop_waker_ref()))
        .is_pending());
    let (count, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let mut other = Box::pin(rx2.recv());
    assert!(other.as_mut().poll(&mut cx).is_pending());
    tx.try_send(1).unwrap(); // handed to the stream's wait, first in line
    drop(rx);
    assert!(count.0.load(SeqCst) >= 1, "the item passed to nobody");
    assert_eq!(ready(other.as_mut().poll(&mut cx)), Ok(1));
    drop(other);
    assert_eq!(rx2.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn a_pending_stream_dropped_after_a_send_leaves_the_item_queued() {
    let (tx, mut rx) = channel::bounded(2);
    let rx2 = rx.clone();
    assert!(rx
        .poll_next_unpin(&mut Context::from_waker(noop_waker_ref()))
        .is_pending());
    tx.try_send(1).unwrap();
    drop(rx);
    assert_eq!(rx2.len(), 1);
    assert_eq!(rx2.try_recv(), Ok(1));
    // Both slots are free again.
    tx.try_send(2).unwrap();
    tx.try_send(3).unwrap();
    assert!(tx.is_full());
}

#[test]
fn a_pending_stream_dropped_as_the_last_receiver_closes_the_channel() {
    let (tx, mut rx) = channel::bounded::<i32>(1);
    assert!(rx
        .poll_next_unpin(&mut Context::from_waker(noop_waker_ref()))
        .is_pending());
    drop(rx);
    assert!(tx.is_closed());
    assert_eq!(tx.try_send(1), Err(TrySendError::Closed(1)));
}

#[test]
fn a_pending_stream_dropped_while_an_item_is_sent_loses_nothing() {
    for _ in 0..200 {
        let (tx, mut rx) = channel::unbounded();
        let rx2 = rx.clone();
        assert!(rx
            .poll_next_unpin(&mut Context::from_waker(noop_waker_ref()))
            .is_pending());
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let sender = thread::spawn(move || {
            b.wait();
            tx.try_send(1).unwrap();
        });
        barrier.wait();
        drop(rx);
        sender.join().unwrap();
        assert_eq!(rx2.recv_timeout(HANG), Ok(1));
        assert_eq!(rx2.recv_timeout(HANG), Err(RecvTimeoutError::Closed));
    }
}

#[test]
fn a_pending_stream_ends_when_another_handle_closes() {
    let (tx, mut rx) = channel::bounded::<i32>(1);
    let (count, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(rx.poll_next_unpin(&mut cx).is_pending());
    tx.close();
    assert!(count.0.load(SeqCst) >= 1, "close woke no stream");
    assert_eq!(rx.poll_next_unpin(&mut cx), Poll::Ready(None));
}

/// A receive (a `recv` future or a stream's wait) is handed an item, the channel closes,
/// and the receive is dropped before it is polled again: the item stays for another
/// receiver, and only then does the channel read as drained.
#[test]
fn a_granted_receive_cancelled_after_close_leaves_the_item() {
    let (tx, rx) = channel::bounded(2);
    let mut f = Box::pin(rx.recv());
    assert!(poll_once(f.as_mut()).is_pending());
    tx.try_send(1).unwrap(); // handed to `f`
    tx.close();
    drop(f);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));

    let (tx, mut rx) = channel::bounded(2);
    let rx2 = rx.clone();
    assert!(rx
        .poll_next_unpin(&mut Context::from_waker(noop_waker_ref()))
        .is_pending());
    tx.try_send(2).unwrap(); // handed to the stream's wait
    drop(tx); // the last sender: closes
    drop(rx);
    assert_eq!(rx2.recv_timeout(HANG), Ok(2));
    assert_eq!(rx2.recv_timeout(HANG), Err(RecvTimeoutError::Closed));
}

// ---- drops ----

#[test]
fn a_channel_dropped_with_items_inside_drops_each_once() {
    for (cap, n) in [(Some(64), 50), (None, 1000)] {
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = match cap {
            Some(cap) => channel::bounded(cap),
            None => channel::unbounded(),
        };
        for _ in 0..n {
            tx.try_send(Item(drops.clone())).unwrap();
        }
        for _ in 0..10 {
            drop(rx.try_recv().unwrap());
        }
        assert_eq!(drops.load(SeqCst), 10);
        drop(tx);
        assert_eq!(
            drops.load(SeqCst),
            10,
            "items dropped before they were drained"
        );
        assert_eq!(rx.len(), n - 10);
        drop(rx);
        assert_eq!(drops.load(SeqCst), n);
    }
}

#[test]
fn items_left_after_the_last_receiver_goes_are_dropped_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel::unbounded();
    let weak = tx.downgrade();
    let rx2 = rx.clone();
    for _ in 0..100 {
        tx.try_send(Item(drops.clone())).unwrap();
    }
    drop(rx);
    drop(rx2);
    let back = tx.try_send(Item(drops.clone())).unwrap_err();
    assert!(back.is_closed());
    assert_eq!(drops.load(SeqCst), 0, "the refused item is the caller's");
    drop(back);
    assert_eq!(drops.load(SeqCst), 1);
    drop(tx);
    drop(weak);
    assert_eq!(drops.load(SeqCst), 101);
}

#[test]
fn a_cancelled_send_drops_its_item_once_and_sends_nothing() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel::bounded(1);
    tx.try_send(Item(drops.clone())).unwrap();
    let mut f = Box::pin(tx.send(Item(drops.clone())));
    assert!(poll_once(f.as_mut()).is_pending());
    drop(f);
    assert_eq!(drops.load(SeqCst), 1);
    assert_eq!(rx.len(), 1);
    drop(rx.try_recv().unwrap());
    assert_eq!(drops.load(SeqCst), 2);
    assert_eq!(rx.try_recv().err(), Some(TryRecvError::Empty));
    drop((tx, rx));
    assert_eq!(drops.load(SeqCst), 2);
}

#[test]
fn items_moved_through_threads_are_dropped_once() {
    const N: usize = 2000;
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel::unbounded();
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let tx = tx.clone();
            let drops = drops.clone();
            thread::spawn(move || {
                for _ in 0..N {
                    tx.send_blocking(Item(drops.clone())).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    // Receive half while they send, then leave the rest inside.
    for _ in 0..N {
        drop(rx.recv_blocking().unwrap());
    }
    for s in senders {
        s.join().unwrap();
    }
    assert!(drops.load(SeqCst) >= N);
    drop(rx);
    assert_eq!(drops.load(SeqCst), 2 * N);
}

// ---- a forgotten Sender ----

#[test]
fn a_forgotten_sender_leaks_but_never_deadlocks_the_others() {
    let (tx, rx) = channel::bounded(2);
    mem::forget(tx.clone());
    assert_eq!(rx.sender_count(), 2);
    let senders: Vec<_> = (0..2)
        .map(|s| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..100 {
                    tx.send_blocking(s * 100 + i).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut got = Vec::new();
    for _ in 0..200 {
        got.push(rx.recv_timeout(HANG).expect("an item never came"));
    }
    for s in senders {
        s.join().unwrap();
    }
    got.sort_unstable();
    assert_eq!(got, (0..200).collect::<Vec<_>>());
    // The forgotten sender keeps the channel open forever: nothing more comes, nothing
    // closes it, and nothing hangs.
    assert_eq!(rx.sender_count(), 1);
    assert!(!rx.is_closed());
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(rx.recv_timeout(ms(50)), Err(RecvTimeoutError::Timeout));
    // An explicit close still works.
    rx.close();
    assert_eq!(rx.recv_blocking(), Err(RecvError));
}

// ---- close() on either half ----

#[test]
fn close_on_the_sender_closes_for_everyone() {
    let (tx, rx) = channel::bounded(2);
    let tx2 = tx.clone();
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    let tx3 = tx.clone();
    let waiting_sender = spawn(move || tx3.send_blocking(3));
    thread::sleep(SETTLE);
    tx.close();
    assert_eq!(recv(&waiting_sender), Err(SendError(3)));
    assert!(tx.is_closed() && tx2.is_closed() && rx.is_closed());
    assert_eq!(tx2.try_send(4), Err(TrySendError::Closed(4)));
    assert_eq!(rx.recv_blocking(), Ok(1));
    assert_eq!(rx.recv_blocking(), Ok(2));
    assert_eq!(rx.recv_blocking(), Err(RecvError));
    tx.close(); // twice is fine
    assert!(tx.is_closed());
    assert_eq!(rx.sender_count(), 2);
}

#[test]
fn close_on_the_receiver_closes_for_everyone() {
    let (tx, rx) = channel::bounded::<i32>(1);
    let rx2 = rx.clone();
    let waiting_receiver = spawn(move || rx2.recv_blocking());
    thread::sleep(SETTLE);
    rx.close();
    assert_eq!(recv(&waiting_receiver), Err(RecvError));
    assert!(tx.is_closed());
    assert_eq!(block_on(tx.send(1)), Err(SendError(1)));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    rx.close();
    assert_eq!(rx.receiver_count(), 1);
}

#[test]
fn close_on_the_receiver_wakes_a_waiting_sender_and_keeps_the_items() {
    let (tx, rx) = channel::bounded(1);
    tx.try_send(1).unwrap();
    let tx2 = tx.clone();
    let r = blocks_until(move || tx2.send_timeout(2, LONG), || rx.close());
    assert_eq!(r, Err(SendTimeoutError::Closed(2)));
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

// ---- Debug ----

#[test]
fn debug_impls_do_not_need_t_debug() {
    let (tx, rx) = channel::bounded::<NoDebug>(2);
    let weak = tx.downgrade();
    let permit = tx.try_reserve().unwrap();
    let owned = tx.clone().try_reserve_owned().unwrap();
    let text = format!("{tx:?} {rx:?} {weak:?} {permit:?} {owned:?}");
    for name in [
        "Sender",
        "Receiver",
        "WeakSender",
        "SendPermit",
        "OwnedSendPermit",
    ] {
        assert!(text.contains(name), "{name} missing from {text}");
    }
    drop(permit);
    drop(owned);
    let full = format!("{:?}", tx.clone().try_reserve_owned().unwrap());
    assert!(full.contains("OwnedSendPermit"));
    rx.close();
    let errors = format!(
        "{:?} {:?} {:?} {:?}",
        tx.try_send(NoDebug).unwrap_err(),
        tx.send_blocking(NoDebug).unwrap_err(),
        tx.send_timeout(NoDebug, LONG).unwrap_err(),
        tx.clone().try_reserve_owned().unwrap_err(),
    );
    assert!(!errors.is_empty());
}
