//! Layer 4: an unbounded lock-free MPMC FIFO of fixed-size segments, after the list flavor
//! of crossbeam-channel (`src/flavors/list.rs`): slots claimed by a compare-and-swap on a
//! head or tail counter; segments reclaimed by per-slot READ bits that are plain stores (a
//! segment with a popper still at work is set aside and checked again later); a small pool
//! so a steady stream reuses segments; and chunked segment memory so that a burst gives its
//! memory back to the operating system.
//!
//! # Slot state (one byte per slot, kept apart from the values)
//!
//! ```text
//!   7               2   1   0
//! +-------------------+---+---+
//! |      unused       | R | W |
//! +-------------------+---+---+
//! W = WRITE    the value is in the slot. Stored once, by the slot's pusher, with Release.
//! R = READ     the value has been moved out. Stored once, by the slot's popper, with
//!              Release (not for the last slot of a segment: its popper retires the
//!              segment instead).
//! ```
//!
//! Both start at 0 and are cleared only when the whole segment is recycled. Each byte has
//! one writer at a time (its pusher, then, after acquiring W, its popper) and the retiring
//! thread only reads it, so both marks are plain stores: no read-modify-write on a slot.
//!
//! # Index words (`head.index`, `tail.index`, 64 bits on every target)
//!
//! ```text
//!  63                           29 28                       1   0
//! +-------------------------------+--------------------------+---+
//! | position = lap * LAP + offset | R: reservations (tail)   |M/C|
//! |                               | H: handed items (head)   |   |
//! +-------------------------------+--------------------------+---+
//! M = MARK (head only): the head's segment is not the last one, so a popper need not
//!     read the tail to know that the slot at the head has been claimed by a pusher.
//! H = items handed to receivers (head only, `hand_over`): they do not count against a
//!     bound. Never more than the items inside; every pop's claim takes one off while
//!     any is counted, in the same compare-and-swap that moves the head on.
//! C = CLOSED (tail only): `close` was called; `push_unless_closed`, `push_within` and
//!     `reserve` claim nothing more (their claim fails on the bit), `push` and
//!     `push_reserved` still do. Set once, never cleared; the step that moves the tail
//!     onto a new segment is a `fetch_add`, so it keeps the bit (and R).
//! R = places reserved ahead of their item (`reserve`), at most `MAX_RESERVED`. A
//!     reservation counts against a bound like an item; `push_reserved` turns one into
//!     a claimed slot in one compare-and-swap, `unreserve` gives one back.
//! ```
//!
//! So everything that decides whether a bounded push may claim, the tail's position, the
//! reservations and the closed bit, is one word, and the claim's compare-and-swap checks
//! it all at once; only the head is elsewhere, and a stale head makes a push see less
//! room, never more: the head only moves on, and H only grows, or falls by one with a
//! move of the head, which leaves the room it gives (items less handed items) as it was.
//! So items less handed ones, plus reservations, never exceed the bound. The position sits at the top so that it wraps
//! by itself, at 2^35 positions, and laps stay aligned across the wrap since `LAP` divides
//! that. A queue holds far fewer than 2^34 items, so head and tail are never half a wrap
//! apart.
//!
//! Each segment covers one lap of `LAP = SEGMENT_CAP + 1` positions: offsets
//! `0..SEGMENT_CAP` name its slots and offset `SEGMENT_CAP` means "between segments":
//! the thread that claimed the last slot is linking the next segment (a pusher) or moving
//! the head onto it (a popper), and everybody else on that side waits for it.
//!
//! # The algorithm
//!
//! **Push.** Load `tail.index`, then `tail.segment` (and, for `push_within`, the head,
//! to count the items and reservations against the bound). Claim the slot at the tail by
//! a compare-and-swap of `tail.index` from the loaded position to the next one: the one
//! atomic read-modify-write of the claim on the fast path. The winner writes the value
//! and stores WRITE in its state byte. The
//! pusher that claims a segment's last slot has already taken the next segment (from the
//! pool, else the allocator) before its claim, so right after winning it publishes it:
//! `tail.segment`, then `tail.index` to the next lap, then the old segment's `next`.
//!
//! **Pop.** Load `head.index`, then `head.segment`. Unless MARK is set, find a tail ahead
//! of the head: the one a pop last read (`head.seen`) if it is ahead, else `tail.index`
//! itself (remembered in `head.seen`), where equal positions mean the queue is empty.
//! Claim the slot at the head by a compare-and-swap of `head.index`, setting MARK if that
//! tail is already in a later lap. The winner of the
//! last slot waits for `next`, then moves `head.segment` and `head.index` onto it. The popper
//! then waits for WRITE (the pusher may have claimed the slot but not written it yet), moves
//! the value out, and stores READ. So each side costs one read-modify-write, its claim on
//! its own index word; crossbeam-channel adds a second, a `fetch_or` on the slot's state.
//!
//! **Fast paths.** The first try of each side, for a slot that is not its segment's
//! last, is written out alone in `push_inner` and `pop_or_tail`, so that it inlines into
//! the caller: loads, the claim, the write (read). A full or closed queue is refused
//! there. A failed claim and a segment boundary go on in `push_slow` and `pop_slow`, the
//! loops above, from the word the fast path last read: no atomic access is made twice
//! (it would cost twice, and loom would explore each one). Same steps, same orderings:
//! the split only keeps the cold code out of the callers.
//!
//! **Progress.** Pushers never wait, except for the few instructions between another
//! pusher's claim of a last slot and its publication of the next segment, and, when the
//! pool is empty, for the arena's short lock while another pusher carves a segment (see
//! "Where segment memory comes from"). A popper that
//! claims a slot whose pusher is between claim and write waits for that write, as in
//! crossbeam-channel: the queue is lock-free in its claims, not in that hand-off.
//!
//! # Reclamation: when may a segment be freed or reused?
//!
//! The rule: **no thread dereferences a segment before it has claimed a slot in it**, and a
//! claimed slot keeps its segment alive until the slot's popper is done with it.
//! Threads do load stale segment pointers (after losing a race, or just slowly), but they
//! only ever compare-and-swap the index word with a position they loaded *before* the
//! pointer. A position names its lap, the index only moves forward, and a segment is
//! retired only after its lap is over on both sides; so a claim with a stale position fails,
//! and a segment that was recycled into a later lap is never touched through a pointer
//! from an earlier one.
//!
//! Every access to segment `S` by a thread that did claim in it comes before a point that
//! the retiring thread observes:
//!
//! 1. A pusher's last access is its WRITE store (the last-slot pusher links `next` before
//!    that). Its slot's popper acquires WRITE before it reads, so the pusher's accesses
//!    happen before the popper's.
//! 2. A popper of slot `i < SEGMENT_CAP - 1` does nothing to `S` after its READ store.
//! 3. The popper of the last slot retires `S` (`retire`), so by then every slot of `S` has
//!    been claimed by a popper, and no new claim in `S` is possible. It loads every other
//!    slot's state with Acquire: a slot with READ is finished, and by 1 and 2 all accesses
//!    to it happen before the retirement. If every slot is finished, `S` is recycled (4).
//! 4. Otherwise a popper of `S` is still at work (between its claim and its READ, or
//!    waiting for a slow pusher's WRITE), and `S` is *set aside*: pushed onto `retiring`, a
//!    stack linked through the segments' own `next` (which nobody reads after the head
//!    left `S`). Every retirement, and every pop that finds the queue empty, first takes
//!    the whole stack (a `swap` with null) and checks each segment on it again as in 3,
//!    recycling the finished ones and setting the others aside again. Pushes are
//!    compare-and-swaps and the only pop takes everything, so the stack has no ABA
//!    problem. A set-aside segment so waits, after its last popper is done, for the next
//!    retirement or the next pop that finds the queue empty (a drained queue's receivers
//!    make one), or for the queue's drop.
//! 5. Recycling: no thread can touch `S` any more. It is reset (`next` null, every state
//!    0) and put into the pool, or freed if the pool is full.
//!
//! The pool is `POOL_CAP` atomic pointers. A segment goes in by a compare-and-swap of an
//! empty entry (Release: publishes the reset) and comes out by a `swap` with null
//! (Acquire), so the taker owns it outright and there is no list to suffer ABA. Recycling
//! obeys exactly the rule of freeing (step 5 comes only after step 3's check): a
//! recycled segment comes back only as a *new* lap's segment, published again by the
//! Release stores of `tail.index` and `next`. A steady stream so cycles through
//! two or three segments without calling the allocator, and after a burst all but
//! `POOL_CAP` retired segments are freed as they retire (their chunks unmapped as they
//! empty: see "Where segment memory comes from"). Dropping the queue drops the values left
//! between head and tail, then frees the chain and the pool.
//!
//! # Memory
//!
//! A segment is a `next` pointer, `SEGMENT_CAP` state bytes, a byte that says where its
//! memory came from (in what was padding) and `SEGMENT_CAP` values: for `u64` that is
//! 8 + 63 + 1 + 504 = 576 bytes for 63 items, 9.14 bytes an item, which is what a segment
//! carved from a chunk costs (one from glibc's `malloc` would take a 592-byte block, 9.40).
//! With a state word beside each value it would be 16.
//!
//! # Where segment memory comes from, and when it goes back
//!
//! Freeing a segment with `free` would not be enough: glibc's `malloc` (and most
//! allocators) keep small freed blocks for reuse, and can return them to the system only
//! from the top of the heap. A drained burst of 10 million `u64`s would keep ~90 MiB
//! resident for as long as anything lives above it. So each queue has an arena
//! (`chunk.rs`):
//!
//! - The first segments, while at most `POOL_CAP + 2` of them (and at most 16 KiB, but
//!   always one) are alive, come from the global allocator: a new queue, or one whose
//!   backlog stays within a couple of segments, never makes a system call.
//! - Past that, segments are carved in order from *chunks*: 256 KiB (more if one segment
//!   needs it) of anonymous memory, `mmap`ed (or reused, below) and aligned to its size,
//!   with a count of the segments not yet freed (those not yet carved included) at its start.
//!   Freeing a chunk segment is one `fetch_sub` on that count; the thread that takes it to
//!   zero `munmap`s the chunk at once, unless the process-wide cache of two empty chunks
//!   has room: then the chunk waits there for any queue to carve it again. So memory goes
//!   back to the system chunk by chunk as a burst drains, whatever the allocator does, but
//!   for 512 KiB kept in the whole process, so that a queue that fills again, or a new
//!   queue that replaces a dropped one, does not fault in fresh pages every time.
//! - Carving is under a short lock: only pushers allocate, once per `SEGMENT_CAP` pushes
//!   and only when the pool is empty, and the lock is held for an index bump, or once per
//!   chunk for its `mmap`. Freeing takes no lock.
//!
//! A segment is freed when the pool is full at its retirement, or when the queue drops;
//! the chain, the pool and spares held by pushers mid-push are the only ones alive. A
//! drained queue so holds only the chunk being carved and the chunks of its few live
//! segments (the tail's, the pool's): at most `POOL_CAP + 2` chunks, and after one burst
//! one, since the pool then holds the burst's first (heap) segments. Of the chunk being
//! carved only the pages its carved segments touched are resident. After 10 million
//! `u64`s that is 224 KiB, plus the cache's 512 KiB. A steady stream cycles through pool
//! segments and never reaches the arena. Off unix, and under Miri, chunks come from the
//! global allocator (as one aligned block each, so Miri checks the same carving and
//! counting); under loom every segment is a `Box`, and the chunk protocol (each chunk's
//! count of live segments, the process-wide cache) has models of its own, which drive
//! the arena directly with tiny chunks (`loom-tests/tests/chunk.rs`).
//!
//! # Orderings
//!
//! Nothing here is a store-load race of its own. The layer above orders its own waiting
//! (a pop after a push it has synchronised with always finds the item, by coherence of
//! `tail.index`): for that, a push's claim, a pop's claim, `unreserve` and `hand_over`
//! are `SeqCst`,
//! the store halves of its "change the queue, then look for waiters" pairs. Each other
//! ordering below names what it publishes and pairs with.
//!
//! The loom models in `loom-tests/tests/segqueue.rs` check the claims, the segment
//! hand-overs and the whole reclamation protocol (`chunk.rs` those of the chunks); a
//! weakened ordering at any of those fails one of them. The orderings that serve only [`SegQueue::len`] (the Release of a
//! head claim, the Acquire of `next.next` at a head move, the Acquire in `len`) guard a
//! write-to-read causality chain that loom's memory model never lets go stale, so those
//! rest on the argument written at each of them.
//!
//! One word orders nothing at all: `last_push`, where each push stores the tail word its
//! claim made once its value is written. It is a hint for a blocking receiver that found
//! the queue empty and spins: it looks again when the hint moves, and only the look
//! (the tail itself) decides. A hint that lags, or steps back when two pushers store out
//! of order, only delays that look within a spin of bounded length, so no model checks it
//! (under loom a receiver does not spin, and the word is compiled out).

mod chunk;
#[cfg(loom)]
pub use chunk::model as chunk_model;
#[cfg(test)]
mod tests;

use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr;

use crossbeam_utils::CachePadded;

#[cfg(any(test, loom))]
use crate::loom::Counter;
use crate::loom::{AtomicPtr, AtomicU64, AtomicU8, Backoff, Ordering::*, UnsafeCell};
#[cfg(not(loom))]
use chunk::{Arena, Source};

/// Under loom every segment is a `Box` of its own (loom's atomics carry model state, so a
/// segment cannot come zeroed out of a chunk): the arena is a stand-in.
#[cfg(loom)]
struct Arena<S>(PhantomData<S>);

#[cfg(loom)]
impl<S> Arena<S> {
    const fn new() -> Self {
        Self(PhantomData)
    }
}

/// The value is in the slot.
const WRITE: u8 = 1;
/// The value has been moved out of the slot.
const READ: u8 = 2;

/// Slots per segment. Small under loom so that models cross segment boundaries.
pub(crate) const SEGMENT_CAP: usize = if cfg!(loom) { 2 } else { 63 };
/// Positions per segment: its slots plus the "between segments" offset.
const LAP: usize = SEGMENT_CAP + 1;
/// Bits of the reservation count R in `tail.index`.
const RESERVED_BITS: u32 = 28;
/// Low bits of an index word that are not part of the position.
const SHIFT: u32 = 1 + RESERVED_BITS;
/// In `head.index`: the head's segment is not the last one.
const MARK: u64 = 1;
/// One item handed to a receiver, in `head.index` units (the H count, in the bits that
/// hold R in `tail.index`).
const HANDED_ONE: u64 = RESERVED_ONE;
/// The handed count's bits in `head.index`.
const HANDED_MASK: u64 = RESERVED_MASK;
/// In `tail.index`: the queue is closed; `push_unless_closed` claims no more slots.
const CLOSED: u64 = 1;
/// One reservation, in `tail.index` units.
const RESERVED_ONE: u64 = 2;
/// The reservation count's bits in `tail.index`.
const RESERVED_MASK: u64 = ((1 << RESERVED_BITS) - 1) * RESERVED_ONE;
/// Reservations out at once, at most.
pub(crate) const MAX_RESERVED: usize = (1 << RESERVED_BITS) - 1;
/// One position, in index-word units.
const ONE: u64 = 1 << SHIFT;
/// Every position, as a mask of a position (positions wrap at 2^(64 - SHIFT)).
const POSITIONS: u64 = u64::MAX >> SHIFT;
/// No bound: for `reserve` on an unbounded queue.
pub(crate) const UNBOUNDED: u64 = u64::MAX;
/// Retired segments kept for reuse; the rest are freed.
pub(crate) const POOL_CAP: usize = 2;

// Positions wrap at 2^(64 - SHIFT); laps stay aligned across the wrap only if LAP divides
// that. loom's lap of 3 never gets near a wrap.
const _: () = assert!(cfg!(loom) || LAP.is_power_of_two());

/// The position in an index word.
const fn position(index: u64) -> u64 {
    index >> SHIFT
}

/// The offset of an index in its segment; `SEGMENT_CAP` means "between segments".
const fn offset(index: u64) -> usize {
    (position(index) % LAP as u64) as usize
}

/// The lap (which segment, counting from the first) of an index.
const fn lap(index: u64) -> u64 {
    position(index) / LAP as u64
}

/// The reservations counted in a tail index word.
const fn reserved(tail: u64) -> u64 {
    (tail & RESERVED_MASK) / RESERVED_ONE
}

/// The items counted as handed to receivers in a head index word (module docs, "Index
/// words": H).
const fn handed(head: u64) -> u64 {
    (head & HANDED_MASK) / HANDED_ONE
}

/// The head word after a pop's claim at `head`: one position on, and one handed item
/// fewer if any is counted (the item taken is one of them, module docs).
#[inline(always)]
const fn popped(head: u64) -> u64 {
    let next = head.wrapping_add(ONE);
    if handed(head) > 0 {
        next - HANDED_ONE
    } else {
        next
    }
}

/// The items between a head and a tail index word that count against a bound: those not
/// handed to receivers ([`items_between`], less the head's H).
#[inline(always)]
const fn counted_between(head: u64, tail: u64) -> Option<u64> {
    match items_between(head, tail) {
        // Saturating: a tail older than the head (the caller's claim then fails) may count
        // fewer items than the head's H.
        Some(items) => Some(items.saturating_sub(handed(head))),
        None => None,
    }
}

/// Where a bound counts items from, for a head index word: the first position with as
/// many slots before it ([`slots_before`]) as the head's slot moved on by the head's
/// handed items (H), which take no place. A position word (its low bits 0); for the
/// start of a lap, the "between segments" position before it, so that every position
/// behind the base has fewer slots before it. Heads only move on, and H only grows or
/// falls by one with a move of the head, so a later head word's base is never behind an
/// earlier one's.
#[inline]
const fn count_base(head: u64) -> u64 {
    let (mut pos, mut off) = (position(head), offset(head) as u64);
    if off == SEGMENT_CAP as u64 {
        (pos, off) = (pos.wrapping_add(1), 0);
    }
    let handed = handed(head);
    // Each lap the handed items cross adds its "between segments" position.
    let mut pos = pos.wrapping_add(handed + (off + handed) / SEGMENT_CAP as u64);
    if offset(pos << SHIFT) == 0 {
        pos = pos.wrapping_sub(1);
    }
    (pos & POSITIONS) << SHIFT
}

/// The items between a [`count_base`] and a tail index word that count against a bound
/// ([`counted_between`] of the head the base came from), if the tail is not behind the
/// base; a tail behind it (a stale read) counts more than any bound. Cheaper than
/// [`counted_between`]: the base's low bits are 0, so one subtraction and shift give the
/// positions between (wrapping with them), less one for each "between segments"
/// position passed.
#[inline(always)]
const fn counted_from(base: u64, tail: u64) -> u64 {
    let positions = tail.wrapping_sub(base) >> SHIFT;
    positions - (offset(base) as u64 + positions) / LAP as u64
}

/// How many slots lie before position `pos`: every lap before it has `SEGMENT_CAP`, and
/// the "between segments" position counts as the start of the next lap.
const fn slots_before(pos: u64) -> u64 {
    pos - pos / LAP as u64
}

/// The slots claimed between a head and a tail index word (items, written or on their
/// way), or `None` if the tail reads as behind the head: a tail loaded before the head,
/// and stale by now.
#[inline(always)]
const fn items_between(head: u64, tail: u64) -> Option<u64> {
    // Rotate both positions so that the head's lap is lap 1 (a tail "between segments"
    // just before it is then in lap 0); the wrapping subtraction keeps this right when
    // positions wrap.
    let base = (position(head) - offset(head) as u64).wrapping_sub(LAP as u64);
    let tail = position(tail).wrapping_sub(base) & POSITIONS;
    let head = LAP as u64 + offset(head) as u64;
    if tail > POSITIONS / 2 || slots_before(tail) < slots_before(head) {
        return None;
    }
    Some(slots_before(tail) - slots_before(head))
}

/// What a push may claim.
#[derive(Clone, Copy)]
enum Claim {
    /// Any slot, closed or not.
    #[cfg(any(test, loom))]
    Always,
    /// Any slot unless the queue is closed.
    UnlessClosed,
    /// A slot unless closed, or unless items and reservations already fill the bound.
    Within(u64),
    /// The slot of one reservation, closed or not.
    Reserved,
}

/// What a push may do at a tail word ([`SegQueue::admits`]).
enum Admit {
    /// Claim the slot at the tail.
    Claim,
    /// Claim nothing: the queue is closed, or the bound is full.
    Refuse(Refused<()>),
    /// The tail word reads as behind the head (pushes and pops since): read it again.
    Stale,
}

/// Why a push or a reservation claimed nothing; the value comes back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused<T> {
    /// Items and reservations fill the bound.
    Full(T),
    /// The queue is closed.
    Closed(T),
}

impl Refused<()> {
    /// The same refusal, handing back `value`.
    #[inline(always)]
    fn with<T>(self, value: T) -> Refused<T> {
        match self {
            Refused::Full(()) => Refused::Full(value),
            Refused::Closed(()) => Refused::Closed(value),
        }
    }
}

/// A tail word as a pop that found the queue empty read it ([`SegQueue::pop_or_tail`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tail(u64);

impl Tail {
    /// The tail's position (as [`SegQueue::tail_position`]).
    #[inline]
    pub(crate) fn position(self) -> u64 {
        position(self.0)
    }

    /// Whether the queue was closed, and if so whether reservations were still out.
    #[inline]
    pub(crate) fn reservations(self) -> Reservations {
        match (self.0 & CLOSED != 0, reserved(self.0)) {
            (false, _) => Reservations::Open,
            (true, 0) => Reservations::ClosedWithNone,
            (true, _) => Reservations::ClosedWithSome,
        }
    }
}

/// Where a closed queue's reservations stand, read in one word with the closed bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reservations {
    /// The queue is open.
    Open,
    /// Closed, with reservations still out: their items may still come.
    ClosedWithSome,
    /// Closed, none out: nothing more will ever be pushed.
    ClosedWithNone,
}

/// A segment: `SEGMENT_CAP` slots, their state bytes apart from their values.
struct Segment<T> {
    /// The next segment; null until the pusher that claimed this segment's last slot links it.
    /// Once the segment is set aside at its retirement, the link of the `retiring` stack.
    next: AtomicPtr<Segment<T>>,
    /// One state byte per slot (`WRITE | READ`).
    states: [AtomicU8; SEGMENT_CAP],
    /// Where the segment's memory came from: written once by `alloc`, read by `free`. It
    /// costs no space: it fills padding after the state bytes.
    #[cfg(not(loom))]
    source: Source,
    /// The values. Guarded by the claims: slot `i`'s cell has one writer, the pusher that
    /// claimed its position, before WRITE, and one reader, the popper that claimed it, after
    /// WRITE (acquired). Nothing else touches a cell except `Drop`, which has `&mut`.
    values: [UnsafeCell<MaybeUninit<T>>; SEGMENT_CAP],
}

impl<T> Segment<T> {
    /// A fresh segment from `arena`: `next` null, every state 0, every value uninitialised.
    ///
    /// Zeroed memory, so a large `T` never passes through the stack. All-zero bytes are a
    /// valid `Segment`: a null `AtomicPtr`, `AtomicU8`s of 0, a `Source` of 0 (`Heap`), and
    /// `MaybeUninit` values (any bytes) inside `UnsafeCell`s.
    #[cfg(not(loom))]
    fn alloc(arena: &Arena<Self>) -> *mut Self {
        let (seg, source) = arena.alloc();
        let seg = seg.as_ptr();
        // SAFETY: fresh memory for one `Self`, ours alone; a write through a raw place
        // makes no reference.
        unsafe { ptr::addr_of_mut!((*seg).source).write(source) };
        seg
    }

    /// A fresh segment. loom's atomics and cells carry model state, so they are built, not
    /// zeroed; the segments of a model are tiny.
    #[cfg(loom)]
    fn alloc(_: &Arena<Self>) -> *mut Self {
        Box::into_raw(Box::new(Self {
            next: AtomicPtr::new(ptr::null_mut()),
            states: std::array::from_fn(|_| AtomicU8::new(0)),
            values: std::array::from_fn(|_| UnsafeCell::new(MaybeUninit::uninit())),
        }))
    }

    /// Frees a segment. Its values are not dropped.
    ///
    /// # Safety
    /// `seg` came from [`Segment::alloc`] with `arena`, is not freed yet, and no thread can
    /// touch it again.
    #[cfg(not(loom))]
    unsafe fn free(arena: &Arena<Self>, seg: *mut Self) {
        // SAFETY: [1] `alloc` wrote `source` before the segment was shared, and everything
        // since happens before this free (the caller); [2] so `seg` came from
        // `arena.alloc()` with this source, is not freed, and nobody touches it again.
        unsafe {
            let source = (*seg).source;
            arena.free(ptr::NonNull::new_unchecked(seg), source);
        }
    }

    /// Frees a segment. Its values are not dropped.
    ///
    /// # Safety
    /// `seg` came from [`Segment::alloc`], is not freed yet, and no thread can touch it again.
    #[cfg(loom)]
    unsafe fn free(_: &Arena<Self>, seg: *mut Self) {
        // SAFETY: [1] under loom `alloc` made `seg` as a `Box`; [2] nobody else touches it
        // again (the caller). `MaybeUninit` values have no drop glue.
        drop(unsafe { Box::from_raw(seg) });
    }

    /// Waits for the pusher of slot `offset`, which has claimed it, to write it.
    #[cold]
    fn wait_written(&self, offset: usize) {
        let backoff = Backoff::new();
        // Acquire: as in `SegQueue::read`.
        while self.states[offset].load(Acquire) & WRITE == 0 {
            backoff.snooze();
        }
    }

    /// Waits until the next segment is linked, and returns it.
    fn wait_next(&self) -> *mut Self {
        let backoff = Backoff::new();
        loop {
            // Acquire: pairs with the Release store of `next` in `push`, so the next
            // segment's reset or fresh state is visible before we touch it.
            let next = self.next.load(Acquire);
            if !next.is_null() {
                return next;
            }
            backoff.snooze();
        }
    }
}

/// One end of the queue: a position and the segment it lies in.
struct Position<T> {
    /// The index word (see the module docs).
    index: AtomicU64,
    /// The segment of the index's lap (or, briefly, the next one, while the index is between
    /// segments).
    segment: AtomicPtr<Segment<T>>,
    /// The other side's index word as this side last read it: never ahead of it, since
    /// indexes only move on, so it is a safe underestimate of how far the other side is.
    /// On the tail, the [`count_base`] of a head that a bounded push or a reserve read
    /// (where the head's slot and its handed items end): counting items from it
    /// over-counts, so when it shows room there is room, and a stream of bounded pushes
    /// reads the head (a line every pop writes) only when this shows none, about once per
    /// `bound - len` pushes. On the head, a tail that a pop read: while the head is behind
    /// it, the slot at the head has been claimed by a pusher, so a stream of pops reads
    /// the tail (a line every push writes) once per run of items it finds there, not once
    /// per pop. Like every index word it is compared with positions less than half a wrap
    /// away (module docs, "Index words").
    seen: AtomicU64,
}

impl<T> Position<T> {
    fn new(segment: *mut Segment<T>) -> CachePadded<Self> {
        CachePadded::new(Self {
            index: AtomicU64::new(0),
            segment: AtomicPtr::new(segment),
            seen: AtomicU64::new(0),
        })
    }
}

/// An unbounded lock-free multi-producer multi-consumer FIFO queue.
///
/// Items live in segments of `SEGMENT_CAP` slots linked into a list; see the module docs
/// for the algorithm and why freeing and reusing segments is safe.
pub struct SegQueue<T> {
    head: CachePadded<Position<T>>,
    tail: CachePadded<Position<T>>,
    /// The tail index word a push's claim made, stored by that push once its value is
    /// written (Relaxed, a plain store): a hint for a receiver that found the queue empty
    /// and spins before it looks again ([`pushed`](Self::pushed)). On a line of its own:
    /// pushers only store to it, so a spinning receiver that reads it does not take the
    /// tail's line, which every claim compare-and-swaps, from the pusher (module docs,
    /// "Orderings"). It decides nothing: the look after the spin reads the tail itself.
    /// Not under loom, where nothing would read it.
    #[cfg(not(loom))]
    last_push: CachePadded<AtomicU64>,
    /// Retired segments, reset and ready for a new lap; null entries are empty.
    spare: CachePadded<[AtomicPtr<Segment<T>>; POOL_CAP]>,
    /// Where segments come from and go back to (see the module docs). Touched only when the
    /// pool is empty or full.
    arena: Arena<Segment<T>>,
    /// Retired segments with a popper still at work: a stack linked through `next` (module
    /// docs, reclamation step 4). Touched once per retirement.
    retiring: AtomicPtr<Segment<T>>,
    /// Segments allocated and not yet freed (test statistics).
    #[cfg(any(test, loom))]
    alive: Counter,
    /// Segments ever allocated (test statistics).
    #[cfg(any(test, loom))]
    allocated: Counter,
    /// The queue owns `T`s.
    _marker: PhantomData<T>,
}

// SAFETY: the queue owns its items and moves each one to exactly one popper, possibly on
// another thread; it never hands out a reference to an item, so `T: Send` is enough for
// both. Its raw segment pointers are shared under the protocol in the module docs.
unsafe impl<T: Send> Send for SegQueue<T> {}
// SAFETY: as for `Send`: every `&self` method moves items in or out, never shares them.
unsafe impl<T: Send> Sync for SegQueue<T> {}

impl<T> SegQueue<T> {
    /// An empty queue, with its first segment allocated.
    pub fn new() -> Self {
        Self::with_arena(Arena::new())
    }

    /// An empty queue whose segments come from `arena` (tests give some queues an arena
    /// with a chunk cache of their own).
    fn with_arena(arena: Arena<Segment<T>>) -> Self {
        // From the global allocator: a new queue makes no system call.
        let first = Segment::alloc(&arena);
        Self {
            head: Position::new(first),
            tail: Position::new(first),
            #[cfg(not(loom))]
            last_push: CachePadded::new(AtomicU64::new(0)),
            spare: CachePadded::new(std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut()))),
            arena,
            retiring: AtomicPtr::new(ptr::null_mut()),
            #[cfg(any(test, loom))]
            alive: Counter::new(1),
            #[cfg(any(test, loom))]
            allocated: Counter::new(1),
            _marker: PhantomData,
        }
    }

    /// Pushes `value` at the back, closed or not. Never fails and never blocks (see
    /// "Progress" in the module docs for the one short wait at a segment boundary). For
    /// the tests and models of this layer; the queue above pushes through the other forms.
    #[cfg(any(test, loom))]
    #[inline]
    pub fn push(&self, value: T) {
        let pushed = self.push_inner(value, Claim::Always);
        debug_assert!(pushed.is_ok());
    }

    /// Pushes `value` at the back unless the queue is closed: then it is handed back.
    #[inline]
    pub fn push_unless_closed(&self, value: T) -> Result<(), T> {
        self.push_inner(value, Claim::UnlessClosed)
            .map(drop)
            .map_err(|refused| match refused {
                Refused::Full(v) | Refused::Closed(v) => v,
            })
    }

    /// Pushes `value` at the back unless the queue is closed, or unless its items and
    /// reservations already number `bound`.
    #[inline]
    pub(crate) fn push_within(&self, value: T, bound: usize) -> Result<(), Refused<T>> {
        self.push_inner(value, Claim::Within(bound as u64))
            .map(drop)
    }

    /// Pushes `value` into the place of one reservation, closed or not. Returns whether
    /// that was the last reservation of a closed queue: nothing more will be pushed.
    #[inline]
    pub(crate) fn push_reserved(&self, value: T) -> bool {
        match self.push_inner(value, Claim::Reserved) {
            Ok(old) => old & CLOSED != 0 && reserved(old) == 1,
            Err(_) => unreachable!("a reserved push always claims"),
        }
    }

    /// Reserves a place ahead of its item, unless the queue is closed or its items and
    /// reservations already number `bound` ([`UNBOUNDED`]: no bound).
    ///
    /// # Panics
    /// If `MAX_RESERVED` reservations are out on a queue without a bound (with one, that
    /// many fill it).
    pub(crate) fn reserve(&self, bound: u64) -> Result<(), Refused<()>> {
        let backoff = Backoff::new();
        // Relaxed: the count orders nothing; an item pushed into the place is published by
        // its own claim.
        let mut tail = self.tail.index.load(Relaxed);
        // The checks of a push (a bound holds at most MAX_RESERVED, so a full count of
        // reservations fills it).
        let claim = if bound == UNBOUNDED {
            Claim::UnlessClosed
        } else {
            Claim::Within(bound)
        };
        loop {
            match self.admits(tail, claim) {
                Admit::Claim => {}
                Admit::Refuse(refused) => return Err(refused),
                Admit::Stale => {
                    tail = self.fresh_tail();
                    backoff.snooze();
                    continue;
                }
            }
            assert!(
                reserved(tail) < MAX_RESERVED as u64,
                "more than MAX_RESERVED send permits out"
            );
            // Relaxed: as for the load.
            match self
                .tail
                .index
                .compare_exchange_weak(tail, tail + RESERVED_ONE, Relaxed, Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(current) => {
                    tail = current;
                    backoff.spin();
                }
            }
        }
    }

    /// Gives back one reservation unused. Returns whether that was the last reservation of
    /// a closed queue: nothing more will be pushed.
    pub(crate) fn unreserve(&self) -> bool {
        // SeqCst: the store half of the layer above's "free a place, then look for waiting
        // senders" pair (module docs, "Orderings").
        let old = self.tail.index.fetch_sub(RESERVED_ONE, SeqCst);
        debug_assert!(reserved(old) > 0, "unreserve without a reservation");
        old & CLOSED != 0 && reserved(old) == 1
    }

    /// Closes the queue: from here on `push_unless_closed`, `push_within` and `reserve`
    /// fail. Pops go on, and so do the pushes of reservations made before. Returns whether
    /// no reservation was out: nothing more will be pushed.
    pub fn close(&self) -> bool {
        // AcqRel: Release, with the claims' release sequence, makes every push claimed
        // before the close visible to whoever acquires what the closer does next.
        reserved(self.tail.index.fetch_or(CLOSED, AcqRel)) == 0
    }

    /// Whether the queue is closed, and if so whether reservations are still out (the
    /// queue layer reads it from its pop's [`Tail`]).
    #[cfg(test)]
    pub(crate) fn reservations(&self) -> Reservations {
        // Acquire: pairs with `close`, and with the claims of reserved pushes (their
        // release sequence), so that a pop after this sees every push they made.
        Tail(self.tail.index.load(Acquire)).reservations()
    }

    /// Counts one more item as handed to a receiver, so that it no longer counts against a
    /// bound (H in the head word, module docs): the queue layer does it as it grants a
    /// waiting receiver an item just pushed. Nothing if every item inside is counted so
    /// already (a pop took that item meanwhile), so H never exceeds the items inside.
    /// Returns whether it counted one: a place is then free for a waiting sender.
    pub fn hand_over(&self) -> bool {
        // Relaxed (the loads, and the claim's failure): counts, which order no data. A
        // tail read after the head may be stale, which only counts fewer items: the claim
        // needs H below the items at the time of its compare-and-swap, which it makes
        // against the same head, and the tail only moves on.
        let mut head = self.head.index.load(Relaxed);
        loop {
            let tail = self.tail.index.load(Relaxed);
            match items_between(head, tail) {
                Some(items) if handed(head) < items && handed(head) < MAX_RESERVED as u64 => {}
                _ => return false,
            }
            // SeqCst: the store half of the layer above's "free a place, then look for
            // waiting senders" pair, as a pop's claim (module docs, "Orderings").
            match self
                .head
                .index
                .compare_exchange_weak(head, head + HANDED_ONE, SeqCst, Relaxed)
            {
                Ok(_) => return true,
                Err(current) => head = current,
            }
        }
    }

    /// [`pop_or_tail`](Self::pop_or_tail)'s item and whether it freed a counted place, for
    /// the loom models.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn pop_telling_freed(&self) -> Option<(T, bool)> {
        self.pop_or_tail().ok()
    }

    /// The items counted as handed (H) now, for the loom models.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn handed_now(&self) -> u64 {
        handed(self.head.index.load(Relaxed))
    }

    /// How many more items and reservations fit under `bound` now (a snapshot).
    pub(crate) fn room(&self, bound: usize) -> usize {
        // SeqCst: the load half of a waiter's "join the line, then look" in the layer
        // above (its `Queue::look_again`); elsewhere a count (a plain load on x86).
        let mut tail = self.tail.index.load(SeqCst);
        loop {
            // SeqCst: as for the tail.
            let head = self.head.index.load(SeqCst);
            if let Some(items) = counted_between(head, tail) {
                return (bound as u64).saturating_sub(items + reserved(tail)) as usize;
            }
            tail = self.fresh_tail();
        }
    }

    /// The items before `tail` that count against `bound` ([`counted_between`]): counted
    /// from the base of the head last seen (`tail.seen`, [`count_base`]) if that shows
    /// room, else from the head itself, whose base is remembered. `None` if `tail` reads
    /// as behind the head ([`items_between`]).
    #[inline(always)]
    fn items_for(&self, tail: u64, bound: u64) -> Option<u64> {
        // Relaxed: a hint; it is never ahead of the head's base (bases only move on, and
        // only bases of heads read from the head are stored), so it shows no more room
        // than the head does (module docs, "Index words"), which is all a count needs.
        let items = counted_from(self.tail.seen.load(Relaxed), tail);
        if items + reserved(tail) < bound {
            return Some(items);
        }
        // Relaxed: a count; a stale head only sees less room.
        let head = self.head.index.load(Relaxed);
        self.tail.seen.store(count_base(head), Relaxed);
        counted_between(head, tail)
    }

    /// The tail word as it is now, for a reader whose tail turned out older than a head it
    /// read after it (pushes and pops since): a read-modify-write reads the latest value,
    /// which a plain load need not. Rare, so its cost does not matter.
    #[cold]
    fn fresh_tail(&self) -> u64 {
        // Acquire: as the first load of a push, for the segment that goes with it.
        self.tail.index.fetch_add(0, Acquire)
    }

    /// Where the tail is now: a position that moves on with every claim of a push. The
    /// layer above compares two readings to learn whether anything was pushed between them.
    #[inline]
    pub fn tail_position(&self) -> u64 {
        // SeqCst: as in `room`.
        position(self.tail.index.load(SeqCst))
    }

    /// A push whose claim made the tail word `claimed` has written its value.
    #[inline(always)]
    fn published(&self, claimed: u64) {
        // Relaxed: a hint (`last_push`); the value is published by WRITE. Not under loom:
        // nothing there reads it (a receiver does not spin in a model), and each access
        // would multiply the interleavings of every model with a push.
        #[cfg(not(loom))]
        self.last_push.store(claimed, Relaxed);
        #[cfg(loom)]
        let _ = claimed;
    }

    /// Where the last push to finish left the tail, as a hint: it changes when a push has
    /// written its value. It may lag the tail, and with several pushers step back, so it
    /// only tells a receiver that spins when to look again; the look decides.
    #[inline]
    pub(crate) fn pushed(&self) -> u64 {
        // Relaxed: a hint, see `last_push`. Under loom nobody stores it (`published`).
        #[cfg(not(loom))]
        return position(self.last_push.load(Relaxed));
        #[cfg(loom)]
        0
    }

    /// Whether [`close`](Self::close) was called.
    #[inline]
    pub fn is_closed(&self) -> bool {
        // Acquire: pairs with `close`.
        self.tail.index.load(Acquire) & CLOSED != 0
    }

    /// Claims a slot as `claim` allows and writes `value` into it; returns the tail word
    /// the claim replaced.
    ///
    /// The fast path is the first try of [`push_slow`](Self::push_slow)'s loop, for a
    /// slot that is not its segment's last, written out with nothing else in it so that it
    /// inlines into the caller. A claim that fails, and everything a segment boundary
    /// needs, go on in the slow path with the tail word already read, so no atomic access
    /// is made twice.
    #[inline(always)]
    fn push_inner(&self, value: T, claim: Claim) -> Result<u64, Refused<T>> {
        // Acquire: pairs with the Release store that opens a lap, so the segment loaded
        // after it is at least the one of this position's lap, and its contents are
        // visible (see `push_slow`).
        let tail = self.tail.index.load(Acquire);
        let offset = offset(tail);
        if offset + 1 < SEGMENT_CAP {
            match self.admits(tail, claim) {
                Admit::Claim => {}
                Admit::Refuse(refused) => return Err(refused.with(value)),
                Admit::Stale => return self.push_slow(value, claim, self.fresh_tail()),
            }
            // Relaxed: as in `push_slow`.
            let seg = self.tail.segment.load(Relaxed);
            let claimed = Self::claimed(tail, claim);
            // SeqCst, and Acquire on failure: as in `push_slow`.
            match self
                .tail
                .index
                .compare_exchange_weak(tail, claimed, SeqCst, Acquire)
            {
                Ok(_) => {
                    // SAFETY: we won the claim of slot `offset` of `seg`, the segment of
                    // the claimed position's lap.
                    unsafe { Self::write(seg, offset, value) };
                    self.published(claimed);
                    return Ok(tail);
                }
                Err(current) => return self.push_slow(value, claim, current),
            }
        }
        self.push_slow(value, claim, tail)
    }

    /// Whether `claim` lets a push claim at `tail`: the queue is open (where that
    /// matters) and, for a bound, the head last seen (`tail.seen`), or else the head,
    /// shows room.
    #[inline(always)]
    fn admits(&self, tail: u64, claim: Claim) -> Admit {
        match claim {
            #[cfg(any(test, loom))]
            Claim::Always => Admit::Claim,
            Claim::Reserved => Admit::Claim,
            Claim::UnlessClosed | Claim::Within(_) if tail & CLOSED != 0 => {
                Admit::Refuse(Refused::Closed(()))
            }
            Claim::UnlessClosed => Admit::Claim,
            Claim::Within(bound) => match self.items_for(tail, bound) {
                None => Admit::Stale,
                Some(items) if items + reserved(tail) >= bound => Admit::Refuse(Refused::Full(())),
                Some(_) => Admit::Claim,
            },
        }
    }

    /// The tail word after a claim at `tail`: one position on, and for a reserved push
    /// one reservation fewer.
    #[inline(always)]
    fn claimed(tail: u64, claim: Claim) -> u64 {
        let claimed = tail.wrapping_add(ONE);
        if let Claim::Reserved = claim {
            debug_assert!(reserved(tail) > 0, "a reserved push without a reservation");
            return claimed - RESERVED_ONE;
        }
        claimed
    }

    /// [`push_inner`](Self::push_inner) in full, from the tail word `tail` (read with
    /// `Acquire`, not yet checked): retries, a closed or full queue, and a segment
    /// boundary.
    #[cold]
    #[inline(never)]
    fn push_slow(&self, value: T, claim: Claim, mut tail: u64) -> Result<u64, Refused<T>> {
        let backoff = Backoff::new();
        // The next segment, taken before claiming a last slot so that the wait of the
        // other pushers is as short as possible.
        let mut next: *mut Segment<T> = ptr::null_mut();

        loop {
            let refused = match self.admits(tail, claim) {
                Admit::Claim => None,
                Admit::Refuse(refused) => Some(refused),
                Admit::Stale => {
                    tail = self.fresh_tail();
                    backoff.snooze();
                    continue;
                }
            };
            if let Some(refused) = refused {
                if !next.is_null() {
                    // SAFETY: `next` came from `take_segment` and nobody else saw it.
                    unsafe { self.put_spare(next) };
                }
                return Err(refused.with(value));
            }
            let offset = offset(tail);
            if offset == SEGMENT_CAP {
                // Another pusher is linking the next segment.
                backoff.snooze();
                // Acquire: as below.
                tail = self.tail.index.load(Acquire);
                continue;
            }
            if offset + 1 == SEGMENT_CAP && next.is_null() {
                next = self.take_segment();
            }
            // Relaxed: `segment` is published by the Release store of `tail.index` that
            // opens a lap, and every `tail` here was read with Acquire (the first load, a
            // failed claim, `fresh_tail`), so this is at least the segment of `tail`'s lap;
            // if it is a later one, `tail` is stale and the claim below fails.
            let seg = self.tail.segment.load(Relaxed);

            // SeqCst on success: the claim publishes nothing (the value is published by
            // WRITE, the next segment by the stores below), but it is the store half of the
            // layer above's "push, then look for waiting receivers" store-load pair, whose
            // other half is a receiver's "join the line, fence, look at the tail". Acquire on
            // failure: the new position may open a lap, as for the first load.
            let claimed = Self::claimed(tail, claim);
            match self
                .tail
                .index
                .compare_exchange_weak(tail, claimed, SeqCst, Acquire)
            {
                Ok(_) => {
                    if offset + 1 == SEGMENT_CAP {
                        // We claimed the last slot; the tail now reads "between segments",
                        // so we alone move it on. The Release stores of `tail.index` and
                        // `next` publish the new segment (fresh, or reset by `recycle` and
                        // acquired from the pool by `take_segment`) and the `segment`
                        // store before them to the pushers that acquire `tail.index` and
                        // the poppers that acquire `next`.
                        self.tail.segment.store(next, Relaxed);
                        // An add, not a store: a `close` may have set CLOSED since our claim.
                        self.tail.index.fetch_add(ONE, Release);
                        // SAFETY: our claim of a slot in `seg` keeps it alive (module docs,
                        // reclamation step 1): its popper cannot retire it before our WRITE.
                        unsafe { (*seg).next.store(next, Release) };
                        next = ptr::null_mut();
                    }
                    // SAFETY: we won the claim of slot `offset` of `seg`, the segment of
                    // the claimed position's lap.
                    unsafe { Self::write(seg, offset, value) };
                    // A last slot's claim left the tail "between segments"; its pusher
                    // moved it on to the next lap since.
                    let last = offset + 1 == SEGMENT_CAP;
                    self.published(if last {
                        claimed.wrapping_add(ONE)
                    } else {
                        claimed
                    });
                    if !next.is_null() {
                        // Taken for a last slot that another pusher claimed; untouched.
                        // SAFETY: `next` came from `take_segment` and nobody else saw it.
                        unsafe { self.put_spare(next) };
                    }
                    return Ok(tail);
                }
                Err(current) => {
                    tail = current;
                    backoff.spin();
                }
            }
        }
    }

    /// Pops the item at the front, or `None` if the queue is empty.
    ///
    /// Never fails spuriously: `None` means that the item of every push that happens
    /// before this call had been claimed by some pop by the time the call read the tail.
    /// It may wait for a pusher that has claimed the front slot but not yet written it.
    #[inline]
    pub fn pop(&self) -> Option<T> {
        self.pop_or_tail().ok().map(|(value, _)| value)
    }

    /// [`pop`](Self::pop), telling with the item whether it freed a place a bound counts
    /// (`false`: it was counted as handed, H, module docs), and on `Err` the tail word it read and found the queue
    /// empty at (read before the call decided "empty": a push claimed later moves the tail
    /// past it), read with `Acquire` as [`reservations`](Self::reservations) reads it.
    /// Saves a caller that needs its position or reservations a load of the tail's line.
    ///
    /// The fast path is the first try of [`pop_slow`](Self::pop_slow)'s loop, for a slot
    /// that is not its segment's last, written out alone so that it inlines into the
    /// caller, as in `push_inner`.
    #[inline(always)]
    pub(crate) fn pop_or_tail(&self) -> Result<(T, bool), Tail> {
        // Acquire: pairs with the Release store that moves the head onto a new segment,
        // so the segment loaded after it is at least the one of this position's lap, and
        // its contents are visible (see `pop_slow`).
        let head = self.head.index.load(Acquire);
        let offset = offset(head);
        if offset + 1 < SEGMENT_CAP {
            // Relaxed: as in `pop_slow`.
            let seg = self.head.segment.load(Relaxed);
            let mut new_head = popped(head);
            if head & MARK == 0 {
                let tail = self.tail_ahead_of(head);
                if position(head) == position(tail) {
                    self.collect_set_aside();
                    return Err(Tail(tail));
                }
                if lap(head) != lap(tail) {
                    new_head |= MARK;
                }
            }
            // SeqCst, and Acquire on failure: as in `pop_slow`.
            match self
                .head
                .index
                .compare_exchange_weak(head, new_head, SeqCst, Acquire)
            {
                Ok(_) => {
                    // SAFETY: we won the claim of slot `offset` of `seg`, the segment of
                    // the claimed position's lap.
                    return Ok((unsafe { self.read(seg, offset) }, handed(head) == 0));
                }
                Err(current) => return self.pop_slow(current),
            }
        }
        self.pop_slow(head)
    }

    /// [`pop_or_tail`](Self::pop_or_tail) in full, from the head word `head` (read with
    /// `Acquire`): retries and a segment boundary.
    #[cold]
    #[inline(never)]
    fn pop_slow(&self, mut head: u64) -> Result<(T, bool), Tail> {
        let backoff = Backoff::new();
        loop {
            let offset = offset(head);
            if offset == SEGMENT_CAP {
                // Another popper is moving the head onto the next segment.
                backoff.snooze();
                // Acquire: as below.
                head = self.head.index.load(Acquire);
                continue;
            }

            let mut new_head = popped(head);
            if head & MARK == 0 {
                let tail = self.tail_ahead_of(head);
                if position(head) == position(tail) {
                    self.collect_set_aside();
                    return Err(Tail(tail));
                }
                if lap(head) != lap(tail) {
                    new_head |= MARK;
                }
            }
            if offset + 1 == SEGMENT_CAP {
                // The claim of a last slot: the head will read "between segments", where
                // nobody reads MARK, and the move onto the next segment adds it afresh.
                new_head &= !MARK;
            }
            // Relaxed: `segment` is published by the Release store of `head.index` that
            // moves the head onto a new segment, and every `head` here was read with
            // Acquire (the first load, a failed claim), so this is at least the segment of
            // `head`'s lap; if it is a later one, `head` is stale and the claim fails.
            let seg = self.head.segment.load(Relaxed);

            // SeqCst on success: Release, because `len` acquires `head.index` and must then
            // see a tail at least as far as the one this claim relied on; SeqCst, because
            // it is the store half of the layer above's "take an item, then look for
            // waiting senders" pair. Acquire on failure: the new position may be on a new
            // segment, as for the first load.
            match self
                .head
                .index
                .compare_exchange_weak(head, new_head, SeqCst, Acquire)
            {
                Ok(_) => {
                    if offset + 1 == SEGMENT_CAP {
                        // We claimed the last slot; the head now reads "between segments",
                        // so we alone move it on.
                        // SAFETY: [1] our unread slot keeps `seg` alive (reclamation step 3:
                        // only we retire it); [2] `next` is the head's next segment, which
                        // cannot be retired before the head has passed all its slots, and
                        // that needs the store below.
                        let next = unsafe { (*seg).wait_next() };
                        // One position on, to the next lap's first slot.
                        let mut step = ONE;
                        // Acquire: a non-null `next.next` was stored after the tail moved
                        // past `next`'s lap; `len` relies on seeing that tail too.
                        // SAFETY: `next` is alive by [2].
                        if !unsafe { (*next).next.load(Acquire) }.is_null() {
                            step |= MARK;
                        }
                        // Release on the index: publishes the `segment` store before it,
                        // and what we acquired of `next`, to poppers that acquire it. An
                        // addition, not a store: `hand_over` may add to H meanwhile (the
                        // only change anyone else makes to the word while it reads
                        // "between segments"); MARK is clear in it, so the step carries
                        // into nothing.
                        self.head.segment.store(next, Relaxed);
                        self.head.index.fetch_add(step, Release);
                    }
                    // SAFETY: we won the claim of slot `offset` of `seg`, the segment of the
                    // claimed position's lap.
                    return Ok((unsafe { self.read(seg, offset) }, handed(head) == 0));
                }
                Err(current) => {
                    head = current;
                    backoff.spin();
                }
            }
        }
    }

    /// A tail index word for a pop at `head` (without MARK) to decide on: `head.seen` if
    /// it is ahead of `head` (then the slot at `head` was claimed by a pusher, and the
    /// tail's lap is at least that one's), else the tail itself, remembered there.
    #[inline]
    fn tail_ahead_of(&self, head: u64) -> u64 {
        // Relaxed: a hint, never ahead of the tail (tails only move on, and only tails read
        // from the tail are stored). It decides only that the slot at the head has a
        // pusher, whose value the popper acquires through WRITE; "empty" and the
        // reservations are always decided on the tail itself, below.
        let seen = self.head.seen.load(Relaxed);
        // Ahead by a position means at least an item: `head` is a slot (a pop never looks
        // from "between segments"), so a tail past it has claimed that slot. The cheap
        // form of `items_between(head, seen) >= 1` (less than half a wrap ahead).
        debug_assert!(offset(head) < SEGMENT_CAP, "a pop looks from a slot");
        let ahead = position(seen).wrapping_sub(position(head)) & POSITIONS;
        if ahead != 0 && ahead <= POSITIONS / 2 {
            return seen;
        }
        // Acquire: only for a caller's `Tail::reservations` when the queue is empty (as in
        // `reservations`). The slot's contents are acquired through WRITE, and a push that
        // happens before this pop is seen by coherence.
        let tail = self.tail.index.load(Acquire);
        // Relaxed: as for the load.
        self.head.seen.store(tail, Relaxed);
        tail
    }

    /// How many items the queue holds: exact when no push or pop runs at the same time.
    /// Otherwise it is the pushes claimed by the end of the call minus the pops claimed at
    /// its start, so it may still count items popped (or not yet written) meanwhile.
    pub fn len(&self) -> usize {
        // Acquire: pairs with the Release of every head claim and head move, so the tail we
        // load next is at least as far as any tail those poppers relied on, and therefore at
        // or after the head. SeqCst (both): as in `room`.
        let head = self.head.index.load(SeqCst);
        let tail = self.tail.index.load(SeqCst);
        let items = items_between(head, tail);
        debug_assert!(items.is_some(), "the tail never falls behind the head");
        // `unwrap_or` only as a guard: by the orderings above the tail is never behind.
        items.unwrap_or(0) as usize
    }

    /// Whether the queue holds no items (a snapshot, as for [`len`](Self::len)).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many segments are allocated and not freed: the chain, the pool, and spares held
    /// by pushers mid-push.
    #[cfg(any(test, loom))]
    #[doc(hidden)]
    pub fn segments_alive(&self) -> usize {
        self.alive.get()
    }

    /// How many segments were ever allocated (reuse keeps this low on a steady stream).
    #[cfg(any(test, loom))]
    #[doc(hidden)]
    pub fn segments_allocated(&self) -> usize {
        self.allocated.get()
    }

    /// Writes `value` into slot `offset` of `seg` and publishes it.
    ///
    /// # Safety
    /// The caller won the claim of slot `offset` in `seg` for pushing, so `seg` is alive
    /// and the slot's cell is empty and ours to write.
    #[inline(always)]
    unsafe fn write(seg: *mut Segment<T>, offset: usize, value: T) {
        // SAFETY: `seg` is alive while our slot is unwritten (reclamation step 1).
        let seg = unsafe { &*seg };
        // SAFETY: the claim makes us the cell's only writer, and its popper reads only after
        // the WRITE below.
        seg.values[offset].with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) });
        // Release: publishes the value to the Acquire load in `read`. A store: until WRITE
        // nobody else writes this byte (the state starts at 0, reset before the lap began).
        seg.states[offset].store(WRITE, Release);
        // From here on `seg` may be retired and reused at any moment.
    }

    /// Waits for slot `offset` of `seg` to be written, moves its value out, and marks the
    /// slot read (or, for the last slot, retires the segment).
    ///
    /// # Safety
    /// The caller won the claim of slot `offset` in `seg` for popping: nobody else reads
    /// the slot, and `seg` stays alive until this call marks it READ or retires `seg`.
    #[inline(always)]
    unsafe fn read(&self, seg: *mut Segment<T>, offset: usize) -> T {
        // SAFETY: alive until our READ (reclamation steps 2 and 3).
        let s = unsafe { &*seg };
        // Acquire: pairs with the Release store of WRITE in `write`: the value is there.
        if s.states[offset].load(Acquire) & WRITE == 0 {
            s.wait_written(offset);
        }
        // SAFETY: [1] WRITE was seen with Acquire, so the value is initialised; [2] the claim
        // makes us the only reader, so nothing else moves it out.
        let value = s.values[offset].with_mut(|p| unsafe { p.read().assume_init() });

        if offset + 1 == SEGMENT_CAP {
            // SAFETY: we read the last slot, so we retire the segment (step 3).
            unsafe { self.retire(seg) };
        } else {
            // Release: publishes our accesses to `seg` to the retiring thread's Acquire
            // load in `finished`. From here on `seg` may be recycled at any moment.
            s.states[offset].store(WRITE | READ, Release);
        }
        value
    }

    /// Retires `seg`, whose last slot the caller has just read: first checks the segments
    /// set aside earlier, then recycles `seg` if all its poppers are done, else sets it
    /// aside (module docs, reclamation steps 3 and 4).
    ///
    /// # Safety
    /// The caller popped the last slot of `seg` and is done with it: every slot of `seg`
    /// has been claimed by a popper, and nothing else retires it.
    unsafe fn retire(&self, seg: *mut Segment<T>) {
        self.collect_set_aside();
        // SAFETY: every slot of `seg` is claimed and we are its one retiring thread.
        unsafe { self.recycle_or_set_aside(seg) };
    }

    /// Checks the segments set aside at their retirement again: recycles those whose
    /// poppers are all done, sets the others aside again (module docs, step 4).
    #[inline]
    fn collect_set_aside(&self) {
        // Relaxed: only a hint, to skip the RMW when nothing is set aside.
        if self.retiring.load(Relaxed).is_null() {
            return;
        }
        // Acquire: pairs with the Release in `recycle_or_set_aside`: the links are visible.
        let mut aside = self.retiring.swap(ptr::null_mut(), Acquire);
        while !aside.is_null() {
            // SAFETY: a set-aside segment stays alive until recycled; having taken it off
            // the stack we alone may recycle it or set it aside again, and every slot of
            // it was claimed and its last slot's popper is done (its retirement set it
            // aside).
            unsafe {
                let next = (*aside).next.load(Relaxed);
                self.recycle_or_set_aside(aside);
                aside = next;
            }
        }
    }

    /// Recycles `seg` if every popper of it is done, else puts it on the `retiring` stack.
    ///
    /// # Safety
    /// Every slot of `seg` has been claimed by a popper, the last slot's popper is done,
    /// and the caller alone retires `seg` (it is on no stack).
    unsafe fn recycle_or_set_aside(&self, seg: *mut Segment<T>) {
        // SAFETY: alive: only this retirement frees or recycles it.
        let s = unsafe { &*seg };
        // The last slot needs no mark: its popper began the retirement.
        // Acquire: pairs with the Release READ store in `read`, so a finished popper's
        // accesses happen before the reuse (and its pusher's before those, by WRITE).
        let finished = s.states[..SEGMENT_CAP - 1]
            .iter()
            .all(|state| state.load(Acquire) & READ != 0);
        if finished {
            // SAFETY: every popper is done (step 3), and pushers finished before them.
            unsafe { self.recycle(seg) };
            return;
        }
        // Relaxed: a first guess for the CAS.
        let mut top = self.retiring.load(Relaxed);
        loop {
            // Relaxed: published by the Release CAS below.
            s.next.store(top, Relaxed);
            // Release: publishes the link (and what we saw of `seg`) to the Acquire `swap`
            // in `retire`. Relaxed on failure: retry with the new top.
            match self
                .retiring
                .compare_exchange_weak(top, seg, Release, Relaxed)
            {
                Ok(_) => return,
                Err(current) => top = current,
            }
        }
    }

    /// Resets a retired segment and puts it into the pool, or frees it if the pool is full.
    ///
    /// # Safety
    /// No thread can touch `seg` again.
    unsafe fn recycle(&self, seg: *mut Segment<T>) {
        // SAFETY: nobody else can touch `seg` (the caller), so these plain resets race with
        // nothing; the Release in `put_spare` publishes them.
        let s = unsafe { &*seg };
        s.next.store(ptr::null_mut(), Relaxed);
        for state in &s.states {
            state.store(0, Relaxed);
        }
        // SAFETY: reset to a fresh segment just now, and ours alone.
        unsafe { self.put_spare(seg) };
    }

    /// Puts a fresh or reset segment into the pool, or frees it if the pool is full.
    ///
    /// # Safety
    /// `seg` is fresh or reset (`next` null, every state 0) and owned by the caller.
    unsafe fn put_spare(&self, seg: *mut Segment<T>) {
        for entry in self.spare.iter() {
            // Release: publishes the reset to the Acquire `swap` in `take_segment`.
            // Relaxed on failure: the entry is full, we only try the next one.
            if entry
                .compare_exchange(ptr::null_mut(), seg, Release, Relaxed)
                .is_ok()
            {
                return;
            }
        }
        // SAFETY: ours alone (the caller), and not put anywhere else.
        unsafe { self.free_segment(seg) };
    }

    /// A segment for a new lap: from the pool if it has one, else freshly allocated from the
    /// arena (see "Where segment memory comes from" in the module docs).
    fn take_segment(&self) -> *mut Segment<T> {
        for entry in self.spare.iter() {
            // Relaxed: only a hint, to skip the RMW on an empty entry.
            if !entry.load(Relaxed).is_null() {
                // Acquire: pairs with the Release in `put_spare`, so the reset is visible.
                let seg = entry.swap(ptr::null_mut(), Acquire);
                if !seg.is_null() {
                    return seg;
                }
            }
        }
        #[cfg(any(test, loom))]
        {
            self.alive.add(1);
            self.allocated.add(1);
        }
        Segment::alloc(&self.arena)
    }

    /// Frees a segment (counting it in tests).
    ///
    /// # Safety
    /// As for [`Segment::free`].
    unsafe fn free_segment(&self, seg: *mut Segment<T>) {
        #[cfg(any(test, loom))]
        self.alive.sub(1);
        // SAFETY: the caller's contract is `Segment::free`'s, and every segment of this queue
        // comes from its arena.
        unsafe { Segment::free(&self.arena, seg) };
    }
}

impl<T> Drop for SegQueue<T> {
    fn drop(&mut self) {
        // Relaxed: `&mut self` means every push and pop has returned, and whoever handed us
        // the queue synchronised with them. So every segment before the head's has been
        // recycled, every slot in [head, tail) is written, and nothing else is alive but the
        // chain from the head and the pool.
        let mut head = self.head.index.load(Relaxed) & !(ONE - 1);
        let tail = self.tail.index.load(Relaxed) & !(ONE - 1);
        let mut seg = self.head.segment.load(Relaxed);

        while head != tail {
            let offset = offset(head);
            if offset < SEGMENT_CAP {
                // SAFETY: [1] `seg` is the segment of `head`'s lap, alive (it is in the chain);
                // [2] the slot is written and was not popped, so it holds a value that
                // nothing else will drop or move.
                unsafe {
                    debug_assert!((*seg).states[offset].load(Relaxed) & WRITE != 0);
                    (*seg).values[offset].with_mut(|p| ptr::drop_in_place(p.cast::<T>()));
                }
            } else {
                // SAFETY: a full segment before the tail's has its `next` linked; after this
                // step nothing refers to it.
                unsafe {
                    let next = (*seg).next.load(Relaxed);
                    self.free_segment(seg);
                    seg = next;
                }
            }
            head = head.wrapping_add(ONE);
        }
        // SAFETY: the tail's segment, whose values are all gone; nothing refers to it.
        unsafe { self.free_segment(seg) };

        for entry in self.spare.iter() {
            let spare = entry.load(Relaxed);
            if !spare.is_null() {
                // SAFETY: a pool entry is owned by the pool, and the pool dies with us.
                unsafe { self.free_segment(spare) };
            }
        }

        // Segments set aside at their retirement: their values were all moved out (every
        // pop has returned), so only the memory is left.
        let mut aside = self.retiring.load(Relaxed);
        while !aside.is_null() {
            // SAFETY: a set-aside segment is linked only on this stack, which dies with us.
            unsafe {
                let next = (*aside).next.load(Relaxed);
                self.free_segment(aside);
                aside = next;
            }
        }

        // Every test and loom model checks this: a segment that no retirement finished (one
        // lost from the `retiring` stack, say) would still be counted here.
        #[cfg(any(test, loom))]
        if !std::thread::panicking() {
            assert_eq!(self.alive.get(), 0, "segments leaked");
        }
    }
}

impl<T> Default for SegQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for SegQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegQueue")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
