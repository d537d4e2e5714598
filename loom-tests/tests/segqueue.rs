//! loom models of the segmented FIFO of `src/segqueue/`: pushes and pops across a segment
//! boundary, the retirement of a segment racing a slow popper (the segment is set aside
//! and recycled later) while a pusher takes segments from the pool, freeing past a full
//! pool, a stream that reuses segments, a retirement before a slow pusher's WRITE, two poppers and `len` across
//! the head's move to the next segment, `len` under concurrent change, and poppers that
//! share the tail a pop last read, and items handed to receivers (H) counted while the
//! head crosses a boundary. Under loom a segment has 2 slots, so three items already cross a
//! boundary.
//!
//! Every model checks that each item is received exactly once, in each producer's order,
//! and dropped exactly once, that the queue ends with at most its pool plus one or two
//! segments alive, and (in the queue's own drop) that no segment leaked. A segment reused or freed while a thread still touches it shows up as a
//! loom causality error on its value cell or state byte.

#![cfg(loom)]

use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering::Relaxed};

use loom::sync::atomic::AtomicBool;
use loom::sync::atomic::Ordering::{Acquire, Release};
use loom::sync::Arc;
use loom::thread;
use loom_tests::model;
use toro_sync::__loom::SegQueue;

/// The pool of spare segments (`POOL_CAP` in `src/segqueue/mod.rs`).
const POOL_CAP: usize = 2;

/// An item that counts its drops in a per-id counter (std's atomics: bookkeeping that the
/// model need not explore).
struct Item {
    id: usize,
    drops: Arc<Drops>,
}

struct Drops(Vec<StdAtomicUsize>);

impl Drops {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Self((0..n).map(|_| StdAtomicUsize::new(0)).collect()))
    }

    fn assert_each_once(&self) {
        for (id, d) in self.0.iter().enumerate() {
            assert_eq!(
                d.load(Relaxed),
                1,
                "item {id} dropped {} times",
                d.load(Relaxed)
            );
        }
    }
}

/// Item `id`, counting its drop in `drops`.
fn item(drops: &Arc<Drops>, id: usize) -> Item {
    Item {
        id,
        drops: drops.clone(),
    }
}

impl Drop for Item {
    fn drop(&mut self) {
        self.drops.0[self.id].fetch_add(1, Relaxed);
    }
}

/// Pops, yielding to the model while the queue is empty.
fn pop_wait(q: &SegQueue<Item>) -> Item {
    loop {
        if let Some(item) = q.pop() {
            return item;
        }
        thread::yield_now();
    }
}

/// Pops everything left, asserting ascending ids, and returns the ids.
fn drain(q: &SegQueue<Item>) -> Vec<usize> {
    let mut ids = Vec::new();
    while let Some(item) = q.pop() {
        ids.push(item.id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "FIFO order: {ids:?}");
    ids
}

/// Asserts that `got` holds `0..n` exactly once each.
fn assert_all_once(mut got: Vec<usize>, n: usize) {
    got.sort_unstable();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
}

/// 1. A pusher fills the first segment's last slot (linking the second segment) and pushes
///    into the second, while a popper takes two items across the same boundary.
#[test]
fn push_pop_across_boundary() {
    model("push_pop_across_boundary", || {
        let drops = Drops::new(3);
        let q = Arc::new(SegQueue::new());
        q.push(item(&drops, 0));

        let pusher = {
            let (q, drops) = (q.clone(), drops.clone());
            thread::spawn(move || {
                q.push(item(&drops, 1));
                q.push(item(&drops, 2));
            })
        };
        let popper = {
            let q = q.clone();
            thread::spawn(move || {
                let a = pop_wait(&q).id;
                let b = pop_wait(&q).id;
                assert!(a < b, "FIFO order: {a} then {b}");
                vec![a, b]
            })
        };

        pusher.join().unwrap();
        let mut got = popper.join().unwrap();
        got.extend(drain(&q));
        assert_all_once(got, 3);
        assert!(q.is_empty());
        assert!(q.segments_alive() <= POOL_CAP + 1);
        drop(q);
        drops.assert_each_once();
    });
}

/// The race of models 2 and 3. The queue holds exactly items `first` and `first + 1`,
/// which fill one segment. Two poppers race on them while a pusher pushes `pushes` more.
/// Whichever popper takes the last slot retires the segment; if the other is still reading
/// its slot, the segment is set aside and recycled by a later retirement (or freed by the
/// drop). Then the rest is drained in order.
fn two_poppers_and_a_pusher(
    q: &Arc<SegQueue<Item>>,
    drops: &Arc<Drops>,
    first: usize,
    pushes: usize,
) {
    // Two items for two poppers: neither can find the queue empty.
    let poppers: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            thread::spawn(move || q.pop().unwrap().id)
        })
        .collect();
    let pusher = {
        let (q, drops) = (q.clone(), drops.clone());
        thread::spawn(move || {
            for id in first + 2..first + 2 + pushes {
                q.push(item(&drops, id));
            }
        })
    };

    let mut got: Vec<usize> = poppers.into_iter().map(|t| t.join().unwrap()).collect();
    pusher.join().unwrap();
    let mut raced = got.clone();
    raced.sort_unstable();
    assert_eq!(
        raced,
        [first, first + 1],
        "the poppers took the full segment"
    );
    got.extend(drain(q));
    got.sort_unstable();
    assert_eq!(got, (first..first + 2 + pushes).collect::<Vec<_>>());
    assert!(q.segments_alive() <= POOL_CAP + 1);
}

/// 2. Recycling vs a slow popper: the pool is empty, so the retired segment goes into it,
///    and the pusher links it again as the third segment (as soon as it is there) and
///    writes item 4 into its slot 0. Reusing it before the slow popper is done with its
///    slot would race on that slot's value cell or state byte.
#[test]
fn recycle_vs_slow_popper() {
    model("recycle_vs_slow_popper", || {
        let drops = Drops::new(5);
        let q = Arc::new(SegQueue::new());
        q.push(item(&drops, 0));
        q.push(item(&drops, 1));
        two_poppers_and_a_pusher(&q, &drops, 0, 3);
        drop(q);
        drops.assert_each_once();
    });
}

/// 3. Freeing vs a slow popper: the pool is full when the race starts, so the retired
///    segment is freed, unless the pusher has taken a spare by then and made room for it.
#[test]
fn free_vs_slow_popper() {
    model("free_vs_slow_popper", || {
        let drops = Drops::new(8);
        let q = Arc::new(SegQueue::new());
        // Three full segments; popping two of them fills the pool.
        for id in 0..6 {
            q.push(item(&drops, id));
        }
        for id in 0..4 {
            assert_eq!(q.pop().unwrap().id, id);
        }
        assert_eq!(q.segments_alive(), POOL_CAP + 2);
        two_poppers_and_a_pusher(&q, &drops, 4, 2);
        drop(q);
        drops.assert_each_once();
    });
}

/// 4. A popper follows a pusher through three segments: the first, once retired, goes into
///    the pool, and the pusher takes it back for the third lap (as soon as it is there) and
///    writes into it. The last item is dropped with the queue.
#[test]
fn stream_reuses_segments() {
    const ITEMS: usize = 6;
    model("stream_reuses_segments", || {
        let drops = Drops::new(ITEMS);
        let q = Arc::new(SegQueue::new());
        // The first segment and half the second, so the popper rarely finds it empty.
        for id in 0..3 {
            q.push(item(&drops, id));
        }

        let pusher = {
            let (q, drops) = (q.clone(), drops.clone());
            thread::spawn(move || {
                for id in 3..ITEMS {
                    q.push(item(&drops, id));
                }
            })
        };
        let mut got = Vec::new();
        for _ in 0..ITEMS - 1 {
            got.push(pop_wait(&q).id);
        }
        assert_eq!(got, (0..ITEMS - 1).collect::<Vec<_>>());
        pusher.join().unwrap();

        assert_eq!(q.len(), 1);
        // The head's segment, the one the last push linked, and at most a full pool.
        assert!(q.segments_alive() <= POOL_CAP + 2);
        drop(q);
        drops.assert_each_once();
    });
}

/// 5. Retirement before WRITE: a slow pusher claims slot 0 of the first segment; another
///    fills slot 1 and then pops, claiming slot 0, so it waits for the slow pusher; a third
///    thread pops slot 1, the last, and retires the segment while slot 0 is unread: the
///    segment is set aside, and must be neither recycled under the waiting popper (a loom
///    causality error on the value cell) nor lost (the queue's drop checks that none was).
///
///    The third thread pops only after the second has pushed (the `pushed` flag). Without
///    that loom never runs its pop late enough: loom 0.7's DPOR remembers only the last
///    access to an atomic, so a pusher's load-then-CAS of the tail hides that CAS's race
///    with an earlier load by the popper, and the popper's pop is never moved after it.
#[test]
fn retire_before_write() {
    model("retire_before_write", || {
        let drops = Drops::new(2);
        let q = Arc::new(SegQueue::new());
        let pushed = Arc::new(AtomicBool::new(false));

        let slow = {
            let (q, drops) = (q.clone(), drops.clone());
            thread::spawn(move || q.push(item(&drops, 0)))
        };
        let other = {
            let (q, drops, pushed) = (q.clone(), drops.clone(), pushed.clone());
            thread::spawn(move || {
                q.push(item(&drops, 1));
                pushed.store(true, Release);
                q.pop().map(|item| item.id)
            })
        };
        while !pushed.load(Acquire) {
            thread::yield_now();
        }
        let mut got: Vec<usize> = q.pop().map(|item| item.id).into_iter().collect();

        slow.join().unwrap();
        got.extend(other.join().unwrap());
        // The two pushers are unordered, so the rest may come in either order.
        while let Some(item) = q.pop() {
            got.push(item.id);
        }
        assert_all_once(got, 2);
        drop(q);
        drops.assert_each_once();
    });
}

/// 6. Two poppers and `len` across the head's move: one popper takes items 0 and 1 (the
///    last slot of the first segment: it moves the head onto the second), the other takes
///    item 2 from the second segment as soon as the head is there, and `len` runs
///    meanwhile. A popper that saw the new head position with the old segment would take
///    a slot of the first segment again; `len` must stay within 0..=2 throughout.
///
///    The second popper (which also calls `len`) starts after the first pop (the `started`
///    flag), for the reason given in model 5.
#[test]
fn pops_cross_boundary() {
    model("pops_cross_boundary", || {
        let drops = Drops::new(3);
        let q = Arc::new(SegQueue::new());
        for id in 0..3 {
            q.push(item(&drops, id));
        }
        let started = Arc::new(AtomicBool::new(false));

        let first = {
            let (q, started) = (q.clone(), started.clone());
            thread::spawn(move || {
                let a = q.pop().unwrap().id;
                started.store(true, Release);
                let b = q.pop().unwrap().id;
                vec![a, b]
            })
        };
        let second = {
            let (q, started) = (q.clone(), started.clone());
            thread::spawn(move || {
                while !started.load(Acquire) {
                    thread::yield_now();
                }
                let len = q.len();
                assert!(len <= 2, "len {len} after one pop of three");
                q.pop().unwrap().id
            })
        };

        let mut got = first.join().unwrap();
        assert!(got[0] < got[1], "FIFO order: {got:?}");
        got.push(second.join().unwrap());
        assert_all_once(got, 3);
        assert!(q.is_empty());
        drop(q);
        drops.assert_each_once();
    });
}

/// 7. Two pushers across a boundary: one claims the last slot of the first segment and
///    links the second, the other loses that race and claims slot 0 of the second. A loser
///    that saw the new tail position but the old segment would write into the first
///    segment again.
#[test]
fn pushers_cross_boundary() {
    model("pushers_cross_boundary", || {
        let drops = Drops::new(3);
        let q = Arc::new(SegQueue::new());
        q.push(item(&drops, 0));

        let pushers: Vec<_> = (1..3)
            .map(|id| {
                let (q, drops) = (q.clone(), drops.clone());
                thread::spawn(move || q.push(item(&drops, id)))
            })
            .collect();
        pushers.into_iter().for_each(|t| t.join().unwrap());

        assert_eq!(q.len(), 3);
        assert_eq!(q.pop().unwrap().id, 0);
        let mut got = vec![0];
        while let Some(item) = q.pop() {
            got.push(item.id);
        }
        assert_all_once(got, 3);
        drop(q);
        drops.assert_each_once();
    });
}

/// 8. `len` while a pusher and a popper move both ends across a boundary: it never goes
///    negative (which would wrap to a huge number) or past what was pushed.
#[test]
fn len_under_concurrent_change() {
    model("len_under_concurrent_change", || {
        let q = Arc::new(SegQueue::new());
        q.push(0usize);

        let pusher = {
            let q = q.clone();
            thread::spawn(move || {
                q.push(1);
                q.push(2);
            })
        };
        let popper = {
            let q = q.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < 2 {
                    match q.pop() {
                        Some(v) => got.push(v),
                        None => thread::yield_now(),
                    }
                }
                got
            })
        };

        let len = q.len();
        assert!(len <= 3, "len {len}");

        pusher.join().unwrap();
        let got = popper.join().unwrap();
        assert_eq!(got, [0, 1]);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop(), Some(2));
        assert!(q.is_empty());
    });
}

/// 9. Pops on a remembered tail: two poppers share the tail a pop last read (`head.seen`)
///    while they take the two items of a full first segment, and pop once more than there
///    are items. A popper claims a slot without reading the tail only while the head is
///    behind that remembered tail, and decides "empty" only on the tail itself: one that
///    trusted a remembered tail equal to the head would find the queue empty with items
///    in it (planted, this fails at once). Pops racing pushes on the remembered tail are
///    in models 1, 4 and 8.
#[test]
fn pops_on_a_remembered_tail() {
    model("pops_on_a_remembered_tail", || {
        let drops = Drops::new(3);
        let q = Arc::new(SegQueue::new());
        q.push(item(&drops, 0));
        q.push(item(&drops, 1));

        let other = {
            let q = q.clone();
            thread::spawn(move || q.pop().map(|item| item.id))
        };
        let mine: Vec<usize> = [q.pop(), q.pop()]
            .into_iter()
            .flatten()
            .map(|item| item.id)
            .collect();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "out of order: {mine:?}"
        );
        let theirs = other.join().unwrap();
        assert_eq!(
            mine.len() + usize::from(theirs.is_some()),
            2,
            "one pop finds nothing"
        );

        q.push(item(&drops, 2));
        let mut got = mine;
        got.extend(theirs);
        got.extend(drain(&q));
        assert_all_once(got, 3);
        drop(q);
        drops.assert_each_once();
    });
}

/// 11. Items handed to receivers (H in the head word) while the head crosses a boundary:
///     three items, one popper takes two (the second is the first segment's last slot,
///     whose popper moves the head onto the next segment with an addition, not a store),
///     while another thread counts two items as handed. A hand-over lost to the head's
///     move, or one counted beyond the items inside, breaks the count: H at the end is the
///     hand-overs made less the pops that took a handed item, and never more than the
///     items left.
#[test]
fn hand_over_vs_pops_across_boundary() {
    model("hand_over_vs_pops_across_boundary", || {
        let drops = Drops::new(3);
        let q = Arc::new(SegQueue::new());
        for id in 0..3 {
            q.push(item(&drops, id));
        }
        let popper = {
            let q = q.clone();
            thread::spawn(move || {
                let mut took_handed = 0;
                let mut got = Vec::new();
                for _ in 0..2 {
                    let (item, freed) = q.pop_telling_freed().expect("three items inside");
                    took_handed += usize::from(!freed);
                    got.push(item.id);
                }
                (got, took_handed)
            })
        };
        let handed: usize = (0..2).map(|_| usize::from(q.hand_over())).sum();
        let (got, took_handed) = popper.join().unwrap();
        assert_eq!(got, [0, 1], "FIFO order");
        let left = q.handed_now() as usize;
        assert_eq!(
            left,
            handed - took_handed,
            "a hand-over was lost or made twice"
        );
        assert!(
            left <= q.len(),
            "H {left} above the {} items inside",
            q.len()
        );
        let (last, freed) = q.pop_telling_freed().unwrap();
        assert_eq!(last.id, 2);
        assert_eq!(freed, left == 0);
        assert_eq!(q.handed_now(), 0);
        drop(last);
        drop(got);
        drop(q);
        drops.assert_each_once();
    });
}
