//! Semaphore workloads S1-S3 (DESIGN.md, "Benchmarks"): toro-sync against tokio and
//! async-lock in the same run, each workload written once over [`Sem`].
//!
//! Every group sets `Throughput::Elements` to the acquires one iteration makes, so
//! criterion's time per iteration divided by the elements is the time per acquire+release
//! (`benches/table.py` prints that as a table of medians and ratios).
//!
//! - `S1-uncontended`: one task, one permit, acquire+release in a loop inside one
//!   `futures::executor::block_on`; one iteration is one acquire+release.
//! - `S2-64tasks-{4permits,1permit}`: 64 tokio tasks on a 2-worker multi-thread runtime
//!   (built once), each making `S2_ROUNDS` acquire+release pairs with a tiny piece of work
//!   inside the permit: `64 * S2_ROUNDS` acquires an iteration. The 1-permit group also has
//!   `ring-64-tasks`: 64 tasks passing one token round a ring of `tokio::sync::Notify`s
//!   (`64 * S2_ROUNDS` hand-offs), the floor for a mutex-like hand-off between tasks.
//! - `S2y-64tasks-1permit-yield`: as S2 with one permit, but each task yields
//!   (`tokio::task::yield_now`) while it holds the permit, so others are queued at every
//!   release and every acquire is a real hand-off (barging peers may still keep the permit);
//!   beside `ring-64-tasks`, which is the floor for that.
//! - `S3-2threads-{4permits,1permit}`: two OS threads, each making `S3_ROUNDS` blocking
//!   acquire+release pairs (tokio has no blocking acquire: `block_on(acquire())`).
//!
//! S2 and S3 time each iteration from the first worker's start to the last one's end
//! (`iter_custom`), so spawning and joining the workers is not counted.

use std::future::Future;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use futures::executor::block_on;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

/// Tasks in S2 and in the ring.
const S2_TASKS: usize = 64;
/// Acquire+release pairs per task per S2 iteration.
const S2_ROUNDS: u64 = 200;
/// Threads in S3.
const S3_THREADS: usize = 2;
/// Blocking acquire+release pairs per thread per S3 iteration.
const S3_ROUNDS: u64 = 10_000;

/// The one face of a semaphore the workloads use.
trait Sem: Send + Sync + 'static {
    /// The criterion function name.
    const NAME: &'static str;
    /// What an acquire hands out; dropping it releases the permit.
    type Permit<'a>: Send
    where
        Self: 'a;
    fn with_permits(permits: usize) -> Self;
    fn acquire_one(&self) -> impl Future<Output = Self::Permit<'_>> + Send;
    fn acquire_one_blocking(&self) -> Self::Permit<'_>;
}

impl Sem for toro_sync::Semaphore {
    const NAME: &'static str = "toro-sync";
    type Permit<'a> = toro_sync::SemaphorePermit<'a>;

    fn with_permits(permits: usize) -> Self {
        Self::new(permits)
    }

    #[inline]
    async fn acquire_one(&self) -> Self::Permit<'_> {
        self.acquire().await.unwrap()
    }

    #[inline]
    fn acquire_one_blocking(&self) -> Self::Permit<'_> {
        self.acquire_blocking().unwrap()
    }
}

impl Sem for tokio::sync::Semaphore {
    const NAME: &'static str = "tokio";
    type Permit<'a> = tokio::sync::SemaphorePermit<'a>;

    fn with_permits(permits: usize) -> Self {
        Self::new(permits)
    }

    #[inline]
    async fn acquire_one(&self) -> Self::Permit<'_> {
        self.acquire().await.unwrap()
    }

    /// tokio has no blocking acquire: park the thread on the async one.
    #[inline]
    fn acquire_one_blocking(&self) -> Self::Permit<'_> {
        block_on(self.acquire()).unwrap()
    }
}

impl Sem for async_lock::Semaphore {
    const NAME: &'static str = "async-lock";
    type Permit<'a> = async_lock::SemaphoreGuard<'a>;

    fn with_permits(permits: usize) -> Self {
        Self::new(permits)
    }

    #[inline]
    fn acquire_one(&self) -> impl Future<Output = Self::Permit<'_>> + Send {
        self.acquire()
    }

    #[inline]
    fn acquire_one_blocking(&self) -> Self::Permit<'_> {
        self.acquire_blocking()
    }
}

/// The tiny piece of work done while holding a permit in S2, S3 and the ring.
#[inline]
fn work(i: u64) {
    black_box(black_box(i).wrapping_mul(0x9E37_79B9_7F4A_7C15));
}

/// S1: `iters` acquire+release pairs in one task, timed inside one `block_on`.
fn uncontended<S: Sem>(sem: &S, iters: u64) -> Duration {
    block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let permit = sem.acquire_one().await;
            black_box(&permit);
            drop(permit);
        }
        start.elapsed()
    })
}

/// When one worker (task or thread) began and ended its share of a workload.
type Span = (Instant, Instant);

/// From the first worker's start to the last one's end: the workload alone, without
/// spawning workers or waking whoever waits for them.
fn span(spans: impl IntoIterator<Item = Span>) -> Duration {
    let (start, end) = spans
        .into_iter()
        .reduce(|(s0, e0), (s1, e1)| (s0.min(s1), e0.max(e1)))
        .expect("no workers");
    end - start
}

/// S2: `tasks` tasks each making `rounds` acquire+release pairs, yielding to the runtime
/// inside the permit when `yield_inside`.
fn tasks<S: Sem>(
    rt: &Runtime,
    sem: &Arc<S>,
    tasks: usize,
    rounds: u64,
    yield_inside: bool,
) -> Duration {
    rt.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let sem = Arc::clone(sem);
                tokio::spawn(async move {
                    let start = Instant::now();
                    for i in 0..rounds {
                        let permit = sem.acquire_one().await;
                        work(i);
                        if yield_inside {
                            tokio::task::yield_now().await;
                        }
                        drop(permit);
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        let mut spans = Vec::with_capacity(tasks);
        for h in handles {
            spans.push(h.await.unwrap());
        }
        span(spans)
    })
}

/// The S2 reference: `tasks` tasks in a ring, each waiting on its own `Notify`, doing the
/// work, then waking the next; one token goes round `rounds` times (`tasks * rounds`
/// hand-offs, counting the first wake-up from outside).
fn ring(rt: &Runtime, tasks: usize, rounds: u64) -> Duration {
    rt.block_on(async {
        let bells: Arc<Vec<Notify>> = Arc::new((0..tasks).map(|_| Notify::new()).collect());
        let handles: Vec<_> = (0..tasks)
            .map(|i| {
                let bells = Arc::clone(&bells);
                tokio::spawn(async move {
                    let mut start = None;
                    for r in 0..rounds {
                        bells[i].notified().await;
                        start.get_or_insert_with(Instant::now);
                        work(r);
                        // The very last hand-off would leave a stored wake-up behind.
                        if !(i == tasks - 1 && r == rounds - 1) {
                            bells[(i + 1) % tasks].notify_one();
                        }
                    }
                    (start.unwrap(), Instant::now())
                })
            })
            .collect();
        // `notify_one` stores the wake-up if task 0 is not waiting yet.
        bells[0].notify_one();
        let mut spans = Vec::with_capacity(tasks);
        for h in handles {
            spans.push(h.await.unwrap());
        }
        span(spans)
    })
}

/// S3: `threads` OS threads each making `rounds` blocking acquire+release pairs, released
/// together by a barrier.
fn threads<S: Sem>(sem: &S, threads: usize, rounds: u64) -> Duration {
    let go = Barrier::new(threads);
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    go.wait();
                    let start = Instant::now();
                    for i in 0..rounds {
                        let permit = sem.acquire_one_blocking();
                        work(i);
                        drop(permit);
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        span(handles.into_iter().map(|h| h.join().unwrap()))
    })
}

fn group<'a>(c: &'a mut Criterion, name: &str, elements: u64) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(elements))
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

fn s1_peer<S: Sem>(g: &mut BenchmarkGroup<'_, WallTime>) {
    let sem = S::with_permits(1);
    g.bench_function(S::NAME, |b| b.iter_custom(|iters| uncontended(&sem, iters)));
}

fn s2_peer<S: Sem>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    permits: usize,
    yield_inside: bool,
) {
    let sem = Arc::new(S::with_permits(permits));
    g.bench_function(S::NAME, |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| tasks(rt, &sem, S2_TASKS, S2_ROUNDS, yield_inside))
                .sum()
        })
    });
}

fn s3_peer<S: Sem>(g: &mut BenchmarkGroup<'_, WallTime>, permits: usize) {
    let sem = S::with_permits(permits);
    g.bench_function(S::NAME, |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| threads(&sem, S3_THREADS, S3_ROUNDS))
                .sum()
        })
    });
}

fn s1(c: &mut Criterion) {
    let mut g = group(c, "S1-uncontended", 1);
    s1_peer::<toro_sync::Semaphore>(&mut g);
    s1_peer::<tokio::sync::Semaphore>(&mut g);
    s1_peer::<async_lock::Semaphore>(&mut g);
    g.finish();
}

fn s2(c: &mut Criterion) {
    let rt = runtime();
    for permits in [4, 1] {
        let name = format!(
            "S2-{S2_TASKS}tasks-{permits}permit{}",
            if permits == 1 { "" } else { "s" }
        );
        let mut g = group(c, &name, S2_TASKS as u64 * S2_ROUNDS);
        // Iterations take milliseconds: the same count in every sample.
        g.sampling_mode(SamplingMode::Flat);
        s2_peer::<toro_sync::Semaphore>(&mut g, &rt, permits, false);
        s2_peer::<tokio::sync::Semaphore>(&mut g, &rt, permits, false);
        s2_peer::<async_lock::Semaphore>(&mut g, &rt, permits, false);
        if permits == 1 {
            ring_ref(&mut g, &rt);
        }
        g.finish();
    }
    let mut g = group(
        c,
        &format!("S2y-{S2_TASKS}tasks-1permit-yield"),
        S2_TASKS as u64 * S2_ROUNDS,
    );
    g.sampling_mode(SamplingMode::Flat);
    s2_peer::<toro_sync::Semaphore>(&mut g, &rt, 1, true);
    s2_peer::<tokio::sync::Semaphore>(&mut g, &rt, 1, true);
    s2_peer::<async_lock::Semaphore>(&mut g, &rt, 1, true);
    ring_ref(&mut g, &rt);
    g.finish();
}

fn ring_ref(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime) {
    g.bench_function(format!("ring-{S2_TASKS}-tasks"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| ring(rt, S2_TASKS, S2_ROUNDS)).sum())
    });
}

fn s3(c: &mut Criterion) {
    for permits in [4, 1] {
        let name = format!(
            "S3-{S3_THREADS}threads-{permits}permit{}",
            if permits == 1 { "" } else { "s" }
        );
        let mut g = group(c, &name, S3_THREADS as u64 * S3_ROUNDS);
        g.sampling_mode(SamplingMode::Flat);
        s3_peer::<toro_sync::Semaphore>(&mut g, permits);
        s3_peer::<tokio::sync::Semaphore>(&mut g, permits);
        s3_peer::<async_lock::Semaphore>(&mut g, permits);
        g.finish();
    }
}

criterion_group!(benches, s1, s2, s3);
criterion_main!(benches);
