//! `Queue<T>` through the public API: FIFO order across segment boundaries and per producer
//! under contention, items counted by their drops, zero-sized items, capacities 1, large and
//! unbounded, senders waiting while full (FIFO), all five forms of `send` and `recv`, zero
//! and past deadlines, close, cancellation in every state, and tasks mixed with threads.
//!
//! Tests that need a blocking thread to be queued before something else happens give it
//! `SETTLE` to get there; no test asserts how fast anything is. Futures whose exact state
//! at a drop matters are polled by hand (`poll_once`, a waker that does nothing).

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use toro_sync::{
    Queue, RecvError, RecvTimeoutError, SendError, SendTimeoutError, Timeout, TryRecvError,
    TrySendError, WaitExt,
};

mod common;
use common::*;

/// Items for the long FIFO runs: many segments of 63 (fewer under Miri).
const N: usize = if cfg!(miri) { 300 } else { 10_000 };
/// Slots per segment of the lock-free core (a test only uses it to pick counts).
const SEGMENT: usize = 63;
// The long runs cross many segment boundaries, under Miri too.
const _: () = assert!(N > 4 * SEGMENT);

/// Spawns `f` on `rt` and returns its output through a channel (so a hang fails in
/// [`recv`] instead of blocking the test).
fn spawn_task<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    f: impl Future<Output = T> + Send + 'static,
) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    rt.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx
}

/// Everything left in `q`, by `try_recv`.
fn drain<T>(q: &Queue<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Ok(x) = q.try_recv() {
        out.push(x);
    }
    out
}

/// Counts the drops of the items it makes.
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>);

impl Drops {
    fn item(&self, id: usize) -> Item {
        Item {
            id,
            drops: self.0.clone(),
        }
    }

    fn get(&self) -> usize {
        self.0.load(SeqCst)
    }
}

/// An item that counts its drop.
#[derive(Debug)]
struct Item {
    id: usize,
    drops: Arc<AtomicUsize>,
}

impl Drop for Item {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
    }
}

// ---- construction and counters ------------------------------------------------------------

#[test]
#[should_panic(expected = "Queue::MAX_CAPACITY")]
fn bounded_above_max_capacity_panics() {
    let _ = Queue::<u8>::bounded(Queue::<u8>::MAX_CAPACITY + 1);
}

/// The largest capacity works, and counts reservations against itself like items.
#[test]
fn bounded_at_max_capacity_holds_items_and_permits() {
    let q = Queue::bounded(Queue::<u8>::MAX_CAPACITY);
    let permit = q.try_reserve().unwrap();
    q.try_send(1).unwrap();
    assert!(!q.is_full());
    assert_eq!(q.len(), 1);
    permit.send(2);
    assert_eq!(drain(&q), [1, 2]);
}

/// Items and reservations share the bound: a permit takes a place, its send fills it
/// without another, and a dropped permit frees it for a sender waiting in line.
#[test]
fn permits_and_items_share_the_bound() {
    let q = Queue::bounded(2);
    let permit = q.try_reserve().unwrap();
    q.try_send(1).unwrap();
    assert!(q.is_full());
    assert_eq!(q.try_send(9), Err(TrySendError::Full(9)));
    assert_eq!(q.try_reserve().map(drop), Err(TrySendError::Full(())));
    let mut waiting = Box::pin(q.send(3));
    assert!(poll_once(waiting.as_mut()).is_pending());
    drop(permit);
    assert!(
        q.is_full(),
        "the freed place is promised to the waiting sender"
    );
    assert_eq!(poll_once(waiting.as_mut()), Poll::Ready(Ok(())));
    assert_eq!(drain(&q), [1, 3]);
}

#[test]
fn len_is_empty_is_full_capacity_bounded() {
    let q = Queue::bounded(3);
    assert_eq!(q.capacity(), Some(3));
    assert!(q.is_empty());
    assert!(!q.is_full());
    assert!(!q.is_closed());
    for i in 0..3 {
        assert_eq!(q.len(), i);
        assert!(!q.is_full());
        q.try_send(i).unwrap();
        assert!(!q.is_empty());
    }
    assert_eq!(q.len(), 3);
    assert!(q.is_full());
    assert_eq!(q.try_send(9), Err(TrySendError::Full(9)));
    assert_eq!(q.len(), 3);
    assert_eq!(q.try_recv(), Ok(0));
    assert_eq!(q.len(), 2);
    assert!(!q.is_full());
    assert_eq!(drain(&q), [1, 2]);
    assert!(q.is_empty());
    assert_eq!(q.len(), 0);
    assert_eq!(q.capacity(), Some(3));
}

#[test]
fn len_is_empty_is_full_capacity_unbounded() {
    let q = Queue::unbounded();
    assert_eq!(q.capacity(), None);
    assert!(q.is_empty());
    assert!(!q.is_full());
    for i in 0..1000 {
        q.try_send(i).unwrap();
        assert!(!q.is_full());
    }
    assert_eq!(q.len(), 1000);
    assert!(!q.is_empty());
    assert_eq!(drain(&q), (0..1000).collect::<Vec<_>>());
    assert!(q.is_empty());
    assert_eq!(q.capacity(), None);
}

#[test]
fn capacity_one() {
    let q = Queue::bounded(1);
    assert_eq!(q.capacity(), Some(1));
    for round in 0..(3 * SEGMENT) {
        q.try_send(round).unwrap();
        assert!(q.is_full());
        assert_eq!(q.len(), 1);
        assert_eq!(q.try_send(usize::MAX), Err(TrySendError::Full(usize::MAX)));
        assert_eq!(q.try_recv(), Ok(round));
        assert!(q.is_empty());
        assert!(!q.is_full());
        assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
    }
    // Ping-pong between two threads through one place, in order.
    let q = Arc::new(q);
    let p = q.clone();
    let producer = spawn(move || {
        for i in 0..N / 10 {
            p.send_blocking(i).unwrap();
        }
    });
    for i in 0..N / 10 {
        assert_eq!(q.recv_timeout(HANG), Ok(i));
        assert!(q.len() <= 1);
    }
    recv(&producer);
}

#[test]
fn capacity_large() {
    const CAP: usize = 1000;
    let q = Queue::bounded(CAP);
    assert_eq!(q.capacity(), Some(CAP));
    for i in 0..CAP {
        assert!(!q.is_full());
        q.try_send(i).unwrap();
    }
    assert!(q.is_full());
    assert_eq!(q.len(), CAP);
    assert_eq!(q.try_send(CAP), Err(TrySendError::Full(CAP)));
    assert_eq!(
        q.send_timeout(CAP, Duration::ZERO),
        Err(SendTimeoutError::Timeout(CAP))
    );
    assert_eq!(q.try_recv(), Ok(0));
    assert!(!q.is_full());
    q.try_send(CAP).unwrap();
    assert!(q.is_full());
    assert_eq!(drain(&q), (1..=CAP).collect::<Vec<_>>());
}

#[test]
fn debug_shows_len_capacity_and_closed() {
    let q = Queue::bounded(4);
    q.try_send(1).unwrap();
    let s = format!("{q:?}");
    assert!(s.contains("Queue"), "{s}");
    assert!(s.contains("len: 1"), "{s}");
    assert!(s.contains("Some(4)"), "{s}");
    assert!(s.contains("closed: false"), "{s}");
    q.close();
    assert!(format!("{q:?}").contains("closed: true"));
}

// ---- FIFO order ----------------------------------------------------------------------------

#[test]
fn fifo_single_producer_across_segment_boundaries() {
    let q = Queue::unbounded();
    for i in 0..N {
        q.try_send(i).unwrap();
    }
    assert_eq!(q.len(), N);
    for i in 0..N {
        assert_eq!(q.try_recv(), Ok(i));
    }
    assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
    assert!(q.is_empty());
    // In and out in uneven steps, so that both ends cross boundaries at every offset while
    // the queue holds a few items, and segments are reused.
    let (mut next_in, mut next_out) = (0, 0);
    for round in 0..N / 20 {
        for _ in 0..(round % 7 + 1) * 5 {
            q.try_send(next_in).unwrap();
            next_in += 1;
        }
        while q.len() > round % 11 {
            assert_eq!(q.try_recv(), Ok(next_out));
            next_out += 1;
        }
        assert_eq!(q.len(), next_in - next_out);
    }
    assert_eq!(drain(&q), (next_out..next_in).collect::<Vec<_>>());
}

#[test]
fn fifo_single_producer_thread_to_consumer_thread() {
    let q = Arc::new(Queue::bounded(100));
    let p = q.clone();
    let producer = spawn(move || {
        for i in 0..N {
            p.send_blocking(i).unwrap();
        }
        p.close();
    });
    let mut next = 0;
    while let Ok(x) = q.recv_timeout(HANG) {
        assert_eq!(x, next);
        next += 1;
    }
    assert_eq!(next, N);
    assert_eq!(q.recv_timeout(HANG), Err(RecvTimeoutError::Closed));
    recv(&producer);
}

#[test]
fn fifo_single_producer_task_to_consumer_task() {
    let rt = multi_thread_rt(2);
    let q = Arc::new(Queue::bounded(10));
    let p = q.clone();
    let producer = spawn_task(&rt, async move {
        for i in 0..N {
            p.send(i).await.unwrap();
        }
        p.close();
    });
    let c = q.clone();
    let consumer = spawn_task(&rt, async move {
        let mut next = 0;
        while let Ok(x) = c.recv().await {
            assert_eq!(x, next);
            next += 1;
        }
        next
    });
    recv(&producer);
    assert_eq!(recv(&consumer), N);
}

/// `try_send` and `try_recv` against a `VecDeque` model, random steps (as the fuzz target).
fn check_against_model(cap: Option<usize>, seed: u64) {
    let q = match cap {
        Some(c) => Queue::bounded(c),
        None => Queue::unbounded(),
    };
    let mut model = VecDeque::new();
    let mut rng = Rng::new(seed);
    let mut next = 0u32;
    for _ in 0..N {
        // Lean toward sends two times in three, so the queue fills up and wraps.
        if rng.below(3) < 2 {
            let fits = match cap {
                Some(c) => model.len() < c,
                None => true,
            };
            if fits {
                model.push_back(next);
            }
            assert_eq!(q.try_send(next).is_ok(), fits);
            next += 1;
        } else {
            assert_eq!(q.try_recv().ok(), model.pop_front());
        }
        assert_eq!(q.len(), model.len());
        assert_eq!(q.is_full(), cap == Some(model.len()));
    }
    assert_eq!(drain(&q), Vec::from(model));
}

#[test]
fn try_send_try_recv_match_a_model() {
    for (i, cap) in [Some(1), Some(4), Some(SEGMENT), Some(100), None]
        .into_iter()
        .enumerate()
    {
        check_against_model(cap, 7 + i as u64);
    }
}

#[derive(Clone, Copy, Debug)]
enum Side {
    Thread,
    Task,
}

/// `producers` send `per` ids each (`p * per + i`, in order); `consumers` receive until the
/// queue is closed and drained. Every id must arrive exactly once, and each consumer must
/// see each producer's ids in increasing order.
fn mpmc(q: Queue<usize>, producers: &[Side], consumers: &[Side], per: usize) {
    let q = Arc::new(q);
    let rt = multi_thread_rt(2);
    let sent: Vec<_> = producers
        .iter()
        .enumerate()
        .map(|(p, &side)| {
            let q = q.clone();
            let ids = p * per..(p + 1) * per;
            match side {
                Side::Thread => spawn(move || {
                    for id in ids {
                        q.send_blocking(id).unwrap();
                    }
                }),
                Side::Task => spawn_task(&rt, async move {
                    for id in ids {
                        q.send(id).await.unwrap();
                    }
                }),
            }
        })
        .collect();
    let got: Vec<_> = consumers
        .iter()
        .map(|&side| {
            let q = q.clone();
            match side {
                Side::Thread => spawn(move || {
                    let mut got = Vec::new();
                    while let Ok(id) = q.recv_blocking() {
                        got.push(id);
                    }
                    got
                }),
                Side::Task => spawn_task(&rt, async move {
                    let mut got = Vec::new();
                    while let Ok(id) = q.recv().await {
                        got.push(id);
                    }
                    got
                }),
            }
        })
        .collect();
    for rx in &sent {
        recv(rx);
    }
    q.close();
    let mut all = Vec::new();
    for (c, rx) in got.iter().enumerate() {
        let got = recv(rx);
        let mut last = vec![None; producers.len()];
        for &id in &got {
            let p = id / per;
            assert!(
                last[p] < Some(id),
                "consumer {c} saw producer {p}'s {id} after {:?}",
                last[p]
            );
            last[p] = Some(id);
        }
        all.extend(got);
    }
    all.sort_unstable();
    assert_eq!(all.len(), producers.len() * per, "items lost or doubled");
    assert!(all.iter().copied().eq(0..producers.len() * per));
    assert!(q.is_empty());
    assert_eq!(q.try_recv(), Err(TryRecvError::Closed));
}

const FOUR_THREADS: [Side; 4] = [Side::Thread; 4];
const FOUR_TASKS: [Side; 4] = [Side::Task; 4];

#[test]
fn per_producer_order_4_threads_to_4_threads() {
    mpmc(Queue::bounded(16), &FOUR_THREADS, &FOUR_THREADS, N / 4);
}

#[test]
fn per_producer_order_4_threads_to_4_threads_unbounded() {
    mpmc(Queue::unbounded(), &FOUR_THREADS, &FOUR_THREADS, N / 4);
}

#[test]
fn per_producer_order_4_tasks_to_4_tasks() {
    mpmc(Queue::bounded(16), &FOUR_TASKS, &FOUR_TASKS, N / 4);
}

#[test]
fn per_producer_order_4_tasks_to_4_tasks_unbounded() {
    mpmc(Queue::unbounded(), &FOUR_TASKS, &FOUR_TASKS, N / 4);
}

// ---- mixed tasks and threads ---------------------------------------------------------------

#[test]
fn async_receivers_blocking_senders() {
    mpmc(
        Queue::bounded(4),
        &[Side::Thread; 3],
        &[Side::Task; 3],
        N / 4,
    );
}

#[test]
fn blocking_receivers_async_senders() {
    mpmc(
        Queue::bounded(4),
        &[Side::Task; 3],
        &[Side::Thread; 3],
        N / 4,
    );
}

#[test]
fn tasks_and_threads_on_both_sides() {
    use Side::*;
    mpmc(
        Queue::bounded(2),
        &[Thread, Task, Thread, Task],
        &[Task, Thread, Task, Thread],
        N / 4,
    );
}

#[test]
fn tasks_and_threads_wait_side_by_side_on_one_full_queue() {
    // One task and one thread wait to send, one of each waits to receive later.
    let q = Arc::new(Queue::bounded(1));
    let rt = multi_thread_rt(2);
    q.try_send(0).unwrap();
    let t = q.clone();
    let task = spawn_task(&rt, async move { t.send(1).await });
    thread::sleep(SETTLE);
    let t = q.clone();
    let thread = spawn(move || t.send_blocking(2));
    thread::sleep(SETTLE);
    assert!(task.try_recv().is_err() && thread.try_recv().is_err());
    // Places free one by one go to the task first (it queued first), then to the thread.
    assert_eq!(q.recv_timeout(HANG), Ok(0));
    assert_eq!(q.recv_timeout(HANG), Ok(1));
    assert_eq!(q.recv_timeout(HANG), Ok(2));
    assert_eq!(recv(&task), Ok(()));
    assert_eq!(recv(&thread), Ok(()));
    // Now both wait to receive: the thread first, then the task.
    let t = q.clone();
    let thread = spawn(move || t.recv_blocking());
    thread::sleep(SETTLE);
    let t = q.clone();
    let task = spawn_task(&rt, async move { t.recv().await });
    thread::sleep(SETTLE);
    q.try_send(3).unwrap();
    assert_eq!(recv(&thread), Ok(3));
    q.try_send(4).unwrap();
    assert_eq!(recv(&task), Ok(4));
    assert!(q.is_empty());
}

// ---- drops ---------------------------------------------------------------------------------

#[test]
fn dropping_the_queue_drops_each_item_once() {
    for (cap, sent, taken) in [
        (None, 0, 0),
        (None, 1, 0),
        (None, SEGMENT, 0),
        (None, 5 * SEGMENT + 7, 2 * SEGMENT + 3),
        (None, 4 * SEGMENT, 4 * SEGMENT),
        (Some(1), 1, 0),
        (Some(70), 70, 65),
        (Some(1000), 1000, 1),
    ] {
        let drops = Drops::default();
        let q = match cap {
            Some(c) => Queue::bounded(c),
            None => Queue::unbounded(),
        };
        for i in 0..sent {
            q.try_send(drops.item(i)).unwrap();
        }
        for i in 0..taken {
            assert_eq!(q.try_recv().unwrap().id, i);
        }
        assert_eq!(drops.get(), taken, "{cap:?} {sent} {taken}");
        assert_eq!(q.len(), sent - taken);
        drop(q);
        assert_eq!(drops.get(), sent, "{cap:?} {sent} {taken}");
    }
}

#[test]
fn closing_does_not_drop_items_inside() {
    let drops = Drops::default();
    let q = Queue::unbounded();
    for i in 0..100 {
        q.try_send(drops.item(i)).unwrap();
    }
    q.close();
    assert_eq!(drops.get(), 0);
    assert_eq!(q.try_recv().unwrap().id, 0);
    assert_eq!(drops.get(), 1);
    drop(q);
    assert_eq!(drops.get(), 100);
}

#[test]
fn full_try_send_hands_the_item_back() {
    let drops = Drops::default();
    let q = Queue::bounded(1);
    q.try_send(drops.item(0)).unwrap();
    let e = q.try_send(drops.item(1)).unwrap_err();
    assert!(e.is_full() && !e.is_closed());
    assert!(matches!(&e, TrySendError::Full(it) if it.id == 1));
    assert_eq!(drops.get(), 0, "the item inside the error is still alive");
    let item = e.into_inner();
    assert_eq!(item.id, 1);
    assert_eq!(drops.get(), 0);
    // Handed back, not sent: sent again later it arrives once.
    assert_eq!(q.try_recv().unwrap().id, 0);
    assert_eq!(drops.get(), 1);
    q.try_send(item).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_recv().unwrap().id, 1);
    assert_eq!(drops.get(), 2);
    assert_eq!(q.try_recv().unwrap_err(), TryRecvError::Empty);
    drop(q);
    assert_eq!(drops.get(), 2);
}

#[test]
fn timed_out_sends_hand_the_item_back() {
    let drops = Drops::default();
    let q = Queue::bounded(1);
    q.try_send(drops.item(0)).unwrap();
    let e = q.send_timeout(drops.item(1), ms(20)).unwrap_err();
    assert!(e.is_timeout() && !e.is_closed());
    assert_eq!(e.into_inner().id, 1);
    let e = q
        .send_deadline(drops.item(2), Instant::now() + ms(20))
        .unwrap_err();
    assert!(matches!(&e, SendTimeoutError::Timeout(it) if it.id == 2));
    assert_eq!(drops.get(), 1);
    drop(e);
    assert_eq!(drops.get(), 2);
    assert_eq!(q.len(), 1);
    drop(q);
    assert_eq!(drops.get(), 3);
}

#[test]
fn sends_on_a_closed_queue_hand_the_item_back_every_form() {
    let drops = Drops::default();
    let q = Queue::bounded(2);
    q.try_send(drops.item(0)).unwrap();
    q.close();
    assert!(q.is_closed());

    let e: SendError<Item> = block_on(q.send(drops.item(1))).unwrap_err();
    assert_eq!(e.0.id, 1);
    assert_eq!(e.into_inner().id, 1);
    let e = q.try_send(drops.item(2)).unwrap_err();
    assert!(e.is_closed() && !e.is_full());
    assert_eq!(e.into_inner().id, 2);
    assert_eq!(
        q.send_blocking(drops.item(3)).unwrap_err().into_inner().id,
        3
    );
    let e = q.send_timeout(drops.item(4), LONG).unwrap_err();
    assert!(e.is_closed() && !e.is_timeout());
    assert_eq!(e.into_inner().id, 4);
    let e = q
        .send_deadline(drops.item(5), Instant::now() + LONG)
        .unwrap_err();
    assert!(matches!(&e, SendTimeoutError::Closed(it) if it.id == 5));
    drop(e);
    // Zero and past deadlines report Closed, not Timeout.
    let e = q.send_timeout(drops.item(6), Duration::ZERO).unwrap_err();
    assert!(matches!(&e, SendTimeoutError::Closed(it) if it.id == 6));
    drop(e);
    let e = q.send_deadline(drops.item(7), past()).unwrap_err();
    assert!(matches!(&e, SendTimeoutError::Closed(it) if it.id == 7));
    drop(e);
    let r = block_on(q.send(drops.item(8)).timeout(Duration::ZERO));
    assert!(matches!(&r, Ok(Err(SendError(it))) if it.id == 8));
    drop(r);
    // Eight came back and were dropped here, once each; the one inside is still there.
    assert_eq!(drops.get(), 8);
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_recv().unwrap().id, 0);
    assert_eq!(drops.get(), 9);
    drop(q);
    assert_eq!(drops.get(), 9);
}

#[test]
fn zero_sized_items() {
    static ZST_DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Zst;
    impl Drop for Zst {
        fn drop(&mut self) {
            ZST_DROPS.fetch_add(1, SeqCst);
        }
    }

    let q = Queue::unbounded();
    for _ in 0..N {
        q.try_send(()).unwrap();
    }
    assert_eq!(q.len(), N);
    for _ in 0..N {
        assert_eq!(q.try_recv(), Ok(()));
    }
    assert_eq!(q.try_recv(), Err(TryRecvError::Empty));

    let q = Arc::new(Queue::bounded(1));
    q.try_send(()).unwrap();
    assert!(q.is_full());
    assert_eq!(q.try_send(()), Err(TrySendError::Full(())));
    let p = q.clone();
    let producer = spawn(move || {
        for _ in 0..N / 10 {
            p.send_blocking(()).unwrap();
        }
        p.close();
    });
    let mut got = 0;
    while let Ok(()) = q.recv_timeout(HANG) {
        got += 1;
    }
    recv(&producer);
    assert_eq!(got, N / 10 + 1);

    let q = Queue::bounded(SEGMENT * 3);
    for _ in 0..SEGMENT * 3 {
        q.try_send(Zst).unwrap();
    }
    for _ in 0..SEGMENT + 1 {
        drop(q.try_recv().unwrap());
    }
    assert_eq!(ZST_DROPS.load(SeqCst), SEGMENT + 1);
    drop(q);
    assert_eq!(ZST_DROPS.load(SeqCst), SEGMENT * 3);
}

// ---- five forms ----------------------------------------------------------------------------

#[test]
fn five_forms_succeed_at_once() {
    let q = Queue::bounded(5);
    block_on(q.send(0)).unwrap();
    q.try_send(1).unwrap();
    q.send_blocking(2).unwrap();
    q.send_timeout(3, LONG).unwrap();
    q.send_deadline(4, Instant::now() + LONG).unwrap();
    assert!(q.is_full());
    assert_eq!(block_on(q.recv()), Ok(0));
    assert_eq!(q.try_recv(), Ok(1));
    assert_eq!(q.recv_blocking(), Ok(2));
    assert_eq!(q.recv_timeout(LONG), Ok(3));
    assert_eq!(q.recv_deadline(Instant::now() + LONG), Ok(4));
    assert!(q.is_empty());
    // The crate's deadline on the async forms, ready at once.
    assert_eq!(block_on(q.send(5).timeout(LONG)), Ok(Ok(())));
    assert_eq!(block_on(q.recv().timeout(LONG)), Ok(Ok(5)));
}

#[test]
fn every_send_form_waits_while_full_then_succeeds() {
    let q = Arc::new(Queue::bounded(1));
    q.try_send(0).unwrap();
    let forms: Vec<mpsc::Receiver<Result<(), String>>> = vec![
        {
            let q = q.clone();
            spawn(move || block_on(q.send(1)).map_err(|e| e.to_string()))
        },
        {
            let q = q.clone();
            spawn(move || q.send_blocking(2).map_err(|e| e.to_string()))
        },
        {
            let q = q.clone();
            spawn(move || q.send_timeout(3, LONG).map_err(|e| e.to_string()))
        },
        {
            let q = q.clone();
            spawn(move || {
                q.send_deadline(4, Instant::now() + LONG)
                    .map_err(|e| e.to_string())
            })
        },
        {
            let q = q.clone();
            spawn(move || match block_on(q.send(5).timeout(LONG)) {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(Timeout) => Err("timeout".into()),
            })
        },
    ];
    thread::sleep(SETTLE);
    for rx in &forms {
        assert!(rx.try_recv().is_err(), "a send finished while full");
    }
    assert!(q.is_full());
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(q.recv_timeout(HANG).unwrap());
    }
    for rx in &forms {
        assert_eq!(recv(rx), Ok(()));
    }
    assert_eq!(got[0], 0);
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2, 3, 4, 5]);
    assert!(q.is_empty());
}

#[test]
fn every_recv_form_waits_while_empty_then_succeeds() {
    let q = Arc::new(Queue::<usize>::bounded(8));
    let forms: Vec<mpsc::Receiver<Result<usize, String>>> = vec![
        {
            let q = q.clone();
            spawn(move || block_on(q.recv()).map_err(|e| e.to_string()))
        },
        {
            let q = q.clone();
            spawn(move || q.recv_blocking().map_err(|e| e.to_string()))
        },
        {
            let q = q.clone();
            spawn(move || q.recv_timeout(LONG).map_err(|e| e.to_string()))
        },
        {
            let q = q.clone();
            spawn(move || {
                q.recv_deadline(Instant::now() + LONG)
                    .map_err(|e| e.to_string())
            })
        },
        {
            let q = q.clone();
            spawn(move || match block_on(q.recv().timeout(LONG)) {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(Timeout) => Err("timeout".into()),
            })
        },
    ];
    thread::sleep(SETTLE);
    for rx in &forms {
        assert!(rx.try_recv().is_err(), "a recv finished on an empty queue");
    }
    for i in 1..=5 {
        q.try_send(i).unwrap();
    }
    let mut got: Vec<usize> = forms.iter().map(|rx| recv(rx).unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, [1, 2, 3, 4, 5]);
    assert!(q.is_empty());
}

#[test]
fn blocking_send_waits_while_full() {
    let q = Arc::new(Queue::bounded(2));
    q.try_send(1).unwrap();
    q.try_send(2).unwrap();
    let p = q.clone();
    let r = blocks_until(
        move || p.send_blocking(3),
        || assert_eq!(q.try_recv(), Ok(1)),
    );
    assert_eq!(r, Ok(()));
    assert_eq!(drain(&q), [2, 3]);
}

#[test]
fn async_send_waits_while_full() {
    let q = Queue::bounded(2);
    q.try_send(1).unwrap();
    q.try_send(2).unwrap();
    let count = Arc::new(CountWake(AtomicUsize::new(0)));
    let waker = futures::task::waker(count.clone());
    let mut cx = Context::from_waker(&waker);
    let mut s = Box::pin(q.send(3));
    assert!(s.as_mut().poll(&mut cx).is_pending());
    assert!(s.as_mut().poll(&mut cx).is_pending());
    assert_eq!(count.0.load(SeqCst), 0);
    assert_eq!(q.try_recv(), Ok(1));
    assert_eq!(count.0.load(SeqCst), 1, "the waiting sender is woken once");
    assert_eq!(s.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
    assert_eq!(drain(&q), [2, 3]);
}

#[test]
fn waiting_async_senders_are_served_in_fifo_order() {
    let q = Queue::bounded(1);
    q.try_send(0).unwrap();
    let mut s: Vec<_> = (1..=4).map(|i| Box::pin(q.send(i))).collect();
    for f in &mut s {
        assert!(poll_once(f.as_mut()).is_pending());
    }
    for i in 0..4 {
        // One place frees: it is the first waiter's, not a later one's, nor `try_send`'s.
        assert_eq!(q.try_recv(), Ok(i));
        for later in s[i + 1..].iter_mut().rev() {
            assert!(poll_once(later.as_mut()).is_pending());
        }
        assert!(
            q.is_full(),
            "the freed place is reserved for the head sender"
        );
        assert_eq!(q.try_send(99), Err(TrySendError::Full(99)));
        assert_eq!(poll_once(s[i].as_mut()), Poll::Ready(Ok(())));
    }
    assert_eq!(q.try_recv(), Ok(4));
    assert!(q.is_empty());
}

#[test]
fn waiting_blocking_senders_are_served_in_fifo_order() {
    let q = Arc::new(Queue::bounded(1));
    q.try_send(0).unwrap();
    let senders: Vec<_> = (1..=3)
        .map(|i| {
            let q = q.clone();
            let rx = spawn(move || q.send_blocking(i));
            thread::sleep(SETTLE);
            rx
        })
        .collect();
    for rx in &senders {
        assert!(rx.try_recv().is_err());
    }
    // With one place, only the sender the place went to can push: items show the order.
    for i in 0..=3 {
        assert_eq!(q.recv_timeout(HANG), Ok(i));
    }
    for rx in &senders {
        assert_eq!(recv(rx), Ok(()));
    }
}

#[test]
fn waiting_receivers_are_served_in_fifo_order() {
    let q = Queue::unbounded();
    let mut r: Vec<_> = (0..4).map(|_| Box::pin(q.recv())).collect();
    for f in &mut r {
        assert!(poll_once(f.as_mut()).is_pending());
    }
    for i in 0..4 {
        q.try_send(i).unwrap();
        // The item is the head receiver's: later ones and `try_recv` do not get it.
        for later in r[i + 1..].iter_mut() {
            assert!(poll_once(later.as_mut()).is_pending());
        }
        assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(q.len(), 1);
        assert_eq!(poll_once(r[i].as_mut()), Poll::Ready(Ok(i)));
    }
    assert!(q.is_empty());
}

#[test]
fn send_and_recv_time_out() {
    let drops = Drops::default();
    let q = Queue::bounded(1);
    assert_eq!(
        q.recv_timeout(ms(20)).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    assert_eq!(
        q.recv_deadline(Instant::now() + ms(20)).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    q.try_send(drops.item(0)).unwrap();
    let e = q.send_timeout(drops.item(1), ms(20)).unwrap_err();
    assert!(matches!(&e, SendTimeoutError::Timeout(it) if it.id == 1));
    let e2 = q
        .send_deadline(drops.item(2), Instant::now() + ms(20))
        .unwrap_err();
    assert!(matches!(&e2, SendTimeoutError::Timeout(it) if it.id == 2));
    assert_eq!(drops.get(), 0);
    drop((e, e2));
    assert_eq!(drops.get(), 2);
    // The timed-out waiters left the queues: nothing is reserved for a ghost.
    assert_eq!(q.try_recv().unwrap().id, 0);
    q.try_send(drops.item(3)).unwrap();
    assert_eq!(q.try_recv().unwrap().id, 3);
    assert_eq!(q.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(drops.get(), 4);
}

#[test]
fn wait_then_time_out_then_others_are_served() {
    // A blocking sender times out while a patient one waits behind it.
    let q = Arc::new(Queue::bounded(1));
    q.try_send(0).unwrap();
    let t = q.clone();
    let timed = spawn(move || t.send_timeout(1, ms(100)));
    thread::sleep(SETTLE / 4);
    let t = q.clone();
    let patient = spawn(move || t.send_blocking(2));
    assert_eq!(recv(&timed), Err(SendTimeoutError::Timeout(1)));
    assert_eq!(q.recv_timeout(HANG), Ok(0));
    assert_eq!(recv(&patient), Ok(()));
    assert_eq!(q.try_recv(), Ok(2));
    // A blocking receiver times out while a patient one waits behind it.
    let t = q.clone();
    let timed = spawn(move || t.recv_timeout(ms(100)));
    thread::sleep(SETTLE / 4);
    let t = q.clone();
    let patient = spawn(move || t.recv_blocking());
    assert_eq!(recv(&timed), Err(RecvTimeoutError::Timeout));
    q.try_send(3).unwrap();
    assert_eq!(recv(&patient), Ok(3));
    assert!(q.is_empty());
}

#[test]
fn zero_and_past_deadlines() {
    let q = Queue::bounded(2);
    let z = Duration::ZERO;
    // A place is free / an item is there: they succeed.
    q.send_timeout(1, z).unwrap();
    q.send_deadline(2, past()).unwrap();
    assert_eq!(q.send_timeout(3, z), Err(SendTimeoutError::Timeout(3)));
    assert_eq!(
        q.send_deadline(4, past()),
        Err(SendTimeoutError::Timeout(4))
    );
    assert_eq!(q.len(), 2);
    assert_eq!(q.recv_timeout(z), Ok(1));
    assert_eq!(q.recv_deadline(past()), Ok(2));
    assert_eq!(q.recv_timeout(z), Err(RecvTimeoutError::Timeout));
    assert_eq!(q.recv_deadline(past()), Err(RecvTimeoutError::Timeout));
    // The same through `WaitExt`.
    assert_eq!(block_on(q.send(5).timeout(z)), Ok(Ok(())));
    assert_eq!(block_on(q.send(6).deadline(past())), Ok(Ok(())));
    assert_eq!(block_on(q.send(7).timeout(z)), Err(Timeout));
    assert_eq!(block_on(q.send(8).deadline(past())), Err(Timeout));
    assert_eq!(block_on(q.recv().timeout(z)), Ok(Ok(5)));
    assert_eq!(block_on(q.recv().deadline(past())), Ok(Ok(6)));
    assert_eq!(block_on(q.recv().timeout(z)), Err(Timeout));
    assert_eq!(block_on(q.recv().deadline(past())), Err(Timeout));
    // Nothing was left queued by the failures: both ends work at once.
    q.try_send(9).unwrap();
    q.try_send(10).unwrap();
    assert_eq!(drain(&q), [9, 10]);
    // Closed and drained: Closed, not Timeout, even with no time left.
    q.close();
    assert_eq!(q.recv_timeout(z), Err(RecvTimeoutError::Closed));
    assert_eq!(q.recv_deadline(past()), Err(RecvTimeoutError::Closed));
    assert_eq!(q.send_timeout(11, z), Err(SendTimeoutError::Closed(11)));
    assert_eq!(block_on(q.recv().timeout(z)), Ok(Err(RecvError)));
}

#[test]
fn zero_deadline_does_not_overtake_a_waiting_sender() {
    let q = Queue::bounded(1);
    q.try_send(0).unwrap();
    let mut s = Box::pin(q.send(1));
    assert!(poll_once(s.as_mut()).is_pending());
    assert_eq!(q.try_recv(), Ok(0));
    // The free place belongs to the waiting sender.
    assert_eq!(
        q.send_timeout(2, Duration::ZERO),
        Err(SendTimeoutError::Timeout(2))
    );
    assert_eq!(
        q.send_deadline(3, past()),
        Err(SendTimeoutError::Timeout(3))
    );
    assert_eq!(poll_once(s.as_mut()), Poll::Ready(Ok(())));
    assert_eq!(q.recv_deadline(past()), Ok(1));
}

// ---- close ---------------------------------------------------------------------------------

#[test]
fn close_fails_waiting_senders_with_their_item() {
    let drops = Drops::default();
    let q = Arc::new(Queue::bounded(1));
    q.try_send(drops.item(0)).unwrap();
    let count = Arc::new(CountWake(AtomicUsize::new(0)));
    let waker = futures::task::waker(count.clone());
    let mut cx = Context::from_waker(&waker);
    let mut s1 = Box::pin(q.send(drops.item(1)));
    let mut s2 = Box::pin(q.send(drops.item(2)).timeout(LONG));
    assert!(s1.as_mut().poll(&mut cx).is_pending());
    assert!(s2.as_mut().poll(&mut cx).is_pending());
    let threads = [
        {
            let (q, d) = (q.clone(), drops.clone());
            spawn(move || q.send_blocking(d.item(3)).unwrap_err().into_inner().id)
        },
        {
            let (q, d) = (q.clone(), drops.clone());
            spawn(move || match q.send_timeout(d.item(4), LONG) {
                Err(SendTimeoutError::Closed(it)) => it.id,
                other => panic!("send_timeout ended with {other:?}"),
            })
        },
        {
            let (q, d) = (q.clone(), drops.clone());
            spawn(
                move || match q.send_deadline(d.item(5), Instant::now() + LONG) {
                    Err(SendTimeoutError::Closed(it)) => it.id,
                    other => panic!("send_deadline ended with {other:?}"),
                },
            )
        },
    ];
    thread::sleep(SETTLE);
    for rx in &threads {
        assert!(rx.try_recv().is_err(), "a sender finished before close");
    }
    assert_eq!(count.0.load(SeqCst), 0);
    q.close();
    assert_eq!(count.0.load(SeqCst), 2, "both tasks are woken");
    match s1.as_mut().poll(&mut cx) {
        Poll::Ready(Err(e)) => assert_eq!(e.into_inner().id, 1),
        other => panic!("send ended with {other:?}"),
    }
    match s2.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(Err(SendError(it)))) => assert_eq!(it.id, 2),
        other => panic!("send with a deadline ended with {other:?}"),
    }
    for (rx, id) in threads.iter().zip(3..) {
        assert_eq!(recv(rx), id);
    }
    // Every item came back and was dropped once; the one inside is still there.
    assert_eq!(drops.get(), 5);
    drop((s1, s2));
    assert_eq!(drops.get(), 5);
    assert_eq!(q.try_recv().unwrap().id, 0);
    assert_eq!(q.try_recv().unwrap_err(), TryRecvError::Closed);
    assert_eq!(drops.get(), 6);
}

#[test]
fn receivers_drain_a_closed_queue_then_fail() {
    let q = Queue::bounded(8);
    for i in 0..6 {
        q.try_send(i).unwrap();
    }
    assert!(!q.is_closed());
    q.close();
    assert!(q.is_closed());
    assert_eq!(q.len(), 6);
    assert_eq!(q.try_send(6), Err(TrySendError::Closed(6)));
    assert_eq!(block_on(q.recv()), Ok(0));
    assert_eq!(q.try_recv(), Ok(1));
    assert_eq!(q.recv_blocking(), Ok(2));
    assert_eq!(q.recv_timeout(LONG), Ok(3));
    assert_eq!(q.recv_deadline(past()), Ok(4));
    assert_eq!(block_on(q.recv().timeout(LONG)), Ok(Ok(5)));
    assert!(q.is_empty());
    // Drained: every form fails at once.
    assert_eq!(block_on(q.recv()), Err(RecvError));
    assert_eq!(q.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(q.recv_blocking(), Err(RecvError));
    assert_eq!(q.recv_timeout(LONG), Err(RecvTimeoutError::Closed));
    assert_eq!(
        q.recv_deadline(Instant::now() + LONG),
        Err(RecvTimeoutError::Closed)
    );
    assert_eq!(block_on(q.recv().timeout(LONG)), Ok(Err(RecvError)));
    // Closing again changes nothing.
    q.close();
    assert!(q.is_closed());
    assert_eq!(q.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn close_of_an_empty_queue_wakes_waiting_receivers() {
    let q = Arc::new(Queue::<usize>::unbounded());
    let count = Arc::new(CountWake(AtomicUsize::new(0)));
    let waker = futures::task::waker(count.clone());
    let mut cx = Context::from_waker(&waker);
    let mut r1 = Box::pin(q.recv());
    let mut r2 = Box::pin(q.recv().timeout(LONG));
    assert!(r1.as_mut().poll(&mut cx).is_pending());
    assert!(r2.as_mut().poll(&mut cx).is_pending());
    let rt = multi_thread_rt(2);
    let t = q.clone();
    let task = spawn_task(&rt, async move { t.recv().await });
    let threads = [
        {
            let q = q.clone();
            spawn(move || q.recv_blocking().map_err(|_| RecvTimeoutError::Closed))
        },
        {
            let q = q.clone();
            spawn(move || q.recv_timeout(LONG))
        },
        {
            let q = q.clone();
            spawn(move || q.recv_deadline(Instant::now() + LONG))
        },
    ];
    thread::sleep(SETTLE);
    for rx in &threads {
        assert!(rx.try_recv().is_err(), "a receiver finished before close");
    }
    assert!(task.try_recv().is_err());
    q.close();
    assert_eq!(count.0.load(SeqCst), 2, "both receivers are woken");
    assert_eq!(r1.as_mut().poll(&mut cx), Poll::Ready(Err(RecvError)));
    assert_eq!(r2.as_mut().poll(&mut cx), Poll::Ready(Ok(Err(RecvError))));
    assert_eq!(recv(&task), Err(RecvError));
    for rx in &threads {
        assert_eq!(recv(rx), Err(RecvTimeoutError::Closed));
    }
}

#[test]
fn close_fails_a_reserve_granted_its_place_but_not_yet_taken() {
    // A reserve whose place was granted before the close but that has not taken it yet:
    // the close wins (the queue's closed bit stops its claim), the reserve fails, and
    // receivers see the queue drained at once instead of waiting for it.
    let q = Queue::bounded(1);
    q.try_send(0).unwrap();
    let mut res = Box::pin(q.reserve());
    assert!(poll_once(res.as_mut()).is_pending());
    let mut r = Box::pin(q.recv());
    assert_eq!(q.try_recv(), Ok(0)); // its place goes to the waiting reserve
    q.close();
    assert_eq!(poll_once(r.as_mut()), Poll::Ready(Err(RecvError)));
    assert!(matches!(
        poll_once(res.as_mut()),
        Poll::Ready(Err(toro_sync::Closed))
    ));
    assert_eq!(q.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(q.recv_timeout(ms(100)), Err(RecvTimeoutError::Closed));
    assert!(!q.is_full(), "the failed reserve gave its place back");
}

#[test]
fn a_send_moved_in_before_the_close_is_delivered_after_it() {
    // A waiting send's item enters when its place frees (API.md), here by the receive
    // that empties the queue, before the close: it is sent, and received after the close.
    let q = Queue::bounded(1);
    q.try_send(0).unwrap();
    let mut s = Box::pin(q.send(1));
    assert!(poll_once(s.as_mut()).is_pending());
    assert_eq!(q.try_recv(), Ok(0));
    q.close();
    assert!(matches!(poll_once(s.as_mut()), Poll::Ready(Ok(()))));
    assert_eq!(q.recv_timeout(ms(100)), Ok(1));
    assert_eq!(q.try_recv(), Err(TryRecvError::Closed));
}

/// A `reserve` future whose place was handed to it before the close, then dropped
/// unpolled: it took nothing, its place comes home, and receivers must then be told
/// "closed and drained". (`reserve` cancelled from a `select!` right after a receiver
/// freed a place.)
#[test]
fn reserve_granted_then_dropped_after_close_lets_receivers_see_closed() {
    let q = Queue::<u32>::bounded(1);
    q.try_send(0).unwrap();
    let mut res = Box::pin(q.reserve());
    assert!(poll_once(res.as_mut()).is_pending());
    // The freed place is handed to `res`.
    assert_eq!(q.try_recv(), Ok(0));
    q.close();
    drop(res);
    assert!(q.is_empty());
    assert_eq!(q.try_recv().unwrap_err(), TryRecvError::Closed);
    assert_eq!(
        q.recv_timeout(ms(100)).unwrap_err(),
        RecvTimeoutError::Closed
    );
}

/// A `send` future dropped after its place freed and its item was moved in (API.md: then
/// it was sent): the item is delivered once, even after a close, and dropped once.
#[test]
fn send_moved_in_then_dropped_after_close_is_still_delivered() {
    let drops = Drops::default();
    let q = Queue::bounded(1);
    q.try_send(drops.item(0)).unwrap();
    let mut s = Box::pin(q.send(drops.item(1)));
    assert!(poll_once(s.as_mut()).is_pending());
    assert_eq!(q.try_recv().unwrap().id, 0);
    q.close();
    drop(s);
    assert_eq!(
        drops.get(),
        1,
        "the moved-in item is not dropped with its future"
    );
    assert_eq!(q.try_recv().unwrap().id, 1);
    assert_eq!(drops.get(), 2);
    assert_eq!(q.try_recv().unwrap_err(), TryRecvError::Closed);
}

#[test]
fn close_racing_sends_and_recvs_from_threads_loses_nothing() {
    const ROUNDS: u64 = if cfg!(miri) { 2 } else { 40 };
    for round in 0..ROUNDS {
        let mut rng = Rng::new(round);
        let q = Arc::new(if round % 4 == 0 {
            Queue::unbounded()
        } else {
            Queue::bounded(1 + rng.below(4) as usize)
        });
        let next = Arc::new(AtomicUsize::new(0));
        let producers: Vec<_> = (0..3)
            .map(|p| {
                let (q, next) = (q.clone(), next.clone());
                spawn(move || {
                    let mut rng = Rng::new(round * 10 + p);
                    let mut sent = Vec::new();
                    // Async sends given up by their timeout: their item may have been
                    // moved in meanwhile (API.md: then it was sent).
                    let mut maybe = Vec::new();
                    loop {
                        let id = next.fetch_add(1, SeqCst);
                        let back = match rng.below(5) {
                            0 => q.send_blocking(id).map_err(|e| Some(e.into_inner())),
                            1 => q.try_send(id).map_err(|e| match e {
                                TrySendError::Full(_) => None,
                                TrySendError::Closed(x) => Some(x),
                            }),
                            2 => q.send_timeout(id, rng.micros(300)).map_err(|e| match e {
                                SendTimeoutError::Timeout(_) => None,
                                SendTimeoutError::Closed(x) => Some(x),
                            }),
                            3 => match q.send_deadline(id, Instant::now() + rng.micros(300)) {
                                Ok(()) => Ok(()),
                                Err(SendTimeoutError::Timeout(_)) => Err(None),
                                Err(SendTimeoutError::Closed(x)) => Err(Some(x)),
                            },
                            _ => match block_on(q.send(id).timeout(rng.micros(300))) {
                                Ok(r) => r.map_err(|e| Some(e.into_inner())),
                                Err(Timeout) => {
                                    maybe.push(id);
                                    Err(None)
                                }
                            },
                        };
                        match back {
                            Ok(()) => sent.push(id),
                            Err(None) => {}
                            Err(Some(x)) => {
                                assert_eq!(x, id, "another item came back");
                                return (sent, maybe);
                            }
                        }
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..3)
            .map(|c| {
                let q = q.clone();
                spawn(move || {
                    let mut rng = Rng::new(round * 10 + 5 + c);
                    let mut got = Vec::new();
                    loop {
                        let r = match rng.below(5) {
                            0 => q.recv_blocking().map_err(|_| true),
                            1 => q.try_recv().map_err(|e| e == TryRecvError::Closed),
                            2 => q
                                .recv_timeout(rng.micros(300))
                                .map_err(|e| e == RecvTimeoutError::Closed),
                            3 => q
                                .recv_deadline(Instant::now() + rng.micros(300))
                                .map_err(|e| e == RecvTimeoutError::Closed),
                            _ => match block_on(q.recv().timeout(rng.micros(300))) {
                                Ok(r) => r.map_err(|_| true),
                                Err(Timeout) => Err(false),
                            },
                        };
                        match r {
                            Ok(id) => got.push(id),
                            Err(false) => {}
                            Err(true) => return got,
                        }
                    }
                })
            })
            .collect();
        thread::sleep(rng.micros(3000));
        q.close();
        let (sent, maybe): (Vec<_>, Vec<_>) = producers.iter().map(recv).unzip();
        let sent: HashSet<usize> = sent.into_iter().flatten().collect();
        let maybe: HashSet<usize> = maybe.into_iter().flatten().collect();
        let got: Vec<usize> = consumers.iter().flat_map(recv).collect();
        let got_set: HashSet<usize> = got.iter().copied().collect();
        assert_eq!(
            got_set.len(),
            got.len(),
            "round {round}: an item received twice"
        );
        assert!(
            sent.is_subset(&got_set),
            "round {round}: a sent item was lost"
        );
        assert!(
            got_set
                .iter()
                .all(|id| sent.contains(id) || maybe.contains(id)),
            "round {round}: received an item that was not sent"
        );
        assert_eq!(q.try_recv(), Err(TryRecvError::Closed));
    }
}

#[test]
fn close_racing_tasks_loses_nothing() {
    const ROUNDS: u64 = if cfg!(miri) { 2 } else { 30 };
    let rt = multi_thread_rt(2);
    for round in 0..ROUNDS {
        let mut rng = Rng::new(1000 + round);
        let q = Arc::new(Queue::bounded(1 + rng.below(3) as usize));
        let next = Arc::new(AtomicUsize::new(0));
        let producers: Vec<_> = (0..4)
            .map(|_| {
                let (q, next) = (q.clone(), next.clone());
                spawn_task(&rt, async move {
                    let mut sent = Vec::new();
                    loop {
                        let id = next.fetch_add(1, SeqCst);
                        match q.send(id).await {
                            Ok(()) => sent.push(id),
                            Err(SendError(x)) => {
                                assert_eq!(x, id);
                                return sent;
                            }
                        }
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..4)
            .map(|c| {
                let q = q.clone();
                spawn_task(&rt, async move {
                    let mut rng = Rng::new(round * 10 + c);
                    let mut got = Vec::new();
                    loop {
                        // Some receives are cancelled by a runtime timer; none may lose an item.
                        let r = if rng.below(2) == 0 {
                            q.recv().await
                        } else {
                            match tokio::time::timeout(rng.micros(200), q.recv()).await {
                                Ok(r) => r,
                                Err(_) => continue,
                            }
                        };
                        match r {
                            Ok(id) => got.push(id),
                            Err(RecvError) => return got,
                        }
                    }
                })
            })
            .collect();
        thread::sleep(rng.micros(3000));
        q.close();
        let mut sent: Vec<usize> = producers.iter().flat_map(recv).collect();
        let mut got: Vec<usize> = consumers.iter().flat_map(recv).collect();
        sent.sort_unstable();
        got.sort_unstable();
        assert_eq!(sent.len(), got.len(), "round {round}: lost or doubled");
        assert!(sent == got, "round {round}: received other items than sent");
    }
}

// ---- cancellation --------------------------------------------------------------------------

#[test]
fn recv_dropped_before_first_poll() {
    let q = Queue::unbounded();
    drop(q.recv());
    q.try_send(1).unwrap();
    let f = q.recv();
    drop(f);
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_recv(), Ok(1));
}

#[test]
fn recv_granted_then_dropped_leaves_the_item_queued() {
    let drops = Drops::default();
    let q = Queue::unbounded();
    let mut r = Box::pin(q.recv());
    assert!(poll_once(r.as_mut()).is_pending());
    q.try_send(drops.item(1)).unwrap();
    // The item is the waiting receiver's: `try_recv` may not take it.
    assert_eq!(q.try_recv().unwrap_err(), TryRecvError::Empty);
    drop(r);
    assert_eq!(drops.get(), 0, "a cancelled recv dropped the item");
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_recv().unwrap().id, 1);
    assert_eq!(q.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(drops.get(), 1);
}

#[test]
fn recv_granted_then_dropped_passes_the_item_to_the_next_receiver() {
    let q = Queue::unbounded();
    let mut r1 = Box::pin(q.recv());
    let mut r2 = Box::pin(q.recv());
    assert!(poll_once(r1.as_mut()).is_pending());
    assert!(poll_once(r2.as_mut()).is_pending());
    q.try_send(1).unwrap();
    assert!(poll_once(r2.as_mut()).is_pending());
    drop(r1);
    assert_eq!(poll_once(r2.as_mut()), Poll::Ready(Ok(1)));
    assert!(q.is_empty());
}

#[test]
fn recv_granted_then_dropped_passes_the_item_to_a_thread() {
    let q = Arc::new(Queue::unbounded());
    let mut r = Box::pin(q.recv());
    assert!(poll_once(r.as_mut()).is_pending());
    let t = q.clone();
    let thread = spawn(move || t.recv_blocking());
    thread::sleep(SETTLE);
    q.try_send(7).unwrap();
    thread::sleep(SETTLE);
    assert!(
        thread.try_recv().is_err(),
        "the thread overtook the first receiver"
    );
    drop(r);
    assert_eq!(recv(&thread), Ok(7));
    assert!(q.is_empty());
}

#[test]
fn recv_dropped_while_waiting_leaves_no_ghost() {
    let q = Queue::unbounded();
    let mut r = Box::pin(q.recv());
    assert!(poll_once(r.as_mut()).is_pending());
    assert!(poll_once(r.as_mut()).is_pending());
    drop(r);
    q.try_send(1).unwrap();
    assert_eq!(q.try_recv(), Ok(1));
}

#[test]
fn recv_dropped_on_another_thread_after_one_poll() {
    let q = Queue::unbounded();
    thread::scope(|scope| {
        let mut r = Box::pin(q.recv());
        assert!(poll_once(r.as_mut()).is_pending());
        q.try_send(1).unwrap();
        scope.spawn(move || drop(r));
    });
    assert_eq!(q.try_recv(), Ok(1));
}

#[test]
fn send_dropped_before_first_poll_drops_its_item() {
    let drops = Drops::default();
    let q = Queue::bounded(1);
    drop(q.send(drops.item(1)));
    assert_eq!(drops.get(), 1);
    assert!(q.is_empty());
    q.try_send(drops.item(2)).unwrap();
    assert_eq!(q.try_recv().unwrap().id, 2);
}

#[test]
fn send_dropped_while_waiting_drops_its_item_and_keeps_order() {
    let drops = Drops::default();
    let q = Queue::bounded(1);
    q.try_send(drops.item(0)).unwrap();
    let mut s1 = Box::pin(q.send(drops.item(1)));
    let mut s2 = Box::pin(q.send(drops.item(2)));
    assert!(poll_once(s1.as_mut()).is_pending());
    assert!(poll_once(s2.as_mut()).is_pending());
    drop(s1);
    assert_eq!(drops.get(), 1, "the cancelled send's item is dropped");
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_recv().unwrap().id, 0);
    assert!(matches!(poll_once(s2.as_mut()), Poll::Ready(Ok(()))));
    assert_eq!(q.try_recv().unwrap().id, 2);
    assert!(q.is_empty());
    drop(s2);
    drop(q);
    assert_eq!(drops.get(), 3);
}

#[test]
fn reserve_granted_then_dropped_passes_the_place_to_the_next_sender() {
    let drops = Drops::default();
    let q = Queue::bounded(1);
    q.try_send(drops.item(0)).unwrap();
    let mut r1 = Box::pin(q.reserve());
    let mut s2 = Box::pin(q.send(drops.item(2)));
    assert!(poll_once(r1.as_mut()).is_pending());
    assert!(poll_once(s2.as_mut()).is_pending());
    // The freed place goes to `r1`; `s2` waits on.
    assert_eq!(q.try_recv().unwrap().id, 0);
    assert!(poll_once(s2.as_mut()).is_pending());
    // `r1` is dropped unpolled: it took nothing, and `s2` gets the place.
    drop(r1);
    assert!(q.is_empty());
    assert!(matches!(poll_once(s2.as_mut()), Poll::Ready(Ok(()))));
    assert_eq!(q.try_recv().unwrap().id, 2);
    assert_eq!(q.try_recv().unwrap_err(), TryRecvError::Empty);
    drop(s2);
    drop(q);
    assert_eq!(drops.get(), 2);
}

#[test]
fn waiting_sends_are_moved_in_in_line_order() {
    let q = Queue::bounded(1);
    q.try_send(0).unwrap();
    let mut s1 = Box::pin(q.send(1));
    let mut s2 = Box::pin(q.send(2));
    assert!(poll_once(s1.as_mut()).is_pending());
    assert!(poll_once(s2.as_mut()).is_pending());
    assert_eq!(q.try_recv(), Ok(0)); // moves 1 in
    assert_eq!(q.try_recv(), Ok(1)); // moves 2 in
    assert!(matches!(poll_once(s2.as_mut()), Poll::Ready(Ok(()))));
    assert!(matches!(poll_once(s1.as_mut()), Poll::Ready(Ok(()))));
    assert_eq!(q.try_recv(), Ok(2));
    assert_eq!(q.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn reserve_granted_then_dropped_passes_the_place_to_a_thread() {
    let q = Arc::new(Queue::bounded(1));
    q.try_send(0).unwrap();
    let mut res = Box::pin(q.reserve());
    assert!(poll_once(res.as_mut()).is_pending());
    let t = q.clone();
    let thread = spawn(move || t.send_blocking(2));
    thread::sleep(SETTLE);
    assert_eq!(q.try_recv(), Ok(0));
    thread::sleep(SETTLE);
    assert!(
        thread.try_recv().is_err(),
        "the thread overtook the waiting reserve"
    );
    drop(res);
    assert_eq!(recv(&thread), Ok(()));
    assert_eq!(q.try_recv(), Ok(2));
    assert!(q.is_empty());
}

#[test]
fn reserve_granted_then_dropped_returns_the_place() {
    let q = Queue::bounded(1);
    q.try_send(0).unwrap();
    let mut res = Box::pin(q.reserve());
    assert!(poll_once(res.as_mut()).is_pending());
    assert_eq!(q.try_recv(), Ok(0));
    assert!(q.is_full(), "the place is reserved for the waiting reserve");
    drop(res);
    assert!(!q.is_full());
    assert!(q.is_empty());
    q.try_send(2).unwrap();
    assert_eq!(drain(&q), [2]);
}

#[test]
fn wait_ext_timeouts_lose_nothing() {
    let drops = Drops::default();
    let q = Queue::bounded(1);
    // Nothing but the crate's timer wakes these.
    assert_eq!(block_on(q.recv().timeout(ms(20))).unwrap_err(), Timeout);
    assert_eq!(
        block_on(q.recv().deadline(Instant::now() + ms(20))).unwrap_err(),
        Timeout
    );
    q.try_send(drops.item(0)).unwrap();
    assert_eq!(
        q.try_recv().unwrap().id,
        0,
        "a timed-out receiver kept its place"
    );
    q.try_send(drops.item(1)).unwrap();
    assert_eq!(
        block_on(q.send(drops.item(2)).timeout(ms(20))).unwrap_err(),
        Timeout
    );
    assert_eq!(
        block_on(q.send(drops.item(3)).deadline(Instant::now() + ms(20))).unwrap_err(),
        Timeout
    );
    assert_eq!(drops.get(), 3, "timed-out sends drop their items");
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_recv().unwrap().id, 1);
    q.try_send(drops.item(4)).unwrap();
    assert_eq!(q.try_recv().unwrap().id, 4);
    assert_eq!(q.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(drops.get(), 5);
}

#[test]
fn wait_ext_succeeds_when_woken_before_the_deadline() {
    let q = Arc::new(Queue::bounded(1));
    let t = q.clone();
    let r = blocks_until(
        move || block_on(t.recv().timeout(LONG)),
        || q.try_send(1).unwrap(),
    );
    assert_eq!(r, Ok(Ok(1)));
    q.try_send(2).unwrap();
    let t = q.clone();
    let r = blocks_until(
        move || block_on(t.send(3).timeout(LONG)),
        || assert_eq!(q.try_recv(), Ok(2)),
    );
    assert_eq!(r, Ok(Ok(())));
    assert_eq!(q.try_recv(), Ok(3));
}

#[test]
fn tokio_timeout_and_select_cancel_recv_and_send() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let drops = Drops::default();
    let q = Queue::bounded(1);
    rt.block_on(async {
        assert!(tokio::time::timeout(ms(20), q.recv()).await.is_err());
        tokio::select! {
            r = q.recv() => panic!("received {r:?} from an empty queue"),
            _ = tokio::time::sleep(ms(20)) => {}
        }
        // No cancelled receiver holds a place in line.
        q.try_send(drops.item(0)).unwrap();
        assert!(tokio::time::timeout(ms(20), q.send(drops.item(1)))
            .await
            .is_err());
        tokio::select! {
            r = q.send(drops.item(2)) => panic!("sent into a full queue: {r:?}"),
            _ = tokio::time::sleep(ms(20)) => {}
        }
        assert_eq!(drops.get(), 2, "cancelled sends drop their items");
        assert_eq!(q.recv().await.unwrap().id, 0);
        // No cancelled sender holds a place in line.
        q.try_send(drops.item(3)).unwrap();
        assert_eq!(q.recv().await.unwrap().id, 3);
    });
    assert_eq!(drops.get(), 4);
    assert!(q.is_empty());
}

#[test]
fn select_over_two_queues_loses_nothing() {
    let rt = multi_thread_rt(2);
    let (a, b) = (Arc::new(Queue::bounded(2)), Arc::new(Queue::bounded(2)));
    let per = N / 4;
    let feed = |q: &Arc<Queue<usize>>, base: usize| {
        let q = q.clone();
        spawn(move || {
            for i in 0..per {
                q.send_blocking(base + i).unwrap();
            }
            q.close();
        })
    };
    let (fa, fb) = (feed(&a, 0), feed(&b, per));
    let (ca, cb) = (a.clone(), b.clone());
    let got = spawn_task(&rt, async move {
        let mut got = Vec::new();
        let (mut a_open, mut b_open) = (true, true);
        while a_open || b_open {
            // The losing branch's recv is dropped, possibly after an item was handed to it.
            tokio::select! {
                r = ca.recv(), if a_open => match r {
                    Ok(x) => got.push(x),
                    Err(RecvError) => a_open = false,
                },
                r = cb.recv(), if b_open => match r {
                    Ok(x) => got.push(x),
                    Err(RecvError) => b_open = false,
                },
            }
        }
        got
    });
    recv(&fa);
    recv(&fb);
    let got = recv(&got);
    let (from_a, from_b): (Vec<usize>, Vec<usize>) = got.into_iter().partition(|&x| x < per);
    assert!(
        from_a.iter().copied().eq(0..per),
        "queue a: lost, doubled or reordered"
    );
    assert!(
        from_b.iter().copied().eq(per..2 * per),
        "queue b: lost, doubled or reordered"
    );
}

#[test]
fn poll_once_then_drop_in_a_loop_loses_nothing() {
    // A receiver polled once, then an item sent, then the receiver dropped, many times in
    // a row and across segment boundaries: each item stays queued for the next receiver.
    let q = Queue::unbounded();
    for i in 0..3 * SEGMENT {
        {
            let mut r = pin!(q.recv());
            assert!(poll_once(r.as_mut()).is_pending());
            q.try_send(i).unwrap();
        }
        assert_eq!(q.try_recv(), Ok(i));
    }
    assert!(q.is_empty());
    // Senders likewise on a full queue: none of their items gets in.
    let drops = Drops::default();
    let q = Queue::bounded(1);
    q.try_send(drops.item(0)).unwrap();
    for i in 1..=3 * SEGMENT {
        {
            let mut s = pin!(q.send(drops.item(i)));
            assert!(poll_once(s.as_mut()).is_pending());
        }
        assert_eq!(drops.get(), i);
    }
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_recv().unwrap().id, 0);
    assert!(q.is_empty());
}

/// Counts the polls of `fut` that return `Pending`.
async fn count_pending<F: Future>(fut: F, pending: &std::cell::Cell<usize>) -> F::Output {
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx| {
        let p = fut.as_mut().poll(cx);
        if p.is_pending() {
            pending.set(pending.get() + 1);
        }
        p
    })
    .await
}

/// A `bounded(1)` hand-off between two tasks on one thread: the receive that takes the
/// item moves the waiting send's next item in, and an item sent while the receiver waits
/// is handed to it and takes no place, so each side waits about once every three
/// messages (once a message before the move-in, once every two before the hand-over).
#[test]
fn a_bounded_one_hand_off_waits_once_every_three_messages() {
    use futures::task::LocalSpawnExt;
    use std::cell::Cell;
    use std::rc::Rc;
    const N: usize = 1000;
    let q = Rc::new(Queue::bounded(1));
    let (sends, recvs) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let mut pool = futures::executor::LocalPool::new();
    let spawner = pool.spawner();
    let (tq, tp) = (q.clone(), sends.clone());
    spawner
        .spawn_local(async move {
            for i in 0..N {
                count_pending(tq.send(i), &tp).await.unwrap();
            }
        })
        .unwrap();
    let (rq, rp) = (q.clone(), recvs.clone());
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    spawner
        .spawn_local(async move {
            for i in 0..N {
                assert_eq!(count_pending(rq.recv(), &rp).await, Ok(i));
                g.set(g.get() + 1);
            }
        })
        .unwrap();
    pool.run();
    assert_eq!(got.get(), N);
    assert!(
        sends.get() <= N / 3 + 2,
        "sends waited {} times",
        sends.get()
    );
    assert!(
        recvs.get() <= N / 3 + 2,
        "receives waited {} times",
        recvs.get()
    );
    assert!(q.is_empty());
}

/// An item sent while a receiver waits is handed to it and takes no place (Toro's `put`
/// to a waiting `get`); if that receive is dropped before it takes the item, the item
/// stays queued, first, for the next receive, and the bound holds with it: the place the
/// hand-over left free takes one item, then the queue is full until the handed item is
/// taken.
#[test]
fn an_item_handed_to_a_receive_that_leaves_stays_queued_first() {
    let q = Queue::bounded(1);
    let mut recv = Box::pin(q.recv());
    assert!(poll_once(recv.as_mut()).is_pending());
    q.try_send(1).unwrap();
    drop(recv);
    assert_eq!(q.len(), 1);
    q.try_send(2).unwrap();
    assert_eq!(q.try_send(3), Err(TrySendError::Full(3)));
    assert!(q.is_full());
    assert_eq!(q.try_recv(), Ok(1));
    assert_eq!(
        q.try_send(3),
        Err(TrySendError::Full(3)),
        "item 2 fills the bound"
    );
    assert_eq!(q.try_recv(), Ok(2));
    q.try_send(3).unwrap();
    assert_eq!(q.try_recv(), Ok(3));
    assert!(q.is_empty() && !q.is_full());
}
