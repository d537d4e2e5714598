//! Channel workloads C1-C6 (issue 4, "Benchmarks"): toro-sync against tokio's mpsc,
//! async-channel, flume, kanal, crossbeam-channel and std's mpsc in the same run, each
//! workload written once over the handle traits [`AsyncTx`]/[`AsyncRx`] (tokio tasks) and
//! [`BlockingTx`]/[`BlockingRx`] (OS threads), implemented once per crate.
//!
//! Items are `u64`. Every group sets `Throughput::Elements` to the messages one iteration
//! carries, so criterion's time per iteration over the elements is the time per message
//! (`benches/table.py` prints that as a table of medians and ratios). Each iteration makes
//! a new channel and new workers, and is timed from the first worker's start to the last
//! one's end (`iter_custom`, as `benches/semaphore.rs` does), so spawning and joining are not
//! counted. Every consumer takes a fixed share of the messages (no close is awaited) and
//! the sum of what was received is checked.
//!
//! - `C1-spsc-bounded1024`, `C1-spsc-unbounded`: one producer task sends [`C1_N`] items to
//!   one consumer task, on a 2-worker tokio multi-thread runtime built once.
//! - `C2-mpsc-4p-bounded1024`: 4 producer tasks each send [`C2_PER`] items to 1 consumer.
//! - `C3-mpmc-4x4-bounded1024`: 4 producers each send [`C3_PER`] items; 4 consumers each
//!   take a quarter. tokio's mpsc has one receiver, so it is not in this group.
//! - `C4-spsc-bounded1`: as C1 with capacity 1 ([`C4_N`] items): a hand-off per message.
//!   (Rendezvous, `bounded(0)`, is not a workload of the issue; tokio has none.)
//! - `C5-threads-spsc-bounded1024`, `C5-threads-mpmc-4x4-bounded1024`: as C1 and C3 with OS
//!   threads and blocking calls ([`C5_SPSC_N`] items; 4x4 with [`C5_MPMC_PER`] each), released
//!   together by a barrier. std's `sync_channel` has one receiver: SPSC only. tokio has no
//!   blocking channel worth the name here and is left out.
//! - `C6-memory`: [`C6_N`] items pushed into an unbounded channel from one thread, then all
//!   received, in a fresh child process per peer (this binary again, with `TORO_C6=<peer>`):
//!   the peak RSS growth per message (VmHWM minus the VmRSS before the pushes) and the RSS
//!   still held after the drain with the channel alive (VmRSS after minus before). Runs
//!   after the criterion groups; the table goes to stdout and to
//!   `<target>/criterion/C6-memory.json` for `table.py`.
//!
//! crossbeam-channel has no async API, so it is only in C5 and C6.

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, Criterion, SamplingMode, Throughput};
use tokio::runtime::Runtime;

/// Capacity of the bounded channels in C1-C3 and C5.
const CAP: usize = 1024;
/// Messages per C1 iteration.
const C1_N: u64 = 100_000;
/// Messages per producer per C2 iteration (4 producers).
const C2_PER: u64 = 25_000;
/// Messages per producer per C3 iteration (4 producers, 4 consumers).
const C3_PER: u64 = 25_000;
/// Messages per C4 iteration.
const C4_N: u64 = 50_000;
/// Messages per C5 SPSC iteration.
const C5_SPSC_N: u64 = 100_000;
/// Messages per producer per C5 MPMC iteration (4 producers, 4 consumer threads).
const C5_MPMC_PER: u64 = 25_000;
/// Messages pushed and drained in C6.
const C6_N: u64 = 10_000_000;

/// The environment variable that makes this binary a C6 child for one peer.
const C6_ENV: &str = "TORO_C6";
/// Overrides [`C6_N`] in a child (the parent passes a small count in test mode).
const C6_N_ENV: &str = "TORO_C6_N";
/// The C6 peers, in table order.
const C6_PEERS: [&str; 6] = [
    "toro-sync",
    "tokio",
    "async-channel",
    "flume",
    "kanal",
    "crossbeam-channel",
];

// ---------------------------------------------------------------------------------------
// The faces of a channel the workloads use, one impl per crate.

/// The sending half, awaited in a task.
trait AsyncTx: Clone + Send + 'static {
    fn put(&self, item: u64) -> impl Future<Output = ()> + Send;
}

/// The receiving half, awaited in a task.
trait AsyncRx: Send + 'static {
    fn take(&mut self) -> impl Future<Output = u64> + Send;
}

/// The sending half, parking the thread when it must wait.
trait BlockingTx: Clone + Send + 'static {
    fn put_blocking(&self, item: u64);
}

/// The receiving half, parking the thread when it must wait.
trait BlockingRx: Send + 'static {
    fn take_blocking(&mut self) -> u64;
}

/// Writes the impls of two of the traits for handle types whose methods return a `Result`
/// that is only ever `Ok` here (no channel closes while a workload runs).
macro_rules! handles {
    (async $tx:ty, $rx:ty: $send:ident, $recv:ident) => {
        impl AsyncTx for $tx {
            #[inline]
            async fn put(&self, item: u64) {
                self.$send(item).await.expect("closed");
            }
        }
        impl AsyncRx for $rx {
            #[inline]
            async fn take(&mut self) -> u64 {
                self.$recv().await.expect("closed")
            }
        }
    };
    (blocking $tx:ty, $rx:ty: $send:ident, $recv:ident) => {
        impl BlockingTx for $tx {
            #[inline]
            fn put_blocking(&self, item: u64) {
                self.$send(item).expect("closed");
            }
        }
        impl BlockingRx for $rx {
            #[inline]
            fn take_blocking(&mut self) -> u64 {
                self.$recv().expect("closed")
            }
        }
    };
}

handles!(async toro_sync::channel::Sender<u64>, toro_sync::channel::Receiver<u64>: send, recv);
handles!(blocking toro_sync::channel::Sender<u64>, toro_sync::channel::Receiver<u64>:
    send_blocking, recv_blocking);

impl AsyncTx for tokio::sync::mpsc::Sender<u64> {
    #[inline]
    async fn put(&self, item: u64) {
        self.send(item).await.expect("closed");
    }
}
impl AsyncRx for tokio::sync::mpsc::Receiver<u64> {
    #[inline]
    async fn take(&mut self) -> u64 {
        self.recv().await.expect("closed")
    }
}
// tokio's unbounded send does not wait: no `.await` on it.
impl AsyncTx for tokio::sync::mpsc::UnboundedSender<u64> {
    #[inline]
    async fn put(&self, item: u64) {
        self.send(item).expect("closed");
    }
}
impl AsyncRx for tokio::sync::mpsc::UnboundedReceiver<u64> {
    #[inline]
    async fn take(&mut self) -> u64 {
        self.recv().await.expect("closed")
    }
}
// C6 only: the child has no runtime, so tokio's thread-blocking receive is allowed.
impl BlockingTx for tokio::sync::mpsc::UnboundedSender<u64> {
    #[inline]
    fn put_blocking(&self, item: u64) {
        self.send(item).expect("closed");
    }
}
impl BlockingRx for tokio::sync::mpsc::UnboundedReceiver<u64> {
    #[inline]
    fn take_blocking(&mut self) -> u64 {
        self.blocking_recv().expect("closed")
    }
}

handles!(async async_channel::Sender<u64>, async_channel::Receiver<u64>: send, recv);
handles!(blocking async_channel::Sender<u64>, async_channel::Receiver<u64>:
    send_blocking, recv_blocking);

handles!(async flume::Sender<u64>, flume::Receiver<u64>: send_async, recv_async);
handles!(blocking flume::Sender<u64>, flume::Receiver<u64>: send, recv);

handles!(async kanal::AsyncSender<u64>, kanal::AsyncReceiver<u64>: send, recv);
handles!(blocking kanal::Sender<u64>, kanal::Receiver<u64>: send, recv);

handles!(blocking crossbeam_channel::Sender<u64>, crossbeam_channel::Receiver<u64>: send, recv);

handles!(blocking std::sync::mpsc::SyncSender<u64>, std::sync::mpsc::Receiver<u64>: send, recv);

// ---------------------------------------------------------------------------------------
// The workloads, written once.

/// Producers, consumers and the messages each producer sends.
#[derive(Clone, Copy)]
struct Shape {
    producers: usize,
    consumers: usize,
    per_producer: u64,
}

impl Shape {
    const fn new(producers: usize, consumers: usize, per_producer: u64) -> Self {
        assert!((producers as u64 * per_producer) % consumers as u64 == 0);
        Self {
            producers,
            consumers,
            per_producer,
        }
    }

    const fn messages(self) -> u64 {
        self.producers as u64 * self.per_producer
    }

    /// Messages each consumer takes.
    const fn share(self) -> u64 {
        self.messages() / self.consumers as u64
    }

    /// The first item producer `p` sends; it sends `per_producer` consecutive ones, so the
    /// items are `0..messages` in all.
    const fn first(self, p: usize) -> u64 {
        p as u64 * self.per_producer
    }

    /// The sum of every item sent.
    const fn sum(self) -> u64 {
        let n = self.messages();
        n * (n - 1) / 2
    }
}

/// A channel's sender and its receivers, one per consumer.
type Ends<Tx, Rx> = (Tx, Vec<Rx>);

/// One receiver (SPSC, MPSC).
fn one<Tx, Rx>((tx, rx): (Tx, Rx)) -> Ends<Tx, Rx> {
    (tx, vec![rx])
}

/// `n` clones of the receiver (MPMC).
fn fan<Tx, Rx: Clone>((tx, rx): (Tx, Rx), n: usize) -> Ends<Tx, Rx> {
    let mut rxs: Vec<Rx> = (1..n).map(|_| rx.clone()).collect();
    rxs.push(rx);
    (tx, rxs)
}

/// When one worker (task or thread) began and ended its part, and the sum it received.
type Span = (Instant, Instant, u64);

/// From the first worker's start to the last one's end, after checking the sum received.
fn span(spans: impl IntoIterator<Item = Span>, shape: Shape) -> Duration {
    let (start, end, sum) = spans
        .into_iter()
        .reduce(|(s0, e0, m0), (s1, e1, m1)| (s0.min(s1), e0.max(e1), m0.wrapping_add(m1)))
        .expect("no workers");
    assert_eq!(sum, shape.sum(), "items lost or doubled");
    end - start
}

/// C1-C4: the shape's producers and consumers as tokio tasks on `rt`.
fn tasks<Tx: AsyncTx, Rx: AsyncRx>(
    rt: &Runtime,
    (tx, rxs): Ends<Tx, Rx>,
    shape: Shape,
) -> Duration {
    assert_eq!(rxs.len(), shape.consumers);
    rt.block_on(async move {
        let mut handles = Vec::with_capacity(shape.producers + shape.consumers);
        for mut rx in rxs {
            handles.push(tokio::spawn(async move {
                let start = Instant::now();
                let mut sum = 0u64;
                for _ in 0..shape.share() {
                    sum = sum.wrapping_add(rx.take().await);
                }
                (start, Instant::now(), sum)
            }));
        }
        for p in 0..shape.producers {
            let tx = tx.clone();
            handles.push(tokio::spawn(async move {
                let start = Instant::now();
                let first = shape.first(p);
                for item in first..first + shape.per_producer {
                    tx.put(item).await;
                }
                (start, Instant::now(), 0)
            }));
        }
        drop(tx);
        let mut spans = Vec::with_capacity(handles.len());
        for h in handles {
            spans.push(h.await.unwrap());
        }
        span(spans, shape)
    })
}

/// C5: the shape's producers and consumers as OS threads, released together.
fn threads<Tx: BlockingTx, Rx: BlockingRx>((tx, rxs): Ends<Tx, Rx>, shape: Shape) -> Duration {
    assert_eq!(rxs.len(), shape.consumers);
    let go = Barrier::new(shape.producers + shape.consumers);
    let go = &go;
    thread::scope(|s| {
        let mut handles = Vec::with_capacity(shape.producers + shape.consumers);
        for mut rx in rxs {
            handles.push(s.spawn(move || {
                go.wait();
                let start = Instant::now();
                let mut sum = 0u64;
                for _ in 0..shape.share() {
                    sum = sum.wrapping_add(rx.take_blocking());
                }
                (start, Instant::now(), sum)
            }));
        }
        for p in 0..shape.producers {
            let tx = tx.clone();
            handles.push(s.spawn(move || {
                go.wait();
                let start = Instant::now();
                let first = shape.first(p);
                for item in first..first + shape.per_producer {
                    tx.put_blocking(item);
                }
                (start, Instant::now(), 0)
            }));
        }
        drop(tx);
        span(handles.into_iter().map(|h| h.join().unwrap()), shape)
    })
}

// ---------------------------------------------------------------------------------------
// Criterion groups.

/// The one runtime of C1-C4: tokio multi-thread, 2 workers.
fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap()
    })
}

fn group<'a>(c: &'a mut Criterion, name: &str, shape: Shape) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(shape.messages()))
        // Iterations take milliseconds: the same count in every sample.
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(3));
    g
}

/// One peer of a task workload: `make` builds a fresh channel for each iteration.
fn on_tasks<Tx: AsyncTx, Rx: AsyncRx>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    shape: Shape,
    make: impl Fn() -> Ends<Tx, Rx>,
) {
    let rt = runtime();
    g.bench_function(name, |b| {
        b.iter_custom(|iters| (0..iters).map(|_| tasks(rt, make(), shape)).sum())
    });
}

/// One peer of a thread workload: `make` builds a fresh channel for each iteration.
fn on_threads<Tx: BlockingTx, Rx: BlockingRx>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    shape: Shape,
    make: impl Fn() -> Ends<Tx, Rx>,
) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| (0..iters).map(|_| threads(make(), shape)).sum())
    });
}

fn c1(c: &mut Criterion) {
    let shape = Shape::new(1, 1, C1_N);
    let mut g = group(c, "C1-spsc-bounded1024", shape);
    on_tasks(&mut g, "toro-sync", shape, || {
        one(toro_sync::channel::bounded(CAP))
    });
    on_tasks(&mut g, "tokio", shape, || {
        one(tokio::sync::mpsc::channel(CAP))
    });
    on_tasks(&mut g, "async-channel", shape, || {
        one(async_channel::bounded(CAP))
    });
    on_tasks(&mut g, "flume", shape, || one(flume::bounded(CAP)));
    on_tasks(&mut g, "kanal", shape, || one(kanal::bounded_async(CAP)));
    g.finish();

    let mut g = group(c, "C1-spsc-unbounded", shape);
    on_tasks(&mut g, "toro-sync", shape, || {
        one(toro_sync::channel::unbounded())
    });
    on_tasks(&mut g, "tokio", shape, || {
        one(tokio::sync::mpsc::unbounded_channel())
    });
    on_tasks(&mut g, "async-channel", shape, || {
        one(async_channel::unbounded())
    });
    on_tasks(&mut g, "flume", shape, || one(flume::unbounded()));
    on_tasks(&mut g, "kanal", shape, || one(kanal::unbounded_async()));
    g.finish();
}

fn c2(c: &mut Criterion) {
    let shape = Shape::new(4, 1, C2_PER);
    let mut g = group(c, "C2-mpsc-4p-bounded1024", shape);
    on_tasks(&mut g, "toro-sync", shape, || {
        one(toro_sync::channel::bounded(CAP))
    });
    on_tasks(&mut g, "tokio", shape, || {
        one(tokio::sync::mpsc::channel(CAP))
    });
    on_tasks(&mut g, "async-channel", shape, || {
        one(async_channel::bounded(CAP))
    });
    on_tasks(&mut g, "flume", shape, || one(flume::bounded(CAP)));
    on_tasks(&mut g, "kanal", shape, || one(kanal::bounded_async(CAP)));
    g.finish();
}

fn c3(c: &mut Criterion) {
    let shape = Shape::new(4, 4, C3_PER);
    let mut g = group(c, "C3-mpmc-4x4-bounded1024", shape);
    on_tasks(&mut g, "toro-sync", shape, || {
        fan(toro_sync::channel::bounded(CAP), 4)
    });
    on_tasks(&mut g, "async-channel", shape, || {
        fan(async_channel::bounded(CAP), 4)
    });
    on_tasks(&mut g, "flume", shape, || fan(flume::bounded(CAP), 4));
    on_tasks(&mut g, "kanal", shape, || fan(kanal::bounded_async(CAP), 4));
    g.finish();
}

fn c4(c: &mut Criterion) {
    let shape = Shape::new(1, 1, C4_N);
    let mut g = group(c, "C4-spsc-bounded1", shape);
    on_tasks(&mut g, "toro-sync", shape, || {
        one(toro_sync::channel::bounded(1))
    });
    on_tasks(&mut g, "tokio", shape, || {
        one(tokio::sync::mpsc::channel(1))
    });
    on_tasks(&mut g, "async-channel", shape, || {
        one(async_channel::bounded(1))
    });
    on_tasks(&mut g, "flume", shape, || one(flume::bounded(1)));
    on_tasks(&mut g, "kanal", shape, || one(kanal::bounded_async(1)));
    g.finish();
}

fn c5(c: &mut Criterion) {
    let shape = Shape::new(1, 1, C5_SPSC_N);
    let mut g = group(c, "C5-threads-spsc-bounded1024", shape);
    on_threads(&mut g, "toro-sync", shape, || {
        one(toro_sync::channel::bounded(CAP))
    });
    on_threads(&mut g, "crossbeam-channel", shape, || {
        one(crossbeam_channel::bounded(CAP))
    });
    on_threads(&mut g, "std", shape, || {
        one(std::sync::mpsc::sync_channel(CAP))
    });
    on_threads(&mut g, "flume", shape, || one(flume::bounded(CAP)));
    on_threads(&mut g, "kanal", shape, || one(kanal::bounded(CAP)));
    on_threads(&mut g, "async-channel", shape, || {
        one(async_channel::bounded(CAP))
    });
    g.finish();

    let shape = Shape::new(4, 4, C5_MPMC_PER);
    let mut g = group(c, "C5-threads-mpmc-4x4-bounded1024", shape);
    on_threads(&mut g, "toro-sync", shape, || {
        fan(toro_sync::channel::bounded(CAP), 4)
    });
    on_threads(&mut g, "crossbeam-channel", shape, || {
        fan(crossbeam_channel::bounded(CAP), 4)
    });
    on_threads(&mut g, "flume", shape, || fan(flume::bounded(CAP), 4));
    on_threads(&mut g, "kanal", shape, || fan(kanal::bounded(CAP), 4));
    on_threads(&mut g, "async-channel", shape, || {
        fan(async_channel::bounded(CAP), 4)
    });
    g.finish();
}

criterion_group!(benches, c1, c2, c3, c4, c5);

// ---------------------------------------------------------------------------------------
// C6: memory, one child process per peer.

/// VmRSS and VmHWM of this process, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The child's part: `n` items pushed, then drained, with the channel kept alive; prints
/// one JSON line.
fn memory<Tx: BlockingTx, Rx: BlockingRx>(peer: &str, (tx, mut rx): (Tx, Rx), n: u64) {
    let (base, _) = rss_kib();
    for item in 0..n {
        tx.put_blocking(item);
    }
    let (full, _) = rss_kib();
    let mut sum = 0u64;
    for _ in 0..n {
        sum = sum.wrapping_add(rx.take_blocking());
    }
    // VmHWM now covers the pushes and the drain.
    let (after, hwm) = rss_kib();
    assert_eq!(
        sum,
        n.wrapping_mul(n.wrapping_sub(1)) / 2,
        "items lost or doubled"
    );
    let peak = hwm.saturating_sub(base);
    let kept = after.saturating_sub(base);
    println!(
        "{{\"peer\":\"{peer}\",\"messages\":{n},\"base_kib\":{base},\"full_kib\":{full},\
         \"hwm_kib\":{hwm},\"after_kib\":{after},\"peak_kib\":{peak},\"kept_kib\":{kept},\
         \"peak_bytes_per_msg\":{:.3}}}",
        peak as f64 * 1024.0 / n as f64
    );
    drop((tx, rx));
}

/// Runs C6 for `peer` in this (child) process.
fn c6_child(peer: &str) {
    let n = std::env::var(C6_N_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(C6_N);
    match peer {
        "toro-sync" => memory(peer, toro_sync::channel::unbounded(), n),
        "tokio" => memory(peer, tokio::sync::mpsc::unbounded_channel(), n),
        "async-channel" => memory(peer, async_channel::unbounded(), n),
        "flume" => memory(peer, flume::unbounded(), n),
        "kanal" => memory(peer, kanal::unbounded(), n),
        "crossbeam-channel" => memory(peer, crossbeam_channel::unbounded(), n),
        _ => panic!("{C6_ENV}={peer}: not one of {C6_PEERS:?}"),
    }
}

/// A number field of one of the children's JSON lines.
fn json_num(line: &str, key: &str) -> f64 {
    let at = line.find(&format!("\"{key}\":")).expect("key") + key.len() + 3;
    let rest = &line[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].parse().expect("number")
}

/// Where criterion writes (`$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else
/// `target/criterion` under the crate, where `cargo bench` runs us).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("criterion")
}

/// Runs every C6 child, prints the table and, for a full run, writes `C6-memory.json`.
fn c6(n: u64, write: bool) {
    let exe = std::env::current_exe().expect("current_exe");
    let mut lines = Vec::new();
    println!("C6-memory: {n} u64 pushed into an unbounded channel, then drained (child processes)");
    println!(
        "{:<18} {:>14} {:>18} {:>12}",
        "peer", "peak B/msg", "kept after drain", "peak"
    );
    for peer in C6_PEERS {
        let out = Command::new(&exe)
            .env(C6_ENV, peer)
            .env(C6_N_ENV, n.to_string())
            .output()
            .expect("spawn C6 child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = match stdout.lines().find(|l| l.starts_with('{')) {
            Some(line) if out.status.success() => line.to_owned(),
            _ => {
                eprintln!(
                    "C6 {peer}: child failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                continue;
            }
        };
        println!(
            "{:<18} {:>14.2} {:>14.0} KiB {:>8.1} MiB",
            peer,
            json_num(&line, "peak_bytes_per_msg"),
            json_num(&line, "kept_kib"),
            json_num(&line, "peak_kib") / 1024.0
        );
        lines.push(line);
    }
    if !write {
        return;
    }
    let dir = criterion_dir();
    let path = dir.join("C6-memory.json");
    let json = format!("[\n{}\n]\n", lines.join(",\n"));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, json)) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}

/// Criterion's options that take a value as the next argument.
const VALUE_OPTIONS: [&str; 19] = [
    "-s",
    "--save-baseline",
    "-b",
    "--baseline",
    "--baseline-lenient",
    "--load-baseline",
    "-c",
    "--color",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--profile-time",
    "--plotting-backend",
    "--output-format",
    "--format",
];

/// Whether criterion's command-line filter (its first free argument, a regex that we only
/// match as a substring here) lets C6 run.
fn c6_selected(args: &[String]) -> bool {
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        if VALUE_OPTIONS.contains(&arg.as_str()) {
            rest.next();
        } else if !arg.starts_with('-') {
            return "C6-memory".contains(arg.as_str());
        }
    }
    true
}

fn main() {
    if let Ok(peer) = std::env::var(C6_ENV) {
        c6_child(&peer);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") || !c6_selected(&args) {
        return;
    }
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`), or with `--test`,
    // criterion runs each benchmark once as a check, and C6 shrinks to match.
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    c6(if full { C6_N } else { 100_000 }, full);
}
