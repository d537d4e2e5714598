//! loom models of the semaphore protocols of `src/semaphore/raw.rs`: the hand-off of a
//! release to a queued waiter (async and blocking), partial grants of `acquire_many`,
//! cancellation racing a release, and close racing acquires.
//!
//! Every model ends with the permits conserved (`available_permits()` back at the initial
//! count) and checks, through [`Guarded`], that a permit hand-off both excludes other
//! holders and publishes the previous holder's writes. A lost wake or a lost permit shows up
//! as a loom deadlock (a waiter that never returns).
//!
//! Permits that must move to another thread are owned ones, so the semaphore sits in a
//! `std::sync::Arc` there (the owned API takes std's `Arc`); everything else is loom's.

#![cfg(loom)]

use std::pin::pin;
use std::task::Poll;

use loom::future::block_on;
use loom::sync::{Arc, Mutex};
use loom::thread;
use loom_tests::{model, poll_once, Guarded};
use toro_sync::{Closed, Semaphore, SemaphorePermit, TryAcquireError};

/// A semaphore and the data its permits guard.
struct Shared {
    sem: Semaphore,
    data: Guarded,
}

impl Shared {
    fn new(permits: usize) -> Arc<Self> {
        Arc::new(Self {
            sem: Semaphore::new(permits),
            data: Guarded::new(),
        })
    }
}

/// Model 1: an async acquire on one thread, the permit dropped on another.
#[test]
fn acquire_vs_release() {
    model("acquire_vs_release", || {
        let s = Shared::new(1);
        let permit = s.sem.try_acquire().unwrap();
        s.data.bump();

        let t = {
            let s = s.clone();
            thread::spawn(move || {
                let permit = block_on(s.sem.acquire()).unwrap();
                assert_eq!(permit.num_permits(), 1);
                // Sees the main thread's write: the hand-off published it.
                assert_eq!(s.data.get(), 1);
                s.data.bump();
            })
        };
        drop(permit);
        t.join().unwrap();

        assert_eq!(s.data.get(), 2);
        assert_eq!(s.sem.available_permits(), 1);
    });
}

/// Model 1b: two async waiters and one release: the permit passes from holder to holder.
#[test]
fn acquire_vs_release_two_waiters() {
    model("acquire_vs_release_two_waiters", || {
        let s = Shared::new(1);
        let permit = s.sem.try_acquire().unwrap();

        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || {
                    let _permit = block_on(s.sem.acquire()).unwrap();
                    s.data.bump();
                })
            })
            .collect();
        drop(permit);
        for t in waiters {
            t.join().unwrap();
        }

        assert_eq!(s.data.get(), 2);
        assert_eq!(s.sem.available_permits(), 1);
    });
}

/// FIFO: a waiter queued first is served first, whether the later one is async or
/// blocking, and the stored waker is replaced safely when the first waiter is re-polled by
/// a different task while the release races it.
#[test]
fn fifo_async_then_blocking() {
    model("fifo_async_then_blocking", || {
        let sem = std::sync::Arc::new(Semaphore::new(1));
        let data = Arc::new(Guarded::new());
        let held = sem.clone().try_acquire_owned().unwrap();

        // Queued first, deterministically: polled once here with a no-op waker.
        let mut first = pin!(sem.acquire());
        assert!(poll_once(first.as_mut()).is_pending());

        let releaser = thread::spawn(move || drop(held));
        let blocking = {
            let (sem, data) = (sem.clone(), data.clone());
            thread::spawn(move || {
                // Queued behind `first` (or, if `first` already holds the permit, waits for
                // it): either way it runs after `first` let go.
                let _permit = sem.acquire_blocking().unwrap();
                assert_eq!(data.get(), 1, "served before the waiter queued ahead of it");
                data.bump();
            })
        };

        // Re-polled by `block_on`'s task: the waker swap races the release's wake.
        let permit = block_on(first.as_mut()).unwrap();
        data.bump();
        // Nobody overtakes a queued waiter, and nobody takes a held permit.
        assert!(matches!(sem.try_acquire(), Err(TryAcquireError::NoPermits)));
        drop(permit);

        releaser.join().unwrap();
        blocking.join().unwrap();
        assert_eq!(data.get(), 2);
        assert_eq!(sem.available_permits(), 1);
    });
}

/// FIFO among async waiters: two futures queued in a known order; the first is served
/// first, the second only when the first lets go.
#[test]
fn fifo_two_async() {
    model("fifo_two_async", || {
        let sem = std::sync::Arc::new(Semaphore::new(1));
        let held = sem.clone().try_acquire_owned().unwrap();

        let mut first = pin!(sem.acquire());
        let mut second = pin!(sem.acquire());
        assert!(poll_once(first.as_mut()).is_pending());
        assert!(poll_once(second.as_mut()).is_pending());

        let releaser = thread::spawn(move || drop(held));
        let permit = block_on(first.as_mut()).unwrap();
        // The second is still queued: the permit went to the first, in order.
        assert!(poll_once(second.as_mut()).is_pending());
        drop(permit);
        // The release handed the permit straight to the queued second waiter.
        let Poll::Ready(Ok(permit)) = poll_once(second.as_mut()) else {
            panic!("the second waiter was not served by the first's release");
        };
        assert_eq!(sem.available_permits(), 0);
        drop(permit);

        releaser.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
    });
}

/// Model 2: a waiting `acquire_many(2)` whose permits are released one by one from two threads:
/// the head holds the first while it waits for the second, and the grant publishes both
/// releasers' writes.
#[test]
fn acquire_many_vs_release() {
    model("acquire_many_vs_release", || {
        let sem = std::sync::Arc::new(Semaphore::new(2));
        let cells = Arc::new([Guarded::new(), Guarded::new()]);
        let mut second = sem.clone().try_acquire_many_owned(2).unwrap();
        let first = second.split(1).unwrap();

        let waiter = {
            let (sem, cells) = (sem.clone(), cells.clone());
            thread::spawn(move || {
                let permit = block_on(sem.acquire_many(2)).unwrap();
                assert_eq!(permit.num_permits(), 2);
                // Both releases happened before the grant.
                assert_eq!((cells[0].get(), cells[1].get()), (1, 1));
                assert_eq!(sem.available_permits(), 0);
            })
        };
        let releaser = {
            let cells = cells.clone();
            thread::spawn(move || {
                cells[0].bump();
                drop(first);
            })
        };
        cells[1].bump();
        drop(second);

        releaser.join().unwrap();
        waiter.join().unwrap();
        assert_eq!(sem.available_permits(), 2);
    });
}

/// Model 2b: an `acquire_many(2)` at the head holding one permit of two is cancelled while a
/// single-permit waiter queues behind it: the held permit passes on, and the later waiter is
/// served.
#[test]
fn acquire_many_cancel_passes_partial() {
    model("acquire_many_cancel_passes_partial", || {
        let sem = std::sync::Arc::new(Semaphore::new(2));
        let mut rest = sem.clone().try_acquire_many_owned(2).unwrap();
        let one = rest.split(1).unwrap();

        let mut many = Box::pin(sem.acquire_many(2));
        assert!(poll_once(many.as_mut()).is_pending());

        // Its release gives `many` a partial grant (or, after the cancel, `single` a permit).
        let releaser = thread::spawn(move || drop(one));
        // Set just before the cancel. A lock, not an atomic flag: the cancel may end by
        // clearing `W` (Relaxed) and `single` then take the permit by the fast path, which
        // synchronises with the releaser only; the lock's total order still shows whether
        // `single` was served before the cancel began.
        let leaving = Arc::new(Mutex::new(false));
        let single = {
            let (sem, leaving) = (sem.clone(), leaving.clone());
            thread::spawn(move || {
                let permit = block_on(sem.acquire()).unwrap();
                assert_eq!(permit.num_permits(), 1);
                // FIFO: a partial holder at the head blocks later small waiters.
                assert!(
                    *leaving.lock().unwrap(),
                    "overtook the queued acquire_many(2)"
                );
            })
        };
        *leaving.lock().unwrap() = true;
        drop(many);

        releaser.join().unwrap();
        single.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
        drop(rest);
        assert_eq!(sem.available_permits(), 2);
    });
}

/// Model 3: the lost-permit race: a future polled once (queued) and dropped while another thread
/// releases the permit. If the release granted it just before the cancel, the cancel must
/// pass it on; afterwards `try_acquire` gets it.
#[test]
fn cancel_vs_release() {
    model("cancel_vs_release", || {
        let sem = std::sync::Arc::new(Semaphore::new(1));
        let held = sem.clone().try_acquire_owned().unwrap();

        let mut fut = Box::pin(sem.acquire());
        assert!(poll_once(fut.as_mut()).is_pending());

        let releaser = thread::spawn(move || drop(held));
        drop(fut);
        releaser.join().unwrap();

        assert_eq!(sem.available_permits(), 1);
        let permit = sem
            .try_acquire()
            .expect("the cancelled waiter kept the permit");
        drop(permit);
        assert_eq!(sem.available_permits(), 1);
    });
}

/// Model 3b: the same race with a third waiter queued behind the cancelled one (the cancel runs
/// on another thread than the poll): the third waiter must be served.
#[test]
fn cancel_vs_release_third_waiter() {
    model("cancel_vs_release_third_waiter", || {
        let sem = std::sync::Arc::new(Semaphore::new(1));
        let held = sem.clone().try_acquire_owned().unwrap();

        // Queued first, here; dropped on another thread.
        let mut fut = Box::pin(sem.clone().acquire_owned());
        assert!(poll_once(fut.as_mut()).is_pending());

        let releaser = thread::spawn(move || drop(held));
        let canceller = thread::spawn(move || drop(fut));

        // Queued behind `fut` (unless it has already left): served either way.
        let permit = block_on(sem.acquire()).unwrap();
        assert_eq!(sem.available_permits(), 0);
        drop(permit);

        releaser.join().unwrap();
        canceller.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
        assert!(sem.try_acquire().is_ok());
    });
}

/// An acquire that raced a close: either it holds the permit (and touches the data), or
/// the semaphore is closed.
fn hold_or_closed(result: Result<SemaphorePermit<'_>, Closed>, s: &Shared) {
    match result {
        Ok(permit) => {
            s.data.bump();
            drop(permit);
        }
        Err(Closed) => assert!(s.sem.is_closed()),
    }
}

/// Model 4: close on one thread while an async and a blocking acquire race a release: each
/// acquire returns `Ok` or `Err(Closed)` and never hangs; after the close nothing more is
/// granted; permits are conserved.
#[test]
fn close_vs_acquire() {
    model("close_vs_acquire", || {
        let s = Shared::new(1);
        let held = s.sem.try_acquire().unwrap();

        let asyncer = {
            let s = s.clone();
            thread::spawn(move || hold_or_closed(block_on(s.sem.acquire()), &s))
        };
        let blocker = {
            let s = s.clone();
            thread::spawn(move || hold_or_closed(s.sem.acquire_blocking(), &s))
        };
        let closer = {
            let s = s.clone();
            thread::spawn(move || s.sem.close())
        };
        drop(held);

        asyncer.join().unwrap();
        blocker.join().unwrap();
        closer.join().unwrap();
        assert!(s.sem.is_closed());
        assert!(s.data.get() <= 2);
        assert_eq!(s.sem.available_permits(), 1);
        assert!(matches!(s.sem.try_acquire(), Err(TryAcquireError::Closed)));
    });
}

/// Model 4b: close while an async and a blocking `acquire_many(2)` wait on a semaphore of one
/// permit (one of them may hold it as a partial grant): both fail with `Closed`, and the
/// partial permit comes back.
#[test]
fn close_returns_partial() {
    model("close_returns_partial", || {
        let sem = Arc::new(Semaphore::new(1));
        let asyncer = {
            let sem = sem.clone();
            thread::spawn(move || {
                assert!(matches!(block_on(sem.acquire_many(2)), Err(Closed)));
            })
        };
        let blocker = {
            let sem = sem.clone();
            thread::spawn(move || {
                assert!(matches!(sem.acquire_many_blocking(2), Err(Closed)));
            })
        };
        sem.close();

        asyncer.join().unwrap();
        blocker.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
    });
}

/// Model 5: a blocking waiter and an async waiter on one permit, held and released by a third
/// party: both are served, one after the other.
#[test]
fn blocking_vs_async() {
    model("blocking_vs_async", || {
        let s = Shared::new(1);
        let held = s.sem.try_acquire().unwrap();

        let blocker = {
            let s = s.clone();
            thread::spawn(move || {
                let _permit = s.sem.acquire_blocking().unwrap();
                s.data.bump();
            })
        };
        let asyncer = {
            let s = s.clone();
            thread::spawn(move || {
                let _permit = block_on(s.sem.acquire()).unwrap();
                s.data.bump();
            })
        };
        drop(held);

        blocker.join().unwrap();
        asyncer.join().unwrap();
        assert_eq!(s.data.get(), 2);
        assert_eq!(s.sem.available_permits(), 1);
    });
}
