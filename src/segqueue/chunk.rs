//! Where segment memory comes from: the [`Arena`] of one queue. See "Where segment memory
//! comes from" in the module docs of `segqueue` for the why; this file is the how.
//!
//! A queue's first few segments come from the global allocator, so that a new or small
//! queue never makes a system call. Past that budget, segments are carved one after the
//! other from *chunks*: `CHUNK` bytes of anonymous memory, carved by one queue at a time and
//! aligned to `CHUNK`, so that a segment finds its chunk by rounding its address down.
//!
//! ```text
//! chunk (CHUNK bytes, aligned to CHUNK)
//! +--------+-----------+-----------+-----+-----------------+------+
//! | Header | segment 0 | segment 1 | ... | segment PER - 1 | rest |
//! +--------+-----------+-----------+-----+-----------------+------+
//!  ^ `live`: segments not yet freed, counting those not yet carved
//! ```
//!
//! `live` starts at `PER_CHUNK`: the segments not yet carved are counted as the carver's.
//! Freeing a segment subtracts one; the thread that brings `live` to zero owns the empty
//! chunk. It puts it into the process-wide [`ChunkCache`] if that has room, and unmaps it
//! otherwise. So a chunk goes back to the operating system as soon as its last carved
//! segment is freed and nothing more will be carved from it, whatever the allocator does
//! with small blocks, except for the few cached chunks.
//!
//! The cache is there because memory given back must be faulted in again when it is mapped
//! anew: one page fault per 7 segments of `u64`. On the 2-core VM this was measured on,
//! with every empty chunk unmapped, a channel filled with 20,000 `u64`s and drained, over
//! and over, took 10% longer a message than with glibc reusing the blocks it keeps, and a
//! new channel per burst of 100,000 (benchmark C1-unbounded) 12% longer; with the cache,
//! 1% and 2% (4-7% once the channel above got faster). Bursts longer than the cache still
//! pay for the part past it (5-10% at 100,000 and at 1,000,000 on one channel): the price
//! of giving memory back, which only a bigger cache, kept by drained queues, would avoid.
//!
//! The cache holds `CACHE_CHUNKS` empty chunks (512 KiB) for the whole process, not per
//! queue, so what it keeps is bounded however many queues there are, and it serves a
//! queue that replaces a dropped one as well as a queue that fills again. A queue carves a
//! cached chunk before it maps a new one; the chunk is not zeroed then, so each of its
//! segments is zeroed as it is carved (a fresh mapping is zeroed by the kernel). Only
//! chunks of `CHUNK_MIN` bytes are cached, so that any queue can carve any cached chunk;
//! the bigger chunks of big segments are always unmapped.
//!
//! Only pushers allocate (`take_segment`, once per `SEGMENT_CAP` pushes, and only when the
//! pool is empty), under a short lock over the carving position: a bump of an index, and once
//! every `PER_CHUNK` segments the mapping of the next chunk (one `mmap`, rarely three more
//! calls to align it). Several pushers may allocate at once (they race for one last slot),
//! and a lock is the simplest correct way to share the carving position among them; the
//! wait it adds is at a segment boundary, where the other pushers wait for the winner's
//! publication anyway. Freeing takes no lock: one `fetch_sub` on the chunk's header, and for
//! a chunk's last segment a compare-and-swap into the cache or a `munmap`.
//!
//! On unix (outside Miri) chunks are `mmap`ed; elsewhere, and under Miri, they come from the
//! global allocator with the chunk's alignment, so Miri checks the same carving and
//! counting.
//!
//! Under loom the queue boxes its segments one by one (its segments hold loom atomics,
//! which zeroed memory cannot hold), but this file is built all the same, for the models
//! of `loom-tests/tests/chunk.rs`, which drive an arena of plain segments through the
//! test-only `model` hook. There chunks come from the global allocator, as under Miri,
//! and are tiny: two segments of 32 bytes each. The header's `live` is a loom atomic,
//! whose state lives in the model, not in the chunk's bytes, so zeroed bytes are no loom
//! atomic: the header is constructed in place (`Header::new`, as outside loom) when the
//! chunk is mapped, its `live` reset through an atomic store when the chunk is reused,
//! and the header dropped in place just before the chunk is unmapped. Under loom the
//! header also holds one loom cell per segment, standing for that segment's bytes (see
//! `Header::shadow`), so that loom checks that whoever carves, reuses or unmaps memory
//! comes after every earlier holder of it, and a loom leak tracker, so that a chunk
//! neither cached nor unmapped by the end of a model fails it.

use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};
use std::alloc::{self, Layout};

#[cfg(any(test, loom))]
use crate::loom::Counter;
use crate::loom::{AtomicPtr, AtomicUsize, Mutex, Ordering::*};

use super::POOL_CAP;

/// The size of a chunk, unless one segment needs more. 256 KiB holds 455 segments of `u64`
/// (28,665 items), so a burst maps one chunk per 28,665 pushes, and what a drained queue
/// keeps resident (the touched pages of the partly carved chunk of its tail) stays under
/// 256 KiB. Tiny under Miri, so that its tests cross many chunks, and tinier under loom:
/// two of the models' 32-byte segments after the loom header, so that a model crosses
/// chunks with a few segments.
const CHUNK_MIN: usize = if cfg!(miri) {
    4096
} else if cfg!(loom) {
    128
} else {
    256 * 1024
};

/// Empty chunks kept mapped for reuse, for the whole process: 512 KiB.
pub(super) const CACHE_CHUNKS: usize = 2;

/// The cache that every queue's arena uses (tests give some queues their own). Not under
/// loom, whose atomics live only as long as one execution: each model makes its own.
#[cfg(not(loom))]
static CACHE: ChunkCache = ChunkCache::new();

/// How an arena holds its cache: the process-wide `CACHE` (or a test's static); under
/// loom a model's own, shared by its arenas and dropped at the end of the execution.
#[cfg(not(loom))]
type CacheRef = &'static ChunkCache;
#[cfg(loom)]
type CacheRef = crate::loom::Arc<ChunkCache>;

/// Global-allocator segments alive at once, at most: the tail's segment, the head's if it
/// is another one, and a full pool. A stream whose backlog stays within a segment or two
/// never maps a chunk.
const HEAP_MAX: usize = POOL_CAP + 2;

/// ... and at most this many bytes of them (but always one, so that `SegQueue::new`
/// makes no system call), so that large segments go to chunks early.
const HEAP_BYTES: usize = 16 * 1024;

/// Where a segment's memory came from, so that it goes back there.
///
/// `Heap` is 0, so all-zero bytes are a valid `Source` (segments are allocated zeroed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Source {
    /// The global allocator, one segment per allocation.
    Heap = 0,
    /// Carved from a chunk.
    Chunk = 1,
}

/// The start of every chunk, constructed in place by [`Header::new`] when the chunk is
/// mapped and dropped in place by [`unmap_chunk`].
struct Header {
    /// Segments of this chunk not freed yet, counting those not carved yet.
    live: AtomicUsize,
    /// Under loom only: cell `i` stands for the bytes of segment `i`, which the models'
    /// plain segments cannot make loom see. Whoever holds a segment touches its cell when
    /// it gets it (`carve`) and when it frees it (`free`); whoever owns the whole empty
    /// chunk (the taker from the cache, the unmapper) touches them all. loom reports a
    /// causality error if one of those touches is not ordered after the one before, which
    /// is what a wrong ordering on `live` or in the cache would allow for the real bytes.
    #[cfg(loom)]
    shadow: [crate::loom::UnsafeCell<()>; SHADOW],
    /// Under loom only: the chunk's leak tracking, which ends when the header is dropped
    /// (at the unmapping), so loom fails a model that ends with a chunk neither unmapped
    /// nor in a cache it clears. (Not loom's allocator, whose tracking of a block still
    /// held when a model panics panics again, outside the model, and aborts the binary.)
    #[cfg(loom)]
    _tracked: crate::loom::Track<()>,
}

/// Segments per chunk that the loom header can stand for (`PER_CHUNK` is at most this).
#[cfg(loom)]
const SHADOW: usize = 4;

impl Header {
    /// The header of a fresh chunk of `per_chunk` segments, none carved yet.
    fn new(per_chunk: usize) -> Self {
        Self {
            live: AtomicUsize::new(per_chunk),
            #[cfg(loom)]
            shadow: std::array::from_fn(|_| crate::loom::UnsafeCell::new(())),
            #[cfg(loom)]
            _tracked: crate::loom::Track::new(()),
        }
    }

    /// Under loom, an access to the bytes of segment `i`: its holder's, or the whole
    /// chunk's owner's.
    #[cfg(loom)]
    fn touch(&self, i: usize) {
        self.shadow[i].with_mut(|_| ());
    }

    /// Under loom, an access to the bytes of every segment: the whole empty chunk's owner's.
    #[cfg(loom)]
    fn touch_all(&self) {
        (0..SHADOW).for_each(|i| self.touch(i));
    }
}

/// Drops a chunk's header in place, then unmaps the chunk.
///
/// # Safety
/// `chunk` came from `os::map(size)` with its header written by `map_chunk`, it is empty,
/// and it is the caller's alone: nobody touches it again.
unsafe fn unmap_chunk(chunk: *mut u8, size: usize) {
    let header = chunk.cast::<Header>();
    // SAFETY: the header was written at the chunk's start (the caller) and is ours.
    #[cfg(loom)]
    unsafe {
        (*header).touch_all()
    };
    // SAFETY: [1] the header was constructed in place at the chunk's start and never
    // dropped (the caller); [2] nobody touches it again. A no-op for std's atomic; under
    // loom this ends the chunk's leak tracking, before its memory goes.
    unsafe { ptr::drop_in_place(header) };
    // SAFETY: the caller's contract.
    unsafe { os::unmap(chunk, size) };
}

/// Empty chunks of `CHUNK_MIN` bytes, kept mapped for any arena to carve again; null slots
/// are empty. A chunk goes in by a compare-and-swap of an empty slot and comes out by a
/// `swap` with null, so whoever takes it owns it outright, as with the segment pool.
pub(super) struct ChunkCache {
    slots: [AtomicPtr<u8>; CACHE_CHUNKS],
}

impl ChunkCache {
    /// An empty cache.
    #[cfg(not(loom))]
    pub(super) const fn new() -> Self {
        Self {
            slots: [const { AtomicPtr::new(ptr::null_mut()) }; CACHE_CHUNKS],
        }
    }

    /// An empty cache (loom's atomics are built at run time).
    #[cfg(loom)]
    pub(super) fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }

    /// Takes a cached chunk, if there is one.
    fn take(&self) -> Option<*mut u8> {
        for slot in &self.slots {
            // Relaxed: only a hint, to skip the RMW on an empty slot.
            if !slot.load(Relaxed).is_null() {
                // Acquire: pairs with the Release in `put`, so every access to the chunk's
                // old segments happens before it is carved again.
                let chunk = slot.swap(ptr::null_mut(), Acquire);
                if !chunk.is_null() {
                    return Some(chunk);
                }
            }
        }
        None
    }

    /// Puts an empty chunk into the cache; `false` if it is full.
    fn put(&self, chunk: *mut u8) -> bool {
        self.slots.iter().any(|slot| {
            // Release: hands every access to the chunk's segments to the next carver.
            // Relaxed on failure: the slot is taken, we only try the next one.
            slot.compare_exchange(ptr::null_mut(), chunk, Release, Relaxed)
                .is_ok()
        })
    }

    /// How many chunks are cached.
    #[cfg(any(test, loom))]
    pub(super) fn len(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| !slot.load(Relaxed).is_null())
            .count()
    }

    /// Unmaps every cached chunk (tests that use a cache of their own end with this).
    #[cfg(any(test, loom))]
    pub(super) fn clear(&self) {
        while let Some(chunk) = self.take() {
            // SAFETY: a cached chunk was mapped by `map_chunk`, is empty, of `CHUNK_MIN`
            // bytes, and ours once taken.
            unsafe { unmap_chunk(chunk, CHUNK_MIN) };
        }
    }
}

/// The carving position: guarded by the arena's lock.
struct Carve {
    /// The chunk being carved; null if none (none mapped yet, or the last one fully carved).
    chunk: *mut u8,
    /// The next segment of `chunk` to carve, below `PER_CHUNK`.
    next: usize,
    /// Whether `chunk` came from the cache: its segments hold old bytes and must be zeroed.
    reused: bool,
}

/// The segment memory of one queue: a budget of global-allocator segments, then chunks.
/// `S` is the segment type.
pub(super) struct Arena<S> {
    carve: Mutex<Carve>,
    /// Where empty chunks wait to be carved again: the process-wide `CACHE`.
    cache: CacheRef,
    /// Global-allocator segments allocated and not freed.
    heap_alive: AtomicUsize,
    /// Chunks this arena holds: mapped or taken from the cache, and not yet unmapped or
    /// put into the cache (test statistics).
    #[cfg(any(test, loom))]
    chunks_alive: Counter,
    /// Chunks ever mapped (test statistics).
    #[cfg(any(test, loom))]
    chunks_mapped: Counter,
    /// Chunks ever taken from the cache (test statistics).
    #[cfg(any(test, loom))]
    chunks_reused: Counter,
    /// The arena hands out raw `S` memory.
    _marker: PhantomData<*mut S>,
}

impl<S> Arena<S> {
    /// Bytes per segment.
    const SIZE: usize = {
        assert!(size_of::<S>() > 0, "segments are never zero-sized");
        size_of::<S>()
    };
    /// Offset of segment 0 in a chunk: after the header, aligned for `S`.
    const FIRST: usize = size_of::<Header>().next_multiple_of(align_of::<S>());
    /// Bytes per chunk, a power of two (so also its alignment): `CHUNK_MIN`, or more if a
    /// segment and the header need it. 0 if no power of two is big enough: no chunks.
    pub(super) const CHUNK: usize = match (Self::FIRST + Self::SIZE).checked_next_power_of_two() {
        Some(need) if need > CHUNK_MIN => need,
        Some(_) => CHUNK_MIN,
        None => 0,
    };
    /// Segments carved from one chunk (at least one, unless there are no chunks).
    pub(super) const PER_CHUNK: usize = {
        let per_chunk = if Self::CHUNK == 0 {
            0
        } else {
            (Self::CHUNK - Self::FIRST) / Self::SIZE
        };
        #[cfg(loom)]
        assert!(
            per_chunk <= SHADOW,
            "the loom header stands for SHADOW segments"
        );
        per_chunk
    };
    /// Global-allocator segments alive at once, at most (unless mapping fails).
    pub(super) const HEAP_SEGMENTS: usize = {
        let by_bytes = HEAP_BYTES / Self::SIZE;
        let n = if by_bytes < HEAP_MAX {
            by_bytes
        } else {
            HEAP_MAX
        };
        if n == 0 {
            1
        } else {
            n
        }
    };

    /// An empty arena: nothing mapped, no system call.
    #[cfg(not(loom))]
    pub(super) fn new() -> Self {
        Self::with_cache(&CACHE)
    }

    /// An empty arena that caches empty chunks in `cache`.
    pub(super) fn with_cache(cache: CacheRef) -> Self {
        Self {
            carve: Mutex::new(Carve {
                chunk: ptr::null_mut(),
                next: 0,
                reused: false,
            }),
            cache,
            heap_alive: AtomicUsize::new(0),
            #[cfg(any(test, loom))]
            chunks_alive: Counter::new(0),
            #[cfg(any(test, loom))]
            chunks_mapped: Counter::new(0),
            #[cfg(any(test, loom))]
            chunks_reused: Counter::new(0),
            _marker: PhantomData,
        }
    }

    /// Zeroed, aligned memory for one `S`, and where it came from (pass that to `free`).
    pub(super) fn alloc(&self) -> (NonNull<S>, Source) {
        // Relaxed: a budget, not a publication (the segment itself is published by the
        // queue's protocol). The update is one atomic step, so concurrent allocations never
        // take the budget past `HEAP_SEGMENTS`.
        let heap = self
            .heap_alive
            .fetch_update(Relaxed, Relaxed, |n| {
                (n < Self::HEAP_SEGMENTS).then_some(n + 1)
            })
            .is_ok();
        if !heap {
            if let Some(seg) = self.carve() {
                return (seg, Source::Chunk);
            }
            // No chunk could be mapped: the global allocator is the fallback.
            // Relaxed: as above.
            self.heap_alive.fetch_add(1, Relaxed);
        }
        let layout = Layout::new::<S>();
        // SAFETY: `layout` is not zero-sized (`SIZE` asserts it).
        let seg = unsafe { alloc::alloc_zeroed(layout) }.cast::<S>();
        match NonNull::new(seg) {
            Some(seg) => (seg, Source::Heap),
            None => alloc::handle_alloc_error(layout),
        }
    }

    /// Frees memory from [`alloc`](Self::alloc); caches or unmaps its chunk if that was the
    /// chunk's last segment.
    ///
    /// # Safety
    /// `seg` came from `self.alloc()` with `source`, is not freed yet, and no thread touches
    /// it again.
    pub(super) unsafe fn free(&self, seg: NonNull<S>, source: Source) {
        match source {
            Source::Heap => {
                // Relaxed: the budget, as in `alloc`.
                self.heap_alive.fetch_sub(1, Relaxed);
                // SAFETY: allocated by `alloc_zeroed` with this layout (the caller), and
                // nobody touches it again.
                unsafe { alloc::dealloc(seg.as_ptr().cast(), Layout::new::<S>()) };
            }
            Source::Chunk => {
                let seg = seg.as_ptr().cast::<u8>();
                // The chunk is aligned to `CHUNK` and the segment lies inside it, after the
                // header: rounding down finds the header. `wrapping_sub` keeps the pointer's
                // provenance, which covers the whole chunk (the segment was carved from it).
                let chunk = seg.wrapping_sub(seg as usize & (Self::CHUNK - 1));
                // SAFETY: the segment is still ours, in its chunk (as below).
                #[cfg(loom)]
                unsafe {
                    Self::touch(seg)
                };
                // SAFETY: `chunk` is the chunk the segment was carved from, still mapped:
                // this segment is one that its `live` still counts.
                unsafe { self.release(chunk, 1) };
            }
        }
    }

    /// A zeroed segment carved from the current chunk, else from the cached one, else from a
    /// new one; `None` if there are no chunks for `S` or mapping failed.
    fn carve(&self) -> Option<NonNull<S>> {
        if Self::PER_CHUNK == 0 {
            return None;
        }
        let mut carve = self.carve.lock();
        if carve.chunk.is_null() {
            match self.take_cached() {
                Some(cached) => {
                    carve.chunk = cached;
                    carve.reused = true;
                }
                None => {
                    carve.chunk = self.map_chunk()?.as_ptr();
                    carve.reused = false;
                }
            }
            carve.next = 0;
        }
        // SAFETY: `next < PER_CHUNK`, so the segment's bytes, `FIRST + next * SIZE` to
        // `FIRST + (next + 1) * SIZE`, lie inside the `CHUNK` bytes of the chunk.
        let seg = unsafe { carve.chunk.add(Self::FIRST + carve.next * Self::SIZE) }.cast::<S>();
        let reused = carve.reused;
        carve.next += 1;
        if carve.next == Self::PER_CHUNK {
            // Fully carved: `live` now counts only carved segments, and whoever frees the
            // last of them unmaps or caches the chunk, maybe right away. So forget it now.
            carve.chunk = ptr::null_mut();
        }
        drop(carve);
        // SAFETY: the segment was carved from a chunk that its `live` keeps mapped, and is
        // ours.
        #[cfg(loom)]
        unsafe {
            Self::touch(seg.cast())
        };
        if reused {
            // SAFETY: the segment's bytes lie in the chunk (above) and are ours alone: they
            // were freed, and the carving position moved past them under the lock. Zeroed
            // outside the lock, which only guards the position.
            unsafe { seg.write_bytes(0, 1) };
        }
        // A fresh chunk is zeroed by `map` and each segment is carved once per mapping or
        // reuse; `FIRST` and `SIZE` are multiples of `S`'s alignment, which divides `CHUNK`.
        NonNull::new(seg)
    }

    /// A chunk from the cache, its header reset, if chunks of this size are cached and
    /// there is one.
    fn take_cached(&self) -> Option<*mut u8> {
        if Self::CHUNK != CHUNK_MIN {
            return None;
        }
        let chunk = self.cache.take()?;
        // SAFETY: a cached chunk is mapped, `CHUNK_MIN` (= `CHUNK`) bytes, empty, and ours
        // once taken: no thread touches it. The header may have been another arena's, for
        // another segment type; it is at the start whatever the type. Relaxed: the new
        // count reaches the freers with the segments carved after it, as a fresh one does.
        unsafe {
            (*chunk.cast::<Header>())
                .live
                .store(Self::PER_CHUNK, Relaxed)
        };
        // SAFETY: as above; under loom the taker claims every segment's bytes.
        #[cfg(loom)]
        unsafe {
            (*chunk.cast::<Header>()).touch_all()
        };
        #[cfg(any(test, loom))]
        {
            self.chunks_alive.add(1);
            self.chunks_reused.add(1);
        }
        Some(chunk)
    }

    /// Maps a new chunk and writes its header.
    fn map_chunk(&self) -> Option<NonNull<u8>> {
        let chunk = os::map(Self::CHUNK)?;
        // SAFETY: `chunk` is `CHUNK` writable bytes, aligned to `CHUNK` (a power of two at
        // least as big as the header, so enough for it), and nobody else knows it yet. The
        // header reaches other threads with the segments carved after it: under the lock,
        // then by the queue's publication of those segments. Constructed in place, so under
        // loom its atomic (and cells) are loom-built objects, not zeroed bytes.
        unsafe {
            chunk
                .cast::<Header>()
                .as_ptr()
                .write(Header::new(Self::PER_CHUNK))
        };
        #[cfg(any(test, loom))]
        {
            self.chunks_alive.add(1);
            self.chunks_mapped.add(1);
        }
        Some(chunk)
    }

    /// Takes `n` off a chunk's `live`, and caches or unmaps the chunk if that was the rest.
    ///
    /// # Safety
    /// `chunk` is a mapped chunk of this arena, and `n` of the segments its `live` counts
    /// are the caller's to give up: freed segments that no thread touches again, or (at
    /// drop) the ones never carved.
    unsafe fn release(&self, chunk: *mut u8, n: usize) {
        // SAFETY: the chunk is mapped (the caller's segments keep its count above zero) and
        // starts with its header, which is only ever accessed atomically after its write.
        let live = unsafe { &(*chunk.cast::<Header>()).live };
        // AcqRel: Release makes our accesses to our segments happen before the unmapping,
        // whichever thread does it; Acquire, for the thread that takes the count to zero,
        // takes in every other freer's accesses before it unmaps (as in `Arc`'s drop).
        let before = live.fetch_sub(n, AcqRel);
        // A count that went below zero: the chunk was released while a segment was live.
        #[cfg(any(test, loom))]
        assert!(before >= n, "a chunk freed more segments than it counted");
        if before != n {
            return;
        }
        // Every segment of the chunk is freed and none will be carved: it is ours. The
        // cache's Release hands our accesses, and by the Acquire above every freer's, to
        // the carver that takes it.
        #[cfg(any(test, loom))]
        self.chunks_alive.sub(1);
        if Self::CHUNK != CHUNK_MIN || !self.cache.put(chunk) {
            // SAFETY: it was mapped by `map_chunk` (`os::map(CHUNK)`), and it is ours:
            // nobody touches it again.
            unsafe { unmap_chunk(chunk, Self::CHUNK) };
        }
    }

    /// Under loom, an access to the bytes of segment `seg` (see `Header::shadow`).
    ///
    /// # Safety
    /// `seg` was carved from a chunk that is still mapped.
    #[cfg(loom)]
    unsafe fn touch(seg: *const u8) {
        let offset = seg as usize & (Self::CHUNK - 1);
        // SAFETY: the chunk starts `offset` bytes before the segment, with its header
        // (as in `free`), and is mapped (the caller).
        let header = unsafe { &*seg.wrapping_sub(offset).cast::<Header>() };
        header.touch((offset - Self::FIRST) / Self::SIZE);
    }

    /// Chunks this arena holds (see the field).
    #[cfg(any(test, loom))]
    pub(super) fn chunks_alive(&self) -> usize {
        self.chunks_alive.get()
    }

    /// Chunks ever mapped.
    #[cfg(any(test, loom))]
    pub(super) fn chunks_mapped(&self) -> usize {
        self.chunks_mapped.get()
    }

    /// Chunks ever taken from the cache.
    #[cfg(any(test, loom))]
    pub(super) fn chunks_reused(&self) -> usize {
        self.chunks_reused.get()
    }

    /// Global-allocator segments alive.
    #[cfg(any(test, loom))]
    pub(super) fn heap_alive(&self) -> usize {
        self.heap_alive.load(Relaxed)
    }
}

impl<S> Drop for Arena<S> {
    /// Gives up the segments of the current chunk that were never carved. The queue frees
    /// every segment before its fields drop, so this caches or unmaps the last chunk.
    fn drop(&mut self) {
        // In a loom model that failed: keep out of loom, whose mutex panics once poisoned
        // and whose checks may fail again, for a second panic would abort the test binary
        // before loom reports the first. The model's memory is lost with it.
        #[cfg(loom)]
        if std::thread::panicking() {
            return;
        }
        let carve = self.carve.lock();
        let (chunk, next) = (carve.chunk, carve.next);
        drop(carve);
        if !chunk.is_null() {
            // SAFETY: the current chunk is mapped (its uncarved segments keep `live` above
            // zero), and those `PER_CHUNK - next` segments are the arena's to give up.
            unsafe { self.release(chunk, Self::PER_CHUNK - next) };
        }
        #[cfg(any(test, loom))]
        if !std::thread::panicking() {
            assert_eq!(
                self.chunks_alive.get(),
                0,
                "chunks neither unmapped nor cached"
            );
            assert_eq!(self.heap_alive.load(Relaxed), 0, "heap segments leaked");
        }
    }
}

/// Chunks as anonymous private mappings.
#[cfg(all(unix, not(miri), not(loom)))]
mod os {
    use core::ptr::{self, NonNull};

    /// `size` zeroed bytes aligned to `size`, a power of two; `None` if the system says no.
    pub(super) fn map(size: usize) -> Option<NonNull<u8>> {
        // SAFETY: `sysconf` has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        // The trimming below cuts at multiples of `size`, which must be whole pages.
        if page <= 0 || size % page as usize != 0 {
            return None;
        }
        // The kernel tends to place a new mapping right below the previous one (or in the
        // aligned hole an unmapped chunk left), so an exact-size mapping is usually aligned
        // already: one call per chunk.
        let first = raw_map(size)?;
        if first as usize % size == 0 {
            return NonNull::new(first);
        }
        // SAFETY: our own mapping of `size` bytes, unused.
        unsafe { raw_unmap(first, size) };
        // Else map twice the size and cut off the unaligned ends.
        let wide = raw_map(size.checked_mul(2)?)?;
        let lead = (size - wide as usize % size) % size;
        // SAFETY: both pieces lie inside the mapping just made and start and end on page
        // boundaries (the mapping is page-aligned, `lead` and `size` are whole pages); the
        // tail is never empty, as `lead < size`. Nobody else knows them.
        unsafe {
            if lead != 0 {
                raw_unmap(wide, lead);
            }
            raw_unmap(wide.add(lead + size), size - lead);
        }
        // SAFETY: `lead < size`, inside the mapping.
        NonNull::new(unsafe { wide.add(lead) })
    }

    /// Unmaps a chunk.
    ///
    /// # Safety
    /// `chunk` came from `map(size)` and nobody touches it again.
    pub(super) unsafe fn unmap(chunk: *mut u8, size: usize) {
        // SAFETY: the caller's contract.
        unsafe { raw_unmap(chunk, size) };
    }

    /// `len` fresh bytes of anonymous memory (zeroed by the kernel), or `None`.
    fn raw_map(len: usize) -> Option<*mut u8> {
        // SAFETY: a new private anonymous mapping at an address of the kernel's choice
        // aliases nothing.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        (p != libc::MAP_FAILED).then_some(p.cast())
    }

    /// # Safety
    /// `[p, p + len)` is whole pages of a mapping of ours that nobody touches again.
    unsafe fn raw_unmap(p: *mut u8, len: usize) {
        // SAFETY: the caller's contract.
        let rc = unsafe { libc::munmap(p.cast(), len) };
        // It fails only for a bad range, or when splitting a mapping would pass the
        // process's limit of mappings; then the pages stay mapped, which leaks them but is
        // sound. Loud in debug builds, where the first cause would be our bug.
        debug_assert_eq!(rc, 0, "munmap failed");
    }
}

/// Chunks from the global allocator, aligned to their size: off unix, under Miri, and
/// under loom.
#[cfg(not(all(unix, not(miri), not(loom))))]
mod os {
    use core::ptr::NonNull;
    use std::alloc::{self, Layout};

    /// `size` zeroed bytes aligned to `size`, a power of two; `None` if the allocator says no.
    pub(super) fn map(size: usize) -> Option<NonNull<u8>> {
        let layout = Layout::from_size_align(size, size).ok()?;
        // SAFETY: `size` is not zero (a chunk holds a header).
        NonNull::new(unsafe { alloc::alloc_zeroed(layout) })
    }

    /// Frees a chunk.
    ///
    /// # Safety
    /// `chunk` came from `map(size)` and nobody touches it again.
    pub(super) unsafe fn unmap(chunk: *mut u8, size: usize) {
        // SAFETY: `map` allocated it with this layout, which `from_size_align` accepted.
        unsafe { alloc::dealloc(chunk, Layout::from_size_align_unchecked(size, size)) };
    }
}

/// Test-only: the hook through which the loom models of `loom-tests/tests/chunk.rs` (which
/// see `toro_sync::__loom::chunk`) drive a real `Arena` of plain 32-byte segments with a
/// `ChunkCache` of their own. Not part of the crate's API, and built only under loom.
#[cfg(loom)]
#[doc(hidden)]
pub mod model {
    use core::fmt;
    use core::ptr::NonNull;

    use super::{ChunkCache, Source};
    use crate::loom::Arc;

    /// The models' segment: plain bytes, two of them to a loom chunk.
    type Seg = [u64; 4];

    /// A chunk cache of a model's own, shared by the arenas made with it.
    pub struct Cache(Arc<ChunkCache>);

    impl fmt::Debug for Cache {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Cache")
                .field("cached", &self.cached())
                .finish()
        }
    }

    impl Cache {
        /// An empty cache.
        #[allow(clippy::new_without_default)]
        pub fn new() -> Self {
            Self(Arc::new(ChunkCache::new()))
        }

        /// How many chunks are cached.
        pub fn cached(&self) -> usize {
            self.0.len()
        }

        /// Frees every cached chunk (a model ends with this, or loom reports a leak).
        pub fn clear(&self) {
            self.0.clear();
        }
    }

    /// An arena of [`Segment`]s whose empty chunks go to a [`Cache`]. Dropping it gives up
    /// its current chunk's uncarved segments, and panics if a segment is still alive.
    pub struct Arena {
        inner: super::Arena<Seg>,
        /// Names this arena to its segments. Each segment holds a clone, so the address
        /// is not reused while a segment of this arena is alive.
        id: Arc<()>,
    }

    // SAFETY: the arena's shared state is atomics and a mutex; its raw pointers are chunks,
    // which the protocol of `chunk.rs` (checked by the models) hands between threads.
    unsafe impl Send for Arena {}
    // SAFETY: as for `Send`: `alloc` and `free` are made to be called from any thread at once.
    unsafe impl Sync for Arena {}

    impl fmt::Debug for Arena {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Arena")
                .field("chunks_alive", &self.chunks_alive())
                .field("heap_alive", &self.heap_alive())
                .finish_non_exhaustive()
        }
    }

    impl Arena {
        /// Segments carved from one chunk.
        pub const PER_CHUNK: usize = super::Arena::<Seg>::PER_CHUNK;
        /// Segments that come from the global allocator before chunks are carved.
        pub const HEAP_SEGMENTS: usize = super::Arena::<Seg>::HEAP_SEGMENTS;

        /// An empty arena caching its empty chunks in `cache`.
        pub fn new(cache: &Cache) -> Self {
            Self {
                inner: super::Arena::with_cache(cache.0.clone()),
                id: Arc::new(()),
            }
        }

        /// A zeroed segment.
        pub fn alloc(&self) -> Segment {
            let (ptr, source) = self.inner.alloc();
            Segment {
                ptr,
                source,
                arena: self.id.clone(),
            }
        }

        /// Frees a segment of this arena.
        ///
        /// # Panics
        /// If `seg` came from another arena.
        pub fn free(&self, seg: Segment) {
            assert!(
                Arc::ptr_eq(&seg.arena, &self.id),
                "a segment of another arena"
            );
            // SAFETY: [1] `seg` came from `self.inner.alloc()` with its source (the id,
            // whose address its clone keeps from reuse); [2] it is freed once, as `free`
            // consumes the only handle to it, which does not share it.
            unsafe { self.inner.free(seg.ptr, seg.source) };
        }

        /// Chunks this arena holds: mapped or taken from the cache, and not yet unmapped or
        /// cached.
        pub fn chunks_alive(&self) -> usize {
            self.inner.chunks_alive()
        }

        /// Chunks ever mapped.
        pub fn chunks_mapped(&self) -> usize {
            self.inner.chunks_mapped()
        }

        /// Chunks ever taken from the cache.
        pub fn chunks_reused(&self) -> usize {
            self.inner.chunks_reused()
        }

        /// Global-allocator segments alive.
        pub fn heap_alive(&self) -> usize {
            self.inner.heap_alive()
        }
    }

    /// A segment from [`Arena::alloc`]: the only handle to its 32 bytes, until
    /// [`Arena::free`].
    #[derive(Debug)]
    pub struct Segment {
        ptr: NonNull<Seg>,
        source: Source,
        arena: Arc<()>,
    }

    // SAFETY: the segment's bytes are plain, and this handle is their only user.
    unsafe impl Send for Segment {}

    impl Segment {
        /// Whether it was carved from a chunk (else it came from the global allocator).
        pub fn from_chunk(&self) -> bool {
            self.source == Source::Chunk
        }

        /// Writes `v` into every word.
        pub fn fill(&mut self, v: u64) {
            // SAFETY: 32 bytes of ours alone (the handle), aligned for `Seg`.
            unsafe { self.ptr.as_ptr().write([v; 4]) };
        }

        /// The words.
        pub fn get(&self) -> [u64; 4] {
            // SAFETY: as in `fill`; allocated zeroed, so always initialised.
            unsafe { self.ptr.as_ptr().read() }
        }
    }
}
