//! Unit tests of the segmented FIFO: order across segment boundaries, drops, zero-sized
//! items, MPMC conservation and segment reuse. The counts shrink under Miri, where they
//! also run: `cargo +nightly miri test --lib segqueue`.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;

use super::*;

/// Enough items to cross many segment boundaries.
const N: usize = if cfg!(miri) {
    4 * SEGMENT_CAP + 7
} else {
    100_000
};

#[test]
fn index_encoding() {
    assert_eq!(LAP, SEGMENT_CAP + 1);
    assert_eq!(position(5 << SHIFT | MARK), 5);
    assert_eq!(offset((LAP + 3) << SHIFT), 3);
    assert_eq!(offset((2 * LAP - 1) << SHIFT), SEGMENT_CAP);
    assert_eq!(lap((2 * LAP - 1) << SHIFT), 1);
    assert_eq!(lap((2 * LAP) << SHIFT), 2);
    assert_eq!(slots_before(0), 0);
    assert_eq!(slots_before(SEGMENT_CAP), SEGMENT_CAP);
    // "Between segments" counts as the start of the next lap.
    assert_eq!(slots_before(LAP - 1), slots_before(LAP));
    assert_eq!(slots_before(2 * LAP + 1), 2 * SEGMENT_CAP + 1);
    // The state bits are distinct.
    assert_eq!(WRITE | READ | DESTROY, 7);
    assert_eq!(WRITE & READ, 0);
}

#[test]
fn fifo_across_segments() {
    let q = SegQueue::new();
    assert!(q.is_empty());
    assert_eq!(q.pop(), None);
    for i in 0..N {
        q.push(i);
        assert_eq!(q.len(), i + 1);
    }
    for i in 0..N {
        assert_eq!(q.pop(), Some(i));
        assert_eq!(q.len(), N - i - 1);
    }
    assert_eq!(q.pop(), None);
    assert!(q.is_empty());
}

#[test]
fn interleaved_push_pop() {
    let q = SegQueue::new();
    let (mut next_in, mut next_out) = (0usize, 0usize);
    // Grow by two, shrink by one, then drain: the head and the tail cross every
    // boundary at different times.
    while next_in < N {
        q.push(next_in);
        q.push(next_in + 1);
        next_in += 2;
        assert_eq!(q.pop(), Some(next_out));
        next_out += 1;
        assert_eq!(q.len(), next_in - next_out);
    }
    while let Some(v) = q.pop() {
        assert_eq!(v, next_out);
        next_out += 1;
    }
    assert_eq!(next_out, next_in);
}

/// An item that records its own drop in a per-id counter.
struct Item {
    id: usize,
    drops: Arc<Vec<AtomicU8>>,
}

impl Item {
    fn new(id: usize, drops: &Arc<Vec<AtomicU8>>) -> Self {
        Self {
            id,
            drops: drops.clone(),
        }
    }
}

impl Drop for Item {
    fn drop(&mut self) {
        self.drops[self.id].fetch_add(1, Relaxed);
    }
}

fn drop_counters(n: usize) -> Arc<Vec<AtomicU8>> {
    Arc::new((0..n).map(|_| AtomicU8::new(0)).collect())
}

#[test]
fn every_item_dropped_once() {
    // Several cut points: empty, inside a segment, exactly at a boundary, far in.
    for popped in [0, 1, SEGMENT_CAP, SEGMENT_CAP + 1, N / 2, N] {
        let drops = drop_counters(N);
        let q = SegQueue::new();
        for id in 0..N {
            q.push(Item::new(id, &drops));
        }
        for id in 0..popped {
            let item = q.pop().unwrap();
            assert_eq!(item.id, id);
        }
        assert_eq!(q.len(), N - popped);
        drop(q);
        assert!(
            drops.iter().all(|d| d.load(Relaxed) == 1),
            "popped {popped}"
        );
    }
}

#[test]
fn drop_empty_and_after_drain() {
    drop(SegQueue::<String>::new());
    let q = SegQueue::new();
    for i in 0..N {
        q.push(i.to_string());
    }
    while q.pop().is_some() {}
    drop(q);
}

#[test]
fn zero_sized_items() {
    let q = SegQueue::new();
    for _ in 0..N {
        q.push(());
    }
    assert_eq!(q.len(), N);
    for _ in 0..N {
        assert_eq!(q.pop(), Some(()));
    }
    assert_eq!(q.pop(), None);

    // A zero-sized item with drop glue.
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Zst;
    impl Drop for Zst {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Relaxed);
        }
    }
    let q = SegQueue::new();
    for _ in 0..N {
        q.push(Zst);
    }
    for _ in 0..N / 3 {
        drop(q.pop().unwrap());
    }
    drop(q);
    assert_eq!(DROPS.load(Relaxed), N);
}

#[test]
fn large_items_do_not_touch_the_stack() {
    // A segment of these is ~2 MiB: built in place, never on the stack.
    let q = SegQueue::new();
    for i in 0..3 {
        q.push([i as u8; 32 * 1024]);
    }
    for i in 0..3 {
        assert_eq!(q.pop().unwrap()[100], i as u8);
    }
}

#[test]
fn mpmc_every_item_once() {
    const THREADS: usize = 4;
    const PER: usize = if cfg!(miri) { 2 * SEGMENT_CAP } else { 50_000 };
    const TOTAL: usize = THREADS * PER;

    let q = SegQueue::new();
    let seen: Vec<AtomicBool> = (0..TOTAL).map(|_| AtomicBool::new(false)).collect();
    let received = AtomicUsize::new(0);

    thread::scope(|s| {
        for p in 0..THREADS {
            let q = &q;
            s.spawn(move || {
                for i in 0..PER {
                    q.push(p * PER + i);
                }
            });
        }
        for _ in 0..THREADS {
            let (q, seen, received) = (&q, &seen, &received);
            s.spawn(move || {
                // Items of one producer reach each consumer in the order it pushed them.
                let mut last = [None::<usize>; THREADS];
                while received.load(Relaxed) < TOTAL {
                    match q.pop() {
                        Some(v) => {
                            let p = v / PER;
                            assert!(last[p].map_or(true, |l| l < v), "producer order");
                            last[p] = Some(v);
                            assert!(!seen[v].swap(true, Relaxed), "{v} received twice");
                            received.fetch_add(1, Relaxed);
                        }
                        None => thread::yield_now(),
                    }
                }
            });
        }
    });

    assert_eq!(received.load(Relaxed), TOTAL);
    assert!(seen.iter().all(|s| s.load(Relaxed)));
    assert!(q.is_empty());
    assert!(q.segments_alive() <= POOL_CAP + 1);
}

/// The retirement reaches a slot whose pusher has claimed it but not written it yet:
/// DESTROY lands before WRITE, and the WRITE must keep it so that the popper of that slot,
/// which is waiting for the WRITE, finishes the retirement. Driven step by step: the slow
/// pusher's claim and write are done by hand.
#[test]
fn destroy_before_write_is_kept() {
    let q = SegQueue::new();
    let seg = q.tail.segment.load(Relaxed);
    // The slow pusher claims slot 0 and stops.
    let tail = q.tail.index.load(Relaxed);
    q.tail
        .index
        .compare_exchange(tail, tail + ONE, Relaxed, Relaxed)
        .unwrap();
    // Slots 1 to the last, which links the second segment.
    for i in 1..SEGMENT_CAP {
        q.push(i);
    }

    thread::scope(|s| {
        // Claims slot 0 and waits for its WRITE.
        let waiting = s.spawn(|| q.pop());
        while position(q.head.index.load(Relaxed)) == 0 {
            thread::yield_now();
        }
        // The last pop of these retires the first segment and marks slot 0.
        for i in 1..SEGMENT_CAP {
            assert_eq!(q.pop(), Some(i));
        }
        // SAFETY: the segment is alive: the waiting popper's slot is unread.
        assert_eq!(unsafe { (*seg).states[0].load(Relaxed) }, DESTROY);
        // The slow pusher writes at last.
        // SAFETY: we claimed slot 0 of `seg` above, and nobody wrote it.
        unsafe { SegQueue::write(seg, 0, 0) };
        assert_eq!(waiting.join().unwrap(), Some(0));
    });

    // The waiting popper finished the retirement: the first segment is in the pool.
    assert!(q.spare.iter().any(|e| e.load(Relaxed) == seg));
    assert_eq!(q.segments_alive(), 2);
    assert!(q.is_empty());
}

#[test]
fn burst_gives_memory_back() {
    let q = SegQueue::new();
    for round in 0..3 {
        for i in 0..N {
            q.push(i);
        }
        assert!(q.segments_alive() >= N / SEGMENT_CAP, "round {round}");
        while q.pop().is_some() {}
        // The current segment plus a full pool; the rest of the burst is freed.
        assert!(
            q.segments_alive() <= POOL_CAP + 1,
            "round {round}: {} alive",
            q.segments_alive()
        );
    }
}

#[test]
fn steady_stream_reuses_segments() {
    let q = SegQueue::new();
    // A backlog of 10 items, pushed and popped one for one across many segments.
    for i in 0..10 {
        q.push(i);
    }
    for i in 10..N {
        q.push(i);
        assert_eq!(q.pop(), Some(i - 10));
    }
    const { assert!(N / SEGMENT_CAP > 3) };
    assert!(
        q.segments_allocated() <= POOL_CAP + 1,
        "{} segments allocated for a steady stream",
        q.segments_allocated()
    );
}

#[test]
fn threaded_burst_gives_memory_back() {
    const PER: usize = if cfg!(miri) { 3 * SEGMENT_CAP } else { 20_000 };
    let q = SegQueue::new();
    thread::scope(|s| {
        for p in 0..2 {
            let q = &q;
            s.spawn(move || (0..PER).for_each(|i| q.push(p * PER + i)));
        }
    });
    assert_eq!(q.len(), 2 * PER);
    let popped = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..2 {
            let (q, popped) = (&q, &popped);
            s.spawn(move || {
                while q.pop().is_some() {
                    popped.fetch_add(1, Relaxed);
                }
            });
        }
    });
    assert_eq!(popped.load(Relaxed), 2 * PER);
    assert!(q.segments_alive() <= POOL_CAP + 1);
}

#[test]
fn debug_shows_len() {
    let q = SegQueue::new();
    q.push(1u8);
    assert_eq!(format!("{q:?}"), "SegQueue { len: 1, .. }");
}
