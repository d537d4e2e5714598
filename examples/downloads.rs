//! Toro's classic demo, for tasks and threads at once: a `BoundedSemaphore` limits how many
//! "downloads" run concurrently. Async tasks on a tokio runtime and plain OS threads share
//! one semaphore; the program prints each start and finish and checks that no more than
//! `LIMIT` ever ran at the same time.
//!
//! Run it with `cargo run --release --example downloads`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use toro_sync::{BoundedSemaphore, WaitExt};

const LIMIT: usize = 3;
const TASKS: usize = 6;
const THREADS: usize = 3;

struct Downloads {
    sem: BoundedSemaphore,
    running: AtomicUsize,
    most: AtomicUsize,
    start: Instant,
}

impl Downloads {
    fn begin(&self, who: &str) {
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        println!(
            "{:>6.1} ms  {who:<9} starts  ({now} running)",
            self.start.elapsed().as_secs_f64() * 1e3
        );
    }

    fn end(&self, who: &str) {
        let now = self.running.fetch_sub(1, SeqCst) - 1;
        println!(
            "{:>6.1} ms  {who:<9} done    ({now} running)",
            self.start.elapsed().as_secs_f64() * 1e3
        );
    }
}

fn main() {
    let d = Arc::new(Downloads {
        sem: BoundedSemaphore::new(LIMIT),
        running: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
        start: Instant::now(),
    });
    println!("{TASKS} async tasks and {THREADS} threads share {LIMIT} download slots");

    // Blocking threads: `acquire_blocking` parks the thread until a slot is free.
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let d = d.clone();
            std::thread::spawn(move || {
                let who = format!("thread {i}");
                let _slot = d.sem.acquire_blocking().expect("never closed here");
                d.begin(&who);
                std::thread::sleep(Duration::from_millis(30));
                d.end(&who);
            })
        })
        .collect();

    // Async tasks on a multi-thread runtime: `acquire().await` queues in the same FIFO.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let d = d.clone();
                tokio::spawn(async move {
                    let who = format!("task {i}");
                    let _slot = d.sem.acquire().await.expect("never closed here");
                    d.begin(&who);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    d.end(&who);
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task panicked");
        }

        // A deadline on an async wait, with no runtime timer: hold every slot, then ask.
        let all = d.sem.acquire_many(LIMIT as u32).await.expect("open");
        let late = d.sem.acquire().timeout(Duration::from_millis(10)).await;
        println!("an acquire with a 10 ms deadline while all slots are held: {late:?}");
        assert!(late.is_err());
        drop(all);
    });
    for t in threads {
        t.join().expect("thread panicked");
    }

    // BoundedSemaphore refuses to grow past its initial value.
    println!(
        "release(1) on a full BoundedSemaphore: {:?}",
        d.sem.release(1)
    );
    let most = d.most.load(SeqCst);
    println!(
        "at most {most} downloads ran at once (limit {LIMIT}); {} slots free at the end",
        d.sem.available_permits()
    );
    assert!(most <= LIMIT);
    assert_eq!(d.sem.available_permits(), LIMIT);
}
