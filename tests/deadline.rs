//! `WaitExt`: when a `timeout` starts counting, and the timeouts that never fire.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use futures::executor::block_on;
use toro_sync::{Queue, Semaphore, Timeout, WaitExt};

fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(futures::task::noop_waker_ref()))
}

#[test]
fn a_timeout_counts_from_the_first_poll_not_from_its_creation() {
    let sem = Semaphore::new(0);
    let mut wait = pin!(sem.acquire().timeout(Duration::from_millis(200)));
    // Made long before it is polled: its 200 ms have not begun.
    thread::sleep(Duration::from_millis(300));
    assert!(poll_once(wait.as_mut()).is_pending());
    sem.add_permits(1);
    assert!(matches!(block_on(wait), Ok(Ok(_))));
}

#[test]
fn a_timeout_still_fires_once_its_wait_has_begun() {
    let q = Queue::<u32>::unbounded();
    let started = std::time::Instant::now();
    assert_eq!(
        block_on(q.recv().timeout(Duration::from_millis(30))).err(),
        Some(Timeout)
    );
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[test]
fn a_wait_ready_at_once_succeeds_whatever_its_timeout() {
    let q = Queue::unbounded();
    q.try_send(1).unwrap();
    q.try_send(2).unwrap();
    assert_eq!(block_on(q.recv().timeout(Duration::ZERO)), Ok(Ok(1)));
    assert_eq!(block_on(q.recv().timeout(Duration::MAX)), Ok(Ok(2)));
}

#[test]
fn a_timeout_too_large_for_an_instant_never_fires() {
    let sem = Semaphore::new(0);
    let mut wait = pin!(sem.acquire().timeout(Duration::MAX));
    assert!(poll_once(wait.as_mut()).is_pending());
    assert!(poll_once(wait.as_mut()).is_pending());
    sem.add_permits(1);
    assert!(matches!(block_on(wait), Ok(Ok(_))));
}
