//! `reserve` through the public API, on `Queue` and on a channel's `Sender`: all five forms
//! (async, try, blocking, timeout, deadline, zero and past deadlines included), what a
//! `SendPermit` promises (its `send` neither fails nor waits, dropping it gives the slot back
//! and wakes a waiting sender), how permits count (`is_full` with every slot reserved though
//! `len() == 0`; a permit holds capacity, not a place in line), permits and `close` (an item
//! sent through a permit after close is delivered; receivers of a closed, empty queue wait
//! while a permit is out), cancellation of a reserve future, and reserve against close.
//!
//! Every test is written once and run twice, by `reserve_tests!`: on an `Arc<Queue>` (the
//! same queue as both halves) and on a channel (`Sender`, `Receiver`). Tests that need a
//! blocking thread to be queued before something else happens give it `SETTLE` to get
//! there; no test asserts how fast anything is.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::task::Context;
use std::thread;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use toro_sync::channel::{self, Receiver, Sender};
use toro_sync::{
    Closed, Queue, RecvError, RecvTimeoutError, SendError, SendTimeoutError, Timeout, TryRecvError,
    TrySendError, WaitExt,
};

mod common;
use common::*;

/// The reserve tests, for one kind of queue. `$setup` defines `Tx<T>`, `Rx<T>` and the
/// constructors `bounded(cap)` and `unbounded()` returning `(Tx<T>, Rx<T>)`; both halves
/// are `Clone + Send + 'static` and have the queue method set. The tests keep both halves
/// alive to the end (a channel closes when the last handle of a side goes).
macro_rules! reserve_tests {
    ($kind:ident, { $($setup:item)* }) => {
        mod $kind {
            use super::*;

            $($setup)*

            // ---- the five forms ----

            #[test]
            fn reserve_async_gives_a_permit_at_once() {
                let (tx, rx) = bounded::<i32>(2);
                let p = block_on(tx.reserve()).unwrap();
                assert_eq!(rx.len(), 0);
                assert!(!tx.is_full());
                p.send(1);
                assert_eq!(rx.len(), 1);
                assert_eq!(rx.try_recv(), Ok(1));
            }

            #[test]
            fn reserve_async_waits_for_a_slot_and_is_woken() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(1).unwrap();
                let (count, waker) = counting_waker();
                let mut f = Box::pin(tx.reserve());
                assert!(f.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
                assert_eq!(count.0.load(SeqCst), 0);
                assert_eq!(rx.try_recv(), Ok(1));
                assert!(count.0.load(SeqCst) >= 1, "the freed slot did not wake the reserve");
                let p = ready(poll_once(f.as_mut())).unwrap();
                assert!(tx.is_full());
                p.send(2);
                assert_eq!(rx.try_recv(), Ok(2));
            }

            #[test]
            fn reserve_async_on_tokio_waits_for_a_receiver() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(1).unwrap();
                let rt = multi_thread_rt(2);
                let rx2 = rx.clone();
                rt.block_on(async move {
                    let taker = tokio::spawn(async move {
                        tokio::task::yield_now().await;
                        rx2.recv().await
                    });
                    let p = tx.reserve().await.unwrap();
                    p.send(2);
                    assert_eq!(taker.await.unwrap(), Ok(1));
                });
                assert_eq!(rx.try_recv(), Ok(2));
            }

            #[test]
            fn try_reserve_full_then_free_then_closed() {
                let (tx, rx) = bounded::<i32>(1);
                let p = tx.try_reserve().unwrap();
                assert_eq!(tx.try_reserve().err(), Some(TrySendError::Full(())));
                assert_eq!(tx.try_send(5), Err(TrySendError::Full(5)));
                drop(p);
                let p = tx.try_reserve().unwrap();
                p.send(1);
                assert_eq!(tx.try_reserve().err(), Some(TrySendError::Full(())));
                assert_eq!(rx.try_recv(), Ok(1));
                tx.close();
                assert_eq!(tx.try_reserve().err(), Some(TrySendError::Closed(())));
            }

            #[test]
            fn try_reserve_does_not_pass_a_waiting_sender() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(1).unwrap();
                let mut f = Box::pin(tx.reserve());
                assert!(poll_once(f.as_mut()).is_pending());
                assert_eq!(rx.try_recv(), Ok(1));
                // The freed slot went to the queued reserve, not to a newcomer.
                assert_eq!(tx.try_reserve().err(), Some(TrySendError::Full(())));
                ready(poll_once(f.as_mut())).unwrap().send(2);
                assert_eq!(rx.try_recv(), Ok(2));
            }

            #[test]
            fn reserve_blocking_waits_for_a_slot() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(1).unwrap();
                let tx2 = tx.clone();
                let r = blocks_until(
                    move || tx2.reserve_blocking().map(|p| p.send(2)),
                    || assert_eq!(rx.try_recv(), Ok(1)),
                );
                assert_eq!(r, Ok(()));
                assert_eq!(rx.try_recv(), Ok(2));
                assert!(tx.reserve_blocking().is_ok());
            }

            #[test]
            fn reserve_timeout_times_out_on_a_full_queue() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(1).unwrap();
                let start = Instant::now();
                assert_eq!(
                    tx.reserve_timeout(ms(50)).err(),
                    Some(SendTimeoutError::Timeout(()))
                );
                assert!(start.elapsed() >= ms(50));
                assert_eq!(
                    tx.reserve_timeout(Duration::ZERO).err(),
                    Some(SendTimeoutError::Timeout(()))
                );
                // Nothing was taken by the timed-out waits.
                assert_eq!(rx.try_recv(), Ok(1));
                tx.reserve_timeout(Duration::ZERO).unwrap().send(2);
                assert_eq!(rx.try_recv(), Ok(2));
                tx.reserve_timeout(LONG).unwrap().send(3);
                assert_eq!(rx.try_recv(), Ok(3));
                assert!(!tx.is_full());
            }

            #[test]
            fn reserve_timeout_waits_for_a_slot() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(1).unwrap();
                let tx2 = tx.clone();
                let r = blocks_until(
                    move || tx2.reserve_timeout(LONG).map(|p| p.send(2)),
                    || assert_eq!(rx.try_recv(), Ok(1)),
                );
                assert_eq!(r, Ok(()));
                assert_eq!(rx.try_recv(), Ok(2));
            }

            #[test]
            fn reserve_deadline_zero_and_past_succeed_when_a_slot_is_free() {
                let (tx, rx) = bounded::<i32>(3);
                tx.reserve_deadline(past()).unwrap().send(1);
                tx.reserve_deadline(Instant::now()).unwrap().send(2);
                tx.reserve_timeout(Duration::ZERO).unwrap().send(3);
                assert_eq!(rx.len(), 3);
                // Full now: the same deadlines time out.
                assert_eq!(tx.reserve_deadline(past()).err(), Some(SendTimeoutError::Timeout(())));
                assert_eq!(
                    tx.reserve_deadline(Instant::now()).err(),
                    Some(SendTimeoutError::Timeout(()))
                );
                let start = Instant::now();
                assert_eq!(
                    tx.reserve_deadline(start + ms(50)).err(),
                    Some(SendTimeoutError::Timeout(()))
                );
                assert!(Instant::now() >= start + ms(50));
                assert_eq!(rx.try_recv(), Ok(1));
                assert_eq!(rx.try_recv(), Ok(2));
                assert_eq!(rx.try_recv(), Ok(3));
            }

            #[test]
            fn reserve_deadline_waits_for_a_slot() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(1).unwrap();
                let tx2 = tx.clone();
                let r = blocks_until(
                    move || tx2.reserve_deadline(Instant::now() + LONG).map(|p| p.send(2)),
                    || assert_eq!(rx.try_recv(), Ok(1)),
                );
                assert_eq!(r, Ok(()));
                assert_eq!(rx.try_recv(), Ok(2));
            }

            #[test]
            fn every_form_fails_on_a_closed_queue_with_free_slots() {
                let (tx, rx) = bounded::<i32>(2);
                tx.close();
                assert!(tx.is_closed() && rx.is_closed());
                assert_eq!(block_on(tx.reserve()).err(), Some(Closed));
                assert_eq!(tx.try_reserve().err(), Some(TrySendError::Closed(())));
                assert_eq!(tx.reserve_blocking().err(), Some(Closed));
                assert_eq!(tx.reserve_timeout(LONG).err(), Some(SendTimeoutError::Closed(())));
                assert_eq!(
                    tx.reserve_timeout(Duration::ZERO).err(),
                    Some(SendTimeoutError::Closed(()))
                );
                assert_eq!(tx.reserve_deadline(past()).err(), Some(SendTimeoutError::Closed(())));
                assert_eq!(
                    tx.reserve_deadline(Instant::now() + LONG).err(),
                    Some(SendTimeoutError::Closed(()))
                );
                assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
            }

            #[test]
            fn reserve_with_wait_ext_timeout_takes_nothing() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(1).unwrap();
                assert_eq!(block_on(tx.reserve().timeout(ms(30))).err(), Some(Timeout));
                assert_eq!(rx.try_recv(), Ok(1));
                let p = block_on(tx.reserve().timeout(LONG)).unwrap().unwrap();
                assert!(tx.is_full());
                drop(p);
                assert!(!tx.is_full());
            }

            #[test]
            fn reserve_with_wait_ext_past_deadline_succeeds_when_a_slot_is_free() {
                let (tx, rx) = bounded::<i32>(1);
                block_on(tx.reserve().deadline(past())).unwrap().unwrap().send(1);
                assert_eq!(block_on(tx.reserve().deadline(past())).err(), Some(Timeout));
                assert_eq!(block_on(tx.reserve().timeout(Duration::ZERO)).err(), Some(Timeout));
                assert_eq!(rx.try_recv(), Ok(1));
                block_on(tx.reserve().timeout(Duration::ZERO)).unwrap().unwrap().send(2);
                assert_eq!(rx.try_recv(), Ok(2));
            }

            #[test]
            fn unbounded_reserve_never_waits_and_is_never_full() {
                let (tx, rx) = unbounded::<usize>();
                assert_eq!(tx.capacity(), None);
                let permits: Vec<_> = (0..1000).map(|_| tx.try_reserve().unwrap()).collect();
                assert!(!tx.is_full());
                assert_eq!(rx.len(), 0);
                tx.reserve_deadline(past()).unwrap().send(0);
                tx.reserve_blocking().unwrap().send(1);
                block_on(tx.reserve()).unwrap().send(2);
                for (i, p) in permits.into_iter().enumerate() {
                    p.send(i + 3);
                }
                assert_eq!(rx.len(), 1003);
                for i in 0..1003 {
                    assert_eq!(rx.try_recv(), Ok(i));
                }
                assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
            }

            // ---- what a permit promises ----

            #[test]
            fn permit_send_neither_fails_nor_waits_behind_waiting_senders() {
                let (tx, rx) = bounded::<i32>(2);
                let p = tx.try_reserve().unwrap();
                tx.try_send(1).unwrap();
                // Two senders queue behind the full queue; the permit's place is its own.
                let mut s1 = Box::pin(tx.send(10));
                let mut s2 = Box::pin(tx.reserve());
                assert!(poll_once(s1.as_mut()).is_pending());
                assert!(poll_once(s2.as_mut()).is_pending());
                let start = Instant::now();
                p.send(2); // returns `()`: nothing can fail
                assert!(start.elapsed() < SETTLE);
                assert_eq!(rx.len(), 2);
                assert_eq!(rx.try_recv(), Ok(1));
                assert_eq!(ready(poll_once(s1.as_mut())), Ok(()));
                assert_eq!(rx.try_recv(), Ok(2));
                ready(poll_once(s2.as_mut())).unwrap().send(11);
                assert_eq!(rx.try_recv(), Ok(10));
                assert_eq!(rx.try_recv(), Ok(11));
            }

            #[test]
            fn dropping_a_permit_gives_the_slot_back() {
                let (tx, rx) = bounded::<i32>(1);
                let p = tx.try_reserve().unwrap();
                assert!(tx.is_full());
                drop(p);
                assert!(!tx.is_full());
                assert_eq!(rx.len(), 0);
                assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
                tx.try_send(1).unwrap();
                assert_eq!(rx.try_recv(), Ok(1));
                // Many rounds leak nothing.
                for _ in 0..100 {
                    drop(block_on(tx.reserve()).unwrap());
                    drop(tx.reserve_blocking().unwrap());
                }
                tx.try_send(2).unwrap();
                assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
            }

            #[test]
            fn dropping_a_permit_wakes_an_async_sender() {
                let (tx, rx) = bounded::<i32>(1);
                let p = tx.try_reserve().unwrap();
                let (count, waker) = counting_waker();
                let mut cx = Context::from_waker(&waker);
                let mut send = Box::pin(tx.send(1));
                assert!(send.as_mut().poll(&mut cx).is_pending());
                drop(p);
                assert!(count.0.load(SeqCst) >= 1, "the dropped permit woke nobody");
                assert_eq!(ready(send.as_mut().poll(&mut cx)), Ok(()));
                assert_eq!(rx.try_recv(), Ok(1));

                let p = tx.try_reserve().unwrap();
                let before = count.0.load(SeqCst);
                let mut res = Box::pin(tx.reserve());
                assert!(res.as_mut().poll(&mut cx).is_pending());
                drop(p);
                assert!(count.0.load(SeqCst) > before, "the dropped permit woke nobody");
                ready(res.as_mut().poll(&mut cx)).unwrap().send(2);
                assert_eq!(rx.try_recv(), Ok(2));
            }

            #[test]
            fn dropping_a_permit_wakes_a_blocking_sender() {
                let (tx, rx) = bounded::<i32>(1);
                let p = tx.try_reserve().unwrap();
                let tx2 = tx.clone();
                assert_eq!(blocks_until(move || tx2.send_blocking(1), || drop(p)), Ok(()));
                assert_eq!(rx.try_recv(), Ok(1));

                let p = tx.try_reserve().unwrap();
                let tx2 = tx.clone();
                let r = blocks_until(
                    move || tx2.reserve_timeout(LONG).map(|p| p.send(2)),
                    || drop(p),
                );
                assert_eq!(r, Ok(()));
                assert_eq!(rx.try_recv(), Ok(2));
            }

            #[test]
            fn is_full_when_every_slot_is_reserved_though_empty() {
                let (tx, rx) = bounded::<i32>(2);
                let p1 = tx.try_reserve().unwrap();
                assert!(!tx.is_full());
                let p2 = block_on(tx.reserve()).unwrap();
                assert!(tx.is_full() && rx.is_full());
                assert_eq!(rx.len(), 0);
                assert!(rx.is_empty());
                assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
                assert_eq!(tx.send_timeout(1, ms(10)), Err(SendTimeoutError::Timeout(1)));
                assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
                drop(p1);
                assert!(!tx.is_full());
                p2.send(1);
                assert!(!tx.is_full());
                assert_eq!(rx.len(), 1);
            }

            #[test]
            fn len_counts_items_only() {
                let (tx, rx) = bounded::<i32>(4);
                tx.try_send(1).unwrap();
                let p1 = tx.try_reserve().unwrap();
                let p2 = tx.try_reserve().unwrap();
                assert_eq!((tx.len(), rx.len()), (1, 1));
                assert!(!tx.is_empty());
                p1.send(2);
                assert_eq!(rx.len(), 2);
                drop(p2);
                assert_eq!(rx.len(), 2);
                assert_eq!(rx.try_recv(), Ok(1));
                assert_eq!(rx.try_recv(), Ok(2));
                let _p = tx.try_reserve().unwrap();
                assert_eq!(rx.len(), 0);
                assert!(rx.is_empty());
            }

            #[test]
            fn a_permit_holds_capacity_not_a_place_in_line() {
                let (tx, rx) = bounded::<i32>(4);
                let p1 = tx.try_reserve().unwrap();
                let p2 = block_on(tx.reserve()).unwrap();
                let p3 = tx.reserve_blocking().unwrap();
                tx.try_send(0).unwrap();
                p3.send(3);
                p1.send(1);
                p2.send(2);
                let got: Vec<_> = (0..4).map(|_| rx.try_recv().unwrap()).collect();
                assert_eq!(got, [0, 3, 1, 2]);
            }

            #[test]
            fn reserves_are_served_in_fifo_order() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(0).unwrap();
                let mut f1 = Box::pin(tx.reserve());
                let mut f2 = Box::pin(tx.reserve());
                assert!(poll_once(f1.as_mut()).is_pending());
                assert!(poll_once(f2.as_mut()).is_pending());
                assert_eq!(rx.try_recv(), Ok(0));
                assert!(poll_once(f2.as_mut()).is_pending());
                ready(poll_once(f1.as_mut())).unwrap().send(1);
                assert!(poll_once(f2.as_mut()).is_pending());
                assert_eq!(rx.try_recv(), Ok(1));
                ready(poll_once(f2.as_mut())).unwrap().send(2);
                assert_eq!(rx.try_recv(), Ok(2));
            }

            // ---- permits and close ----

            #[test]
            fn an_item_sent_through_a_permit_after_close_is_delivered() {
                let (tx, rx) = bounded::<i32>(2);
                tx.try_send(1).unwrap();
                let p = tx.try_reserve().unwrap();
                tx.close();
                assert!(rx.is_closed());
                assert_eq!(tx.try_send(9), Err(TrySendError::Closed(9)));
                p.send(2);
                assert_eq!(rx.len(), 2);
                assert_eq!(rx.recv_blocking(), Ok(1));
                assert_eq!(block_on(rx.recv()), Ok(2));
                assert_eq!(rx.recv_blocking(), Err(RecvError));
                assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
            }

            #[test]
            fn receivers_of_a_closed_empty_queue_wait_while_a_permit_is_out() {
                let (tx, rx) = bounded::<i32>(2);
                let p = tx.try_reserve().unwrap();
                tx.close();
                assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
                assert_eq!(rx.recv_timeout(ms(100)), Err(RecvTimeoutError::Timeout));
                assert_eq!(rx.recv_deadline(past()), Err(RecvTimeoutError::Timeout));
                drop(p);
                assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
                assert_eq!(rx.recv_timeout(LONG), Err(RecvTimeoutError::Closed));
                assert_eq!(rx.recv_blocking(), Err(RecvError));
                assert_eq!(block_on(rx.recv()), Err(RecvError));
            }

            #[test]
            fn a_permit_sent_after_close_then_receivers_see_closed() {
                let (tx, rx) = bounded::<i32>(2);
                let p = tx.try_reserve().unwrap();
                tx.close();
                assert_eq!(rx.recv_timeout(ms(100)), Err(RecvTimeoutError::Timeout));
                p.send(7);
                assert_eq!(rx.recv_timeout(LONG), Ok(7));
                assert_eq!(rx.recv_timeout(LONG), Err(RecvTimeoutError::Closed));
                assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
            }

            #[test]
            fn the_last_of_several_permits_after_close_ends_the_wait() {
                let (tx, rx) = bounded::<i32>(3);
                tx.try_send(1).unwrap();
                let p1 = tx.try_reserve().unwrap();
                let p2 = tx.try_reserve().unwrap();
                tx.close();
                assert_eq!(rx.try_recv(), Ok(1));
                p1.send(2);
                assert_eq!(rx.try_recv(), Ok(2));
                assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
                drop(p2);
                assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
            }

            #[test]
            fn a_blocking_receiver_wakes_when_the_last_permit_goes_after_close() {
                let (tx, rx) = bounded::<i32>(1);
                let p = tx.try_reserve().unwrap();
                tx.close();
                let rx2 = rx.clone();
                assert_eq!(blocks_until(move || rx2.recv_blocking(), || drop(p)), Err(RecvError));

                let (tx, rx) = bounded::<i32>(1);
                let p = tx.try_reserve().unwrap();
                tx.close();
                let rx2 = rx.clone();
                let r = blocks_until(move || rx2.recv_timeout(LONG), || p.send(5));
                assert_eq!(r, Ok(5));
                assert_eq!(rx.recv_timeout(LONG), Err(RecvTimeoutError::Closed));
            }

            #[test]
            fn an_async_receiver_wakes_when_the_last_permit_goes_after_close() {
                let (tx, rx) = bounded::<i32>(1);
                let p = tx.try_reserve().unwrap();
                let (count, waker) = counting_waker();
                let mut cx = Context::from_waker(&waker);
                let mut r = Box::pin(rx.recv());
                assert!(r.as_mut().poll(&mut cx).is_pending());
                tx.close();
                assert!(r.as_mut().poll(&mut cx).is_pending(), "closed while a permit is out");
                drop(p);
                assert!(count.0.load(SeqCst) >= 1, "the receiver was not woken");
                assert_eq!(ready(r.as_mut().poll(&mut cx)), Err(RecvError));
            }

            // ---- cancellation ----

            #[test]
            fn a_cancelled_reserve_passes_its_slot_to_the_next_sender() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(0).unwrap();
                let mut first = Box::pin(tx.reserve());
                let mut next = Box::pin(tx.reserve());
                assert!(poll_once(first.as_mut()).is_pending());
                assert!(poll_once(next.as_mut()).is_pending());
                assert_eq!(rx.try_recv(), Ok(0)); // the slot goes to `first`...
                drop(first); // ...which is dropped before it sees it
                ready(poll_once(next.as_mut())).unwrap().send(1);
                assert_eq!(rx.try_recv(), Ok(1));
                // Nothing leaked: exactly one slot.
                tx.try_send(2).unwrap();
                assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
            }

            #[test]
            fn a_cancelled_reserve_passes_its_slot_to_a_blocking_sender() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(0).unwrap();
                let mut first = Box::pin(tx.reserve());
                assert!(poll_once(first.as_mut()).is_pending());
                let tx2 = tx.clone();
                let rx2 = rx.clone();
                let r = blocks_until(move || tx2.send_timeout(1, LONG), move || {
                    assert_eq!(rx2.try_recv(), Ok(0));
                    drop(first);
                });
                assert_eq!(r, Ok(()));
                assert_eq!(rx.try_recv(), Ok(1));
            }

            #[test]
            fn a_cancelled_reserve_with_nobody_behind_gives_the_slot_back() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(0).unwrap();
                let mut f = Box::pin(tx.reserve());
                assert!(poll_once(f.as_mut()).is_pending());
                assert_eq!(rx.try_recv(), Ok(0));
                assert!(tx.is_full()); // the slot is the future's now
                drop(f);
                assert!(!tx.is_full());
                tx.try_reserve().unwrap().send(1);
                assert_eq!(rx.try_recv(), Ok(1));
            }

            #[test]
            fn a_reserve_cancelled_from_select_loses_nothing() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(0).unwrap();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    for _ in 0..20 {
                        tokio::select! {
                            p = tx.reserve() => panic!("reserved on a full queue: {p:?}"),
                            _ = tokio::time::sleep(ms(1)) => {}
                        }
                    }
                    assert_eq!(rx.recv().await, Ok(0));
                    for i in 1..=20 {
                        tokio::select! {
                            p = tx.reserve() => p.unwrap().send(i),
                            _ = tokio::time::sleep(LONG) => panic!("no slot"),
                        }
                        assert_eq!(rx.recv().await, Ok(i));
                    }
                });
                tx.try_send(1).unwrap();
                assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
            }

            /// A reserve future is granted the slot a receiver freed, then the queue is
            /// closed, then the future is dropped without being polled again. It never
            /// became a permit (a reserve counts itself only when it completes, and fails
            /// once closed), so receivers see the queue closed and drained at once, and the
            /// drop changes nothing.
            #[test]
            fn a_granted_reserve_cancelled_after_close_lets_receivers_finish() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(0).unwrap();
                let mut f = Box::pin(tx.reserve());
                assert!(poll_once(f.as_mut()).is_pending());
                assert_eq!(rx.try_recv(), Ok(0)); // the freed slot is granted to `f`
                tx.close();
                assert_eq!(rx.try_recv(), Err(TryRecvError::Closed)); // no permit is out
                drop(f);
                assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
                assert_eq!(rx.recv_timeout(ms(500)), Err(RecvTimeoutError::Closed));
            }

            /// The same with a `send` future: its place freed, closed, dropped. The
            /// receive that freed the place moved its item in (API.md: a waiting sender's
            /// item enters when a place frees), so it was sent: receivers get it, then
            /// the queue is closed and drained.
            #[test]
            fn a_moved_in_send_cancelled_after_close_lets_receivers_finish() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(0).unwrap();
                let mut f = Box::pin(tx.send(1));
                assert!(poll_once(f.as_mut()).is_pending());
                assert_eq!(rx.try_recv(), Ok(0));
                tx.close();
                drop(f);
                assert_eq!(rx.try_recv(), Ok(1));
                assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
                assert_eq!(rx.recv_timeout(ms(500)), Err(RecvTimeoutError::Closed));
            }

            #[test]
            fn a_granted_reserve_cancelled_before_close_then_close_drains() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(0).unwrap();
                let mut f = Box::pin(tx.reserve());
                assert!(poll_once(f.as_mut()).is_pending());
                assert_eq!(rx.try_recv(), Ok(0));
                drop(f);
                tx.close();
                assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
            }

            // ---- reserve against close ----

            #[test]
            fn waiting_reserves_get_closed() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(1).unwrap();
                let (count, waker) = counting_waker();
                let mut cx = Context::from_waker(&waker);
                let mut f = Box::pin(tx.reserve());
                assert!(f.as_mut().poll(&mut cx).is_pending());
                let (t1, t2, t3) = (tx.clone(), tx.clone(), tx.clone());
                let b = spawn(move || t1.reserve_blocking().map(drop));
                let t = spawn(move || t2.reserve_timeout(LONG).map(drop));
                let d = spawn(move || t3.reserve_deadline(Instant::now() + LONG).map(drop));
                thread::sleep(SETTLE);
                assert!(b.try_recv().is_err() && t.try_recv().is_err() && d.try_recv().is_err());
                tx.close();
                assert!(count.0.load(SeqCst) >= 1, "close woke no async reserve");
                assert_eq!(ready(f.as_mut().poll(&mut cx)).err(), Some(Closed));
                assert_eq!(recv(&b), Err(Closed));
                assert_eq!(recv(&t), Err(SendTimeoutError::Closed(())));
                assert_eq!(recv(&d), Err(SendTimeoutError::Closed(())));
                // The item inside is still there, then the queue is drained.
                assert_eq!(rx.try_recv(), Ok(1));
                assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
            }

            #[test]
            fn close_while_a_reserve_waits_on_tokio() {
                let (tx, rx) = bounded::<i32>(1);
                tx.try_send(1).unwrap();
                let rt = multi_thread_rt(2);
                let tx2 = tx.clone();
                let r = rt.block_on(async move {
                    let waiter = tokio::spawn(async move { tx2.reserve().await.map(drop) });
                    tokio::time::sleep(ms(50)).await;
                    tx.close();
                    waiter.await.unwrap()
                });
                assert_eq!(r, Err(Closed));
                assert_eq!(rx.recv_blocking(), Ok(1));
                assert_eq!(rx.recv_blocking(), Err(RecvError));
            }

            #[test]
            fn sends_fail_after_close_but_permits_do_not() {
                let (tx, rx) = bounded::<i32>(2);
                let p = block_on(tx.reserve()).unwrap();
                tx.close();
                assert_eq!(block_on(tx.send(1)), Err(SendError(1)));
                assert_eq!(tx.send_blocking(2), Err(SendError(2)));
                p.send(3);
                assert_eq!(rx.recv_blocking(), Ok(3));
                assert_eq!(rx.recv_blocking(), Err(RecvError));
            }

            // ---- many senders ----

            #[test]
            fn reserve_from_tokio_tasks_and_threads_delivers_every_item_in_send_order() {
                const PRODUCERS: usize = 4;
                const PER: usize = 300;
                let (tx, rx) = bounded::<(usize, usize)>(3);
                let rt = multi_thread_rt(2);
                let mut tasks = Vec::new();
                for p in 0..PRODUCERS / 2 {
                    let tx = tx.clone();
                    tasks.push(rt.spawn(async move {
                        for i in 0..PER {
                            tx.reserve().await.unwrap().send((p, i));
                        }
                    }));
                }
                let threads: Vec<_> = (PRODUCERS / 2..PRODUCERS)
                    .map(|p| {
                        let tx = tx.clone();
                        thread::spawn(move || {
                            for i in 0..PER {
                                let permit = if i % 2 == 0 {
                                    tx.reserve_blocking().unwrap()
                                } else {
                                    tx.reserve_timeout(LONG).unwrap()
                                };
                                permit.send((p, i));
                            }
                        })
                    })
                    .collect();
                let mut next = [0usize; PRODUCERS];
                for _ in 0..PRODUCERS * PER {
                    let (p, i) = rx.recv_timeout(HANG).expect("an item never came");
                    assert_eq!(i, next[p], "producer {p}'s items out of order");
                    next[p] += 1;
                }
                for t in threads {
                    t.join().unwrap();
                }
                rt.block_on(async {
                    for t in tasks {
                        t.await.unwrap();
                    }
                });
                assert_eq!(next, [PER; PRODUCERS]);
                assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
                // Every slot came home.
                let permits: Vec<_> = (0..3).map(|_| tx.try_reserve().unwrap()).collect();
                assert!(tx.is_full());
                drop(permits);
            }
        }
    };
}

reserve_tests!(queue, {
    type Tx<T> = Arc<Queue<T>>;
    type Rx<T> = Arc<Queue<T>>;

    fn bounded<T>(cap: usize) -> (Tx<T>, Rx<T>) {
        let q = Arc::new(Queue::bounded(cap));
        (q.clone(), q)
    }

    fn unbounded<T>() -> (Tx<T>, Rx<T>) {
        let q = Arc::new(Queue::unbounded());
        (q.clone(), q)
    }
});

reserve_tests!(chan, {
    type Tx<T> = Sender<T>;
    type Rx<T> = Receiver<T>;

    fn bounded<T>(cap: usize) -> (Tx<T>, Rx<T>) {
        channel::bounded(cap)
    }

    fn unbounded<T>() -> (Tx<T>, Rx<T>) {
        channel::unbounded()
    }
});

/// The permit type is the same for both, and it can be sent to another thread while the
/// queue outlives it.
#[test]
fn a_permit_moves_to_a_scoped_thread() {
    let q = Queue::bounded(1);
    let (tx, rx) = channel::bounded(1);
    let qp = q.try_reserve().unwrap();
    let cp = tx.try_reserve().unwrap();
    thread::scope(|s| {
        s.spawn(move || qp.send(1));
        s.spawn(move || cp.send(2));
    });
    assert_eq!(q.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    let mut f = pin!(async { q.reserve().await.map(|p| p.send(3)) });
    assert_eq!(ready(poll_once(f.as_mut())), Ok(()));
    assert_eq!(q.try_recv(), Ok(3));
}
