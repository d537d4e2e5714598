//! Stress: tokio tasks and threads send and receive on one `Queue` with every form of wait
//! and random cancellation (select against a sleep, `WaitExt` and tokio timeouts, drop
//! after one poll, blocking timeouts). Every item has a unique id and counts its drop:
//! every item sent `Ok` must be received exactly once, every item that was not sent must
//! have been handed back or dropped with its future, and once the queue is dropped no item
//! is alive.
//!
//! A watchdog aborts the process if a test hangs, so a lost wake-up fails loudly.

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use futures::task::noop_waker_ref;
use toro_sync::{
    Queue, RecvError, RecvTimeoutError, SendError, SendTimeoutError, Timeout, TryRecvError,
    TrySendError, WaitExt,
};

mod common;
use common::{Rng, Watchdog};

/// An item with a unique id that counts its drop.
struct Item {
    id: usize,
    dropped: Arc<AtomicUsize>,
}

impl Drop for Item {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, SeqCst);
    }
}

/// What became of one attempt to send.
enum Sent {
    /// Sent: a receiver must get it.
    Yes,
    /// Not sent, the item handed back (full, deadline passed).
    Back(Item),
    /// Cancelled: the item dropped with its future, or sent if a receiver moved it in
    /// while it waited (API.md).
    Cancelled,
    /// Not sent, the queue is closed; the item handed back.
    Closed(Item),
}

impl From<Result<(), SendError<Item>>> for Sent {
    fn from(r: Result<(), SendError<Item>>) -> Self {
        match r {
            Ok(()) => Sent::Yes,
            Err(SendError(it)) => Sent::Closed(it),
        }
    }
}

impl From<Result<(), SendTimeoutError<Item>>> for Sent {
    fn from(r: Result<(), SendTimeoutError<Item>>) -> Self {
        match r {
            Ok(()) => Sent::Yes,
            Err(SendTimeoutError::Timeout(it)) => Sent::Back(it),
            Err(SendTimeoutError::Closed(it)) => Sent::Closed(it),
        }
    }
}

impl From<Result<(), TrySendError<Item>>> for Sent {
    fn from(r: Result<(), TrySendError<Item>>) -> Self {
        match r {
            Ok(()) => Sent::Yes,
            Err(TrySendError::Full(it)) => Sent::Back(it),
            Err(TrySendError::Closed(it)) => Sent::Closed(it),
        }
    }
}

/// What became of one attempt to receive: `Ok(Some)` an item, `Ok(None)` nothing this time
/// (empty, deadline, cancelled), `Err` closed and drained.
type Got = Result<Option<Item>, RecvError>;

fn got(r: Result<Item, RecvError>) -> Got {
    r.map(Some)
}

fn got_timeout(r: Result<Item, RecvTimeoutError>) -> Got {
    match r {
        Ok(it) => Ok(Some(it)),
        Err(RecvTimeoutError::Timeout) => Ok(None),
        Err(RecvTimeoutError::Closed) => Err(RecvError),
    }
}

fn got_try(r: Result<Item, TryRecvError>) -> Got {
    match r {
        Ok(it) => Ok(Some(it)),
        Err(TryRecvError::Empty) => Ok(None),
        Err(TryRecvError::Closed) => Err(RecvError),
    }
}

#[derive(Default)]
struct Stats {
    sent: AtomicUsize,
    back: AtomicUsize,
    cancelled: AtomicUsize,
    received: AtomicUsize,
    missed: AtomicUsize,
}

impl Stats {
    fn add(counter: &AtomicUsize) {
        counter.fetch_add(1, SeqCst);
    }
}

struct Shared {
    q: Queue<Item>,
    /// Ids of cancelled sends: each may have been sent (moved in while it waited).
    maybe_sent: Mutex<Vec<usize>>,
    next_id: AtomicUsize,
    dropped: Arc<AtomicUsize>,
    stats: Stats,
    /// Producers stop at this instant (unless the queue closes first).
    end: Instant,
    /// Whether the queue may be closed while producers run: waits without a deadline are
    /// then left out, so that a receiver never told "drained" fails the test instead of
    /// hanging it.
    closes_early: bool,
    /// Receivers that reach this instant without seeing "closed and drained" give up (the
    /// test then fails).
    give_up: Instant,
}

/// How long receivers keep trying after the close before they fail the test.
const GRACE: Duration = Duration::from_secs(5);

impl Shared {
    /// Producers run for `run`, or until the queue is closed after `close_after`.
    fn new(q: Queue<Item>, run: Duration, close_after: Option<Duration>) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            q,
            maybe_sent: Mutex::new(Vec::new()),
            next_id: AtomicUsize::new(0),
            dropped: Arc::new(AtomicUsize::new(0)),
            stats: Stats::default(),
            end: now + run,
            closes_early: close_after.is_some(),
            give_up: now + close_after.unwrap_or(run) + GRACE,
        })
    }

    fn item(&self) -> (usize, Item) {
        let id = self.next_id.fetch_add(1, SeqCst);
        let item = Item {
            id,
            dropped: self.dropped.clone(),
        };
        (id, item)
    }

    fn producing(&self) -> bool {
        Instant::now() < self.end
    }

    /// Books one send attempt; returns `false` once the queue is closed.
    fn book_send(&self, id: usize, sent: Sent, ids: &mut Vec<usize>) -> bool {
        match sent {
            Sent::Yes => {
                ids.push(id);
                Stats::add(&self.stats.sent);
            }
            Sent::Back(it) => {
                assert_eq!(it.id, id, "another item came back");
                Stats::add(&self.stats.back);
            }
            Sent::Cancelled => {
                self.maybe_sent.lock().unwrap().push(id);
                Stats::add(&self.stats.cancelled);
            }
            Sent::Closed(it) => {
                assert_eq!(it.id, id, "another item came back");
                assert!(
                    self.closes_early || !self.producing(),
                    "closed while producing"
                );
                return false;
            }
        }
        true
    }

    /// Books one receive attempt; returns `false` once the queue is closed and drained.
    fn book_recv(&self, r: Got, ids: &mut Vec<usize>) -> bool {
        match r {
            Ok(Some(it)) => {
                ids.push(it.id);
                Stats::add(&self.stats.received);
            }
            Ok(None) => Stats::add(&self.stats.missed),
            Err(RecvError) => {
                assert!(self.q.is_closed(), "RecvError on an open queue");
                return false;
            }
        }
        assert!(
            Instant::now() < self.give_up,
            "receivers were never told the closed queue is drained"
        );
        true
    }
}

async fn yield_some(rng: &mut Rng) {
    for _ in 0..rng.below(3) {
        tokio::task::yield_now().await;
    }
}

async fn producer_task(sh: Arc<Shared>, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let q = &sh.q;
    let mut ids = Vec::new();
    while sh.producing() {
        let (id, item) = sh.item();
        let sent = match rng.below(if sh.closes_early { 6 } else { 7 }) {
            0 => match q.send(item).timeout(rng.micros(300)).await {
                Ok(r) => r.into(),
                Err(Timeout) => Sent::Cancelled,
            },
            1 => tokio::select! {
                r = q.send(item) => r.into(),
                _ = tokio::time::sleep(rng.micros(300)) => Sent::Cancelled,
            },
            2 => {
                // Poll once, maybe let others run (a place may be handed to it meanwhile),
                // then drop it without polling again.
                let mut f = pin!(q.send(item));
                match futures::poll!(f.as_mut()) {
                    Poll::Ready(r) => r.into(),
                    Poll::Pending => {
                        yield_some(&mut rng).await;
                        Sent::Cancelled
                    }
                }
            }
            3 => q.try_send(item).into(),
            4 => match tokio::time::timeout(rng.micros(300), q.send(item)).await {
                Ok(r) => r.into(),
                Err(_) => Sent::Cancelled,
            },
            5 => {
                let at = Instant::now() + rng.micros(300);
                match q.send(item).deadline(at).await {
                    Ok(r) => r.into(),
                    Err(Timeout) => Sent::Cancelled,
                }
            }
            _ => q.send(item).await.into(),
        };
        if !sh.book_send(id, sent, &mut ids) {
            break;
        }
        yield_some(&mut rng).await;
    }
    ids
}

fn producer_thread(sh: Arc<Shared>, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let q = &sh.q;
    let mut ids = Vec::new();
    while sh.producing() {
        let (id, item) = sh.item();
        let sent = match rng.below(if sh.closes_early { 5 } else { 6 }) {
            0 => q.send_timeout(item, rng.micros(500)).into(),
            1 => q
                .send_deadline(item, Instant::now() + rng.micros(500))
                .into(),
            2 => q.try_send(item).into(),
            3 => match block_on(q.send(item).timeout(rng.micros(500))) {
                Ok(r) => r.into(),
                Err(Timeout) => Sent::Cancelled,
            },
            4 => {
                let mut f = pin!(q.send(item));
                match f.as_mut().poll(&mut Context::from_waker(noop_waker_ref())) {
                    Poll::Ready(r) => r.into(),
                    Poll::Pending => {
                        thread::yield_now();
                        Sent::Cancelled
                    }
                }
            }
            _ => q.send_blocking(item).into(),
        };
        if !sh.book_send(id, sent, &mut ids) {
            break;
        }
    }
    ids
}

async fn consumer_task(sh: Arc<Shared>, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let q = &sh.q;
    let mut ids = Vec::new();
    loop {
        let r = match rng.below(if sh.closes_early { 6 } else { 7 }) {
            0 => match q.recv().timeout(rng.micros(300)).await {
                Ok(r) => got(r),
                Err(Timeout) => Ok(None),
            },
            1 => tokio::select! {
                r = q.recv() => got(r),
                _ = tokio::time::sleep(rng.micros(300)) => Ok(None),
            },
            2 => {
                let mut f = pin!(q.recv());
                match futures::poll!(f.as_mut()) {
                    Poll::Ready(r) => got(r),
                    Poll::Pending => {
                        // An item may be handed to it while others run: it must stay
                        // queued for the next receiver.
                        yield_some(&mut rng).await;
                        Ok(None)
                    }
                }
            }
            3 => got_try(q.try_recv()),
            4 => match tokio::time::timeout(rng.micros(300), q.recv()).await {
                Ok(r) => got(r),
                Err(_) => Ok(None),
            },
            5 => {
                let at = Instant::now() + rng.micros(300);
                match q.recv().deadline(at).await {
                    Ok(r) => got(r),
                    Err(Timeout) => Ok(None),
                }
            }
            _ => got(q.recv().await),
        };
        if !sh.book_recv(r, &mut ids) {
            return ids;
        }
        yield_some(&mut rng).await;
    }
}

fn consumer_thread(sh: Arc<Shared>, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let q = &sh.q;
    let mut ids = Vec::new();
    loop {
        let r = match rng.below(if sh.closes_early { 5 } else { 6 }) {
            0 => got_timeout(q.recv_timeout(rng.micros(500))),
            1 => got_timeout(q.recv_deadline(Instant::now() + rng.micros(500))),
            2 => got_try(q.try_recv()),
            3 => match block_on(q.recv().timeout(rng.micros(500))) {
                Ok(r) => got(r),
                Err(Timeout) => Ok(None),
            },
            4 => {
                let mut f = pin!(q.recv());
                match f.as_mut().poll(&mut Context::from_waker(noop_waker_ref())) {
                    Poll::Ready(r) => got(r),
                    Poll::Pending => {
                        thread::yield_now();
                        Ok(None)
                    }
                }
            }
            _ => got(q.recv_blocking()),
        };
        if !sh.book_recv(r, &mut ids) {
            return ids;
        }
    }
}

/// Runs producers and consumers (tasks and threads) on `sh.q`; closes the queue after
/// `close_after` if given, else when the producers are done. Checks that the ids sent
/// `Ok` and the ids received are the same, each once, and that no item outlives the queue.
fn run(
    q: Queue<Item>,
    rt: &tokio::runtime::Runtime,
    run_for: Duration,
    close_after: Option<Duration>,
    seed: u64,
) {
    let sh = Shared::new(q, run_for, close_after);
    const TASKS: u64 = 16;
    const THREADS: u64 = 2;
    let producer_tasks: Vec<_> = (0..TASKS)
        .map(|i| rt.spawn(producer_task(sh.clone(), seed + i)))
        .collect();
    let consumer_tasks: Vec<_> = (0..TASKS)
        .map(|i| rt.spawn(consumer_task(sh.clone(), seed + 100 + i)))
        .collect();
    let producer_threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let sh = sh.clone();
            thread::spawn(move || producer_thread(sh, seed + 200 + i))
        })
        .collect();
    let consumer_threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let sh = sh.clone();
            thread::spawn(move || consumer_thread(sh, seed + 300 + i))
        })
        .collect();

    if let Some(d) = close_after {
        thread::sleep(d);
        sh.q.close();
    }
    let mut sent: Vec<usize> = producer_threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    rt.block_on(async {
        for t in producer_tasks {
            sent.extend(t.await.unwrap());
        }
    });
    sh.q.close();
    let mut received: Vec<usize> = consumer_threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    rt.block_on(async {
        for t in consumer_tasks {
            received.extend(t.await.unwrap());
        }
    });

    sent.sort_unstable();
    received.sort_unstable();
    let s = &sh.stats;
    eprintln!(
        "sent {}, handed back {}, cancelled {}, received {}, missed {}",
        s.sent.load(SeqCst),
        s.back.load(SeqCst),
        s.cancelled.load(SeqCst),
        s.received.load(SeqCst),
        s.missed.load(SeqCst),
    );
    assert_eq!(sent.len(), s.sent.load(SeqCst));
    assert!(
        received.windows(2).all(|w| w[0] != w[1]),
        "an item was received twice"
    );
    // Every item sent is received; every item received was sent, or its send was cancelled
    // after a receiver had moved it in.
    let maybe: HashSet<usize> = sh.maybe_sent.lock().unwrap().iter().copied().collect();
    let received_set: HashSet<usize> = received.iter().copied().collect();
    assert!(
        sent.iter().all(|id| received_set.contains(id)),
        "an item sent was lost"
    );
    let sent_set: HashSet<usize> = sent.iter().copied().collect();
    assert!(
        received
            .iter()
            .all(|id| sent_set.contains(id) || maybe.contains(id)),
        "an item received that was never sent"
    );
    assert!(sh.q.is_empty());
    assert!(matches!(sh.q.try_recv(), Err(TryRecvError::Closed)));

    // Every item made is gone once the queue is: received ones were dropped by their
    // receivers, the rest handed back or dropped with their futures.
    let sh = Arc::try_unwrap(sh)
        .ok()
        .expect("every task and thread is done");
    let made = sh.next_id.load(SeqCst);
    let dropped = sh.dropped.clone();
    drop(sh);
    assert_eq!(
        dropped.load(SeqCst),
        made,
        "items alive after the queue is dropped"
    );
}

/// Producers run this long unless the queue closes first.
const LONG_RUN: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn tasks_and_threads_with_random_cancellation_deliver_every_item_once() {
    let _watchdog = Watchdog::new("deliver_every_item_once", Duration::from_secs(60));
    let rt = runtime();
    let run_for = Duration::from_millis(if cfg!(miri) { 50 } else { 1400 });
    run(Queue::bounded(4), &rt, run_for, None, 1000);
    run(Queue::unbounded(), &rt, run_for / 2, None, 2000);
}

#[test]
fn close_while_busy_with_random_cancellation_loses_nothing() {
    let _watchdog = Watchdog::new("close_while_busy", Duration::from_secs(60));
    let rt = runtime();
    let rounds: u64 = if cfg!(miri) { 1 } else { 16 };
    for round in 0..rounds {
        let mut rng = Rng::new(round);
        let q = match round % 4 {
            0 => Queue::unbounded(),
            r => Queue::bounded(r as usize),
        };
        let close_after = Duration::from_millis(20 + rng.below(80));
        run(q, &rt, LONG_RUN, Some(close_after), 3000 + round * 1000);
    }
}

/// A send waiting on a full queue, a receiver freeing a place (which moves the send's item
/// in, unless the close came first), a `close`, and the send future dropped unpolled, on
/// three threads in every order. Whatever the order, once all three are done the queue is
/// closed with at most the moved-in item inside and nothing in flight: receivers must be
/// told so (`TryRecvError::Closed`) once they have it, or they would wait forever.
#[test]
fn close_racing_a_cancelled_send_still_reports_drained() {
    let _watchdog = Watchdog::new("close_racing_a_cancelled_send", Duration::from_secs(60));
    let rounds = if cfg!(miri) { 10 } else { 400 };
    let dropped = Arc::new(AtomicUsize::new(0));
    let item = |id| Item {
        id,
        dropped: dropped.clone(),
    };
    let mut stranded = 0;
    for round in 0..rounds {
        let mut rng = Rng::new(round);
        let q = Queue::bounded(1);
        q.try_send(item(0)).unwrap();
        let mut send = Box::pin(q.send(item(1)));
        assert!(send
            .as_mut()
            .poll(&mut Context::from_waker(noop_waker_ref()))
            .is_pending());
        let spins: [u64; 3] = [rng.below(200), rng.below(200), rng.below(200)];
        let first = thread::scope(|s| {
            let taker = s.spawn(|| {
                (0..spins[0]).for_each(|_| std::hint::spin_loop());
                q.try_recv().map(|it| it.id)
            });
            s.spawn(|| {
                (0..spins[1]).for_each(|_| std::hint::spin_loop());
                q.close();
            });
            s.spawn(move || {
                (0..spins[2]).for_each(|_| std::hint::spin_loop());
                drop(send);
            });
            taker.join().unwrap()
        });
        assert_eq!(first, Ok(0), "round {round}");
        if !q.is_empty() {
            // Moved in before the close: sent, and received once.
            assert_eq!(q.try_recv().map(|it| it.id), Ok(1), "round {round}");
        }
        match q.try_recv() {
            Err(TryRecvError::Closed) => {}
            Err(TryRecvError::Empty) => stranded += 1,
            Ok(it) => panic!("round {round}: received {} that was never sent", it.id),
        }
    }
    assert_eq!(dropped.load(SeqCst), 2 * rounds as usize);
    assert_eq!(
        stranded, 0,
        "{stranded} of {rounds} rounds left a closed, drained queue reporting Empty"
    );
}
