//! Layer 5: `Queue<T>`, the FIFO queue of Toro (`Queue`, `put`/`get`, `maxsize`), for async
//! tasks and blocking threads at once. Safe code only: the segmented lock-free FIFO of
//! layer 4 holds the items, counts them and, in its tail word, the places reserved and
//! the closed bit; two *lines* (a fair semaphore of layer 3 each) hold those who wait.
//! Nothing is written twice: both lines are one [`Line`], used the same way.
//!
//! # The fast path
//!
//! ```text
//!  send:  senders' line idle? ──► push item [bounded: if items + reserved < cap] ──► receivers' line waits?
//!  recv:  receivers' line idle? ──► pop item ──► [bounded: senders' line waits?]
//! ```
//!
//! While nobody waits, a send is the FIFO's claim and write plus loads of the senders'
//! line word (bounded only) before and the receivers' after, and a receive is the FIFO's
//! claim and read plus loads of the receivers' line word before and the senders' after
//! (bounded only). Line words change only when someone waits, so these loads hit the
//! cache. A bounded queue's capacity is checked by the
//! claim itself: the tail word holds the tail's position and the reservations, so the
//! compare-and-swap that claims a slot fails if either changed, and the head, read before
//! it, only ever moves on. No permit counter is touched per message.
//!
//! # Lines, and why no wake is lost
//!
//! A [`Line`] is a semaphore whose permits are never in its word: its waiters are receivers
//! that found the FIFO empty (`rx`) or senders that found it full (`tx`), and a grant
//! ([`RawSemaphore::grant_head_else`]) means "an item (a place) is there for you". A fresh
//! send, and `try_recv`, go ahead only while nobody is in line and the free places (items)
//! outnumber the grants not yet used (`granted`), so they do not take what is promised to
//! a waiter. A receive that would wait goes ahead while nobody is in line, even if every
//! item is granted to a receiver that has not looked yet: joining the empty line, its own
//! look would grant it (the head) one of those items anyway, so it takes one at once,
//! without the line's lock. Going through the line there made C3 (four producer tasks,
//! four consumers) settle into a lockstep in which most receives joined the line and
//! granted themselves: 124-135 ns a message against 38-40 now in the bench's A/B runs
//! (README, "Channel"; kanal 40-42 in the same runs). A granted waiter tries regardless, and lines up again (at the back) if a
//! newcomer took its item (place). Two sides, each a store then a load, so both use
//! `SeqCst`:
//!
//! - a sender claims its slot (a `SeqCst` compare-and-swap of the FIFO's tail), writes the
//!   item, then loads the receivers' line word (`SeqCst`): if someone waits, it grants the
//!   head. Likewise a receiver's claim of the FIFO's head (`SeqCst`), or a permit given
//!   back unused (`SeqCst` `fetch_sub` of the tail's reservations), then a load of the
//!   senders' line word.
//! - a waiter joins its line (sets `W` under the line's lock, with a `SeqCst`
//!   compare-and-swap, or finds it set by a waiter still in line), then, still under
//!   that lock, looks at the FIFO again with `SeqCst` loads ([`OnJoin`]): if an item
//!   (a place no grant covers) is there, it grants the head of the line itself (maybe
//!   itself, with no wake, maybe an earlier waiter). Under the lock, so that a changer's
//!   grant (which takes the lock) reaches a waiter only as its poll returns: a task woken
//!   while it is still being polled is rescheduled as if it had yielded, on the worker
//!   that polled it, so a consumer and its producer would stay on two workers.
//!
//! In the single order of `SeqCst` operations either the changer's load comes after the
//! `W`'s compare-and-swap, and sees `W`, or it comes before it, and then so does the
//! change, which the waiter's look after the compare-and-swap sees. (An earlier fence
//! cost each wait a full barrier on x86; a locked compare-and-swap already is one.) So every item pushed (place freed) while a
//! waiter lines up is granted at least once; a second grant for the same one is harmless
//! (its waiter finds nothing and lines up again). A grant handed to a waiter that is being
//! dropped passes to the next in line ([`SemRef::give_back`]).
//!
//! A grant of a waiting *send* (not a reserve) also moves the send's item into the freed
//! place, under the senders' line's lock, as Toro's `get` does: the send is done without
//! another try (API.md: a waiting sender's item enters when a place frees), and its grant
//! is used, and uncounted, then and there, under that lock. The item lives in the send's
//! future (or its thread's stack) in an [`ItemSlot`], which its node points to: the sender
//! touches it only while the node is out of the line, a lock holder only while it is in.
//! A woken sender whose slot is empty is done, and does nothing more with its grant.
//!
//! Without the move, a full queue with senders waiting settles into lockstep: every
//! place a receive frees is granted to the head of the line, whose grant stays counted
//! until that sender is polled and pushes, so every other send in the meantime finds the
//! places promised and lines up too, and every message pays for a wait. Benchmark C2
//! (four producer tasks, one consumer, `bounded(1024)`, a 2-worker runtime) took 127-148
//! ns a message that way, and takes 31 with the item moved in and the grant uncounted at
//! once (kanal 49-52, tokio 141-147, in the same A/B runs: README, "Channel").
//!
//! A joining sender compares the free places with the grants out (a place a grant
//! covers is its holder's), so the ways a grant leaves the count are ordered against
//! joiners too: a grant is counted under the line's lock as its waiter leaves the line
//! (one whose item moves in there is never counted), a grant passed on that finds nobody
//! in line is uncounted under that lock, and a sender that used its grant uncounts it,
//! fences, and wakes the line once more if a place is still free. Without the first, loom model P4b of
//! `reserve.rs` loses a wake (a deadlock); without the second, model Q8 of `queue.rs`.
//!
//! # Hand-over: an item for a waiting receiver takes no place
//!
//! As in Toro (`put` hands its item straight to a waiting `get`), an item sent to a
//! bounded queue while a receiver waits is that receiver's: it takes no place. The item
//! still goes through the FIFO, so order holds and a receiver that leaves without it
//! loses nothing (the item stays queued, for the next receive). The push that grants the
//! receiver counts the item as handed ([`SegQueue::hand_over`]: H in the FIFO's head
//! word), and pushes count items less handed ones against the bound. The next pop, by
//! whoever, takes one off H in its own claim, so the room it leaves is the same: only a
//! pop while H is zero frees a place and looks for waiting senders. A hand-over frees a
//! place itself, so it looks at the senders' line after its `SeqCst` claim (loom model
//! Q12 of `queue.rs`), and a sender served there pushes an item in turn, for the next
//! waiting receiver ([`Queue::wake_receivers`] runs that loop).
//!
//! So `bounded(1)` between a producer and a consumer that waits for each item holds one
//! item besides the one on its way to the consumer, as kanal and Go's channels do by
//! moving the item into the receiver: each side then waits once every three messages,
//! not every two. Benchmark C4 (`bounded(1)`, two tasks on a 2-worker runtime): 198 ns
//! a message without it (median of six runs at d77c993), 121 with it (six at 5ad9dcb;
//! README, "Channel"). H never exceeds
//! the items inside (`hand_over` checks it in its compare-and-swap), so a bounded queue
//! holds at most its capacity plus H items: one more for each receiver woken for an
//! item it has not taken yet.
//!
//! # Close: "closed and drained"
//!
//! `close` sets the FIFO's closed bit, in the tail word that pushers claim and reserves
//! count in, so no fresh push or reserve lands after it; then it closes the senders' line
//! (waiting senders fail with their item back) and `slots` (rendezvous). A permit still
//! sends after the close (its push ignores the bit), so receivers wait while permits are
//! out. The one word makes "closed, and no permit out" a single reading, raced by
//! nothing: a close sets the bit with one `fetch_or` and closes the receivers' line
//! (waking every waiting receiver to look once more) if that saw no reservation; the last
//! permit to go after a close sees the bit in its own claim (or `fetch_sub`) and closes
//! the line then. A receive that finds the FIFO empty reads the word (Acquire) and looks
//! at the FIFO again: empty, closed and no permit out means drained, [`RecvError`]. The
//! Acquire makes every push before the close, and every permit's push, visible to that
//! second look.
//!
//! # Rendezvous: `bounded(0)`
//!
//! A rendezvous queue has no places of its own: receivers lend them, as permits of a
//! semaphore, `slots` (a queue with places counts them in the FIFO instead, as above;
//! senders of a rendezvous wait in `slots`' own queue). Every receive, in every form,
//! first *offers* a place (one `slots` permit, released), then takes as above,
//! and the take spends the offer instead of giving a slot back. So a sender gets a place
//! (and `reserve` a permit) only while a receiver waits unmatched, and a send completes
//! when its item is in the receivers' hands: the line's head is granted at once.
//!
//! ```text
//!  recv:  lend 1 slot ──► take (pop, or wait in line) ──► (the slot is spent)
//!  send:  acquire 1 slot ──► push item ──► grant the line's head
//! ```
//!
//! A receive that ends without an item (cancelled, timed out, `try_recv` finding
//! nothing) withdraws its offer by taking one free `slots` permit back. If senders have
//! taken them all, one sender's item is on its way with no receiver of its own: it stays
//! queued, the receive counts it as `surplus`, and the next receive is covered by it
//! instead of offering a place (`try_recv` and a timed receive first spin briefly for
//! it). So the free places never outnumber the receivers waiting for long: an orphaned
//! item costs one queued item, never a lasting spare place. Every receive adds one offer
//! (or spends one surplus) and every take spends one, so there are never fewer places and
//! items on their way than receivers waiting, and a waiting receiver and a waiting sender
//! always meet.

mod future;
mod permit;
#[cfg(test)]
mod tests;

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::error::{
    AcquireTimeoutError, Closed, RecvError, RecvTimeoutError, SendError, SendTimeoutError,
    TryAcquireError, TryRecvError, TrySendError,
};
use crate::loom::{fence, AtomicUsize, Backoff, Ordering::*, Spin, UnsafeCell};
use crate::segqueue::{Refused, Reservations, SegQueue, MAX_RESERVED};
use crate::semaphore::future::{RawAcquire, SemRef};
use crate::semaphore::raw::{OnJoin, RawSemaphore};
use crate::wait::Payload;

pub use future::{RecvFuture, SendFuture};
pub use permit::SendPermit;

/// A FIFO queue for async tasks and threads at once, bounded or unbounded (Toro's
/// `Queue`): items come out in the order they went in, waiting senders and receivers are
/// served first come first served, and every wait comes in five forms.
///
/// Share it by reference or in an `Arc`. Sending on a closed queue hands the item back;
/// receivers drain what is left after a close, then get [`RecvError`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use toro_sync::Queue;
///
/// let q = Arc::new(Queue::bounded(2));
/// let producer = {
///     let q = q.clone();
///     std::thread::spawn(move || {
///         for i in 0..5 {
///             q.send_blocking(i).unwrap(); // waits while the queue is full
///         }
///         q.close();
///     })
/// };
/// let got: Vec<i32> = futures::executor::block_on(async {
///     let mut got = Vec::new();
///     while let Ok(item) = q.recv().await {
///         got.push(item);
///     }
///     got
/// });
/// producer.join().unwrap();
/// assert_eq!(got, [0, 1, 2, 3, 4]);
/// ```
pub struct Queue<T> {
    /// The items, in order, and in its tail word the places reserved and the closed bit,
    /// which is the queue's.
    items: SegQueue<T>,
    /// Rendezvous only: one permit per place lent by a waiting receive (module docs).
    slots: CachePadded<RawSemaphore>,
    /// Receivers that found the queue empty (module docs, "Lines").
    rx: CachePadded<Line>,
    /// Bounded with places only: senders (and reserves) that found it full.
    tx: CachePadded<Line>,
    /// Rendezvous only: items on their way whose receiver left (module docs).
    surplus: AtomicUsize,
    /// The capacity (0 for a rendezvous); unused when unbounded.
    places: usize,
    bounded: bool,
}

/// Those who wait for something in the FIFO (an item, or a place), and the grants handed
/// to them, on one cache line: a newcomer reads both (module docs, "Lines").
struct Line {
    /// The waiters; a grant means "what you wait for is there".
    waiters: RawSemaphore,
    /// Grants handed out and not yet used by their waiter's try.
    granted: AtomicUsize,
}

impl Line {
    fn new() -> Self {
        Self {
            waiters: RawSemaphore::new(0),
            granted: AtomicUsize::new(0),
        }
    }

    /// Whether a newcomer may go ahead: nobody waits, and what it wants is more than the
    /// grants not yet used (`available` counts it: items, or free places).
    #[inline]
    fn is_idle(&self, available: impl FnOnce() -> usize) -> bool {
        if self.waiters.has_waiters() {
            return false;
        }
        // Relaxed: a stale count only lets a newcomer that started before the grant go
        // first, which is its turn anyway (or, the other way, sends it to the line).
        match self.granted.load(Relaxed) {
            0 => true,
            granted => available() > granted,
        }
    }

    /// After a change to the FIFO (a push, or a place freed): whether anyone waits in
    /// line, to be granted.
    #[inline]
    fn waits(&self) -> bool {
        // The load is `SeqCst` (in `has_waiters`), after the change's `SeqCst` RMW: module
        // docs, "Lines". loom models `SeqCst` accesses as `AcqRel` (loom#180), so under
        // loom the pair is made of the `SeqCst` fence the C++ rule builds on.
        #[cfg(loom)]
        fence(SeqCst);
        self.waiters.has_waiters()
    }

    /// Grants the head of the line (nothing if the line emptied meanwhile). If there is a
    /// head, `serve` runs first, under the lock, with the item it brings, if any (a
    /// waiting sender's), and says whether it used the grant then and there (it moved the
    /// item in); else the grant is counted, under the lock and before the head leaves the
    /// line, until its waiter uses it or passes it on. A grant used at once is never
    /// counted: it costs the count no read-modify-write.
    #[cold]
    fn grant_one(&self, serve: impl FnOnce(Option<Payload>) -> bool) {
        self.waiters.grant_head_else(
            |payload| {
                if !serve(payload) {
                    self.count_grant();
                }
            },
            || {},
        );
    }

    /// Counts a grant about to be made, before its waiter leaves the line: a newcomer
    /// that sees the line shorter then tends to see the count too, and stay behind the
    /// granted waiter; a waiter that joins (under the line's lock) sees it.
    #[inline]
    fn count_grant(&self) {
        // Relaxed: the count only keeps newcomers in line; it orders no data.
        self.granted.fetch_add(1, Relaxed);
    }

    /// A counted grant was not made.
    #[inline]
    fn uncount_grant(&self) {
        // Relaxed: as in `count_grant` (the lock orders it for a joining waiter).
        self.granted.fetch_sub(1, Relaxed);
    }

    /// A granted receiver has looked: its grant is used.
    #[inline]
    fn grant_used(&self) {
        // Relaxed: as in `count_grant`.
        self.granted.fetch_sub(1, Relaxed);
    }

    /// A granted sender has tried: its grant is used. If `more` says a place is still
    /// free, the line is woken again: a sender that joined meanwhile may have read the
    /// count with this grant in it and left that place to it. The uncount, a `SeqCst`
    /// fence, then the look at the places and at the line word, against the joiner's `W`
    /// and `SeqCst` reads of the count and the places: either the joiner reads the count
    /// without this grant, or this look sees it in line (or, if a pop freed the place, the
    /// pop's own look at the line did).
    #[inline]
    fn grant_used_then_wake(&self, more: impl FnOnce() -> bool, wake: impl FnOnce()) {
        // Relaxed: ordered by the fence.
        self.granted.fetch_sub(1, Relaxed);
        fence(SeqCst);
        if more() {
            wake();
        }
    }

    /// A granted waiter is going away without trying: its grant goes to the next in line
    /// (who tries for itself) or, if nobody is there, is uncounted under the line's lock:
    /// a waiter joining later then reads the count without it (its look at the FIFO
    /// compares free places with it), one that joined before gets it.
    fn pass_grant(&self) {
        self.waiters
            .grant_head_else(|_| {}, || self.uncount_grant());
    }
}

/// Which line a wait is in, and what it saw before joining it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Side {
    /// The receivers' line; the tail position the receive's last look read (in its pop)
    /// before it found nothing (`None`: it joined without looking).
    Receive(Option<u64>),
    /// The senders' line; a send's item ([`ItemSlot`]), a reserve has none.
    Send(Option<Payload>),
}

impl Side {
    /// The item a wait on this side brings.
    #[inline]
    fn payload(self) -> Option<Payload> {
        match self {
            Self::Send(payload) => payload,
            Self::Receive(_) => None,
        }
    }
}

/// A waiting sender's item, where whoever frees a place can move it in ("Lines" in the
/// module docs): the sender touches it only while its node is not in the senders' line,
/// a lock holder of that line only while it is.
pub(crate) struct ItemSlot<T>(UnsafeCell<Option<T>>);

// SAFETY: the item may be moved out on another thread (it must be `Send`); shared access
// is serialised: the owner only while the node is not linked, a lock holder of the line
// only while it is (`ItemSlot::with`).
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for ItemSlot<T> {}

impl<T> ItemSlot<T> {
    pub(crate) fn new(item: T) -> Self {
        Self(UnsafeCell::new(Some(item)))
    }

    /// The sender's own access.
    ///
    /// # Safety
    /// No node carrying this slot is linked in a line (before the wait, or after it ended:
    /// granted, closed, timed out or cancelled, all decided under the line's lock).
    #[allow(unsafe_code)]
    unsafe fn with<R>(&self, f: impl FnOnce(&mut Option<T>) -> R) -> R {
        // SAFETY: by the contract nobody else reaches the slot now.
        self.0.with_mut(|item| f(unsafe { &mut *item }))
    }

    /// The slot a node of the senders' line points to.
    ///
    /// # Safety
    /// `payload` was made from an `ItemSlot<T>` (only sends of a `Queue<T>` give a node of
    /// its senders' line a payload) that outlives `'a`.
    #[allow(unsafe_code)]
    unsafe fn of<'a>(payload: Payload) -> &'a Self {
        // SAFETY: by the contract.
        unsafe { payload.get().cast::<Self>().as_ref() }
    }

    /// Whether the item was moved in while its sender waited: the send is done, and the
    /// grant that woke it used (and uncounted) by whoever moved it.
    ///
    /// # Safety
    /// As for [`with`](Self::with): no node carrying this slot is linked in a line.
    #[allow(unsafe_code)]
    unsafe fn moved_in(&self) -> bool {
        // SAFETY: by the contract.
        unsafe { self.with(|item| item.is_none()) }
    }

    /// The item, if it is still here (nobody moved it in).
    fn into_inner(self) -> Option<T> {
        // SAFETY: owned: no node can carry the slot any more.
        #[allow(unsafe_code)]
        unsafe {
            self.with(Option::take)
        }
    }

    /// Takes the item out, which must still be here (nobody moved it in).
    ///
    /// # Safety
    /// As for [`with`](Self::with): no node carrying this slot is linked in a line.
    #[allow(unsafe_code)]
    unsafe fn take(&self) -> T {
        // SAFETY: by the contract.
        unsafe { self.with(Option::take) }.expect("the item is still in its slot")
    }
}

impl<T> Drop for ItemSlot<T> {
    /// Drops the item if it is still here, through the cell's accessor, so that loom
    /// checks this last access of the owner against a lock holder's move.
    fn drop(&mut self) {
        // SAFETY: the slot's owner drops it only after its wait left the line (the wait is
        // declared after the slot and so dropped first, or has finished).
        #[allow(unsafe_code)]
        drop(unsafe { self.with(Option::take) });
    }
}

impl<T> Queue<T> {
    /// A queue that holds at most `cap` items: senders wait while it is full (Toro's
    /// `maxsize`). An item sent while a receiver waits is handed to that receiver and
    /// takes no place, as in Toro (module docs, "Hand-over").
    ///
    /// `bounded(0)` is a rendezvous: it holds no item, a send waits until a receiver takes
    /// its item, and [`try_send`](Self::try_send) (or a [`reserve`](Self::reserve)) succeeds
    /// only while a receiver waits unmatched.
    ///
    /// # Panics
    /// If `cap > Queue::MAX_CAPACITY`.
    ///
    /// # Examples
    /// ```
    /// use toro_sync::{Queue, TrySendError};
    /// let q = Queue::bounded(1);
    /// q.try_send('a')?;
    /// assert_eq!(q.try_send('b'), Err(TrySendError::Full('b')));
    /// assert_eq!(q.capacity(), Some(1));
    /// # Ok::<(), TrySendError<char>>(())
    /// ```
    ///
    /// A rendezvous between a thread and a task:
    /// ```
    /// use std::sync::Arc;
    /// use toro_sync::{Queue, TrySendError};
    ///
    /// let q = Arc::new(Queue::bounded(0));
    /// assert_eq!(q.try_send(1), Err(TrySendError::Full(1))); // nobody is receiving
    /// let sender = {
    ///     let q = q.clone();
    ///     std::thread::spawn(move || q.send_blocking(2)) // returns once 2 is taken
    /// };
    /// assert_eq!(futures::executor::block_on(q.recv()), Ok(2));
    /// sender.join().unwrap().unwrap();
    /// ```
    pub fn bounded(cap: usize) -> Self {
        assert!(
            cap <= Self::MAX_CAPACITY,
            "Queue::bounded: capacity above Queue::MAX_CAPACITY"
        );
        Self::with_places(cap, true)
    }

    /// The largest capacity of a bounded queue, 2^28 - 1; also the most
    /// [`SendPermit`]s an unbounded queue can have out at once.
    pub const MAX_CAPACITY: usize = MAX_RESERVED;

    /// A queue without a bound: `send` never waits.
    ///
    /// # Examples
    /// ```
    /// use toro_sync::Queue;
    /// let q = Queue::unbounded();
    /// for i in 0..1000 {
    ///     q.try_send(i).unwrap();
    /// }
    /// assert_eq!(q.len(), 1000);
    /// assert_eq!(q.capacity(), None);
    /// ```
    pub fn unbounded() -> Self {
        Self::with_places(0, false)
    }

    fn with_places(places: usize, bounded: bool) -> Self {
        Self {
            items: SegQueue::new(),
            slots: CachePadded::new(RawSemaphore::new(0)),
            rx: CachePadded::new(Line::new()),
            tx: CachePadded::new(Line::new()),
            surplus: AtomicUsize::new(0),
            places,
            bounded,
        }
    }

    /// Whether this is a `bounded(0)` rendezvous.
    #[inline]
    pub(crate) fn is_rendezvous(&self) -> bool {
        self.bounded && self.places == 0
    }

    /// Whether this queue has no bound: its sends never wait.
    #[inline]
    fn is_unbounded(&self) -> bool {
        !self.bounded
    }

    /// Whether this queue has places of its own (bounded, not a rendezvous): its capacity
    /// is checked by the FIFO's claims, and its senders wait in `tx`.
    #[inline]
    fn has_places(&self) -> bool {
        self.bounded && self.places > 0
    }

    /// Places neither holding an item nor reserved (bounded with places only).
    #[inline]
    fn room(&self) -> usize {
        self.items.room(self.places)
    }

    /// Items in the queue now (Toro's `qsize`), those handed to a woken receiver that has
    /// not taken them yet included: so a bounded queue may hold more than its capacity
    /// while receivers wait (module docs, "Hand-over").
    #[doc(alias = "qsize")]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the queue holds no item now.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether no place is free for a [`try_send`](Self::try_send) now (never for an
    /// unbounded queue).
    pub fn is_full(&self) -> bool {
        if self.has_places() {
            // As `try_send` decides: no room, or what room there is promised to waiters.
            let room = self.room();
            room == 0 || !self.tx.is_idle(|| room)
        } else {
            self.is_rendezvous() && self.slots.available() == 0
        }
    }

    /// The bound, `None` when unbounded (Toro's `maxsize`).
    pub fn capacity(&self) -> Option<usize> {
        self.bounded.then_some(self.places)
    }

    /// Closes the queue: waiting and later senders fail and get their item back; receivers
    /// take what is left, then get [`RecvError`].
    ///
    /// # Examples
    /// ```
    /// use toro_sync::{Queue, RecvError, SendError};
    /// let q = Queue::unbounded();
    /// q.try_send(1).unwrap();
    /// q.close();
    /// assert_eq!(q.send_blocking(2), Err(SendError(2)));
    /// assert_eq!(q.recv_blocking(), Ok(1));
    /// assert_eq!(q.recv_blocking(), Err(RecvError));
    /// ```
    pub fn close(&self) {
        let none_reserved = self.items.close();
        self.tx.waiters.close();
        self.slots.close();
        if none_reserved {
            self.rx.waiters.close();
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.items.is_closed()
    }

    /// Sends `item`, waiting while the queue is full (Toro's `put`).
    ///
    /// While it waits, whoever frees a place (a receive, a permit dropped unsent) moves the
    /// item of the first waiting send into it: that send then completes without trying
    /// again.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes has not sent the item (it is dropped with
    /// the future, and a place handed to the future passes to the next sender), unless a
    /// receive had already moved it in: then it was sent, exactly once. To know for sure,
    /// [`reserve`](Self::reserve) a place first.
    ///
    /// # Errors
    /// [`SendError`] with the item if the queue is or becomes closed first.
    #[doc(alias = "put")]
    #[inline]
    pub fn send(&self, item: T) -> SendFuture<'_, T> {
        SendFuture::new(self, item)
    }

    /// One try of a send into a queue with places: pushes `item` if a place is free, and
    /// wakes a waiting receiver; else leaves it where it was. An empty `item` was moved in
    /// while its sender waited: sent.
    #[inline]
    fn try_push(&self, item: &mut Option<T>) -> Result<(), Refused<()>> {
        let Some(value) = item.take() else {
            return Ok(());
        };
        match self.push_item(value) {
            Ok(()) => Ok(()),
            Err(Refused::Full(value)) => {
                *item = Some(value);
                Err(Refused::Full(()))
            }
            Err(Refused::Closed(value)) => {
                *item = Some(value);
                Err(Refused::Closed(()))
            }
        }
    }

    /// Pushes `value` if a place is free (a queue with places), and wakes a waiting
    /// receiver; else hands it back.
    #[inline(always)]
    fn push_item(&self, value: T) -> Result<(), Refused<T>> {
        self.items.push_within(value, self.places)?;
        self.wake_receivers();
        Ok(())
    }

    /// Takes a place (`attempt` pushes into it or reserves it), waiting in the senders'
    /// line while there is none. For a queue with places.
    async fn place_or_wait<R>(
        &self,
        mut attempt: impl FnMut() -> Result<R, Refused<()>>,
    ) -> Result<R, Closed> {
        match self.place_now((), |()| attempt()) {
            Ok(r) => Ok(r),
            Err(Refused::Closed(())) => Err(Closed),
            Err(Refused::Full(())) => self.wait_for_place(None, attempt).await,
        }
    }

    /// A newcomer's try at a place (a queue with places), `attempt` with what it brings
    /// (`item`): `Full`, with the item back, if it is to wait in the senders' line because
    /// others wait there or no place is free.
    #[inline(always)]
    fn place_now<R, X>(
        &self,
        item: X,
        attempt: impl FnOnce(X) -> Result<R, Refused<X>>,
    ) -> Result<R, Refused<X>> {
        if !self.tx.is_idle(|| self.room()) {
            return Err(Refused::Full(item));
        }
        attempt(item)
    }

    /// [`place_or_wait`](Self::place_or_wait) after its first try: waits in the senders'
    /// line, then tries. A send's wait brings its `slot`, from which whoever frees a place
    /// may move the item in (its attempt then finds the slot empty). `attempt` runs only
    /// while the wait is not in line.
    async fn wait_for_place<R>(
        &self,
        slot: Option<&ItemSlot<T>>,
        mut attempt: impl FnMut() -> Result<R, Refused<()>>,
    ) -> Result<R, Closed> {
        loop {
            RawAcquire::new(InLine(self, Side::Send(slot.map(Payload::new))), 1).await?;
            match self.use_grant(slot, &mut attempt) {
                Ok(r) => return Ok(r),
                Err(Refused::Closed(())) => return Err(Closed),
                // A newcomer took the place first: line up again.
                Err(Refused::Full(())) => {}
            }
        }
    }

    /// After a granted wait in the senders' line (its node out of the line): the try. A
    /// send whose item was moved in is done, its grant used by the move; any other try
    /// uses the grant itself ([`Line::grant_used_then_wake`]).
    #[inline]
    fn use_grant<R>(
        &self,
        slot: Option<&ItemSlot<T>>,
        attempt: &mut impl FnMut() -> Result<R, Refused<()>>,
    ) -> Result<R, Refused<()>> {
        // SAFETY: the wait has ended, so its node is out of the line (the contract of
        // `ItemSlot::moved_in`).
        #[allow(unsafe_code)]
        if slot.is_some_and(|slot| unsafe { slot.moved_in() }) {
            // Finds the slot empty: `Ok`, touching nothing.
            return attempt();
        }
        let got = attempt();
        self.tx
            .grant_used_then_wake(|| self.room() > 0, || self.wake_senders());
        got
    }

    /// [`place_or_wait`](Self::place_or_wait), parking the thread, until `deadline`.
    pub(crate) fn place_or_park<R>(
        &self,
        deadline: Option<Instant>,
        slot: Option<&ItemSlot<T>>,
        mut attempt: impl FnMut() -> Result<R, Refused<()>>,
    ) -> Result<R, AcquireTimeoutError> {
        // As in `take_or_park`: a little spinning before joining the line. The spin waits
        // for a run of free places (`refill`), not the first one: each look reads the
        // head's line, which receivers write, and a sender that retried as soon as one
        // place freed read it (and cost the receiver a miss) about once a message
        // (README, "Channel": C5).
        let spin = Spin::new();
        let may_spin = time_left(deadline);
        let refill = (self.places / 8).clamp(1, MAX_REFILL);
        'spin: loop {
            match self.place_now((), |()| attempt()) {
                Ok(r) => return Ok(r),
                Err(Refused::Closed(())) => return Err(AcquireTimeoutError::Closed),
                Err(Refused::Full(())) => {}
            }
            loop {
                if !(may_spin && spin.spin()) {
                    break 'spin;
                }
                if self.room() >= refill {
                    break;
                }
            }
        }
        let side = Side::Send(slot.map(Payload::new));
        loop {
            self.tx.waiters.acquire_blocking_then(
                1,
                deadline,
                side.payload(),
                &InLine(self, side),
            )?;
            match self.use_grant(slot, &mut attempt) {
                Ok(r) => return Ok(r),
                Err(Refused::Closed(())) => return Err(AcquireTimeoutError::Closed),
                // As in `wait_for_place`.
                Err(Refused::Full(())) => {}
            }
        }
    }

    /// A try that never waits ([`place_now`](Self::place_now)): refused as `Full` while
    /// others wait in the senders' line, or as `Closed` once the queue is closed.
    pub(crate) fn try_place<R, X>(
        &self,
        item: X,
        attempt: impl FnOnce(X) -> Result<R, Refused<X>>,
    ) -> Result<R, Refused<X>> {
        match self.place_now(item, attempt) {
            Err(Refused::Full(item)) if self.items.is_closed() => Err(Refused::Closed(item)),
            done => done,
        }
    }

    /// Sends `item` if a place is free and no sender waits (Toro's `put_nowait`).
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the item.
    #[doc(alias = "put_nowait")]
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        if self.has_places() {
            return match self.try_place(item, |item| self.push_item(item)) {
                Ok(()) => Ok(()),
                Err(Refused::Full(item)) => Err(TrySendError::Full(item)),
                Err(Refused::Closed(item)) => Err(TrySendError::Closed(item)),
            };
        }
        if self.is_rendezvous() {
            match self.slots.try_acquire(1) {
                Ok(()) => {}
                Err(TryAcquireError::NoPermits) => return Err(TrySendError::Full(item)),
                Err(TryAcquireError::Closed) => return Err(TrySendError::Closed(item)),
            }
        }
        self.publish(item).map_err(TrySendError::Closed)
    }

    /// Sends `item`, parking the thread while the queue is full.
    ///
    /// # Errors
    /// [`SendError`] with the item if the queue is or becomes closed first.
    pub fn send_blocking(&self, item: T) -> Result<(), SendError<T>> {
        self.send_until(item, None)
            .map_err(|e| SendError(e.into_inner()))
    }

    /// The first try of a send that may wait, its fast path, inlined into the caller:
    /// `Full` (the item back) if it is to wait in the senders' line, as every send on a
    /// rendezvous does before a receiver lends it a place.
    #[inline(always)]
    pub(crate) fn send_now(&self, item: T) -> Result<(), Refused<T>> {
        if self.is_unbounded() {
            return self.publish(item).map_err(Refused::Closed);
        }
        if self.has_places() {
            return self.place_now(
                item,
                #[inline(always)]
                |item| self.push_item(item),
            );
        }
        Err(Refused::Full(item))
    }

    /// [`send_blocking`](Self::send_blocking), giving up after `timeout`.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Closed`], with the item.
    pub fn send_timeout(&self, item: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_until(item, Instant::now().checked_add(timeout))
    }

    /// [`send_blocking`](Self::send_blocking), giving up at `deadline`. A past deadline
    /// still sends when a place is free at once.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Closed`], with the item.
    pub fn send_deadline(&self, item: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.send_until(item, Some(deadline))
    }

    /// Receives the oldest item, waiting while the queue is empty (Toro's `get`).
    ///
    /// # Cancel safety
    /// Dropping the future loses no item: an item handed to it at the last moment goes to
    /// the next receiver, or stays queued.
    ///
    /// # Errors
    /// [`RecvError`] once the queue is closed and drained.
    #[doc(alias = "get")]
    #[inline]
    pub fn recv(&self) -> RecvFuture<'_, T> {
        RecvFuture::new(self)
    }

    /// Receives the oldest item if there is one and no receiver waits (Toro's
    /// `get_nowait`).
    ///
    /// On a rendezvous it takes the item of a waiting sender: it offers a place, which
    /// goes to the first waiting sender, and spins briefly while that sender hands its
    /// item over. If the sender is slower than that (an async task not yet polled, say),
    /// this returns `Empty` and the item waits inside for the next receive.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`], or [`TryRecvError::Closed`] once closed and drained.
    #[doc(alias = "get_nowait")]
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let offer = self.is_rendezvous().then(|| Offer::new(self));
        match self.try_take() {
            Ok(item) => {
                Offer::spent(offer);
                Ok(item)
            }
            Err(TryRecvError::Empty) => match offer.and_then(Offer::withdraw_or_catch) {
                Some(item) => Ok(item),
                None => Err(TryRecvError::Empty),
            },
            Err(TryRecvError::Closed) => Err(TryRecvError::Closed),
        }
    }

    /// Takes the oldest item if nobody is in the receivers' line.
    #[inline]
    fn try_take(&self) -> Result<T, TryRecvError> {
        if self.line_is_idle() {
            self.look()
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Receives the oldest item, parking the thread while the queue is empty.
    ///
    /// # Errors
    /// [`RecvError`] once the queue is closed and drained.
    pub fn recv_blocking(&self) -> Result<T, RecvError> {
        self.recv_until(None).map_err(|_| RecvError)
    }

    /// [`recv_blocking`](Self::recv_blocking), giving up after `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`], or [`RecvTimeoutError::Closed`] once closed and
    /// drained.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_until(Instant::now().checked_add(timeout))
    }

    /// [`recv_blocking`](Self::recv_blocking), giving up at `deadline`. A past deadline
    /// still receives when an item is there at once.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`], or [`RecvTimeoutError::Closed`] once closed and
    /// drained.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_until(Some(deadline))
    }

    fn send_until(&self, item: T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        if self.has_places() {
            let slot = ItemSlot::new(item);
            // SAFETY: as in `send`.
            #[allow(unsafe_code)]
            let sent = self.place_or_park(deadline, Some(&slot), || unsafe {
                slot.with(|item| self.try_push(item))
            });
            return match sent {
                Ok(()) => Ok(()),
                Err(AcquireTimeoutError::Timeout) => Err(SendTimeoutError::Timeout(
                    slot.into_inner().expect("handed back"),
                )),
                Err(AcquireTimeoutError::Closed) => Err(SendTimeoutError::Closed(
                    slot.into_inner().expect("handed back"),
                )),
            };
        }
        if self.is_rendezvous() {
            match self.slots.acquire_blocking(1, deadline) {
                Ok(()) => {}
                Err(AcquireTimeoutError::Timeout) => return Err(SendTimeoutError::Timeout(item)),
                Err(AcquireTimeoutError::Closed) => return Err(SendTimeoutError::Closed(item)),
            }
        }
        self.publish(item).map_err(SendTimeoutError::Closed)
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let offer = self.is_rendezvous().then(|| Offer::new(self));
        match self.take_or_park(deadline) {
            Ok(item) => {
                Offer::spent(offer);
                Ok(item)
            }
            Err(RecvTimeoutError::Timeout) => match offer.and_then(Offer::withdraw_or_catch) {
                Some(item) => Ok(item),
                None => Err(RecvTimeoutError::Timeout),
            },
            Err(RecvTimeoutError::Closed) => Err(RecvTimeoutError::Closed),
        }
    }

    /// Takes the oldest item, parking in the receivers' line while there is none.
    fn take_or_park(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let mut seen;
        // A thread spins (then yields) a little before it joins the line: an item that
        // comes meanwhile costs the sender nothing (no grant, no unpark) and this thread
        // no park. Only while nobody is in line, so the line's order holds. Between looks
        // it watches where the last push left the tail (`SegQueue::pushed`, a line the
        // pushers only store to), not the tail: a receiver caught up with its sender that
        // looked again at each step read the tail's line, which every send
        // compare-and-swaps, and slowed each send by a miss (README, "Channel": C5).
        let spin = Spin::new();
        let may_spin = time_left(deadline);
        'spin: loop {
            match self.take_now() {
                Ok(item) => return Ok(item),
                Err((TryRecvError::Closed, _)) => return Err(RecvTimeoutError::Closed),
                Err((TryRecvError::Empty, tail)) => seen = tail,
            }
            let pushed = self.items.pushed();
            loop {
                if !(may_spin && spin.spin()) {
                    break 'spin;
                }
                if self.items.pushed() != pushed {
                    break;
                }
            }
        }
        let backoff = Backoff::new();
        loop {
            let waited = self.rx.waiters.acquire_blocking_then(
                1,
                deadline,
                None,
                &InLine(self, Side::Receive(seen)),
            );
            if let Err(AcquireTimeoutError::Timeout) = waited {
                return Err(RecvTimeoutError::Timeout);
            }
            match self.look_after_wait(waited.is_ok()) {
                Ok(item) => return Ok(item),
                Err((TryRecvError::Closed, _)) => return Err(RecvTimeoutError::Closed),
                Err((TryRecvError::Empty, tail)) => {
                    seen = Some(tail);
                    // As in `poll_take`.
                    if waited.is_err() {
                        backoff.snooze();
                    }
                }
            }
        }
    }

    /// Pushes `item` (unbounded, or a rendezvous whose sender holds a lent place) and
    /// wakes a waiting receiver. Hands the item back if the queue is closed; a lent place
    /// goes back too.
    #[inline]
    fn publish(&self, item: T) -> Result<(), T> {
        if let Err(item) = self.items.push_unless_closed(item) {
            if self.is_rendezvous() {
                self.slots.release(1);
            }
            return Err(item);
        }
        self.wake_receivers();
        Ok(())
    }

    /// After a wait in line (granted, or woken by a close): looks at the FIFO, then uses
    /// the grant if there was one.
    #[inline]
    fn look_after_wait(&self, granted: bool) -> Result<T, (TryRecvError, u64)> {
        let got = self.look_seen();
        if granted {
            self.rx.grant_used();
        }
        got
    }

    /// A waiter has just joined its line (under the line's lock): looks at the FIFO once
    /// more, with `SeqCst` loads after its `SeqCst` `W`, and says (counting the grant)
    /// that the head is to be granted if what the line waits for may be there and no
    /// grant covers it (module docs, "Lines").
    ///
    /// A receiver counts an item pushed since `seen`, the tail its last look read before it
    /// found nothing (so a receiver whose grant was taken from it does not grant itself
    /// again and again); one that joined without looking (others were in line) counts any
    /// item inside. A sender counts the free places that outnumber the grants out (which
    /// their holders will use, or pass on to this line).
    fn look_again(&self, side: Side) -> bool {
        // The join set `W` with a `SeqCst` compare-and-swap (or found it set by a waiter
        // still in line, whose own join did), and every load below is `SeqCst`: the pair
        // of the changer's `SeqCst` claim and load of the line word (module docs,
        // "Lines"), with no fence on x86. loom models `SeqCst` accesses as `AcqRel`
        // (loom#180), so under loom a `SeqCst` fence stands for them, as in `Line::waits`.
        #[cfg(loom)]
        fence(SeqCst);
        let grant = match side {
            Side::Receive(seen) => match seen {
                Some(seen) => self.items.tail_position() != seen,
                None => !self.items.is_empty(),
            },
            // SeqCst: against the fence of a sender that used its grant
            // (`Line::grant_used_then_wake`); a grant passed on is uncounted under the
            // line's lock.
            Side::Send(_) => self.room() > self.tx.granted.load(SeqCst),
        };
        if grant {
            self.line(side).count_grant();
        }
        grant
    }

    /// The first look of a receive that would wait: [`look_seen`](Self::look_seen) only
    /// while nobody is in the receivers' line ([`nobody_waits`](Self::nobody_waits)):
    /// `Empty` without a tail position if it did not look (the `seen` of
    /// [`Side::Receive`]).
    #[inline(always)]
    fn take_now(&self) -> Result<T, (TryRecvError, Option<u64>)> {
        if !self.nobody_waits() {
            return Err((TryRecvError::Empty, None));
        }
        self.look_seen().map_err(|(why, tail)| (why, Some(tail)))
    }

    /// Whether a `try_recv` may pop: nobody waits in line, and the items inside are more
    /// than the grants not yet used (those items are promised to their receivers).
    #[inline]
    pub(crate) fn line_is_idle(&self) -> bool {
        self.rx.is_idle(|| self.items.len())
    }

    /// Whether a receive that would wait may pop: nobody waits in line. Items granted to
    /// receivers that have not looked yet do not hold it back: joining the empty line, its
    /// look would grant it one of them anyway (module docs, "Lines").
    #[inline]
    fn nobody_waits(&self) -> bool {
        !self.rx.waiters.has_waiters()
    }

    /// Pops the oldest item (and gives its slot back), or says why there is none: `Empty`,
    /// or `Closed` once closed and drained (module docs, "Close").
    #[inline]
    fn look(&self) -> Result<T, TryRecvError> {
        self.look_seen().map_err(|(why, _)| why)
    }

    /// [`look`](Self::look), telling with the reason the tail position its first pop read
    /// and found nothing at: the `seen` of a receive that then lines up (`Side::Receive`),
    /// without a load of its own of the tail's line.
    #[inline(always)]
    fn look_seen(&self) -> Result<T, (TryRecvError, u64)> {
        match self.items.pop_or_tail() {
            Ok((item, freed)) => {
                if freed {
                    self.took();
                }
                Ok(item)
            }
            // Acquire (the pop's load of the tail): pairs with `close` and the permits'
            // claims, so the look in `look_closed` sees every push made before the close,
            // and every permit's push.
            Err(tail) => match tail.reservations() {
                Reservations::Open => Err((TryRecvError::Empty, tail.position())),
                reservations => self.look_closed(reservations, tail.position()),
            },
        }
    }

    /// The rest of [`look_seen`](Self::look_seen) when its pop found the FIFO empty and
    /// closed: one more pop decides between an item, `Closed` and (permits still out)
    /// `Empty`.
    #[cold]
    fn look_closed(&self, reservations: Reservations, tail: u64) -> Result<T, (TryRecvError, u64)> {
        match self.items.pop() {
            Some(item) => {
                self.took();
                Ok(item)
            }
            None if reservations == Reservations::ClosedWithNone => {
                Err((TryRecvError::Closed, tail))
            }
            None => Err((TryRecvError::Empty, tail)),
        }
    }

    /// An item was taken: its place is free again, for a waiting sender (a rendezvous
    /// spends the receive's offer instead).
    #[inline]
    fn took(&self) {
        if self.has_places() {
            self.wake_senders();
        }
    }

    /// After an item was pushed: grants the first waiting receiver, if any, and (a queue
    /// with places) hands it the item, which then takes no place: a place is free again,
    /// for a waiting sender, whose item moved in is pushed in turn (module docs,
    /// "Hand-over").
    #[inline]
    fn wake_receivers(&self) {
        while self.rx.waits() && self.grant_receiver() && self.tx.waits() {
            if !self.serve_sender() {
                return;
            }
        }
    }

    /// Grants the head of the receivers' line, and for a queue with places counts an item
    /// as handed to it ([`SegQueue::hand_over`]). Returns whether that freed a place.
    #[cold]
    fn grant_receiver(&self) -> bool {
        let mut handed = false;
        self.rx.grant_one(|_| {
            handed = self.has_places() && self.items.hand_over();
            false
        });
        handed
    }

    /// After a place was freed: grants the first waiting sender, if any.
    #[inline]
    fn wake_senders(&self) {
        if self.tx.waits() && self.serve_sender() {
            self.wake_receivers();
        }
    }

    /// Grants the head of the senders' line, and moves the item it brings (a send's, not
    /// a reserve's) in ([`move_in`](Self::move_in)). Returns whether an item went in: a
    /// receiver is then to be woken for it.
    #[cold]
    fn serve_sender(&self) -> bool {
        let mut pushed = false;
        self.tx.grant_one(|payload| {
            if let Some(payload) = payload {
                pushed = self.move_in(payload);
            }
            pushed
        });
        pushed
    }

    /// Under the senders' line's lock, as its head is granted: moves the item that head
    /// brings into a free place, so its send is done without another try (API.md: a
    /// waiting sender's item enters when a place frees), and the grant is used then and
    /// there (the sender then finds its slot empty and leaves the count alone). Returns
    /// whether the item went in (a receiver is then to be woken).
    fn move_in(&self, payload: Payload) -> bool {
        // SAFETY: `grant_head_else` (or `OnJoin::serve`) calls this under the senders'
        // line's lock with the payload of its head, which is linked there: the node's
        // owner does not touch its slot now (`ItemSlot::with`), and keeps it alive until
        // it has left the line under that lock. Only sends of this queue give a node of
        // its `tx` line a payload, always made from an `ItemSlot<T>`.
        #[allow(unsafe_code)]
        let slot = unsafe { ItemSlot::<T>::of(payload) };
        // SAFETY: as above: we hold the line's lock and the node is linked.
        #[allow(unsafe_code)]
        unsafe {
            slot.with(|item| {
                let Some(value) = item.take() else {
                    return false;
                };
                match self.items.push_within(value, self.places) {
                    Ok(()) => true,
                    // The place is gone (a permit's, or a newcomer's that looked before
                    // the sender lined up), or closed: the sender tries for itself, as
                    // after any grant.
                    Err(Refused::Full(value) | Refused::Closed(value)) => {
                        *item = Some(value);
                        false
                    }
                }
            })
        }
    }

    /// A permit sends its item: pushed even after a close, and a waiting receiver woken;
    /// the last permit of a closed queue lets the receivers see it drained.
    pub(crate) fn permit_send(&self, item: T) {
        let last = self.items.push_reserved(item);
        self.wake_receivers();
        if last {
            self.rx.waiters.close();
        }
    }

    /// A permit is dropped unsent: its place goes back, to a waiting sender.
    pub(crate) fn permit_drop(&self) {
        let last = self.items.unreserve();
        if self.has_places() {
            self.wake_senders();
        } else if self.is_rendezvous() {
            self.slots.release(1);
        }
        if last {
            self.rx.waiters.close();
        }
    }

    /// Rendezvous only: covers a receive. Normally it offers one place, which goes to the
    /// first waiting sender (or stays free for the next one); if a receive left earlier
    /// with an item on its way, that item covers this one instead.
    pub(crate) fn offer(&self) -> Ticket {
        // AcqRel: a plain count; the items themselves are published by the FIFO.
        let covered = self
            .surplus
            .fetch_update(AcqRel, Acquire, |n| n.checked_sub(1))
            .is_ok();
        if covered {
            return Ticket::Covered;
        }
        self.slots.release(1);
        Ticket::Lent
    }

    /// Rendezvous only: takes a receive's offer back if one is still free. `false` if
    /// senders took them all (or the receive was covered by an item on its way): an item
    /// is then coming, for the next receive.
    pub(crate) fn withdraw(&self, ticket: Ticket) -> bool {
        matches!(ticket, Ticket::Lent) && self.slots.try_acquire(1).is_ok()
    }

    /// Rendezvous only: a receive leaves without the item its offer brought on its way;
    /// the next receive is covered by it instead of offering a place of its own.
    pub(crate) fn orphan(&self) {
        // AcqRel: as in `offer`.
        self.surplus.fetch_add(1, AcqRel);
    }

    /// Rendezvous only: a receive ends without an item.
    pub(crate) fn leave(&self, ticket: Ticket) {
        if !self.withdraw(ticket) {
            self.orphan();
        }
    }

    /// One step of a receive driven by polls ([`Recv`], the channel's `Stream`): `wait`
    /// is the receive's place in line, kept between polls (`None`, or a finished wait,
    /// before its first look); `join` makes a new one. The first look runs in the first
    /// poll, and lines up only if it finds nothing.
    ///
    /// The first look of a receive that has not waited is the fast path, written out
    /// alone so that it inlines into the caller; the rest is in
    /// [`poll_take_slow`](Self::poll_take_slow).
    #[inline(always)]
    pub(crate) fn poll_take<R: SemRef>(
        &self,
        mut wait: Pin<&mut Option<RawAcquire<R>>>,
        join: impl Fn(Option<u64>) -> R,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, RecvError>> {
        if wait.is_none() {
            if let Some(taken) = self.first_look(wait.as_mut(), &join) {
                return Poll::Ready(taken);
            }
        }
        self.poll_take_slow(wait, join, cx)
    }

    /// The first look of a receive: a pop unless others wait in line (their turn comes
    /// first), and if it finds nothing, a new place in line in `wait` (`None` returned).
    #[inline(always)]
    fn first_look<R: SemRef>(
        &self,
        mut wait: Pin<&mut Option<RawAcquire<R>>>,
        join: &impl Fn(Option<u64>) -> R,
    ) -> Option<Result<T, RecvError>> {
        let mut seen = None;
        if self.nobody_waits() {
            match self.look_seen() {
                Ok(item) => return Some(Ok(item)),
                Err((TryRecvError::Closed, _)) => return Some(Err(RecvError)),
                Err((TryRecvError::Empty, tail)) => seen = Some(tail),
            }
        }
        wait.set(Some(RawAcquire::new(join(seen), 1)));
        None
    }

    /// [`poll_take`](Self::poll_take) in full: the wait in line, and the looks after it.
    #[inline(never)]
    fn poll_take_slow<R: SemRef>(
        &self,
        mut wait: Pin<&mut Option<RawAcquire<R>>>,
        join: impl Fn(Option<u64>) -> R,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, RecvError>> {
        let backoff = Backoff::new();
        loop {
            match wait.as_mut().as_pin_mut() {
                Some(mut w) if !w.is_finished() => {
                    let Poll::Ready(waited) = w.as_mut().poll(cx) else {
                        return Poll::Pending;
                    };
                    match self.look_after_wait(waited.is_ok()) {
                        Ok(item) => return Poll::Ready(Ok(item)),
                        Err((TryRecvError::Closed, _)) => return Poll::Ready(Err(RecvError)),
                        Err((TryRecvError::Empty, tail)) => {
                            if waited.is_err() {
                                // Closed, and a reserve is between its count and its look
                                // at the bit: it is about to give up.
                                backoff.snooze();
                            }
                            // Line up again, at the back.
                            w.set(RawAcquire::new(join(Some(tail)), 1));
                        }
                    }
                }
                _ => {
                    if let Some(taken) = self.first_look(wait.as_mut(), &join) {
                        return Poll::Ready(taken);
                    }
                }
            }
        }
    }
}

/// The most free places a spinning blocking sender waits for before it tries again
/// ([`Queue::place_or_park`]): an eighth of the capacity, at most this many.
const MAX_REFILL: usize = 32;

/// Whether a blocking wait until `deadline` has time left (a past deadline still takes
/// what is there at once, but does not spin for it).
#[inline]
fn time_left(deadline: Option<Instant>) -> bool {
    !deadline.is_some_and(|d| Instant::now() >= d)
}

/// What a wait in a line holds: something that reaches the queue, and which line it is in.
pub(crate) struct InLine<Q>(pub(crate) Q, pub(crate) Side);

/// A handle that reaches a queue.
pub(crate) trait QueueRef {
    type Item;
    fn queue(&self) -> &Queue<Self::Item>;
}

impl<T> QueueRef for &Queue<T> {
    type Item = T;
    #[inline]
    fn queue(&self) -> &Queue<T> {
        self
    }
}

/// A wait in line looks at the FIFO once more when it joins (module docs, "Lines").
impl<Q: QueueRef> OnJoin for InLine<Q> {
    #[inline]
    fn look(&self) -> bool {
        self.0.queue().look_again(self.1)
    }

    #[inline]
    fn not_granted(&self) {
        self.0.queue().line(self.1).uncount_grant();
    }

    #[inline]
    fn serve(&self, payload: Payload) -> bool {
        let queue = self.0.queue();
        let moved = queue.move_in(payload);
        if moved {
            // The grant `look` counted is used: uncounted under the lock, so a sender
            // joining later reads the count without it, and one that read it with it
            // finds the place it left to this grant filled.
            queue.line(self.1).uncount_grant();
        }
        moved
    }

    #[inline]
    fn served(&self) {
        self.0.queue().wake_receivers();
    }
}

impl<Q: QueueRef> SemRef for InLine<Q> {
    #[inline]
    fn raw(&self) -> &RawSemaphore {
        &self.0.queue().line(self.1).waiters
    }

    #[inline]
    fn payload(&self) -> Option<Payload> {
        self.1.payload()
    }

    #[inline]
    fn give_back(&self, n: u32) {
        debug_assert_eq!(n, 1);
        if let Side::Send(Some(payload)) = self.1 {
            // SAFETY: the payload is this wait's own slot (`Side::Send`), alive while the
            // wait is; a grant is given back only after the node left the line.
            #[allow(unsafe_code)]
            if unsafe { ItemSlot::<Q::Item>::of(payload).moved_in() } {
                // Its item went in with the grant, which is used: the send is done.
                return;
            }
        }
        self.0.queue().line(self.1).pass_grant();
    }
}

/// Rendezvous only: how a receive was covered, so that it can leave cleanly.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ticket {
    /// It lent a place (one `slots` permit).
    Lent,
    /// An item left by an earlier receive covers it.
    Covered,
}

/// Rendezvous only: one receive's cover, given up when dropped unless spent.
struct Offer<'a, T> {
    queue: &'a Queue<T>,
    ticket: Ticket,
}

impl<'a, T> Offer<'a, T> {
    fn new(queue: &'a Queue<T>) -> Self {
        let ticket = queue.offer();
        Self { queue, ticket }
    }

    /// The receive got its item: the take spends the offer (if it made one).
    fn spent(offer: Option<Self>) {
        core::mem::forget(offer);
    }

    /// The receive found nothing: withdraws the offer, or, if a sender has taken it and
    /// is handing its item over, waits a few spins for that item.
    fn withdraw_or_catch(self) -> Option<T> {
        let this = core::mem::ManuallyDrop::new(self);
        let queue = this.queue;
        if queue.withdraw(this.ticket) {
            return None;
        }
        let spin = Spin::new();
        loop {
            if let Ok(item) = queue.try_take() {
                return Some(item);
            }
            if !spin.spin() {
                queue.orphan();
                return None;
            }
        }
    }
}

impl<T> Drop for Offer<'_, T> {
    fn drop(&mut self) {
        self.queue.leave(self.ticket);
    }
}

impl<T> Queue<T> {
    /// The line a wait on `side` is in.
    #[inline]
    fn line(&self, side: Side) -> &Line {
        match side {
            Side::Receive(_) => &self.rx,
            Side::Send(_) => &self.tx,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("closed", &self.is_closed())
            .finish()
    }
}
