//! Helpers the integration tests share: time limits, hand polling, a counting waker,
//! waits on other threads, a tokio runtime, a tiny RNG and a hang watchdog. Each test
//! binary uses a part of them.

#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use futures::task::{noop_waker_ref, ArcWake};

/// Time a freshly spawned thread gets to reach its wait and queue.
pub const SETTLE: Duration = Duration::from_millis(200);
/// A wait longer than this is a hang: the test fails instead of blocking forever.
pub const HANG: Duration = Duration::from_secs(20);
/// A deadline that never passes during a test.
pub const LONG: Duration = Duration::from_secs(60);

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn past() -> Instant {
    let now = Instant::now();
    now.checked_sub(ms(10)).unwrap_or(now)
}

/// Polls `f` once with a waker that does nothing.
pub fn poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(noop_waker_ref()))
}

/// The value of a poll that must be ready.
pub fn ready<T>(p: Poll<T>) -> T {
    match p {
        Poll::Ready(t) => t,
        Poll::Pending => panic!("the future is still pending"),
    }
}

/// A waker that counts its wakes.
#[derive(Default)]
pub struct CountWake(pub AtomicUsize);

impl ArcWake for CountWake {
    fn wake_by_ref(arc: &Arc<Self>) {
        arc.0.fetch_add(1, SeqCst);
    }
}

pub fn counting_waker() -> (Arc<CountWake>, Waker) {
    let count = Arc::new(CountWake::default());
    (count.clone(), futures::task::waker(count))
}

/// Runs `f` on a new thread and returns its result through a channel.
pub fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

pub fn recv<T>(rx: &mpsc::Receiver<T>) -> T {
    rx.recv_timeout(HANG).expect("a waiter never finished")
}

/// Runs the wait `f` on its own thread, checks it is still waiting after `SETTLE`, runs
/// `release`, and returns what the wait returned.
pub fn blocks_until<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
    release: impl FnOnce(),
) -> T {
    let rx = spawn(f);
    thread::sleep(SETTLE);
    assert!(
        rx.try_recv().is_err(),
        "the wait finished before anything freed it"
    );
    release();
    recv(&rx)
}

/// A tokio multi-thread runtime with `workers` worker threads and its timer.
pub fn multi_thread_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .unwrap()
}

/// A tiny xorshift64 generator: reproducible per seed, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn micros(&mut self, max: u64) -> Duration {
        Duration::from_micros(self.below(max))
    }
}

/// Aborts the process if the returned guard is not dropped within `limit`.
pub struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    pub fn new(name: &'static str, limit: Duration) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        thread::spawn(move || {
            let start = Instant::now();
            while !d.load(SeqCst) {
                if start.elapsed() > limit {
                    eprintln!("stress test `{name}` hung for {limit:?}: aborting");
                    std::process::abort();
                }
                thread::sleep(Duration::from_millis(20));
            }
        });
        Self(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}
