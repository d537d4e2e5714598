//! Unit tests of the engine's unsafe paths (waiter list links, the acquire future's pinned
//! node, cancellation in each state, the wake batching), driven by hand-polled futures so
//! they also run under Miri: `cargo +nightly miri test --lib`.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use crate::test_waker::waker;
use crate::{AcquireTimeoutError, BoundedSemaphore, Closed, Semaphore, TryAcquireError};

fn poll<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

#[test]
fn queued_waiters_are_served_in_order_and_a_cancelled_one_is_skipped() {
    let sem = Semaphore::new(0);
    let (wa, a_waker) = waker();
    let (wb, b_waker) = waker();
    let (wc, c_waker) = waker();
    let mut a = Box::pin(sem.acquire());
    let mut b = Box::pin(sem.acquire());
    let mut c = Box::pin(sem.acquire());
    assert!(poll(&mut a, &a_waker).is_pending());
    assert!(poll(&mut b, &b_waker).is_pending());
    assert!(poll(&mut c, &c_waker).is_pending());
    drop(b); // unlinked from the middle
    sem.add_permits(1);
    assert_eq!(
        (wa.0.load(SeqCst), wb.0.load(SeqCst), wc.0.load(SeqCst)),
        (1, 0, 0)
    );
    let pa = match poll(&mut a, &a_waker) {
        Poll::Ready(Ok(p)) => p,
        other => panic!("head not granted: {other:?}"),
    };
    assert!(poll(&mut c, &c_waker).is_pending());
    drop(pa);
    assert_eq!(wc.0.load(SeqCst), 1);
    assert!(matches!(poll(&mut c, &c_waker), Poll::Ready(Ok(_))));
    drop(c);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn try_acquire_does_not_overtake_a_queued_waiter() {
    let sem = Semaphore::new(1);
    let (_, w) = waker();
    let mut big = Box::pin(sem.acquire_many(2));
    assert!(poll(&mut big, &w).is_pending()); // holds the one free permit
    assert_eq!(sem.available_permits(), 0);
    sem.add_permits(0);
    let mut small = Box::pin(sem.acquire());
    assert!(poll(&mut small, &w).is_pending());
    sem.add_permits(1); // completes `big`; `small` still waits
    assert_eq!(sem.try_acquire().err(), Some(TryAcquireError::NoPermits));
    let permit = match poll(&mut big, &w) {
        Poll::Ready(Ok(p)) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(permit.num_permits(), 2);
    drop(permit); // one to `small`, one free
    assert!(matches!(poll(&mut small, &w), Poll::Ready(Ok(_))));
    drop(small);
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn a_cancelled_head_passes_its_partial_permits_on() {
    let sem = Semaphore::new(1);
    let (_, w) = waker();
    let (wn, next_waker) = waker();
    let mut big = Box::pin(sem.acquire_many(3));
    assert!(poll(&mut big, &w).is_pending());
    let mut next = Box::pin(sem.acquire());
    assert!(poll(&mut next, &next_waker).is_pending());
    sem.add_permits(1); // big now holds 2 of 3
    assert_eq!(sem.available_permits(), 0);
    drop(big);
    assert_eq!(wn.0.load(SeqCst), 1);
    let permit = match poll(&mut next, &next_waker) {
        Poll::Ready(Ok(p)) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(sem.available_permits(), 1);
    drop(permit);
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn a_grant_dropped_before_its_poll_goes_to_the_next_waiter() {
    let sem = Semaphore::new(0);
    let (_, w) = waker();
    let (wn, next_waker) = waker();
    let mut first = Box::pin(sem.acquire());
    let mut second = Box::pin(sem.acquire());
    assert!(poll(&mut first, &w).is_pending());
    assert!(poll(&mut second, &next_waker).is_pending());
    sem.add_permits(1); // granted to `first`, which is never polled again
    drop(first);
    assert_eq!(wn.0.load(SeqCst), 1);
    assert!(matches!(poll(&mut second, &next_waker), Poll::Ready(Ok(_))));
    drop(second);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn a_future_dropped_before_its_first_poll_changes_nothing() {
    let sem = Semaphore::new(1);
    drop(sem.acquire_many(1));
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn the_latest_waker_is_the_one_woken() {
    let sem = Semaphore::new(0);
    let (old, old_waker) = waker();
    let (new, new_waker) = waker();
    let mut fut = Box::pin(sem.acquire());
    assert!(poll(&mut fut, &old_waker).is_pending());
    assert!(poll(&mut fut, &new_waker).is_pending());
    sem.add_permits(1);
    assert_eq!((old.0.load(SeqCst), new.0.load(SeqCst)), (0, 1));
    assert!(matches!(poll(&mut fut, &new_waker), Poll::Ready(Ok(_))));
}

#[test]
fn more_waiters_than_one_wake_batch_are_all_served_and_all_closed() {
    const N: usize = 40; // more than the 16 wakes collected under one lock
    let sem = Semaphore::new(0);
    let (count, w) = waker();
    let mut futs: Vec<_> = (0..N).map(|_| Box::pin(sem.acquire())).collect();
    for f in &mut futs {
        assert!(poll(f, &w).is_pending());
    }
    sem.add_permits(N);
    assert_eq!(count.0.load(SeqCst), N);
    let permits: Vec<_> = futs
        .iter_mut()
        .map(|f| match poll(f, &w) {
            Poll::Ready(Ok(p)) => p,
            other => panic!("{other:?}"),
        })
        .collect();
    drop(permits);
    assert_eq!(sem.available_permits(), N);

    let sem = Semaphore::new(0);
    let (count, w) = waker();
    let mut futs: Vec<_> = (0..N).map(|_| Box::pin(sem.acquire_many(2))).collect();
    for f in &mut futs {
        assert!(poll(f, &w).is_pending());
    }
    sem.add_permits(1); // the head holds one
    sem.close();
    assert_eq!(count.0.load(SeqCst), N);
    for f in &mut futs {
        assert!(matches!(poll(f, &w), Poll::Ready(Err(Closed))));
    }
    assert_eq!(
        sem.available_permits(),
        1,
        "the head's partial permit came back"
    );
}

#[test]
fn close_wakes_async_and_blocking_waiters() {
    let sem = Arc::new(Semaphore::new(0));
    let (count, w) = waker();
    let mut fut = Box::pin(sem.acquire());
    assert!(poll(&mut fut, &w).is_pending());
    let s = sem.clone();
    let thread = std::thread::spawn(move || s.acquire_blocking().map(drop));
    // Both waiters must be queued before the close for the test to mean anything.
    while sem.raw.queued_len() < 2 {
        std::thread::yield_now();
    }
    sem.close();
    assert_eq!(thread.join().unwrap(), Err(Closed));
    assert_eq!(count.0.load(SeqCst), 1);
    assert!(matches!(poll(&mut fut, &w), Poll::Ready(Err(Closed))));
    assert_eq!(sem.try_acquire().err(), Some(TryAcquireError::Closed));
}

#[test]
fn blocking_threads_hand_permits_off_and_conserve_them() {
    const ROUNDS: usize = if cfg!(miri) { 20 } else { 2_000 };
    let sem = Arc::new(Semaphore::new(1));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let sem = sem.clone();
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let _p = sem.acquire_blocking().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn a_timed_out_blocking_acquire_leaves_nothing_behind() {
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    assert_eq!(
        sem.acquire_timeout(Duration::from_millis(2)).err(),
        Some(AcquireTimeoutError::Timeout)
    );
    assert_eq!(
        sem.acquire_timeout(Duration::ZERO).err(),
        Some(AcquireTimeoutError::Timeout)
    );
    drop(held);
    assert!(sem.acquire_timeout(Duration::ZERO).is_ok());
    assert_eq!(sem.available_permits(), 1);
    assert!(
        sem.try_acquire().is_ok(),
        "no stale waiter blocks the fast path"
    );
}

#[test]
fn bounded_release_refuses_past_the_initial_value() {
    let sem = BoundedSemaphore::new(2);
    let (_, w) = waker();
    sem.try_acquire_many(2).unwrap().forget();
    let mut fut = Box::pin(sem.acquire());
    assert!(poll(&mut fut, &w).is_pending());
    assert!(sem.release(3).is_err());
    sem.release(1).unwrap();
    assert!(matches!(poll(&mut fut, &w), Poll::Ready(Ok(_))));
    drop(fut);
    sem.release(1).unwrap();
    assert!(sem.release(1).is_err());
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn no_waiter_is_granted_once_closed() {
    // A release racing a close cannot hand its permit to a waiter: after the close bit the
    // waiters are the close's to complete, and the permit stays in the word.
    let sem = Semaphore::new(1);
    let (_, w) = waker();
    let held = sem.try_acquire().unwrap();
    let mut fut = Box::pin(sem.acquire());
    assert!(poll(&mut fut, &w).is_pending());
    // Set the bit alone, as a close does before it takes the lock.
    sem.raw.set_closed_bit_for_test();
    drop(held); // sees W, runs the hand-off, which must grant nothing
    assert_eq!(sem.available_permits(), 1);
    sem.raw.close();
    assert!(matches!(poll(&mut fut, &w), Poll::Ready(Err(Closed))));
}

/// A handle whose look on joining asks for a grant of the head of the queue it has just
/// joined (as the queue layer's does when it finds an item), if `grant` says so.
struct GrantsItself<'a> {
    raw: &'a crate::semaphore::raw::RawSemaphore,
    grant: bool,
}

impl crate::semaphore::raw::OnJoin for GrantsItself<'_> {
    fn look(&self) -> bool {
        // Under the waiter lock: the look sees its own node linked.
        assert!(self.raw.has_waiters());
        self.grant
    }
}

impl crate::semaphore::future::SemRef for GrantsItself<'_> {
    fn raw(&self) -> &crate::semaphore::raw::RawSemaphore {
        self.raw
    }
}

#[test]
fn a_wait_granted_by_its_own_hook_completes_without_waking_its_task() {
    use crate::semaphore::future::RawAcquire;
    let raw = crate::semaphore::raw::RawSemaphore::new(0);
    let (count, w) = waker();
    let mut fut = Box::pin(RawAcquire::new(
        GrantsItself {
            raw: &raw,
            grant: true,
        },
        1,
    ));
    assert!(matches!(
        fut.as_mut().poll(&mut Context::from_waker(&w)),
        Poll::Ready(Ok(_))
    ));
    // A wake of the running task would make a work-stealing executor treat it as yielded.
    assert_eq!(count.0.load(SeqCst), 0);
    assert!(!raw.has_waiters());
}

#[test]
fn a_wait_its_hook_does_not_grant_stores_its_waker_before_pending() {
    use crate::semaphore::future::RawAcquire;
    let raw = crate::semaphore::raw::RawSemaphore::new(0);
    let (count, w) = waker();
    let mut fut = Box::pin(RawAcquire::new(
        GrantsItself {
            raw: &raw,
            grant: false,
        },
        1,
    ));
    assert!(fut.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
    assert!(raw.grant_head());
    assert_eq!(count.0.load(SeqCst), 1, "the grant woke the stored waker");
    assert!(matches!(
        fut.as_mut().poll(&mut Context::from_waker(&w)),
        Poll::Ready(Ok(_))
    ));
}
