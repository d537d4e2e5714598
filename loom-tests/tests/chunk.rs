//! loom models of the chunk protocol of `src/segqueue/chunk.rs`, run on that file's own
//! `Arena` and `ChunkCache` through the test-only hook `toro_sync::__loom::chunk`: the
//! `live` count of a chunk (one `fetch_sub` per freed segment; the thread that takes it to
//! zero owns the empty chunk) and the process-wide cache of empty chunks (a
//! compare-and-swap into an empty slot puts, a `swap` with null takes). Under loom a chunk
//! holds `PER_CHUNK` = 2 segments of 32 bytes, after `HEAP_SEGMENTS` = 4 segments from the
//! global allocator per arena, and each model has a cache of its own.
//!
//! Models:
//! - C1: the last two live segments of a chunk freed at once: exactly one freer caches it.
//! - C2: a chunk released into the cache by a dropped arena while another arena carves:
//!   the carver either maps a chunk or takes the released one, fully released.
//! - C3: two chunks emptied at once into a cache with one free slot: one is cached, the
//!   other unmapped, none lost; each chunk's two segments are freed one by each thread.
//! - C4: the last segment of a chunk carved (so the arena forgets the chunk) while the
//!   chunk's other segment is freed, then the carver frees it and carves again.
//! - C5: two arenas carve at once while the cache holds one chunk: one of them takes it.
//!
//! What fails a model: the arena's counters (`chunks_alive` back to 0 means every chunk
//! was released exactly once: twice wraps it, never leaves it at 1) and the cache's
//! length; the arena's own checks (its drop asserts that it holds no chunk and no heap
//! segment, and a `live` count that would go below zero panics); loom's leak check, for
//! under loom each chunk header holds a loom leak tracker that only the unmapping drops
//! (a chunk neither cached nor unmapped is a leak); and loom's causality check on the
//! cell that stands for each segment's bytes in the chunk header: every holder touches it
//! when it gets the segment and when it frees it, and the taker from the cache and the
//! unmapper touch all of them, so a release or a hand-over that does not order the
//! earlier holders' accesses before them is a loom causality error. C2 and C4 also check
//! that their executions reached both outcomes (the chunk reused, or a new one), C5 that
//! either arena may be the taker.
//!
//! The models are small enough to explore in full: they run with a preemption bound of
//! [`DEEP`], which none of them reaches (the counts of executions are those of a bound of
//! 100), in well under a second for the file.

#![cfg(loom)]

use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering::Relaxed};

use loom::sync::Arc;
use loom::thread;
use loom_tests::model_bounded;
use toro_sync::__loom::chunk::{Arena, Cache, Segment};

/// The preemption bound of these models: deeper than any of their executions goes.
const DEEP: usize = 16;

/// Which outcomes the executions of one model reached, as bits (std's atomic: bookkeeping
/// outside the model).
struct Outcomes(StdAtomicUsize);

impl Outcomes {
    const fn new() -> Self {
        Self(StdAtomicUsize::new(0))
    }

    /// An execution reached outcome `n`.
    fn saw(&self, n: usize) {
        self.0.fetch_or(1 << n, Relaxed);
    }

    /// Asserts that outcomes `0..n` were all reached.
    fn assert_all(&self, n: usize, what: &str) {
        assert_eq!(
            self.0.load(Relaxed),
            (1 << n) - 1,
            "not every outcome reached: {what}"
        );
    }
}

/// Spends the arena's budget of global-allocator segments, so that its next `alloc`
/// carves. The caller frees them at the end.
fn spend_heap(arena: &Arena) -> Vec<Segment> {
    (0..Arena::HEAP_SEGMENTS)
        .map(|_| {
            let seg = arena.alloc();
            assert!(!seg.from_chunk(), "the heap budget comes first");
            seg
        })
        .collect()
}

/// A segment carved from a chunk.
fn carve(arena: &Arena) -> Segment {
    let seg = arena.alloc();
    assert!(
        seg.from_chunk(),
        "past the heap budget, segments are carved"
    );
    assert_eq!(seg.get(), [0; 4], "carved segments are zeroed");
    seg
}

/// Frees `segs` into `arena`.
fn free_all(arena: &Arena, segs: Vec<Segment>) {
    segs.into_iter().for_each(|seg| arena.free(seg));
}

/// Unwraps the model's last handle to an arena.
fn last(arena: Arc<Arena>) -> Arena {
    Arc::try_unwrap(arena).expect("the threads are joined")
}

/// C1. A fully carved chunk whose `live` counts only its two segments; two threads free
///     one each at once. Exactly one of them takes `live` to zero and puts the chunk into
///     the empty cache: both would release it twice (into both slots), neither would
///     leave it held. A `fetch_sub` whose result were misread by one, or a `live` that
///     started off by one, fails here.
#[test]
fn last_two_frees_race() {
    assert_eq!(
        Arena::PER_CHUNK,
        2,
        "the models assume two segments a chunk"
    );
    model_bounded("last_two_frees_race", DEEP, || {
        let cache = Cache::new();
        let arena = Arc::new(Arena::new(&cache));
        let heap = spend_heap(&arena);
        let (a, b) = (carve(&arena), carve(&arena));
        assert_eq!((arena.chunks_mapped(), arena.chunks_alive()), (1, 1));

        let freers: Vec<_> = [(a, 1), (b, 2)]
            .into_iter()
            .map(|(mut seg, v)| {
                let arena = arena.clone();
                thread::spawn(move || {
                    seg.fill(v);
                    arena.free(seg);
                })
            })
            .collect();
        freers.into_iter().for_each(|t| t.join().unwrap());

        assert_eq!(arena.chunks_alive(), 0, "released exactly once");
        assert_eq!(cache.cached(), 1, "into the cache, which had room");
        let arena = last(arena);
        free_all(&arena, heap);
        drop(arena);
        cache.clear();
        assert_eq!(cache.cached(), 0);
    });
}

/// C2. Queue A is dropped while queue B, sharing the cache, needs a segment. A's arena
///     holds one chunk: segment 0 carved, written and freed by A's thread just before the
///     drop, segment 1 never carved. The drop gives that segment up, which empties the
///     chunk, and caches it (the `Release` of the cache's compare-and-swap). B's thread
///     carves at the same time: it takes the chunk from the cache (the `Acquire` of the
///     `swap`) if it is there, else maps one. If it takes it, the take must come after
///     every access of A to the chunk: a `Relaxed` put or take is a causality error on
///     segment 0's cell. Either way B's segment reads as zeros, though A wrote into it.
#[test]
fn cached_chunk_to_another_arena() {
    static SEEN: Outcomes = Outcomes::new();
    model_bounded("cached_chunk_to_another_arena", DEEP, || {
        let cache = Cache::new();
        let a = Arena::new(&cache);
        let heap = spend_heap(&a);
        let mut x0 = carve(&a);
        free_all(&a, heap);
        let b = Arena::new(&cache);
        let b_heap = spend_heap(&b);

        let dropper = thread::spawn(move || {
            x0.fill(u64::MAX);
            a.free(x0);
            drop(a);
        });
        let carver = thread::spawn(move || {
            let seg = carve(&b);
            (b, seg)
        });
        dropper.join().unwrap();
        let (b, seg) = carver.join().unwrap();

        // B got one chunk: A's from the cache, or a new one while A's was still held.
        let reused = b.chunks_reused();
        SEEN.saw(reused);
        assert_eq!(b.chunks_mapped() + reused, 1);
        assert_eq!(
            cache.cached(),
            1 - reused,
            "A's chunk is cached unless B took it"
        );
        b.free(seg);
        free_all(&b, b_heap);
        drop(b);
        // B's drop gave up its chunk's uncarved segment, which cached it too.
        assert_eq!(cache.cached(), 2 - reused);
        cache.clear();
    });
    SEEN.assert_all(2, "B maps a chunk, or takes A's");
}

/// C3. The cache holds one chunk (X), and two more (Y, Z) empty at once: thread 1 frees
///     Y's segment 0 then Z's segment 0, thread 2 Z's segment 1 then Y's segment 1, so
///     each chunk is emptied by whichever thread frees its second segment, and the two
///     releases race for the one free slot. One chunk is cached, the other unmapped, and
///     none is lost (a lost one is a loom leak). When a chunk is unmapped, every access
///     to its segments by the other thread must come first: that is the `Release` half
///     of `live`'s `fetch_sub`, taken in by its `Acquire` half in the unmapper; either
///     half missing is a causality error.
#[test]
fn full_cache_unmaps() {
    model_bounded("full_cache_unmaps", DEEP, || {
        let cache = Cache::new();
        let arena = Arc::new(Arena::new(&cache));
        let heap = spend_heap(&arena);
        let segs: Vec<Segment> = (0..6).map(|_| carve(&arena)).collect();
        assert_eq!(arena.chunks_mapped(), 3);
        let [x0, x1, y0, y1, z0, z1]: [Segment; 6] = segs.try_into().unwrap();
        free_all(&arena, vec![x0, x1]);
        assert_eq!(cache.cached(), 1);

        let freers: Vec<_> = [[y0, z0], [z1, y1]]
            .into_iter()
            .map(|pair| {
                let arena = arena.clone();
                thread::spawn(move || {
                    for mut seg in pair {
                        seg.fill(3);
                        arena.free(seg);
                    }
                })
            })
            .collect();
        freers.into_iter().for_each(|t| t.join().unwrap());

        assert_eq!(arena.chunks_alive(), 0, "each chunk released exactly once");
        assert_eq!(
            cache.cached(),
            2,
            "the cache is full; the third chunk was unmapped"
        );
        let arena = last(arena);
        free_all(&arena, heap);
        drop(arena);
        cache.clear();
    });
}

/// C4. A chunk being carved: segment 0 is out, segment 1 not carved yet. Thread 1 frees
///     segment 0 while thread 2 carves segment 1 (after which the arena forgets the chunk:
///     `live` counts only carved segments), frees it, and carves again: from the released
///     chunk, which it takes from the cache, or, if thread 1 has not freed segment 0 yet,
///     from a new chunk. The chunk is released once, by whichever free comes second; if
///     that is thread 2's, the `Acquire` of its `fetch_sub` must take in thread 1's
///     accesses before the chunk is carved again.
#[test]
fn carve_last_vs_free() {
    static SEEN: Outcomes = Outcomes::new();
    model_bounded("carve_last_vs_free", DEEP, || {
        let cache = Cache::new();
        let arena = Arc::new(Arena::new(&cache));
        let heap = spend_heap(&arena);
        let mut s0 = carve(&arena);

        let freer = {
            let arena = arena.clone();
            thread::spawn(move || {
                s0.fill(4);
                arena.free(s0);
            })
        };
        let carver = {
            let arena = arena.clone();
            thread::spawn(move || {
                let mut s1 = carve(&arena);
                s1.fill(5);
                arena.free(s1);
                carve(&arena)
            })
        };
        freer.join().unwrap();
        let again = carver.join().unwrap();

        let (mapped, reused) = (arena.chunks_mapped(), arena.chunks_reused());
        SEEN.saw(reused);
        assert_eq!(mapped + reused, 2, "one more chunk for the third segment");
        assert_eq!(
            arena.chunks_alive(),
            1,
            "only the chunk being carved is held"
        );
        assert_eq!(
            cache.cached(),
            mapped - 1,
            "the first chunk is cached unless reused"
        );
        let arena = last(arena);
        arena.free(again);
        free_all(&arena, heap);
        drop(arena);
        // The drop gave up the last chunk's uncarved segment: every mapped chunk is cached.
        assert_eq!(cache.cached(), mapped);
        cache.clear();
    });
    SEEN.assert_all(
        2,
        "the third segment from a new chunk, or from the first again",
    );
}

/// C5. Two arenas carve at once while the cache holds one chunk: exactly one of them takes
///     it (the `swap` with null gives it to one taker only), the other maps a new one. A
///     take that read the slot and then cleared it could hand the chunk to both, which
///     would then carve the same segment (a causality error on its cell).
#[test]
fn two_takers_one_cached() {
    static SEEN: Outcomes = Outcomes::new();
    model_bounded("two_takers_one_cached", DEEP, || {
        let cache = Cache::new();
        let a = Arena::new(&cache);
        let heap = spend_heap(&a);
        let x0 = carve(&a);
        a.free(x0);
        free_all(&a, heap);
        drop(a);
        assert_eq!(cache.cached(), 1);

        let carvers: Vec<_> = (0..2)
            .map(|_| {
                let arena = Arena::new(&cache);
                let heap = spend_heap(&arena);
                thread::spawn(move || {
                    let seg = carve(&arena);
                    (arena, heap, seg)
                })
            })
            .collect();
        let ends: Vec<_> = carvers.into_iter().map(|t| t.join().unwrap()).collect();

        let reused: Vec<usize> = ends
            .iter()
            .map(|(arena, ..)| arena.chunks_reused())
            .collect();
        SEEN.saw(reused[0]);
        assert_eq!(
            reused.iter().sum::<usize>(),
            1,
            "one taker gets the cached chunk"
        );
        for (arena, _, _) in &ends {
            assert_eq!(arena.chunks_mapped() + arena.chunks_reused(), 1);
        }
        assert_eq!(cache.cached(), 0);
        for (arena, heap, seg) in ends {
            arena.free(seg);
            free_all(&arena, heap);
        }
        // Each drop gave up its chunk's uncarved segment: both chunks are cached.
        assert_eq!(cache.cached(), 2);
        cache.clear();
    });
    SEEN.assert_all(2, "either arena takes the cached chunk");
}
