//! Cancellation in every state: an acquire future dropped before its first poll, while
//! queued, after it was granted but before it was polled again, and after close; a blocking
//! acquire that times out; an `acquire_many` cancelled while it held part of its permits at
//! the head of the queue. In every case the permits pass to the next waiter or back to the
//! count, and `available_permits()` ends at the initial count.
//!
//! Futures are polled by hand (`poll_once`, a waker that does nothing) so the state at each
//! drop is exact.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::thread;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use toro_sync::{AcquireTimeoutError, BoundedSemaphore, Semaphore, Timeout, WaitExt};

mod common;
use common::*;

/// The cancellation states, for one kind of wait future. `$make(&sem)` builds the future
/// under test, which needs `$n` permits; the semaphore has exactly `$n`. The "next" waiter
/// is an `acquire_many($n)` queued behind it.
macro_rules! cancel_states {
    ($mod:ident, $Sem:ty, $n:expr, |$s:ident| $make:expr) => {
        mod $mod {
            use super::*;

            const N: u32 = $n;

            fn sem() -> Arc<$Sem> {
                Arc::new(<$Sem>::new(N as usize))
            }

            #[test]
            fn dropped_before_first_poll_with_permits_free() {
                let sem = sem();
                let $s = &sem;
                let f = $make;
                drop(f);
                assert_eq!(sem.available_permits(), N as usize);
                assert_eq!(sem.try_acquire_many(N).unwrap().num_permits(), N as usize);
            }

            #[test]
            fn dropped_before_first_poll_with_a_queue() {
                let sem = sem();
                let held = sem.try_acquire_many(N).unwrap();
                let mut next = Box::pin(sem.acquire_many(N));
                assert!(poll_once(next.as_mut()).is_pending());
                let $s = &sem;
                let f = $make;
                drop(f);
                drop(held);
                let Poll::Ready(Ok(p)) = poll_once(next.as_mut()) else {
                    panic!("the next waiter was not served")
                };
                drop(p);
                assert_eq!(sem.available_permits(), N as usize);
            }

            #[test]
            fn dropped_while_queued() {
                let sem = sem();
                let held = sem.try_acquire_many(N).unwrap();
                let $s = &sem;
                let mut f = Box::pin($make);
                assert!(poll_once(f.as_mut()).is_pending());
                let mut next = Box::pin(sem.acquire_many(N));
                assert!(poll_once(next.as_mut()).is_pending());
                // Polled again, still waiting.
                assert!(poll_once(f.as_mut()).is_pending());
                drop(f);
                assert!(poll_once(next.as_mut()).is_pending());
                drop(held);
                let Poll::Ready(Ok(p)) = poll_once(next.as_mut()) else {
                    panic!("the next waiter was not served after a cancel")
                };
                assert_eq!(sem.available_permits(), 0);
                drop(p);
                assert_eq!(sem.available_permits(), N as usize);
            }

            #[test]
            fn dropped_while_queued_alone() {
                let sem = sem();
                let held = sem.try_acquire_many(N).unwrap();
                let $s = &sem;
                let mut f = Box::pin($make);
                assert!(poll_once(f.as_mut()).is_pending());
                drop(f);
                drop(held);
                assert_eq!(sem.available_permits(), N as usize);
                // Nobody is left in the queue: the fast path works again.
                assert_eq!(sem.try_acquire_many(N).unwrap().num_permits(), N as usize);
            }

            #[test]
            fn dropped_after_grant_before_poll_passes_to_next() {
                let sem = sem();
                let held = sem.try_acquire_many(N).unwrap();
                let $s = &sem;
                let mut f = Box::pin($make);
                assert!(poll_once(f.as_mut()).is_pending());
                let mut next = Box::pin(sem.acquire_many(N));
                assert!(poll_once(next.as_mut()).is_pending());
                // The release grants `f` (first in line); `next` keeps waiting.
                drop(held);
                assert!(poll_once(next.as_mut()).is_pending());
                assert_eq!(sem.available_permits(), 0);
                // `f` is dropped without being polled again: its grant goes on.
                drop(f);
                let Poll::Ready(Ok(p)) = poll_once(next.as_mut()) else {
                    panic!("a granted-then-dropped waiter kept its permits")
                };
                assert_eq!(p.num_permits(), N as usize);
                drop(p);
                assert_eq!(sem.available_permits(), N as usize);
            }

            #[test]
            fn dropped_after_grant_before_poll_returns_to_count() {
                let sem = sem();
                let held = sem.try_acquire_many(N).unwrap();
                let $s = &sem;
                let mut f = Box::pin($make);
                assert!(poll_once(f.as_mut()).is_pending());
                drop(held);
                drop(f);
                assert_eq!(sem.available_permits(), N as usize);
                assert_eq!(sem.try_acquire_many(N).unwrap().num_permits(), N as usize);
            }

            #[test]
            fn dropped_after_grant_before_poll_passes_to_a_thread() {
                let sem = sem();
                let held = sem.try_acquire_many(N).unwrap();
                let $s = &sem;
                let mut f = Box::pin($make);
                assert!(poll_once(f.as_mut()).is_pending());
                let s = sem.clone();
                let rx = spawn(move || s.acquire_many_blocking(N).map(|p| p.num_permits()));
                thread::sleep(SETTLE);
                drop(held);
                thread::sleep(SETTLE);
                assert!(
                    rx.try_recv().is_err(),
                    "the thread overtook a granted waiter"
                );
                drop(f);
                assert_eq!(recv(&rx), Ok(N as usize));
                assert_eq!(sem.available_permits(), N as usize);
            }

            #[test]
            fn dropped_after_close() {
                let sem = sem();
                let held = sem.try_acquire_many(N).unwrap();
                let $s = &sem;
                let mut f = Box::pin($make);
                assert!(poll_once(f.as_mut()).is_pending());
                sem.close();
                drop(f);
                drop(held);
                assert_eq!(sem.available_permits(), N as usize);
            }

            #[test]
            fn granted_before_close_then_dropped() {
                let sem = sem();
                let held = sem.try_acquire_many(N).unwrap();
                let $s = &sem;
                let mut f = Box::pin($make);
                assert!(poll_once(f.as_mut()).is_pending());
                drop(held);
                sem.close();
                // The grant came first; dropping it unpolled still returns the permits.
                drop(f);
                assert_eq!(sem.available_permits(), N as usize);
            }

            #[test]
            fn granted_before_close_then_polled_succeeds() {
                let sem = sem();
                let held = sem.try_acquire_many(N).unwrap();
                let $s = &sem;
                let mut f = Box::pin($make);
                assert!(poll_once(f.as_mut()).is_pending());
                drop(held);
                sem.close();
                assert!(matches!(poll_once(f.as_mut()), Poll::Ready(Ok(_))));
                drop(f);
                assert_eq!(sem.available_permits(), N as usize);
            }

            #[test]
            fn dropped_on_another_thread_after_one_poll() {
                let sem = sem();
                let held = sem.try_acquire_many(N).unwrap();
                let mut next = Box::pin(sem.acquire_many(N));
                assert!(poll_once(next.as_mut()).is_pending());
                thread::scope(|scope| {
                    let $s = &sem;
                    let mut f = Box::pin($make);
                    assert!(poll_once(f.as_mut()).is_pending());
                    scope.spawn(move || drop(f));
                });
                drop(held);
                assert!(matches!(poll_once(next.as_mut()), Poll::Ready(Ok(_))));
                assert_eq!(sem.available_permits(), N as usize);
            }

            #[test]
            fn wait_ext_timeout_cancels() {
                let sem = sem();
                let held = sem.try_acquire_many(N).unwrap();
                let $s = &sem;
                let r = block_on($make.timeout(ms(20)));
                assert!(r.is_err(), "timed out");
                let mut next = Box::pin(sem.acquire_many(N));
                assert!(poll_once(next.as_mut()).is_pending());
                drop(held);
                assert!(matches!(poll_once(next.as_mut()), Poll::Ready(Ok(_))));
                assert_eq!(sem.available_permits(), N as usize);
            }
        }
    };
}

cancel_states!(acquire, Semaphore, 1, |s| s.acquire());
cancel_states!(acquire_many, Semaphore, 3, |s| s.acquire_many(3));
cancel_states!(acquire_owned, Semaphore, 1, |s| s.clone().acquire_owned());
cancel_states!(acquire_many_owned, Semaphore, 3, |s| s
    .clone()
    .acquire_many_owned(3));
cancel_states!(wait_unlocked, Semaphore, 1, |s| s.wait_unlocked());
cancel_states!(wait_ext, Semaphore, 2, |s| s.acquire_many(2).timeout(LONG));
cancel_states!(bounded_acquire_many, BoundedSemaphore, 2, |s| s
    .acquire_many(2));
cancel_states!(bounded_acquire_owned, BoundedSemaphore, 1, |s| s
    .clone()
    .acquire_owned());

// ---- acquire_many holding part of its permits at the head -------------------------------

#[test]
fn cancelled_many_at_head_passes_its_part_on() {
    let sem = Semaphore::new(0);
    let mut big = Box::pin(sem.acquire_many(5));
    let mut small = Box::pin(sem.acquire());
    assert!(poll_once(big.as_mut()).is_pending());
    assert!(poll_once(small.as_mut()).is_pending());
    sem.add_permits(3);
    // The head holds the three; the small waiter behind it gets none.
    assert!(poll_once(small.as_mut()).is_pending());
    assert!(poll_once(big.as_mut()).is_pending());
    drop(big);
    let Poll::Ready(Ok(p)) = poll_once(small.as_mut()) else {
        panic!("the part held by a cancelled head was lost")
    };
    assert_eq!(sem.available_permits(), 2);
    drop(p);
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn cancelled_many_at_head_alone_returns_its_part() {
    let sem = Semaphore::new(2);
    let mut big = Box::pin(sem.acquire_many(5));
    assert!(poll_once(big.as_mut()).is_pending());
    sem.add_permits(1);
    assert!(poll_once(big.as_mut()).is_pending());
    drop(big);
    assert_eq!(sem.available_permits(), 3);
    assert_eq!(sem.try_acquire_many(3).unwrap().num_permits(), 3);
}

#[test]
fn cancelled_many_at_head_makes_the_next_many_the_head() {
    let sem = Semaphore::new(0);
    let mut big = Box::pin(sem.acquire_many(5));
    let mut a = Box::pin(sem.acquire_many(2));
    let mut b = Box::pin(sem.acquire_many(2));
    let mut c = Box::pin(sem.acquire());
    for f in [&mut big, &mut a, &mut b] {
        assert!(poll_once(f.as_mut()).is_pending());
    }
    assert!(poll_once(c.as_mut()).is_pending());
    sem.add_permits(3);
    drop(big);
    // Three come back: `a` takes two, `b` becomes the head holding one, `c` waits behind.
    let Poll::Ready(Ok(pa)) = poll_once(a.as_mut()) else {
        panic!("a not served")
    };
    assert!(poll_once(b.as_mut()).is_pending());
    assert!(poll_once(c.as_mut()).is_pending());
    assert_eq!(sem.available_permits(), 0);
    sem.add_permits(1);
    let Poll::Ready(Ok(pb)) = poll_once(b.as_mut()) else {
        panic!("b not served")
    };
    assert!(poll_once(c.as_mut()).is_pending());
    drop(pa);
    let Poll::Ready(Ok(pc)) = poll_once(c.as_mut()) else {
        panic!("c not served")
    };
    assert_eq!(sem.available_permits(), 1);
    drop((pb, pc));
    assert_eq!(sem.available_permits(), 4);
}

#[test]
fn cancelled_many_at_head_passes_its_part_to_a_thread() {
    let sem = Arc::new(Semaphore::new(0));
    let mut big = Box::pin(sem.acquire_many(5));
    assert!(poll_once(big.as_mut()).is_pending());
    let s = sem.clone();
    let rx = spawn(move || s.acquire_many_blocking(2).map(|p| p.num_permits()));
    thread::sleep(SETTLE);
    sem.add_permits(2);
    thread::sleep(SETTLE);
    assert!(rx.try_recv().is_err(), "the thread overtook the head");
    drop(big);
    assert_eq!(recv(&rx), Ok(2));
    assert_eq!(sem.available_permits(), 2);
}

// ---- blocking acquires that time out -----------------------------------------------------

#[test]
fn timed_out_blocking_acquire_leaves_the_queue() {
    let sem = Arc::new(Semaphore::new(1));
    let held = sem.clone().try_acquire_owned().unwrap();
    let s = sem.clone();
    let timed = spawn(move || s.acquire_timeout(ms(100)).map(drop));
    thread::sleep(SETTLE);
    let s = sem.clone();
    let patient = spawn(move || s.acquire_blocking().map(|p| p.num_permits()));
    assert_eq!(recv(&timed), Err(AcquireTimeoutError::Timeout));
    drop(held);
    // The permit goes to the waiter behind the one that gave up.
    assert_eq!(recv(&patient), Ok(1));
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn timed_out_blocking_forms_leave_the_queue() {
    let sem = Arc::new(Semaphore::new(2));
    let held = sem.try_acquire_many(2).unwrap();
    let at = || Instant::now() + ms(30);
    assert_eq!(
        sem.acquire_deadline(at()).unwrap_err(),
        AcquireTimeoutError::Timeout
    );
    assert_eq!(
        sem.acquire_many_timeout(2, ms(30)).unwrap_err(),
        AcquireTimeoutError::Timeout
    );
    assert_eq!(
        sem.clone().acquire_owned_deadline(at()).unwrap_err(),
        AcquireTimeoutError::Timeout
    );
    assert_eq!(
        sem.clone()
            .acquire_many_owned_timeout(2, ms(30))
            .unwrap_err(),
        AcquireTimeoutError::Timeout
    );
    assert_eq!(
        sem.wait_unlocked_timeout(ms(30)),
        Err(AcquireTimeoutError::Timeout)
    );
    assert_eq!(
        sem.wait_unlocked_deadline(at()),
        Err(AcquireTimeoutError::Timeout)
    );
    drop(held);
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.try_acquire_many(2).unwrap().num_permits(), 2);
}

#[test]
fn timed_out_blocking_many_at_head_passes_its_part_on() {
    let sem = Arc::new(Semaphore::new(0));
    let s = sem.clone();
    let big = spawn(move || s.acquire_many_timeout(5, ms(200)).map(drop));
    thread::sleep(SETTLE);
    let s = sem.clone();
    let small = spawn(move || s.acquire_blocking().map(|p| p.num_permits()));
    thread::sleep(SETTLE);
    let mut fut = Box::pin(sem.acquire_many(2));
    assert!(poll_once(fut.as_mut()).is_pending());
    sem.add_permits(3);
    assert_eq!(recv(&big), Err(AcquireTimeoutError::Timeout));
    // The head's three pass on in order: one to the thread, two to the future.
    assert_eq!(recv(&small), Ok(1));
    let Poll::Ready(Ok(p)) = poll_once(fut.as_mut()) else {
        panic!("the future behind was not served")
    };
    assert_eq!(p.num_permits(), 2);
    drop(p);
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn timeout_racing_a_grant_conserves_permits() {
    // A blocking acquire whose deadline falls just as a permit arrives: whichever wins,
    // the permit is either taken (and returned) or passed back, never lost or doubled.
    let sem = Arc::new(Semaphore::new(0));
    let got = Arc::new(AtomicUsize::new(0));
    for i in 0..200u64 {
        let (s, g) = (sem.clone(), got.clone());
        let rx = spawn(move || {
            if let Ok(p) = s.acquire_timeout(Duration::from_micros(i * 5 % 400)) {
                g.fetch_add(1, SeqCst);
                drop(p);
            }
        });
        if i % 3 != 0 {
            thread::sleep(Duration::from_micros(i * 7 % 300));
        }
        sem.add_permits(1);
        recv(&rx);
        assert_eq!(sem.available_permits(), 1, "iteration {i}");
        sem.try_acquire().unwrap().forget();
    }
    assert_eq!(sem.available_permits(), 0);
    assert!(got.load(SeqCst) > 0);
}

#[test]
fn wait_ext_timeout_racing_a_grant_conserves_permits() {
    let sem = Arc::new(Semaphore::new(0));
    for i in 0..200u64 {
        let s = sem.clone();
        let rx = spawn(move || {
            let r = block_on(
                s.acquire_many(2)
                    .timeout(Duration::from_micros(i * 5 % 400)),
            );
            r.map(|r| r.map(drop))
        });
        if i % 3 != 0 {
            thread::sleep(Duration::from_micros(i * 7 % 300));
        }
        sem.add_permits(2);
        let r = recv(&rx);
        assert!(matches!(r, Ok(Ok(())) | Err(Timeout)), "{r:?}");
        assert_eq!(sem.available_permits(), 2, "iteration {i}");
        sem.try_acquire_many(2).unwrap().forget();
    }
}

#[test]
fn timed_out_blocking_acquire_with_a_closed_semaphore_is_closed() {
    let sem = Arc::new(Semaphore::new(0));
    let s = sem.clone();
    let rx = spawn(move || s.acquire_timeout(LONG).map(drop));
    thread::sleep(SETTLE);
    sem.close();
    assert_eq!(recv(&rx), Err(AcquireTimeoutError::Closed));
}

// ---- runtime cancellation ----------------------------------------------------------------

#[test]
fn tokio_timeout_and_abort_cancel_cleanly() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let sem = Arc::new(Semaphore::new(2));
    rt.block_on(async {
        let held = sem.clone().acquire_many_owned(2).await.unwrap();
        // A runtime's own timer cancels the wait (the future is dropped).
        let r = tokio::time::timeout(ms(20), sem.acquire()).await;
        assert!(r.is_err());
        // An aborted task waiting on the semaphore leaves the queue.
        let s = sem.clone();
        let waiting = tokio::spawn(async move { s.acquire_many(2).await.map(drop) });
        tokio::time::sleep(ms(20)).await;
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        // select! dropping the losing acquire.
        tokio::select! {
            _ = sem.acquire() => panic!("no permit is free"),
            _ = tokio::time::sleep(ms(20)) => {}
        }
        let s = sem.clone();
        let next = tokio::spawn(async move { s.acquire_many(2).await.map(|p| p.num_permits()) });
        tokio::time::sleep(ms(10)).await;
        drop(held);
        assert_eq!(next.await.unwrap(), Ok(2));
    });
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn cancelled_futures_between_served_ones_keep_fifo() {
    // Every other waiter of ten is cancelled (queued or granted-but-unpolled); the rest
    // are served in order and the count ends where it began.
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut futs: Vec<_> = (0..10).map(|_| Some(Box::pin(sem.acquire()))).collect();
    for f in futs.iter_mut().flatten() {
        assert!(poll_once(f.as_mut()).is_pending());
    }
    futs[3] = None; // queued
    drop(held);
    futs[0] = None; // granted, never polled again
    let mut order = Vec::new();
    for i in 0..10 {
        if i % 2 == 0 || i == 3 {
            futs[i] = None;
            continue;
        }
        let f = futs[i].as_mut().unwrap();
        let Poll::Ready(Ok(p)) = poll_once(f.as_mut()) else {
            panic!("waiter {i} not served")
        };
        for (j, g) in futs.iter_mut().enumerate().skip(i + 1) {
            if let Some(g) = g {
                assert!(poll_once(g.as_mut()).is_pending(), "{j} overtook {i}");
            }
        }
        order.push(i);
        drop(p);
    }
    assert_eq!(order, vec![1, 5, 7, 9]);
    assert_eq!(sem.available_permits(), 1);
}

// ---- a waker whose clone panics -----------------------------------------------------------

/// A waker whose `clone` panics: user code the semaphore runs while registering a waiter.
fn panicking_clone_waker() -> Waker {
    fn clone(_: *const ()) -> RawWaker {
        panic!("waker clone panics")
    }
    fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    // SAFETY: the vtable's functions ignore the (null) data pointer, so every contract of
    // `RawWaker` holds trivially.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

fn poll_with_panicking_waker<F: Future>(f: Pin<&mut F>) {
    let waker = panicking_clone_waker();
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let _ = f.poll(&mut Context::from_waker(&waker));
    }));
}

#[test]
fn panicking_waker_clone_at_the_back_loses_no_permit() {
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut first = Box::pin(sem.acquire());
    assert!(poll_once(first.as_mut()).is_pending());
    let mut f = Box::pin(sem.acquire_many(2));
    poll_with_panicking_waker(f.as_mut());
    drop(f);
    drop(held);
    assert!(matches!(poll_once(first.as_mut()), Poll::Ready(Ok(_))));
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn panicking_waker_clone_on_repoll_loses_no_permit() {
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut f = Box::pin(sem.acquire());
    assert!(poll_once(f.as_mut()).is_pending());
    poll_with_panicking_waker(f.as_mut());
    drop(held);
    assert!(matches!(poll_once(f.as_mut()), Poll::Ready(Ok(_))));
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn panicking_waker_clone_taking_part_at_the_head_loses_no_permit() {
    // One of two permits free and nobody queued: the acquire of two takes the free one and
    // queues for the other. If registering its waker panics, nothing may be kept.
    let sem = Semaphore::new(2);
    let held = sem.try_acquire().unwrap();
    let mut f = Box::pin(sem.acquire_many(2));
    poll_with_panicking_waker(f.as_mut());
    drop(f);
    drop(held);
    assert_eq!(sem.available_permits(), 2, "a permit was lost");
    assert_eq!(sem.try_acquire_many(2).unwrap().num_permits(), 2);
}

#[test]
fn cancelled_head_passes_its_part_to_more_waiters_than_one_batch() {
    let sem = Semaphore::new(0);
    let mut big = Box::pin(sem.acquire_many(100));
    assert!(poll_once(big.as_mut()).is_pending());
    let mut small: Vec<_> = (0..40).map(|_| Box::pin(sem.acquire())).collect();
    for f in &mut small {
        assert!(poll_once(f.as_mut()).is_pending());
    }
    sem.add_permits(40);
    for f in &mut small {
        assert!(poll_once(f.as_mut()).is_pending());
    }
    drop(big);
    let permits: Vec<_> = small
        .iter_mut()
        .map(|f| match poll_once(f.as_mut()) {
            Poll::Ready(Ok(p)) => p,
            other => panic!("waiter not served after the head left: {other:?}"),
        })
        .collect();
    assert_eq!(sem.available_permits(), 0);
    drop(permits);
    assert_eq!(sem.available_permits(), 40);
}
