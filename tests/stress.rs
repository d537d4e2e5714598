//! Stress: threads and tokio tasks hammer one semaphore with every form of acquire and
//! random cancellation (select against a sleep, `WaitExt` timeouts, drop after one poll,
//! blocking timeouts), then the count must be exactly where it began. A shared counter of
//! permits in use checks that no more than the semaphore's count are ever held at once.
//!
//! A watchdog aborts the process if a test hangs, so a lost wake-up fails loudly.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use toro_sync::{
    AcquireTimeoutError, BoundedSemaphore, Closed, Semaphore, Timeout, TryAcquireError, WaitExt,
};

mod common;
use common::{Rng, Watchdog};

#[derive(Default)]
struct Stats {
    acquired: AtomicUsize,
    timed_out: AtomicUsize,
    cancelled: AtomicUsize,
    refused: AtomicUsize,
}

impl Stats {
    fn add(counter: &AtomicUsize) {
        counter.fetch_add(1, SeqCst);
    }
}

/// Counts `n` permits in use while held; fails if more than `max` are ever in use.
struct InUse {
    now: AtomicUsize,
    max: usize,
}

impl InUse {
    fn take(&self, n: u32) {
        let now = self.now.fetch_add(n as usize, SeqCst) + n as usize;
        assert!(
            now <= self.max,
            "{now} permits in use, only {} exist",
            self.max
        );
    }

    /// Called before the permits are dropped, so the next holder cannot be counted early.
    fn give(&self, n: u32) {
        self.now.fetch_sub(n as usize, SeqCst);
    }
}

struct Shared {
    sem: Arc<Semaphore>,
    in_use: InUse,
    stats: Stats,
    end: Instant,
}

async fn hold_async(sh: &Shared, n: u32, rng: &mut Rng) {
    sh.in_use.take(n);
    Stats::add(&sh.stats.acquired);
    for _ in 0..rng.below(3) {
        tokio::task::yield_now().await;
    }
    sh.in_use.give(n);
}

fn hold_blocking(sh: &Shared, n: u32, rng: &mut Rng) {
    sh.in_use.take(n);
    Stats::add(&sh.stats.acquired);
    for _ in 0..rng.below(3) {
        thread::yield_now();
    }
    sh.in_use.give(n);
}

async fn task_loop(sh: Arc<Shared>, seed: u64) {
    let mut rng = Rng::new(seed);
    let sem = &sh.sem;
    while Instant::now() < sh.end {
        let n = 1 + rng.below(3) as u32;
        match rng.below(9) {
            0 => {
                let p = sem.acquire_many(n).await.unwrap();
                hold_async(&sh, n, &mut rng).await;
                drop(p);
            }
            1 => {
                let sleep = tokio::time::sleep(rng.micros(300));
                tokio::select! {
                    r = sem.acquire_many(n) => {
                        let p = r.unwrap();
                        hold_async(&sh, n, &mut rng).await;
                        drop(p);
                    }
                    _ = sleep => Stats::add(&sh.stats.cancelled),
                }
            }
            2 => match sem.acquire_many(n).timeout(rng.micros(300)).await {
                Ok(r) => {
                    let p = r.unwrap();
                    hold_async(&sh, n, &mut rng).await;
                    drop(p);
                }
                Err(Timeout) => Stats::add(&sh.stats.timed_out),
            },
            3 => {
                // Poll once, maybe let others run (so it may be granted meanwhile), then
                // drop without polling again.
                let mut f = pin!(sem.acquire_many(n));
                match futures::poll!(f.as_mut()) {
                    Poll::Ready(r) => {
                        let p = r.unwrap();
                        hold_async(&sh, n, &mut rng).await;
                        drop(p);
                    }
                    Poll::Pending => {
                        for _ in 0..rng.below(3) {
                            tokio::task::yield_now().await;
                        }
                        Stats::add(&sh.stats.cancelled);
                    }
                }
            }
            4 => {
                let mut p = sem.clone().acquire_many_owned(n).await.unwrap();
                hold_async(&sh, n, &mut rng).await;
                // Give the permits back in pieces.
                let part = p.split(1).unwrap();
                drop(part);
                drop(p);
            }
            5 => match sem.try_acquire_many(n) {
                Ok(p) => {
                    hold_async(&sh, n, &mut rng).await;
                    drop(p);
                }
                Err(e) => {
                    assert_eq!(e, TryAcquireError::NoPermits);
                    Stats::add(&sh.stats.refused);
                }
            },
            6 => match sem.wait_unlocked().timeout(rng.micros(300)).await {
                Ok(r) => r.unwrap(),
                Err(Timeout) => Stats::add(&sh.stats.timed_out),
            },
            7 => {
                let at = Instant::now() + rng.micros(300);
                match sem.clone().acquire_many_owned(n).deadline(at).await {
                    Ok(r) => {
                        let p = r.unwrap();
                        hold_async(&sh, n, &mut rng).await;
                        drop(p);
                    }
                    Err(Timeout) => Stats::add(&sh.stats.timed_out),
                }
            }
            _ => {
                // Merge two single permits into one.
                let mut a = sem.acquire().await.unwrap();
                match sem.acquire().timeout(rng.micros(200)).await {
                    Ok(r) => {
                        a.merge(r.unwrap());
                        hold_async(&sh, 2, &mut rng).await;
                    }
                    Err(Timeout) => {
                        hold_async(&sh, 1, &mut rng).await;
                        Stats::add(&sh.stats.timed_out);
                    }
                }
                drop(a);
            }
        }
    }
}

fn thread_loop(sh: Arc<Shared>, seed: u64) {
    let mut rng = Rng::new(seed);
    let sem = &sh.sem;
    while Instant::now() < sh.end {
        let n = 1 + rng.below(3) as u32;
        let r = match rng.below(7) {
            0 => Ok(sem.acquire_many_blocking(n).unwrap()),
            1 => sem.acquire_many_timeout(n, rng.micros(500)),
            2 => sem.acquire_many_deadline(n, Instant::now() + rng.micros(500)),
            3 => match sem.try_acquire_many(n) {
                Ok(p) => Ok(p),
                Err(e) => {
                    assert_eq!(e, TryAcquireError::NoPermits);
                    Stats::add(&sh.stats.refused);
                    continue;
                }
            },
            4 => {
                match sem.clone().acquire_many_owned_timeout(n, rng.micros(500)) {
                    Ok(p) => {
                        hold_blocking(&sh, n, &mut rng);
                        drop(p);
                    }
                    Err(e) => {
                        assert_eq!(e, AcquireTimeoutError::Timeout);
                        Stats::add(&sh.stats.timed_out);
                    }
                }
                continue;
            }
            5 => match block_on(sem.acquire_many(n).timeout(rng.micros(500))) {
                Ok(r) => Ok(r.unwrap()),
                Err(Timeout) => Err(AcquireTimeoutError::Timeout),
            },
            _ => {
                match sem.wait_unlocked_timeout(rng.micros(500)) {
                    Ok(()) => {}
                    Err(e) => {
                        assert_eq!(e, AcquireTimeoutError::Timeout);
                        Stats::add(&sh.stats.timed_out);
                    }
                }
                continue;
            }
        };
        match r {
            Ok(p) => {
                assert_eq!(p.num_permits(), n as usize);
                hold_blocking(&sh, n, &mut rng);
                drop(p);
            }
            Err(e) => {
                assert_eq!(e, AcquireTimeoutError::Timeout);
                Stats::add(&sh.stats.timed_out);
            }
        }
    }
}

#[test]
fn threads_and_tasks_with_random_cancellation_conserve_permits() {
    const PERMITS: usize = 5;
    const TASKS: u64 = 64;
    const THREADS: u64 = 4;
    let _watchdog = Watchdog::new("threads_and_tasks", Duration::from_secs(60));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let sh = Arc::new(Shared {
        sem: Arc::new(Semaphore::new(PERMITS)),
        in_use: InUse {
            now: AtomicUsize::new(0),
            max: PERMITS,
        },
        stats: Stats::default(),
        end: Instant::now() + Duration::from_millis(2000),
    });
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| rt.spawn(task_loop(sh.clone(), 1000 + i)))
        .collect();
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let sh = sh.clone();
            thread::spawn(move || thread_loop(sh, 2000 + i))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    drop(rt);
    let s = &sh.stats;
    let (acquired, timed_out, cancelled, refused) = (
        s.acquired.load(SeqCst),
        s.timed_out.load(SeqCst),
        s.cancelled.load(SeqCst),
        s.refused.load(SeqCst),
    );
    eprintln!(
        "acquired {acquired}, timed out {timed_out}, cancelled {cancelled}, refused {refused}"
    );
    assert!(acquired > 0);
    assert!(timed_out + cancelled > 0);
    assert_eq!(sh.in_use.now.load(SeqCst), 0);
    assert_eq!(sh.sem.available_permits(), PERMITS);
    assert_eq!(
        sh.sem
            .try_acquire_many(PERMITS as u32)
            .unwrap()
            .num_permits(),
        PERMITS
    );
    assert_eq!(sh.sem.available_permits(), PERMITS);
}

#[test]
fn close_while_busy_wakes_everyone_and_conserves_permits() {
    const PERMITS: usize = 3;
    let _watchdog = Watchdog::new("close_while_busy", Duration::from_secs(60));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    for round in 0..5u64 {
        let sem = Arc::new(Semaphore::new(PERMITS));
        let tasks: Vec<_> = (0..16u64)
            .map(|i| {
                let sem = sem.clone();
                rt.spawn(async move {
                    let mut rng = Rng::new(round * 100 + i);
                    loop {
                        let n = 1 + rng.below(3) as u32;
                        let r = match rng.below(4) {
                            0 => sem.acquire_many(n).await,
                            1 => match sem.acquire_many(n).timeout(rng.micros(300)).await {
                                Ok(r) => r,
                                Err(Timeout) => continue,
                            },
                            2 => {
                                let mut f = pin!(sem.acquire_many(n));
                                match futures::poll!(f.as_mut()) {
                                    Poll::Ready(r) => r,
                                    Poll::Pending => {
                                        tokio::task::yield_now().await;
                                        continue;
                                    }
                                }
                            }
                            _ => match sem.wait_unlocked().await {
                                Ok(()) => continue,
                                Err(Closed) => return,
                            },
                        };
                        match r {
                            Ok(p) => {
                                tokio::task::yield_now().await;
                                drop(p);
                            }
                            Err(Closed) => return,
                        }
                    }
                })
            })
            .collect();
        let threads: Vec<_> = (0..2u64)
            .map(|i| {
                let sem = sem.clone();
                thread::spawn(move || {
                    let mut rng = Rng::new(round * 100 + 50 + i);
                    loop {
                        let n = 1 + rng.below(3) as u32;
                        let r = match rng.below(3) {
                            0 => sem
                                .acquire_many_blocking(n)
                                .map_err(AcquireTimeoutError::from),
                            1 => sem.acquire_many_timeout(n, rng.micros(300)),
                            _ => sem.acquire_many_deadline(n, Instant::now() + rng.micros(300)),
                        };
                        match r {
                            Ok(p) => {
                                thread::yield_now();
                                drop(p);
                            }
                            Err(AcquireTimeoutError::Timeout) => {}
                            Err(AcquireTimeoutError::Closed) => return,
                        }
                    }
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(100));
        sem.close();
        for t in threads {
            t.join().unwrap();
        }
        rt.block_on(async {
            for t in tasks {
                t.await.unwrap();
            }
        });
        assert_eq!(sem.available_permits(), PERMITS, "round {round}");
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
    }
}

#[test]
fn bounded_forget_and_release_never_exceed_initial() {
    const PERMITS: usize = 4;
    let _watchdog = Watchdog::new("bounded_forget_and_release", Duration::from_secs(60));
    let sem = Arc::new(BoundedSemaphore::new(PERMITS));
    let end = Instant::now() + Duration::from_millis(500);
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (sem, stop) = (sem.clone(), stop.clone());
        thread::spawn(move || {
            let mut samples = 0u64;
            while !stop.load(SeqCst) {
                let now = sem.available_permits();
                assert!(
                    now <= PERMITS,
                    "{now} permits free, more than the initial {PERMITS}"
                );
                samples += 1;
                thread::yield_now();
            }
            samples
        })
    };
    let workers: Vec<_> = (0..4u64)
        .map(|i| {
            let sem = sem.clone();
            thread::spawn(move || {
                let mut rng = Rng::new(7000 + i);
                let mut released = 0usize;
                while Instant::now() < end {
                    let n = 1 + rng.below(2) as u32;
                    let p = if rng.below(2) == 0 {
                        sem.acquire_many_blocking(n).unwrap()
                    } else {
                        block_on(sem.acquire_many(n)).unwrap()
                    };
                    if rng.below(2) == 0 {
                        p.forget();
                        thread::yield_now();
                        // Releasing what this thread forgot is always allowed.
                        sem.release(n as usize).unwrap();
                        released += n as usize;
                    } else {
                        drop(p);
                    }
                }
                released
            })
        })
        .collect();
    let released: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    stop.store(true, SeqCst);
    assert!(sampler.join().unwrap() > 0);
    assert!(released > 0);
    assert_eq!(sem.available_permits(), PERMITS);
    assert!(sem.release(1).is_err());
    assert_eq!(sem.available_permits(), PERMITS);
}
