//! `Semaphore` and `BoundedSemaphore` through the public API: all five forms of every wait
//! (async, try, blocking, timeout, deadline), FIFO order, permits, close, zero and past
//! deadlines, `WaitExt` on any executor, bad input, and blocking threads mixed with tasks.
//!
//! Tests that need a blocking thread to be queued before something else happens give it
//! `SETTLE` to get there; no test asserts how fast anything is.

use std::fmt::Debug;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use toro_sync::{
    AcquireTimeoutError, BoundedSemaphore, Closed, OwnedSemaphorePermit, Semaphore,
    SemaphorePermit, Timeout, TooManyReleases, TryAcquireError, WaitExt,
};

mod common;
use common::*;

/// Wraps a future so that `flag` is set once it has been polled (so it has queued).
async fn flag_polled<F: Future>(flag: Arc<AtomicBool>, f: F) -> F::Output {
    let mut f = pin!(f);
    futures::future::poll_fn(|cx| {
        let r = f.as_mut().poll(cx);
        flag.store(true, SeqCst);
        r
    })
    .await
}

fn wait_flag(flag: &AtomicBool) {
    let start = Instant::now();
    while !flag.load(SeqCst) {
        assert!(start.elapsed() < HANG, "a task was never polled");
        thread::yield_now();
    }
}

fn multi_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

/// The tests every semaphore type passes: both `Semaphore` and `BoundedSemaphore`, using
/// only the shared method set (permits come back by drop).
macro_rules! shared_api_tests {
    ($S:ident) => {
        use super::*;
        type S = $S;

        /// Holds every permit of `sem` (it has `total`), runs the wait `f` on a thread,
        /// checks it waits, gives the permits back and checks it then returned `expect`.
        fn check_wait<T: PartialEq + Debug + Send + 'static>(
            sem: &Arc<S>,
            total: u32,
            f: impl FnOnce(Arc<S>) -> T + Send + 'static,
            expect: T,
        ) {
            let held = sem.clone().try_acquire_many_owned(total).unwrap();
            let s = sem.clone();
            let got = blocks_until(move || f(s), move || drop(held));
            assert_eq!(got, expect);
            assert_eq!(sem.available_permits(), total as usize);
        }

        #[test]
        fn acquire_five_forms() {
            let sem = Arc::new(S::new(1));
            // try
            let p = sem.try_acquire().unwrap();
            assert_eq!(p.num_permits(), 1);
            assert_eq!(sem.available_permits(), 0);
            assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
            drop(p);
            assert_eq!(sem.available_permits(), 1);
            // Each form at once when a permit is free.
            let p = block_on(sem.acquire()).unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (1, 0));
            drop(p);
            let p = sem.acquire_blocking().unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (1, 0));
            drop(p);
            let p = sem.acquire_timeout(LONG).unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (1, 0));
            drop(p);
            let p = sem.acquire_deadline(Instant::now() + LONG).unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (1, 0));
            drop(p);
            // Each waiting form waits for a permit and gets it.
            check_wait(&sem, 1, |s| block_on(s.acquire()).map(|p| p.num_permits()), Ok(1));
            check_wait(&sem, 1, |s| s.acquire_blocking().map(|p| p.num_permits()), Ok(1));
            check_wait(&sem, 1, |s| s.acquire_timeout(LONG).map(|p| p.num_permits()), Ok(1));
            check_wait(
                &sem,
                1,
                |s| s.acquire_deadline(Instant::now() + LONG).map(|p| p.num_permits()),
                Ok(1),
            );
            // The timed forms give up when nothing is released.
            let held = sem.try_acquire().unwrap();
            assert_eq!(sem.acquire_timeout(ms(20)).unwrap_err(), AcquireTimeoutError::Timeout);
            assert_eq!(
                sem.acquire_deadline(Instant::now() + ms(20)).unwrap_err(),
                AcquireTimeoutError::Timeout
            );
            drop(held);
            // A timed-out wait left nothing behind in the queue.
            assert!(sem.try_acquire().is_ok());
            assert_eq!(sem.available_permits(), 1);
        }

        #[test]
        fn acquire_many_five_forms() {
            let sem = Arc::new(S::new(3));
            let p = sem.try_acquire_many(2).unwrap();
            assert_eq!(p.num_permits(), 2);
            assert_eq!(sem.available_permits(), 1);
            // Asking for more than is free takes nothing.
            assert_eq!(sem.try_acquire_many(2).unwrap_err(), TryAcquireError::NoPermits);
            assert_eq!(sem.available_permits(), 1);
            drop(p);
            assert_eq!(sem.try_acquire_many(4).unwrap_err(), TryAcquireError::NoPermits);
            assert_eq!(sem.available_permits(), 3);

            let p = block_on(sem.acquire_many(3)).unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (3, 0));
            drop(p);
            let p = sem.acquire_many_blocking(2).unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (2, 1));
            drop(p);
            let p = sem.acquire_many_timeout(3, LONG).unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (3, 0));
            drop(p);
            let p = sem.acquire_many_deadline(2, Instant::now() + LONG).unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (2, 1));
            drop(p);

            check_wait(&sem, 3, |s| block_on(s.acquire_many(3)).map(|p| p.num_permits()), Ok(3));
            check_wait(&sem, 3, |s| s.acquire_many_blocking(2).map(|p| p.num_permits()), Ok(2));
            check_wait(
                &sem,
                3,
                |s| s.acquire_many_timeout(3, LONG).map(|p| p.num_permits()),
                Ok(3),
            );
            check_wait(
                &sem,
                3,
                |s| s.acquire_many_deadline(2, Instant::now() + LONG).map(|p| p.num_permits()),
                Ok(2),
            );

            // Two of three free is not enough for three: the timed forms give up and
            // give the part they held back.
            let held = sem.try_acquire().unwrap();
            assert_eq!(
                sem.acquire_many_timeout(3, ms(20)).unwrap_err(),
                AcquireTimeoutError::Timeout
            );
            assert_eq!(
                sem.acquire_many_deadline(3, Instant::now() + ms(20)).unwrap_err(),
                AcquireTimeoutError::Timeout
            );
            assert_eq!(sem.available_permits(), 2);
            drop(held);
            assert_eq!(sem.try_acquire_many(3).unwrap().num_permits(), 3);
            assert_eq!(sem.available_permits(), 3);
        }

        #[test]
        fn acquire_owned_five_forms() {
            let sem = Arc::new(S::new(1));
            let p: OwnedSemaphorePermit<S> = sem.clone().try_acquire_owned().unwrap();
            assert_eq!(p.num_permits(), 1);
            assert!(Arc::ptr_eq(p.semaphore(), &sem));
            assert_eq!(
                sem.clone().try_acquire_owned().unwrap_err(),
                TryAcquireError::NoPermits
            );
            // The permit is 'static: it can be dropped on another thread.
            thread::spawn(move || drop(p)).join().unwrap();
            assert_eq!(sem.available_permits(), 1);

            let p = block_on(sem.clone().acquire_owned()).unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (1, 0));
            drop(p);
            let p = sem.clone().acquire_owned_blocking().unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (1, 0));
            drop(p);
            let p = sem.clone().acquire_owned_timeout(LONG).unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (1, 0));
            drop(p);
            let p = sem.clone().acquire_owned_deadline(Instant::now() + LONG).unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (1, 0));
            drop(p);

            check_wait(
                &sem,
                1,
                |s| block_on(s.acquire_owned()).map(|p| p.num_permits()),
                Ok(1),
            );
            check_wait(&sem, 1, |s| s.acquire_owned_blocking().map(|p| p.num_permits()), Ok(1));
            check_wait(
                &sem,
                1,
                |s| s.acquire_owned_timeout(LONG).map(|p| p.num_permits()),
                Ok(1),
            );
            check_wait(
                &sem,
                1,
                |s| s.acquire_owned_deadline(Instant::now() + LONG).map(|p| p.num_permits()),
                Ok(1),
            );

            let held = sem.try_acquire().unwrap();
            assert_eq!(
                sem.clone().acquire_owned_timeout(ms(20)).unwrap_err(),
                AcquireTimeoutError::Timeout
            );
            assert_eq!(
                sem.clone()
                    .acquire_owned_deadline(Instant::now() + ms(20))
                    .unwrap_err(),
                AcquireTimeoutError::Timeout
            );
            drop(held);
            assert_eq!(sem.available_permits(), 1);
        }

        #[test]
        fn acquire_many_owned_five_forms() {
            let sem = Arc::new(S::new(3));
            let p = sem.clone().try_acquire_many_owned(2).unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (2, 1));
            assert_eq!(
                sem.clone().try_acquire_many_owned(2).unwrap_err(),
                TryAcquireError::NoPermits
            );
            assert_eq!(sem.available_permits(), 1);
            drop(p);

            let p = block_on(sem.clone().acquire_many_owned(3)).unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (3, 0));
            drop(p);
            let p = sem.clone().acquire_many_owned_blocking(2).unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (2, 1));
            drop(p);
            let p = sem.clone().acquire_many_owned_timeout(3, LONG).unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (3, 0));
            drop(p);
            let p = sem
                .clone()
                .acquire_many_owned_deadline(2, Instant::now() + LONG)
                .unwrap();
            assert_eq!((p.num_permits(), sem.available_permits()), (2, 1));
            drop(p);

            check_wait(
                &sem,
                3,
                |s| block_on(s.acquire_many_owned(3)).map(|p| p.num_permits()),
                Ok(3),
            );
            check_wait(
                &sem,
                3,
                |s| s.acquire_many_owned_blocking(2).map(|p| p.num_permits()),
                Ok(2),
            );
            check_wait(
                &sem,
                3,
                |s| s.acquire_many_owned_timeout(3, LONG).map(|p| p.num_permits()),
                Ok(3),
            );
            check_wait(
                &sem,
                3,
                |s| {
                    s.acquire_many_owned_deadline(2, Instant::now() + LONG)
                        .map(|p| p.num_permits())
                },
                Ok(2),
            );

            let held = sem.try_acquire().unwrap();
            assert_eq!(
                sem.clone()
                    .acquire_many_owned_timeout(3, ms(20))
                    .unwrap_err(),
                AcquireTimeoutError::Timeout
            );
            assert_eq!(
                sem.clone()
                    .acquire_many_owned_deadline(3, Instant::now() + ms(20))
                    .unwrap_err(),
                AcquireTimeoutError::Timeout
            );
            drop(held);
            assert_eq!(sem.available_permits(), 3);
        }

        #[test]
        fn wait_unlocked_four_forms() {
            let sem = Arc::new(S::new(1));
            // A free permit: every form returns at once and keeps nothing.
            assert_eq!(block_on(sem.wait_unlocked()), Ok(()));
            assert_eq!(sem.available_permits(), 1);
            assert_eq!(sem.wait_unlocked_blocking(), Ok(()));
            assert_eq!(sem.available_permits(), 1);
            assert_eq!(sem.wait_unlocked_timeout(LONG), Ok(()));
            assert_eq!(sem.available_permits(), 1);
            assert_eq!(sem.wait_unlocked_deadline(Instant::now() + LONG), Ok(()));
            assert_eq!(sem.available_permits(), 1);

            // No permit free: each form waits until one is, and does not keep it (the
            // permit is free again when the wait returns).
            check_wait(
                &sem,
                1,
                |s| block_on(s.wait_unlocked()).map(|()| s.available_permits()),
                Ok(1),
            );
            check_wait(
                &sem,
                1,
                |s| s.wait_unlocked_blocking().map(|()| s.available_permits()),
                Ok(1),
            );
            check_wait(
                &sem,
                1,
                |s| s.wait_unlocked_timeout(LONG).map(|()| s.available_permits()),
                Ok(1),
            );
            check_wait(
                &sem,
                1,
                |s| {
                    s.wait_unlocked_deadline(Instant::now() + LONG)
                        .map(|()| s.available_permits())
                },
                Ok(1),
            );

            let held = sem.try_acquire().unwrap();
            assert_eq!(sem.wait_unlocked_timeout(ms(20)), Err(AcquireTimeoutError::Timeout));
            assert_eq!(
                sem.wait_unlocked_deadline(Instant::now() + ms(20)),
                Err(AcquireTimeoutError::Timeout)
            );
            drop(held);
            assert_eq!(sem.available_permits(), 1);
        }

        #[test]
        fn wait_unlocked_queues_fifo() {
            let sem = S::new(1);
            let held = sem.try_acquire().unwrap();
            let mut first = Box::pin(sem.acquire());
            let mut wait = Box::pin(sem.wait_unlocked());
            let mut last = Box::pin(sem.acquire());
            assert!(poll_once(first.as_mut()).is_pending());
            assert!(poll_once(wait.as_mut()).is_pending());
            assert!(poll_once(last.as_mut()).is_pending());

            drop(held);
            // The permit goes to the first in line; the waiter behind it keeps waiting.
            assert!(poll_once(last.as_mut()).is_pending());
            assert!(poll_once(wait.as_mut()).is_pending());
            let Poll::Ready(Ok(p)) = poll_once(first.as_mut()) else {
                panic!("the first waiter was not served")
            };
            assert!(poll_once(wait.as_mut()).is_pending());
            assert!(poll_once(last.as_mut()).is_pending());

            drop(p);
            // Its turn: `wait_unlocked` returns and passes the permit straight on.
            assert_eq!(poll_once(wait.as_mut()), Poll::Ready(Ok(())));
            let Poll::Ready(Ok(p)) = poll_once(last.as_mut()) else {
                panic!("wait_unlocked kept the permit")
            };
            assert_eq!(sem.available_permits(), 0);
            drop(p);
            assert_eq!(sem.available_permits(), 1);
        }

        #[test]
        fn is_locked_and_available_permits() {
            let sem = S::new(2);
            assert!(!sem.is_locked());
            assert_eq!(sem.available_permits(), 2);
            let a = sem.try_acquire().unwrap();
            assert!(!sem.is_locked());
            assert_eq!(sem.available_permits(), 1);
            let b = sem.try_acquire().unwrap();
            assert!(sem.is_locked());
            assert_eq!(sem.available_permits(), 0);
            drop(a);
            assert!(!sem.is_locked());
            drop(b);
            assert_eq!(sem.available_permits(), 2);
            assert!(S::new(0).is_locked());
            assert_eq!(S::new(0).available_permits(), 0);
        }

        #[test]
        fn fifo_in_arrival_order() {
            // Ten futures queue in order; each release serves exactly the oldest one, however
            // the futures happen to be polled.
            let sem = S::new(1);
            let held = sem.try_acquire().unwrap();
            let mut futs: Vec<_> = (0..10).map(|_| Box::pin(sem.acquire())).collect();
            for f in &mut futs {
                assert!(poll_once(f.as_mut()).is_pending());
            }
            let mut order = Vec::new();
            let mut done = [false; 10];
            let mut permit = held;
            for _ in 0..10 {
                drop(permit);
                let mut served = None;
                for i in (0..10).rev() {
                    if done[i] {
                        continue;
                    }
                    if let Poll::Ready(r) = poll_once(futs[i].as_mut()) {
                        assert!(served.is_none(), "two waiters served by one permit");
                        served = Some((i, r.unwrap()));
                    }
                }
                let (i, p) = served.expect("a release served nobody");
                done[i] = true;
                order.push(i);
                permit = p;
            }
            drop(permit);
            assert_eq!(order, (0..10).collect::<Vec<_>>());
            assert_eq!(sem.available_permits(), 1);
        }

        #[test]
        fn fifo_blocking_threads_in_arrival_order() {
            let sem = Arc::new(S::new(1));
            let held = sem.clone().try_acquire_owned().unwrap();
            let order = Arc::new(Mutex::new(Vec::new()));
            let mut rxs = Vec::new();
            for i in 0..5 {
                let (s, o) = (sem.clone(), order.clone());
                rxs.push(spawn(move || {
                    let p = match i % 3 {
                        0 => s.acquire_blocking().unwrap(),
                        1 => s.acquire_timeout(LONG).unwrap(),
                        _ => s.acquire_deadline(Instant::now() + LONG).unwrap(),
                    };
                    o.lock().unwrap().push(i);
                    drop(p);
                }));
                thread::sleep(SETTLE);
            }
            drop(held);
            for rx in &rxs {
                recv(rx);
            }
            assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
            assert_eq!(sem.available_permits(), 1);
        }

        #[test]
        fn many_at_head_is_not_overtaken() {
            // sem(5); all five held. A waiting acquire_many(5) at the head, acquire(1)s behind.
            let sem = S::new(5);
            let mut held = sem.try_acquire_many(5).unwrap();
            let mut big = Box::pin(sem.acquire_many(5));
            let mut small: Vec<_> = (0..3).map(|_| Box::pin(sem.acquire())).collect();
            assert!(poll_once(big.as_mut()).is_pending());
            for f in &mut small {
                assert!(poll_once(f.as_mut()).is_pending());
            }
            // Give back 1..4 permits one at a time: none of the small ones may take them.
            for freed in 1..=4 {
                drop(held.split(1).unwrap());
                for f in &mut small {
                    assert!(poll_once(f.as_mut()).is_pending(), "{freed} free: overtaken");
                }
                assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
                assert!(poll_once(big.as_mut()).is_pending());
            }
            drop(held);
            let Poll::Ready(Ok(p)) = poll_once(big.as_mut()) else {
                panic!("the head was not served with all five permits free")
            };
            assert_eq!(p.num_permits(), 5);
            for f in &mut small {
                assert!(poll_once(f.as_mut()).is_pending());
            }
            drop(p);
            let permits: Vec<_> = small
                .iter_mut()
                .map(|f| match poll_once(f.as_mut()) {
                    Poll::Ready(Ok(p)) => p,
                    other => panic!("small waiter not served: {other:?}"),
                })
                .collect();
            assert_eq!(sem.available_permits(), 2);
            drop(permits);
            assert_eq!(sem.available_permits(), 5);
        }

        #[test]
        fn try_acquire_fails_while_anyone_is_queued() {
            let sem = Arc::new(S::new(4));
            let mut held = sem.try_acquire_many(4).unwrap();
            let mut big = Box::pin(sem.acquire_many(4));
            assert!(poll_once(big.as_mut()).is_pending());
            // Three of the four come back: the queued head has first claim on them.
            drop(held.split(3).unwrap());
            assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
            assert_eq!(sem.try_acquire_many(2).unwrap_err(), TryAcquireError::NoPermits);
            assert_eq!(
                sem.clone().try_acquire_owned().unwrap_err(),
                TryAcquireError::NoPermits
            );
            assert_eq!(
                sem.clone().try_acquire_many_owned(1).unwrap_err(),
                TryAcquireError::NoPermits
            );
            // The blocking forms with a zero or past deadline queue fairly too.
            assert_eq!(sem.acquire_timeout(Duration::ZERO).unwrap_err(), AcquireTimeoutError::Timeout);
            assert_eq!(sem.acquire_deadline(past()).unwrap_err(), AcquireTimeoutError::Timeout);
            drop(big);
            // The queue is empty again: the three permits are free for anyone.
            assert_eq!(sem.available_permits(), 3);
            assert_eq!(sem.try_acquire_many(3).unwrap().num_permits(), 3);
            drop(held);
            assert_eq!(sem.available_permits(), 4);
        }

        #[test]
        fn try_acquire_fails_while_a_thread_is_queued() {
            let sem = Arc::new(S::new(2));
            let held = sem.clone().try_acquire_many_owned(2).unwrap();
            let s = sem.clone();
            let rx = spawn(move || s.acquire_many_blocking(2).map(|p| p.num_permits()));
            thread::sleep(SETTLE);
            let mut held = held;
            drop(held.split(1).unwrap());
            assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
            drop(held);
            assert_eq!(recv(&rx), Ok(2));
            assert_eq!(sem.try_acquire_many(2).unwrap().num_permits(), 2);
        }

        #[test]
        fn permits_forget_num_merge_split_drop() {
            let sem = S::new(6);
            let mut a = sem.try_acquire_many(3).unwrap();
            let b = sem.try_acquire_many(2).unwrap();
            assert_eq!((a.num_permits(), b.num_permits()), (3, 2));
            assert_eq!(sem.available_permits(), 1);
            a.merge(b);
            assert_eq!(a.num_permits(), 5);
            assert_eq!(sem.available_permits(), 1);
            // Splitting more than is held fails and changes nothing.
            assert!(a.split(6).is_none());
            assert_eq!(a.num_permits(), 5);
            let c = a.split(2).unwrap();
            assert_eq!((a.num_permits(), c.num_permits()), (3, 2));
            let empty = a.split(0).unwrap();
            assert_eq!(empty.num_permits(), 0);
            drop(empty);
            assert_eq!(sem.available_permits(), 1);
            drop(c);
            assert_eq!(sem.available_permits(), 3);
            // Forgotten permits stay out of the count.
            let f = a.split(1).unwrap();
            f.forget();
            assert_eq!(sem.available_permits(), 3);
            drop(a);
            assert_eq!(sem.available_permits(), 5);
            // A dropped permit goes to a waiter.
            let held = sem.try_acquire_many(5).unwrap();
            let mut w = Box::pin(sem.acquire_many(5));
            assert!(poll_once(w.as_mut()).is_pending());
            drop(held);
            assert!(matches!(poll_once(w.as_mut()), Poll::Ready(Ok(p)) if p.num_permits() == 5));
            assert_eq!(sem.available_permits(), 5);
        }

        #[test]
        fn owned_permits_forget_num_merge_split_drop() {
            let sem = Arc::new(S::new(6));
            let mut a = sem.clone().try_acquire_many_owned(3).unwrap();
            let b = sem.clone().try_acquire_many_owned(2).unwrap();
            a.merge(b);
            assert_eq!(a.num_permits(), 5);
            assert_eq!(sem.available_permits(), 1);
            assert!(a.split(6).is_none());
            assert_eq!(a.num_permits(), 5);
            let c = a.split(2).unwrap();
            assert!(Arc::ptr_eq(c.semaphore(), &sem));
            assert_eq!((a.num_permits(), c.num_permits()), (3, 2));
            // Halves can travel to other threads and come back from there.
            thread::spawn(move || drop(c)).join().unwrap();
            assert_eq!(sem.available_permits(), 3);
            a.split(1).unwrap().forget();
            assert_eq!(sem.available_permits(), 3);
            assert_eq!(a.num_permits(), 2);
            drop(a);
            assert_eq!(sem.available_permits(), 5);
            // Forgetting drops the Arc it held.
            let p = sem.clone().try_acquire_owned().unwrap();
            assert_eq!(Arc::strong_count(&sem), 2);
            p.forget();
            assert_eq!(Arc::strong_count(&sem), 1);
            assert_eq!(sem.available_permits(), 4);
        }

        #[test]
        #[should_panic]
        fn merge_permits_of_different_semaphores_panics() {
            let (x, y) = (S::new(1), S::new(1));
            let mut a = x.try_acquire().unwrap();
            a.merge(y.try_acquire().unwrap());
        }

        #[test]
        #[should_panic]
        fn merge_owned_permits_of_different_semaphores_panics() {
            let (x, y) = (Arc::new(S::new(1)), Arc::new(S::new(1)));
            let mut a = x.try_acquire_owned().unwrap();
            a.merge(y.try_acquire_owned().unwrap());
        }

        #[test]
        fn failed_merge_loses_no_permit() {
            let (x, y) = (S::new(2), S::new(2));
            let r = catch_unwind(AssertUnwindSafe(|| {
                let mut a = x.try_acquire().unwrap();
                a.merge(y.try_acquire().unwrap());
            }));
            assert!(r.is_err());
            assert_eq!((x.available_permits(), y.available_permits()), (2, 2));
            let (x, y) = (Arc::new(S::new(2)), Arc::new(S::new(2)));
            let r = catch_unwind(AssertUnwindSafe(|| {
                let mut a = x.clone().try_acquire_owned().unwrap();
                a.merge(y.clone().try_acquire_owned().unwrap());
            }));
            assert!(r.is_err());
            assert_eq!((x.available_permits(), y.available_permits()), (2, 2));
        }

        #[test]
        fn close_wakes_every_waiter_async_and_blocking() {
            let sem = Arc::new(S::new(2));
            let held = sem.clone().try_acquire_many_owned(2).unwrap();
            let rt = multi_thread_rt();
            let (tx, rx) = mpsc::channel::<(&'static str, bool)>();
            macro_rules! task {
                ($name:literal, |$s:ident| $body:expr, $pat:pat) => {{
                    let ($s, tx, flag) = (sem.clone(), tx.clone(), Arc::new(AtomicBool::new(false)));
                    let f = flag.clone();
                    rt.spawn(async move {
                        let r = flag_polled(f, async { $body }).await;
                        let _ = tx.send(($name, matches!(r, $pat)));
                    });
                    wait_flag(&flag);
                }};
            }
            macro_rules! blocking {
                ($name:literal, |$s:ident| $body:expr, $pat:pat) => {{
                    let ($s, tx) = (sem.clone(), tx.clone());
                    thread::spawn(move || {
                        let r = $body;
                        let _ = tx.send(($name, matches!(r, $pat)));
                    });
                }};
            }
            task!("acquire", |s| s.acquire().await.map(drop), Err(Closed));
            task!("acquire_many", |s| s.acquire_many(2).await.map(drop), Err(Closed));
            task!("acquire_owned", |s| s.clone().acquire_owned().await.map(drop), Err(Closed));
            task!(
                "acquire_many_owned",
                |s| s.clone().acquire_many_owned(2).await.map(drop),
                Err(Closed)
            );
            task!("wait_unlocked", |s| s.wait_unlocked().await, Err(Closed));
            task!(
                "WaitExt",
                |s| s.acquire().timeout(LONG).await.map(|r| r.map(drop)),
                Ok(Err(Closed))
            );
            blocking!("acquire_blocking", |s| s.acquire_blocking().map(drop), Err(Closed));
            blocking!(
                "acquire_timeout",
                |s| s.acquire_timeout(LONG).map(drop),
                Err(AcquireTimeoutError::Closed)
            );
            blocking!(
                "acquire_deadline",
                |s| s.acquire_deadline(Instant::now() + LONG).map(drop),
                Err(AcquireTimeoutError::Closed)
            );
            blocking!(
                "acquire_many_blocking",
                |s| s.acquire_many_blocking(2).map(drop),
                Err(Closed)
            );
            blocking!(
                "acquire_many_owned_timeout",
                |s| s.acquire_many_owned_timeout(2, LONG).map(drop),
                Err(AcquireTimeoutError::Closed)
            );
            blocking!(
                "acquire_owned_blocking",
                |s| s.acquire_owned_blocking().map(drop),
                Err(Closed)
            );
            blocking!("wait_unlocked_blocking", |s| s.wait_unlocked_blocking(), Err(Closed));
            blocking!(
                "wait_unlocked_timeout",
                |s| s.wait_unlocked_timeout(LONG),
                Err(AcquireTimeoutError::Closed)
            );
            blocking!(
                "wait_unlocked_deadline",
                |s| s.wait_unlocked_deadline(Instant::now() + LONG),
                Err(AcquireTimeoutError::Closed)
            );
            drop(tx);
            thread::sleep(SETTLE);
            assert!(rx.try_recv().is_err(), "a waiter finished before close");
            assert!(!sem.is_closed());
            sem.close();
            assert!(sem.is_closed());
            let mut seen = 0;
            while let Ok((name, ok)) = rx.recv_timeout(HANG) {
                assert!(ok, "{name} did not end with Closed");
                seen += 1;
            }
            assert_eq!(seen, 15, "a waiter never woke");
            // Permits held across the close still come back.
            assert_eq!(sem.available_permits(), 0);
            drop(held);
            assert_eq!(sem.available_permits(), 2);
        }

        #[test]
        fn close_wakes_more_waiters_than_fit_one_batch() {
            let sem = S::new(0);
            let count = Arc::new(CountWake(AtomicUsize::new(0)));
            let waker = futures::task::waker(count.clone());
            let mut cx = Context::from_waker(&waker);
            let mut futs: Vec<_> = (0..100).map(|i| Box::pin(sem.acquire_many(i % 3 + 1))).collect();
            for f in &mut futs {
                assert!(f.as_mut().poll(&mut cx).is_pending());
            }
            sem.close();
            assert_eq!(count.0.load(SeqCst), 100, "every waiter is woken once");
            for f in &mut futs {
                assert!(matches!(f.as_mut().poll(&mut cx), Poll::Ready(Err(Closed))));
            }
            assert_eq!(sem.available_permits(), 0);
        }

        #[test]
        fn after_close_every_form_fails_at_once() {
            let sem = Arc::new(S::new(3));
            let held = sem.try_acquire().unwrap();
            sem.close();
            assert!(sem.is_closed());
            // Free permits do not matter once closed.
            assert_eq!(sem.available_permits(), 2);
            assert!(!sem.is_locked());
            use AcquireTimeoutError as E;
            use TryAcquireError as T;
            for n in [0, 1, 2] {
                assert_eq!(block_on(sem.acquire_many(n)).unwrap_err(), Closed);
                assert_eq!(sem.try_acquire_many(n).unwrap_err(), T::Closed);
                assert_eq!(sem.acquire_many_blocking(n).unwrap_err(), Closed);
                assert_eq!(sem.acquire_many_timeout(n, LONG).unwrap_err(), E::Closed);
                assert_eq!(sem.acquire_many_timeout(n, Duration::ZERO).unwrap_err(), E::Closed);
                assert_eq!(sem.acquire_many_deadline(n, past()).unwrap_err(), E::Closed);
                assert_eq!(
                    sem.acquire_many_deadline(n, Instant::now() + LONG).unwrap_err(),
                    E::Closed
                );
                assert_eq!(block_on(sem.clone().acquire_many_owned(n)).unwrap_err(), Closed);
                assert_eq!(sem.clone().try_acquire_many_owned(n).unwrap_err(), T::Closed);
                assert_eq!(sem.clone().acquire_many_owned_blocking(n).unwrap_err(), Closed);
                assert_eq!(
                    sem.clone().acquire_many_owned_timeout(n, LONG).unwrap_err(),
                    E::Closed
                );
                assert_eq!(
                    sem.clone().acquire_many_owned_deadline(n, past()).unwrap_err(),
                    E::Closed
                );
                assert!(matches!(
                    block_on(sem.acquire_many(n).timeout(Duration::ZERO)),
                    Ok(Err(Closed))
                ));
            }
            assert_eq!(block_on(sem.acquire()).unwrap_err(), Closed);
            assert_eq!(sem.try_acquire().unwrap_err(), T::Closed);
            assert_eq!(sem.acquire_blocking().unwrap_err(), Closed);
            assert_eq!(sem.acquire_timeout(LONG).unwrap_err(), E::Closed);
            assert_eq!(sem.acquire_deadline(past()).unwrap_err(), E::Closed);
            assert_eq!(block_on(sem.clone().acquire_owned()).unwrap_err(), Closed);
            assert_eq!(sem.clone().try_acquire_owned().unwrap_err(), T::Closed);
            assert_eq!(sem.clone().acquire_owned_blocking().unwrap_err(), Closed);
            assert_eq!(sem.clone().acquire_owned_timeout(LONG).unwrap_err(), E::Closed);
            assert_eq!(sem.clone().acquire_owned_deadline(past()).unwrap_err(), E::Closed);
            assert_eq!(block_on(sem.wait_unlocked()), Err(Closed));
            assert_eq!(sem.wait_unlocked_blocking(), Err(Closed));
            assert_eq!(sem.wait_unlocked_timeout(LONG), Err(E::Closed));
            assert_eq!(sem.wait_unlocked_deadline(past()), Err(E::Closed));
            assert!(matches!(block_on(sem.acquire().timeout(LONG)), Ok(Err(Closed))));
            // Nothing was taken by the failed acquires; the held permit still returns.
            assert_eq!(sem.available_permits(), 2);
            drop(held);
            assert_eq!(sem.available_permits(), 3);
            sem.close(); // closing twice is harmless
            assert!(sem.is_closed());
            assert_eq!(sem.available_permits(), 3);
        }

        #[test]
        fn close_returns_the_part_a_waiting_head_held() {
            let sem = S::new(3);
            let mut held = sem.try_acquire_many(3).unwrap();
            let mut big = Box::pin(sem.acquire_many(3));
            assert!(poll_once(big.as_mut()).is_pending());
            drop(held.split(2).unwrap());
            sem.close();
            assert!(matches!(poll_once(big.as_mut()), Poll::Ready(Err(Closed))));
            drop(big);
            drop(held);
            assert_eq!(sem.available_permits(), 3);
        }

        #[test]
        fn close_racing_acquires_from_threads_never_hangs() {
            for round in 0..20u64 {
                let sem = Arc::new(S::new(2));
                let rxs: Vec<_> = (0..4u64)
                    .map(|t| {
                        let s = sem.clone();
                        spawn(move || {
                            let mut k = t + round;
                            loop {
                                k += 1;
                                let closed = match k % 6 {
                                    0 => s.acquire_blocking().map(drop).is_err(),
                                    1 => s.acquire_many_timeout(2, ms(1)).map(drop)
                                        == Err(AcquireTimeoutError::Closed),
                                    2 => s.try_acquire().map(drop) == Err(TryAcquireError::Closed),
                                    3 => block_on(s.acquire_many(2)).map(drop).is_err(),
                                    4 => s.wait_unlocked_blocking().is_err(),
                                    _ => block_on(s.clone().acquire_owned().timeout(ms(1)))
                                        .map(|r| r.map(drop))
                                        == Ok(Err(Closed)),
                                };
                                if closed {
                                    return;
                                }
                            }
                        })
                    })
                    .collect();
                thread::sleep(Duration::from_micros(500 + 300 * round));
                sem.close();
                for rx in &rxs {
                    recv(rx);
                }
                assert_eq!(sem.available_permits(), 2, "round {round} lost permits");
            }
        }

        #[test]
        fn zero_and_past_deadlines_blocking_forms() {
            let sem = Arc::new(S::new(2));
            let z = Duration::ZERO;
            // Free: they succeed.
            assert_eq!(sem.acquire_timeout(z).unwrap().num_permits(), 1);
            assert_eq!(sem.acquire_deadline(past()).unwrap().num_permits(), 1);
            assert_eq!(sem.acquire_many_timeout(2, z).unwrap().num_permits(), 2);
            assert_eq!(sem.acquire_many_deadline(2, past()).unwrap().num_permits(), 2);
            assert_eq!(sem.clone().acquire_owned_timeout(z).unwrap().num_permits(), 1);
            assert_eq!(sem.clone().acquire_owned_deadline(past()).unwrap().num_permits(), 1);
            assert_eq!(sem.clone().acquire_many_owned_timeout(2, z).unwrap().num_permits(), 2);
            assert_eq!(
                sem.clone().acquire_many_owned_deadline(2, past()).unwrap().num_permits(),
                2
            );
            assert_eq!(sem.wait_unlocked_timeout(z), Ok(()));
            assert_eq!(sem.wait_unlocked_deadline(past()), Ok(()));
            assert_eq!(sem.available_permits(), 2);
            // Not free: Timeout at once, and nothing taken or left queued.
            let held = sem.try_acquire().unwrap();
            use AcquireTimeoutError::Timeout as T;
            assert_eq!(sem.acquire_many_timeout(2, z).unwrap_err(), T);
            assert_eq!(sem.acquire_many_deadline(2, past()).unwrap_err(), T);
            assert_eq!(sem.clone().acquire_many_owned_timeout(2, z).unwrap_err(), T);
            assert_eq!(sem.clone().acquire_many_owned_deadline(2, past()).unwrap_err(), T);
            let held2 = sem.try_acquire().unwrap();
            assert_eq!(sem.acquire_timeout(z).unwrap_err(), T);
            assert_eq!(sem.acquire_deadline(past()).unwrap_err(), T);
            assert_eq!(sem.clone().acquire_owned_timeout(z).unwrap_err(), T);
            assert_eq!(sem.clone().acquire_owned_deadline(past()).unwrap_err(), T);
            assert_eq!(sem.wait_unlocked_timeout(z), Err(T));
            assert_eq!(sem.wait_unlocked_deadline(past()), Err(T));
            drop((held, held2));
            assert_eq!(sem.available_permits(), 2);
            assert_eq!(sem.try_acquire_many(2).unwrap().num_permits(), 2);
        }

        #[test]
        fn zero_and_past_deadlines_wait_ext() {
            let sem = Arc::new(S::new(2));
            let z = Duration::ZERO;
            let r: Result<Result<SemaphorePermit<'_>, Closed>, Timeout> =
                block_on(sem.acquire().timeout(z));
            assert_eq!(r.unwrap().unwrap().num_permits(), 1);
            let r = block_on(sem.acquire().deadline(past()));
            assert_eq!(r.unwrap().unwrap().num_permits(), 1);
            let r = block_on(sem.acquire_many(2).timeout(z));
            assert_eq!(r.unwrap().unwrap().num_permits(), 2);
            let r: Result<Result<OwnedSemaphorePermit<S>, Closed>, Timeout> =
                block_on(sem.clone().acquire_many_owned(2).deadline(past()));
            assert_eq!(r.unwrap().unwrap().num_permits(), 2);
            assert_eq!(block_on(sem.wait_unlocked().timeout(z)), Ok(Ok(())));
            assert_eq!(sem.available_permits(), 2);

            let held = sem.try_acquire_many(2).unwrap();
            assert_eq!(block_on(sem.acquire().timeout(z)).unwrap_err(), Timeout);
            assert_eq!(block_on(sem.acquire().deadline(past())).unwrap_err(), Timeout);
            assert_eq!(block_on(sem.acquire_many(2).timeout(z)).unwrap_err(), Timeout);
            assert_eq!(
                block_on(sem.clone().acquire_owned().deadline(past())).unwrap_err(),
                Timeout
            );
            assert_eq!(block_on(sem.wait_unlocked().timeout(z)), Err(Timeout));
            // A short deadline with nothing released: the crate's timer ends the wait.
            assert_eq!(block_on(sem.acquire().timeout(ms(20))).unwrap_err(), Timeout);
            drop(held);
            assert_eq!(sem.available_permits(), 2);
            assert_eq!(sem.try_acquire_many(2).unwrap().num_permits(), 2);
        }

        #[test]
        fn wait_ext_succeeds_when_released_before_the_deadline() {
            let sem = Arc::new(S::new(1));
            let held = sem.clone().try_acquire_owned().unwrap();
            let s = sem.clone();
            let r = blocks_until(
                move || block_on(s.acquire().timeout(LONG)).map(|r| r.map(|p| p.num_permits())),
                move || drop(held),
            );
            assert_eq!(r, Ok(Ok(1)));
            assert_eq!(sem.available_permits(), 1);
        }

        #[test]
        fn acquire_many_zero() {
            let sem = Arc::new(S::new(0));
            // Succeeds at once with an empty permit, even with nothing free.
            let p = block_on(sem.acquire_many(0)).unwrap();
            assert_eq!(p.num_permits(), 0);
            drop(p);
            assert_eq!(sem.try_acquire_many(0).unwrap().num_permits(), 0);
            assert_eq!(sem.acquire_many_blocking(0).unwrap().num_permits(), 0);
            assert_eq!(sem.acquire_many_timeout(0, Duration::ZERO).unwrap().num_permits(), 0);
            assert_eq!(sem.acquire_many_deadline(0, past()).unwrap().num_permits(), 0);
            assert_eq!(block_on(sem.clone().acquire_many_owned(0)).unwrap().num_permits(), 0);
            assert_eq!(sem.clone().try_acquire_many_owned(0).unwrap().num_permits(), 0);
            assert_eq!(sem.clone().acquire_many_owned_blocking(0).unwrap().num_permits(), 0);
            assert_eq!(
                sem.clone().acquire_many_owned_timeout(0, LONG).unwrap().num_permits(),
                0
            );
            assert_eq!(
                sem.clone().acquire_many_owned_deadline(0, past()).unwrap().num_permits(),
                0
            );
            assert_eq!(sem.available_permits(), 0);
        }

        #[test]
        fn acquire_many_zero_is_not_held_back_by_a_queue() {
            let sem = S::new(1);
            let held = sem.try_acquire().unwrap();
            let mut w = Box::pin(sem.acquire());
            assert!(poll_once(w.as_mut()).is_pending());
            let mut zero = pin!(sem.acquire_many(0));
            assert!(matches!(poll_once(zero.as_mut()), Poll::Ready(Ok(p)) if p.num_permits() == 0));
            assert_eq!(sem.acquire_many_blocking(0).unwrap().num_permits(), 0);
            assert_eq!(sem.acquire_many_timeout(0, Duration::ZERO).unwrap().num_permits(), 0);
            drop(held);
            assert!(matches!(poll_once(w.as_mut()), Poll::Ready(Ok(_))));
            assert_eq!(sem.available_permits(), 1);
        }

        #[test]
        #[should_panic]
        fn new_above_max_permits_panics() {
            let _ = S::new(S::MAX_PERMITS + 1);
        }

        #[test]
        fn max_permits() {
            assert!(S::MAX_PERMITS >= u32::MAX as usize >> 3);
            let sem = S::new(S::MAX_PERMITS);
            assert_eq!(sem.available_permits(), S::MAX_PERMITS);
            let n = S::MAX_PERMITS.min(u32::MAX as usize);
            let p = sem.try_acquire_many(n as u32).unwrap();
            assert_eq!(sem.available_permits(), S::MAX_PERMITS - n);
            drop(p);
            assert_eq!(sem.available_permits(), S::MAX_PERMITS);
        }

        #[test]
        fn debug_impls() {
            let sem = Arc::new(S::new(1));
            assert!(!format!("{sem:?}").is_empty());
            let p = sem.try_acquire().unwrap();
            assert!(format!("{p:?}").contains('1'));
            drop(p);
            let f = sem.clone().acquire_many_owned(1);
            assert!(!format!("{f:?}").is_empty());
            assert!(!format!("{:?}", sem.acquire()).is_empty());
        }
    };
}

mod semaphore {
    shared_api_tests!(Semaphore);
}

mod bounded {
    shared_api_tests!(BoundedSemaphore);
}

// ---- Semaphore only: add_permits --------------------------------------------------------

#[test]
fn add_permits_wakes_waiters_in_order() {
    let sem = Semaphore::new(0);
    let mut a = Box::pin(sem.acquire_many(2));
    let mut b = Box::pin(sem.acquire());
    let mut c = Box::pin(sem.acquire());
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert!(poll_once(c.as_mut()).is_pending());
    sem.add_permits(1);
    assert!(poll_once(c.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert!(poll_once(a.as_mut()).is_pending());
    sem.add_permits(2);
    let Poll::Ready(Ok(pa)) = poll_once(a.as_mut()) else {
        panic!("head not served")
    };
    let Poll::Ready(Ok(pb)) = poll_once(b.as_mut()) else {
        panic!("second not served")
    };
    assert!(poll_once(c.as_mut()).is_pending());
    assert_eq!(sem.available_permits(), 0);
    drop(pa);
    let Poll::Ready(Ok(pc)) = poll_once(c.as_mut()) else {
        panic!("third not served")
    };
    assert_eq!(sem.available_permits(), 1);
    drop((pb, pc));
    assert_eq!(sem.available_permits(), 3);
}

#[test]
fn add_permits_after_forget_restores_the_count() {
    let sem = Semaphore::new(3);
    sem.try_acquire_many(2).unwrap().forget();
    assert_eq!(sem.available_permits(), 1);
    sem.add_permits(2);
    assert_eq!(sem.available_permits(), 3);
    // A plain Semaphore may grow past its initial count.
    sem.add_permits(5);
    assert_eq!(sem.available_permits(), 8);
}

#[test]
fn add_permits_past_max_panics_and_changes_nothing() {
    let sem = Semaphore::new(Semaphore::MAX_PERMITS - 1);
    let r = catch_unwind(AssertUnwindSafe(|| sem.add_permits(2)));
    assert!(r.is_err());
    assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS - 1);
    sem.add_permits(1);
    assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS);
    let r = catch_unwind(AssertUnwindSafe(|| sem.add_permits(1)));
    assert!(r.is_err());
    assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS);

    let sem = Semaphore::new(5);
    let r = catch_unwind(AssertUnwindSafe(|| sem.add_permits(usize::MAX)));
    assert!(r.is_err());
    assert_eq!(sem.available_permits(), 5);
    assert!(!sem.is_closed());

    // With a waiter queued: the panic leaves it waiting, a later add serves it.
    let sem = Semaphore::new(0);
    let mut w = Box::pin(sem.acquire_many(2));
    assert!(poll_once(w.as_mut()).is_pending());
    let r = catch_unwind(AssertUnwindSafe(|| {
        sem.add_permits(Semaphore::MAX_PERMITS + 1)
    }));
    assert!(r.is_err());
    assert!(poll_once(w.as_mut()).is_pending());
    sem.add_permits(2);
    assert!(matches!(poll_once(w.as_mut()), Poll::Ready(Ok(p)) if p.num_permits() == 2));
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn permits_lent_out_count_toward_max_permits() {
    // MAX_PERMITS is the most permits a semaphore can hold, and the ones lent out are
    // still its own: with one out and MAX_PERMITS - 1 free, one more is past the limit.
    // Whatever `add_permits(1)` does then, the count may never pass MAX_PERMITS.
    let sem = Semaphore::new(Semaphore::MAX_PERMITS);
    let p = sem.try_acquire().unwrap();
    let added = catch_unwind(AssertUnwindSafe(|| sem.add_permits(1))).is_ok();
    drop(p);
    assert!(
        sem.available_permits() <= Semaphore::MAX_PERMITS,
        "add_permits(1) {} with a permit lent out; after it came back {} permits are free, \
         MAX_PERMITS is {}",
        if added { "succeeded" } else { "panicked" },
        sem.available_permits(),
        Semaphore::MAX_PERMITS
    );
    // A further add past the limit panics (with the add_permits message, not an
    // arithmetic overflow) and leaves the count as it was.
    let before = sem.available_permits();
    let r = catch_unwind(AssertUnwindSafe(|| sem.add_permits(1)));
    let msg = r.expect_err("add_permits past MAX_PERMITS did not panic");
    let msg = msg
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| msg.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(
        msg.contains("MAX_PERMITS"),
        "unclear panic message: {msg:?}"
    );
    assert_eq!(sem.available_permits(), before);
}

#[test]
fn add_permits_serves_more_waiters_than_one_batch() {
    let sem = Semaphore::new(0);
    let count = Arc::new(CountWake(AtomicUsize::new(0)));
    let waker = futures::task::waker(count.clone());
    let mut cx = Context::from_waker(&waker);
    let mut futs: Vec<_> = (0..50).map(|_| Box::pin(sem.acquire())).collect();
    for f in &mut futs {
        assert!(f.as_mut().poll(&mut cx).is_pending());
    }
    sem.add_permits(40);
    assert_eq!(count.0.load(SeqCst), 40, "one wake per waiter served");
    let permits: Vec<_> = futs[..40]
        .iter_mut()
        .map(|f| match f.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(p)) => p,
            other => panic!("waiter not served: {other:?}"),
        })
        .collect();
    for f in &mut futs[40..] {
        assert!(f.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(sem.available_permits(), 0);
    drop(permits);
    assert_eq!(count.0.load(SeqCst), 50);
    drop(futs);
    assert_eq!(sem.available_permits(), 40);
}

#[test]
fn the_latest_waker_is_the_one_woken() {
    // A future moved between tasks (polled with another waker) must wake the new one.
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let (a, b) = (
        Arc::new(CountWake(AtomicUsize::new(0))),
        Arc::new(CountWake(AtomicUsize::new(0))),
    );
    let (wa, wb) = (
        futures::task::waker(a.clone()),
        futures::task::waker(b.clone()),
    );
    let mut f = Box::pin(sem.acquire());
    assert!(f.as_mut().poll(&mut Context::from_waker(&wa)).is_pending());
    assert!(f.as_mut().poll(&mut Context::from_waker(&wb)).is_pending());
    drop(held);
    assert_eq!((a.0.load(SeqCst), b.0.load(SeqCst)), (0, 1));
    assert!(matches!(
        f.as_mut().poll(&mut Context::from_waker(&wb)),
        Poll::Ready(Ok(_))
    ));
}

#[test]
fn huge_timeouts_do_not_panic() {
    let sem = Arc::new(Semaphore::new(1));
    assert!(sem.acquire_timeout(Duration::MAX).is_ok());
    assert!(sem.acquire_many_timeout(1, Duration::MAX).is_ok());
    assert!(sem.clone().acquire_owned_timeout(Duration::MAX).is_ok());
    assert_eq!(sem.wait_unlocked_timeout(Duration::MAX), Ok(()));
    assert!(matches!(
        block_on(sem.acquire().timeout(Duration::MAX)),
        Ok(Ok(_))
    ));
    // Waiting with a timeout too large for an Instant waits until released.
    let held = sem.clone().try_acquire_owned().unwrap();
    let s = sem.clone();
    let r = blocks_until(
        move || {
            s.acquire_many_owned_timeout(1, Duration::MAX)
                .map(|p| p.num_permits())
        },
        move || drop(held),
    );
    assert_eq!(r, Ok(1));
    let held = sem.clone().try_acquire_owned().unwrap();
    let s = sem.clone();
    let r = blocks_until(
        move || block_on(s.acquire().timeout(Duration::MAX)).map(|r| r.map(drop)),
        move || drop(held),
    );
    assert_eq!(r, Ok(Ok(())));
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn semaphore_is_const_and_default() {
    static SEM: Semaphore = Semaphore::new(2);
    static BOUNDED: BoundedSemaphore = BoundedSemaphore::new(2);
    let p = SEM.try_acquire().unwrap();
    assert_eq!(SEM.available_permits(), 1);
    drop(p);
    assert_eq!(BOUNDED.try_acquire_many(2).unwrap().num_permits(), 2);
    assert_eq!(Semaphore::default().available_permits(), 0);
}

// ---- BoundedSemaphore only: release -----------------------------------------------------

#[test]
fn bounded_release_past_initial_is_refused_and_changes_nothing() {
    let sem = BoundedSemaphore::new(2);
    assert_eq!(sem.initial_permits(), 2);
    assert_eq!(sem.release(1), Err(TooManyReleases));
    assert_eq!(sem.available_permits(), 2);
    // A permit still held is not forgotten: it comes back by drop, so releasing it too
    // would raise the count above the initial value.
    let held = sem.try_acquire().unwrap();
    assert_eq!(sem.release(1), Err(TooManyReleases));
    assert_eq!(sem.available_permits(), 1);
    drop(held);
    assert_eq!(sem.available_permits(), 2);
    // Two forgotten: releasing three is refused as a whole.
    sem.try_acquire_many(2).unwrap().forget();
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(sem.release(3), Err(TooManyReleases));
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(sem.release(2), Ok(()));
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.release(1), Err(TooManyReleases));
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.release(usize::MAX), Err(TooManyReleases));
    assert_eq!(sem.available_permits(), 2);
    // release(0) is a no-op.
    assert_eq!(sem.release(0), Ok(()));
    assert_eq!(sem.available_permits(), 2);
    // The error value is plain.
    let e = TooManyReleases;
    assert_eq!(e, e.clone());
    assert!(!e.to_string().is_empty());
}

#[test]
fn bounded_release_of_forgotten_permits_wakes_waiters() {
    let sem = Arc::new(BoundedSemaphore::new(2));
    sem.try_acquire_many(2).unwrap().forget();
    let mut fut = Box::pin(sem.acquire());
    assert!(poll_once(fut.as_mut()).is_pending());
    let s = sem.clone();
    let rx = spawn(move || s.acquire_blocking().map(|p| p.forget()));
    thread::sleep(SETTLE);
    assert!(rx.try_recv().is_err());
    // The first release serves the task queued first, the second the thread.
    sem.release(1).unwrap();
    let Poll::Ready(Ok(p)) = poll_once(fut.as_mut()) else {
        panic!("release did not serve the first waiter")
    };
    assert!(rx.try_recv().is_err());
    sem.release(1).unwrap();
    assert_eq!(recv(&rx), Ok(()));
    // The thread forgot its permit: it can be released again.
    assert_eq!(sem.available_permits(), 0);
    sem.release(1).unwrap();
    drop(p);
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(sem.release(1), Err(TooManyReleases));
}

#[test]
fn bounded_release_of_forgotten_owned_permits() {
    let sem = Arc::new(BoundedSemaphore::new(3));
    let mut p = sem.clone().try_acquire_many_owned(3).unwrap();
    p.split(2).unwrap().forget();
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(sem.release(3), Err(TooManyReleases));
    sem.release(1).unwrap();
    assert_eq!(sem.available_permits(), 1);
    drop(p);
    assert_eq!(sem.available_permits(), 2);
    sem.release(1).unwrap();
    assert_eq!(sem.available_permits(), 3);
    assert_eq!(sem.release(1), Err(TooManyReleases));
}

#[test]
#[should_panic]
fn bounded_new_above_max_permits_panics() {
    let _ = BoundedSemaphore::new(BoundedSemaphore::MAX_PERMITS + 1);
}

// ---- WaitExt on any executor, no runtime timer -----------------------------------------

#[test]
fn wait_ext_wakes_on_futures_block_on() {
    let sem = Semaphore::new(0);
    assert_eq!(
        block_on(sem.acquire().timeout(ms(30))).unwrap_err(),
        Timeout
    );
    assert_eq!(
        block_on(sem.acquire().deadline(Instant::now() + ms(30))).unwrap_err(),
        Timeout
    );
    assert_eq!(block_on(sem.wait_unlocked().timeout(ms(10))), Err(Timeout));
    sem.add_permits(1);
    assert_eq!(sem.available_permits(), 1);
    assert!(block_on(sem.acquire().timeout(ms(30))).unwrap().is_ok());
}

#[test]
fn wait_ext_wakes_on_tokio_current_thread_without_timer() {
    // No `enable_time`: a runtime timer would panic here.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sem = Arc::new(Semaphore::new(0));
    let s = sem.clone();
    let r = rt.block_on(async {
        let task = tokio::spawn(async move {
            let a = s.acquire().timeout(ms(30)).await.map(|r| r.map(drop));
            let b = s
                .clone()
                .acquire_many_owned(2)
                .deadline(Instant::now() + ms(30))
                .await
                .map(|r| r.map(drop));
            (a, b)
        });
        let own = sem.acquire().timeout(ms(30)).await.map(|r| r.map(drop));
        (task.await.unwrap(), own)
    });
    assert_eq!(r, ((Err(Timeout), Err(Timeout)), Err(Timeout)));
    assert_eq!(sem.available_permits(), 0);
    sem.add_permits(1);
    assert!(sem.try_acquire().is_ok());
}

#[test]
fn wait_ext_wakes_on_tokio_multi_thread_without_timer() {
    let rt = multi_thread_rt();
    let sem = Arc::new(Semaphore::new(0));
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let s = sem.clone();
            rt.spawn(async move {
                if i % 2 == 0 {
                    s.acquire().timeout(ms(30)).await.map(|r| r.map(drop))
                } else {
                    s.acquire_many(2)
                        .deadline(Instant::now() + ms(30))
                        .await
                        .map(|r| r.map(drop))
                }
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(rt.block_on(t).unwrap(), Err(Timeout));
    }
    // A permit released before the deadline is taken, on the same timer-less runtime.
    let s = sem.clone();
    let t = rt.spawn(async move { s.acquire().timeout(LONG).await.map(|r| r.map(drop)) });
    thread::sleep(ms(20));
    sem.add_permits(1);
    assert_eq!(rt.block_on(t).unwrap(), Ok(Ok(())));
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn wait_ext_into_inner_keeps_the_wait() {
    let sem = Semaphore::new(1);
    let d = sem.acquire().timeout(Duration::ZERO);
    let f = d.into_inner();
    assert_eq!(block_on(f).unwrap().num_permits(), 1);
    assert_eq!(sem.available_permits(), 1);
}

// ---- Blocking threads and async tasks on one semaphore ----------------------------------

#[test]
fn blocking_and_async_waiters_fifo_mixed() {
    let rt = multi_thread_rt();
    let sem = Arc::new(Semaphore::new(1));
    let held = sem.clone().try_acquire_owned().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    for i in 0..8usize {
        let (s, o, tx) = (sem.clone(), order.clone(), tx.clone());
        if i % 2 == 0 {
            let flag = Arc::new(AtomicBool::new(false));
            let f = flag.clone();
            rt.spawn(async move {
                let p = flag_polled(f, s.acquire_many(1)).await.unwrap();
                o.lock().unwrap().push(i);
                drop(p);
                tx.send(()).unwrap();
            });
            wait_flag(&flag);
        } else {
            thread::spawn(move || {
                let p = s.acquire_blocking().unwrap();
                o.lock().unwrap().push(i);
                drop(p);
                tx.send(()).unwrap();
            });
            thread::sleep(SETTLE);
        }
    }
    drop(held);
    for _ in 0..8 {
        rx.recv_timeout(HANG).expect("a waiter never finished");
    }
    assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn blocking_and_async_share_one_semaphore() {
    const PERMITS: usize = 3;
    const ROUNDS: usize = 300;
    let rt = multi_thread_rt();
    let sem = Arc::new(Semaphore::new(PERMITS));
    let in_use = Arc::new(AtomicUsize::new(0));
    let hold = |in_use: &AtomicUsize, n: usize| {
        let now = in_use.fetch_add(n, SeqCst) + n;
        assert!(now <= PERMITS, "{now} permits in use of {PERMITS}");
    };
    let tasks: Vec<_> = (0..6)
        .map(|t| {
            let (s, u) = (sem.clone(), in_use.clone());
            rt.spawn(async move {
                for k in 0..ROUNDS {
                    let n = (t + k) % 2 + 1;
                    let p = s.acquire_many(n as u32).await.unwrap();
                    hold(&u, n);
                    tokio::task::yield_now().await;
                    u.fetch_sub(n, SeqCst);
                    drop(p);
                }
            })
        })
        .collect();
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let (s, u) = (sem.clone(), in_use.clone());
            spawn(move || {
                for k in 0..ROUNDS {
                    let n = (t + k) % 3 + 1;
                    let p = s.acquire_many_blocking(n as u32).unwrap();
                    hold(&u, n);
                    thread::yield_now();
                    u.fetch_sub(n, SeqCst);
                    drop(p);
                }
            })
        })
        .collect();
    for t in tasks {
        rt.block_on(t).unwrap();
    }
    for rx in &threads {
        recv(rx);
    }
    assert_eq!(in_use.load(SeqCst), 0);
    assert_eq!(sem.available_permits(), PERMITS);
}
