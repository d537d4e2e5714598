//! loom models of `WaitExt`'s race (`src/deadline.rs`) between an acquire and its timer.
//!
//! The real timer reads the clock, which a model must not, so the models race the acquire
//! against a model-driven [`Timer`] through the crate's own `Race` (`__loom::race`): another
//! thread fires it, and it wakes its task then, as `futures-timer` does. Whichever wins,
//! the permits are conserved: a timed-out acquire that was granted at the last moment gives
//! the permit back (to the next waiter, if any) when it is dropped.

#![cfg(loom)]

use loom::future::block_on;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{model, poll_once, timer, Guarded};
use toro_sync::__loom::race;
use toro_sync::{Semaphore, Timeout};

/// Model 6: the timer fires while the permit is released: the acquire wins (`Ok`) or times out
/// (`Err(Timeout)`), never `Closed`; a timed-out acquire holds nothing afterwards.
#[test]
fn timer_vs_release() {
    model("timer_vs_release", || {
        let sem = Arc::new(Semaphore::new(1));
        let data = Arc::new(Guarded::new());
        let held = sem.try_acquire().unwrap();
        let (timer, trigger) = timer();

        let racer = {
            let (sem, data) = (sem.clone(), data.clone());
            thread::spawn(move || {
                // The acquire inside is dropped with the race when `block_on` returns.
                match block_on(race(sem.acquire(), timer)) {
                    Ok(Ok(permit)) => {
                        assert_eq!(permit.num_permits(), 1);
                        data.bump();
                        true
                    }
                    Ok(Err(closed)) => panic!("never closed: {closed:?}"),
                    Err(Timeout) => false,
                }
            })
        };
        let firer = thread::spawn(move || trigger.fire());
        drop(held);

        let won = racer.join().unwrap();
        firer.join().unwrap();
        assert_eq!(data.get(), usize::from(won));
        // A timed-out acquire granted at the last moment gave the permit back.
        assert_eq!(sem.available_permits(), 1);
        assert!(sem.try_acquire().is_ok());
    });
}

/// Model 6b: the same race with the timed acquire queued ahead of a plain waiter (polled once
/// here, finished on another thread): whether it wins or times out, the waiter behind it is
/// served, so a timed-out acquire never swallows the permit.
#[test]
fn timer_vs_release_next_waiter() {
    model("timer_vs_release_next_waiter", || {
        let sem = std::sync::Arc::new(Semaphore::new(1));
        let data = Arc::new(Guarded::new());
        let held = sem.clone().try_acquire_owned().unwrap();
        let (timer, trigger) = timer();

        // Queued first, deterministically; its timer is armed with a no-op waker.
        let mut timed = Box::pin(race(sem.clone().acquire_owned(), timer));
        assert!(poll_once(timed.as_mut()).is_pending());

        let racer = {
            let data = data.clone();
            // Re-polled by `block_on`'s task: both wakers are replaced while the release
            // and the timer race to wake it.
            thread::spawn(move || match block_on(timed) {
                Ok(Ok(permit)) => {
                    data.bump();
                    drop(permit);
                    true
                }
                Ok(Err(closed)) => panic!("never closed: {closed:?}"),
                Err(Timeout) => false,
            })
        };
        let firer = thread::spawn(move || trigger.fire());
        let releaser = thread::spawn(move || drop(held));

        // Queued behind the timed acquire: served after it, or after it timed out.
        let permit = block_on(sem.acquire()).unwrap();
        data.bump();
        drop(permit);

        let won = racer.join().unwrap();
        firer.join().unwrap();
        releaser.join().unwrap();
        assert_eq!(data.get(), 1 + usize::from(won));
        assert_eq!(sem.available_permits(), 1);
        assert!(sem.try_acquire().is_ok());
    });
}
