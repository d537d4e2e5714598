//! Layer 5: `Queue<T>`, the FIFO queue of Toro (`Queue`, `put`/`get`, `maxsize`), for async
//! tasks and blocking threads at once. Safe code only: the segmented lock-free FIFO of
//! layer 4 holds the items and is their count, and two fair semaphores of layer 3 hold the
//! lines of those who wait. Nothing is written twice.
//!
//! # The fast path
//!
//! ```text
//!  send:  [bounded: acquire 1 slot] ──► push item ──► anyone in the receivers' line?
//!  recv:  receivers' line empty? ──► pop item ──► [bounded: release 1 slot]
//! ```
//!
//! An unbounded queue touches no semaphore at all while nobody waits: a send is the FIFO's
//! claim and write plus one load of the receivers' line word, a receive is that load plus
//! the FIFO's claim and read. A bounded queue adds its `slots` semaphore: one permit per
//! free place, so senders wait in its FIFO while the queue is full.
//!
//! # Waking receivers: `line`, and why no wake is lost
//!
//! `line` is a semaphore whose permits are never in its word: its waiters are receivers
//! that found the FIFO empty, and a grant ([`RawSemaphore::grant_head`]) means "an item
//! is there for you". A fresh receive pops only while nobody is in line and the items
//! inside outnumber the grants not yet used (`granted`), so it does not take an item
//! promised to a waiting receiver; a granted receiver pops regardless, and lines up again
//! (at the back) in the rare case that a racing fresh receive took its item. Two sides,
//! each a store then a load, so both use `SeqCst`:
//!
//! - a sender claims its slot (a `SeqCst` compare-and-swap of the FIFO's tail), writes the
//!   item, then loads the line word (`SeqCst`): if someone waits, it grants the head.
//! - a receiver joins the line (sets `W` under the line's lock), then issues a `SeqCst`
//!   fence and looks at the FIFO again ([`SemRef::queued`]): if an item is there, it
//!   grants the head of the line itself (maybe itself, maybe an earlier waiter).
//!
//! In the single order of `SeqCst` operations either the sender's load comes after the
//! receiver's fence, and sees `W`, or it comes before it, and then so does the claim, which
//! the receiver's look after the fence sees. So every item pushed while a receiver lines
//! up is granted at least once; a second grant for the same item is harmless (its receiver
//! finds nothing and lines up again). A grant handed to a receiver that is being dropped
//! passes to the next in line ([`SemRef::give_back`]), and its item stays queued.
//!
//! # Close: "closed and drained"
//!
//! `close` sets the FIFO's closed bit (in the same word that pushers claim, so no push
//! lands after it), closes `slots` (waiting and later senders fail with their item back),
//! then sets the closed bit of `permits` too:
//!
//! ```text
//!  permits:  usize::BITS-1                      1   0
//!            +----------------------------------+---+
//!            |  SendPermits out (reserved,      | C |    C = CLOSED, set once by `close`
//!            |  neither sent nor dropped)       |   |
//!            +----------------------------------+---+
//! ```
//!
//! A permit still sends after the close (its push ignores the FIFO's bit), so receivers
//! wait while permits are out. One word makes "closed, and no permit out" a single
//! reading, raced by nothing: a reserve counts itself with one `fetch_add` and fails if
//! that saw `C`; a close sets `C` with one `fetch_or` and closes `line` (waking every
//! waiting receiver to look once more) if that saw no permit; the last permit to go after
//! a close sees `C` in its own `fetch_sub` and closes `line` then. A receive that finds
//! the FIFO empty reads this word (Acquire) and looks at the FIFO again: empty, `C` and
//! no permit out means drained, [`RecvError`]. The Acquire makes every push before the
//! close, and every permit's push before its `fetch_sub`, visible to that second look.
//!
//! # Rendezvous: `bounded(0)`
//!
//! A rendezvous queue has no places of its own: receivers lend them. Every receive, in
//! every form, first *offers* a place (one `slots` permit, released), then takes as above,
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

mod permit;

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::error::{
    AcquireTimeoutError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryAcquireError,
    TryRecvError, TrySendError,
};
use crate::loom::{fence, AtomicUsize, Backoff, Ordering::*, Spin};
use crate::segqueue::SegQueue;
use crate::semaphore::future::{RawAcquire, SemRef};
use crate::semaphore::raw::{RawSemaphore, MAX_PERMITS};

pub use permit::SendPermit;

/// In `Queue::permits`: the queue is closed.
const CLOSED: usize = 1;
/// In `Queue::permits`: one permit out.
const PERMIT: usize = 2;

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
    /// The items, in order; its closed bit is the queue's.
    items: SegQueue<T>,
    /// Bounded only: one permit per free place; receivers give them back after a pop.
    /// (A rendezvous starts with none: its receivers lend them.)
    slots: CachePadded<RawSemaphore>,
    /// The receivers' side (module docs, "Waking receivers").
    rx: CachePadded<Receivers>,
    /// [`SendPermit`]s (and owned permits) out, times `PERMIT`, plus the closed bit
    /// (module docs, "Close").
    permits: AtomicUsize,
    /// Rendezvous only: items on their way whose receiver left (module docs).
    surplus: AtomicUsize,
    /// The capacity (0 for a rendezvous); unused when unbounded.
    places: usize,
    bounded: bool,
}

/// The receivers' line and its grants, on one cache line: a fresh receive reads both.
struct Receivers {
    /// Receivers waiting for an item; a grant means "an item is there for you".
    line: RawSemaphore,
    /// Grants handed out and not yet used by their receiver's look at the FIFO.
    granted: AtomicUsize,
}

impl<T> Queue<T> {
    /// A queue that holds at most `cap` items: senders wait while it is full (Toro's
    /// `maxsize`).
    ///
    /// `bounded(0)` is a rendezvous: it holds no item, a send waits until a receiver takes
    /// its item, and [`try_send`](Self::try_send) (or a [`reserve`](Self::reserve)) succeeds
    /// only while a receiver waits unmatched.
    ///
    /// # Panics
    /// If `cap > Semaphore::MAX_PERMITS`.
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
            cap <= MAX_PERMITS,
            "Queue::bounded: capacity above Semaphore::MAX_PERMITS"
        );
        Self::with_places(cap, true)
    }

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
            slots: CachePadded::new(RawSemaphore::new(places)),
            rx: CachePadded::new(Receivers {
                line: RawSemaphore::new(0),
                granted: AtomicUsize::new(0),
            }),
            permits: AtomicUsize::new(0),
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

    /// Items in the queue now (Toro's `qsize`).
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
        self.bounded && self.slots.available() == 0
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
        self.items.close();
        self.slots.close();
        // AcqRel: Release publishes the FIFO's close (and every push before it) to the
        // receivers that acquire this word; Acquire takes the permits' pushes.
        if self.permits.fetch_or(CLOSED, AcqRel) < PERMIT {
            self.rx.line.close();
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.items.is_closed()
    }

    /// Sends `item`, waiting while the queue is full (Toro's `put`).
    ///
    /// # Cancel safety
    /// Dropping the future before it completes has not sent the item: it is dropped with
    /// the future, and a place handed to the future passes to the next sender.
    ///
    /// # Errors
    /// [`SendError`] with the item if the queue is or becomes closed first.
    #[doc(alias = "put")]
    pub async fn send(&self, item: T) -> Result<(), SendError<T>> {
        if self.bounded && RawAcquire::new(&*self.slots, 1).await.is_err() {
            return Err(SendError(item));
        }
        self.publish(item).map_err(SendError)
    }

    /// Sends `item` if a place is free and no sender waits (Toro's `put_nowait`).
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the item.
    #[doc(alias = "put_nowait")]
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        if self.bounded {
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
    pub async fn recv(&self) -> Result<T, RecvError> {
        let offer = self.is_rendezvous().then(|| Offer::new(self));
        let got = self.take_or_wait().await;
        if got.is_ok() {
            Offer::spent(offer);
        }
        got
    }

    /// Takes the oldest item, waiting in the receivers' line while there is none.
    async fn take_or_wait(&self) -> Result<T, RecvError> {
        let mut seen = None;
        if self.line_is_idle() {
            let tail = self.items.tail_position();
            match self.look() {
                Ok(item) => return Ok(item),
                Err(TryRecvError::Closed) => return Err(RecvError),
                Err(TryRecvError::Empty) => seen = Some(tail),
            }
        }
        let backoff = Backoff::new();
        loop {
            let granted = RawAcquire::new(InLine(self, seen), 1).await.is_ok();
            seen = Some(self.items.tail_position());
            match self.look_after_wait(granted) {
                Ok(item) => return Ok(item),
                Err(TryRecvError::Closed) => return Err(RecvError),
                // Closed, and a reserve is between its count and its look at the bit.
                Err(TryRecvError::Empty) if !granted => backoff.snooze(),
                Err(TryRecvError::Empty) => {}
            }
        }
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
        if self.bounded {
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
        let mut seen = None;
        if self.line_is_idle() {
            let tail = self.items.tail_position();
            match self.look() {
                Ok(item) => return Ok(item),
                Err(TryRecvError::Closed) => return Err(RecvTimeoutError::Closed),
                Err(TryRecvError::Empty) => seen = Some(tail),
            }
        }
        let backoff = Backoff::new();
        loop {
            let waited = self
                .rx
                .line
                .acquire_blocking_then(1, deadline, || self.look_again(seen));
            if let Err(AcquireTimeoutError::Timeout) = waited {
                return Err(RecvTimeoutError::Timeout);
            }
            seen = Some(self.items.tail_position());
            match self.look_after_wait(waited.is_ok()) {
                Ok(item) => return Ok(item),
                Err(TryRecvError::Closed) => return Err(RecvTimeoutError::Closed),
                // As in `take_or_wait`.
                Err(TryRecvError::Empty) if waited.is_err() => backoff.snooze(),
                Err(TryRecvError::Empty) => {}
            }
        }
    }

    /// Pushes `item` (the caller holds its slot, if bounded) and wakes a waiting
    /// receiver. Hands the item back if the queue is closed; its slot goes back too.
    #[inline]
    fn publish(&self, item: T) -> Result<(), T> {
        if let Err(item) = self.items.push_unless_closed(item) {
            self.give_slot_back();
            return Err(item);
        }
        self.wake_receiver();
        Ok(())
    }

    /// After a push: grants the head of the receivers' line, if anyone waits.
    #[inline]
    fn wake_receiver(&self) {
        // The load is `SeqCst` (in `has_waiters`), after the push's `SeqCst` claim: module
        // docs, "Waking receivers". loom models `SeqCst` accesses as `AcqRel` (loom#180),
        // so under loom the pair is made of the `SeqCst` fence the C++ rule builds on.
        #[cfg(loom)]
        fence(SeqCst);
        if self.rx.line.has_waiters() {
            self.grant_one();
        }
    }

    /// Grants the head of the receivers' line (nothing if the line emptied meanwhile).
    #[cold]
    fn grant_one(&self) {
        // Counted before the grant, so a fresh receive that sees the grant's effect (the
        // line shorter) also sees the count and stays behind the granted receiver.
        // Relaxed: the count only keeps fresh receives in line; it orders no data.
        self.rx.granted.fetch_add(1, Relaxed);
        if !self.rx.line.grant_head() {
            self.rx.granted.fetch_sub(1, Relaxed);
        }
    }

    /// After a wait in line (granted, or woken by a close): looks at the FIFO, then uses
    /// the grant if there was one.
    #[inline]
    fn look_after_wait(&self, granted: bool) -> Result<T, TryRecvError> {
        let got = self.look();
        if granted {
            self.grant_used();
        }
        got
    }

    /// A granted receiver has looked at the FIFO: its grant is used.
    #[inline]
    fn grant_used(&self) {
        // Relaxed: as in `grant_one`.
        self.rx.granted.fetch_sub(1, Relaxed);
    }

    /// A granted receiver is going away unserved: its grant goes to the next in line.
    fn pass_grant(&self) {
        if !self.rx.line.grant_head() {
            self.grant_used();
        }
    }

    /// A receiver has just joined the line: looks at the FIFO once more, after a `SeqCst`
    /// fence, and grants the head if an item may be there that no grant covers (module
    /// docs, "Waking receivers"). `seen` is the tail read before the receive's last look
    /// found nothing: then only a push since counts (so a receiver whose grant was taken
    /// from it does not grant itself again and again). A receive that joined without
    /// looking (others were in line) counts any item inside.
    fn look_again(&self, seen: Option<usize>) {
        fence(SeqCst);
        let maybe_item = match seen {
            Some(seen) => self.items.tail_position() != seen,
            None => !self.items.is_empty(),
        };
        if maybe_item {
            self.grant_one();
        }
    }

    /// Whether a fresh receive may pop: nobody waits in line, and the items inside are
    /// more than the grants not yet used (those items are promised to their receivers).
    #[inline]
    pub(crate) fn line_is_idle(&self) -> bool {
        if self.rx.line.has_waiters() {
            return false;
        }
        // Relaxed: a stale count only lets a receive that started before the grant go
        // first, which is its turn anyway (or, the other way, sends it to the line).
        match self.rx.granted.load(Relaxed) {
            0 => true,
            granted => self.items.len() > granted,
        }
    }

    /// Pops the oldest item (and gives its slot back), or says why there is none: `Empty`,
    /// or `Closed` once closed and drained (module docs, "Close").
    #[inline]
    fn look(&self) -> Result<T, TryRecvError> {
        if let Some(item) = self.items.pop() {
            self.took();
            return Ok(item);
        }
        // Acquire: pairs with the `AcqRel` RMWs of `close` and `end_permit`, so the look
        // below sees every push made before the close or before a permit's end.
        let word = self.permits.load(Acquire);
        if word & CLOSED == 0 {
            return Err(TryRecvError::Empty);
        }
        match self.items.pop() {
            Some(item) => {
                self.took();
                Ok(item)
            }
            None if word == CLOSED => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// An item was taken: its place is free again (a rendezvous spends the receive's offer
    /// instead).
    #[inline]
    fn took(&self) {
        if self.bounded && !self.is_rendezvous() {
            self.slots.release(1);
        }
    }

    /// Gives back the slot of a send or a permit that will not push.
    #[inline]
    fn give_slot_back(&self) {
        if self.bounded {
            self.slots.release(1);
        }
    }

    /// A reserve that holds its slot (if bounded) counts itself as a permit out: a close
    /// after the count waits for this permit. Fails, giving everything back, if the queue
    /// is closed.
    pub(crate) fn start_permit(&self) -> Result<(), ()> {
        // Relaxed: the count orders nothing; the permit's push is published by its end.
        if self.permits.fetch_add(PERMIT, Relaxed) & CLOSED != 0 {
            self.give_slot_back();
            self.end_permit();
            return Err(());
        }
        Ok(())
    }

    /// A permit sends its item: pushed even after a close, and a waiting receiver woken.
    pub(crate) fn permit_send(&self, item: T) {
        self.items.push(item);
        self.wake_receiver();
        self.end_permit();
    }

    /// A permit is dropped unsent: its slot goes back.
    pub(crate) fn permit_drop(&self) {
        self.give_slot_back();
        self.end_permit();
    }

    /// A permit is done; the last one out after a close wakes the receivers to see the
    /// queue drained.
    fn end_permit(&self) {
        // AcqRel: Release publishes this permit's push to the receivers that acquire the
        // word; Acquire, for the last one, sees the close and the other permits' pushes.
        if self.permits.fetch_sub(PERMIT, AcqRel) == PERMIT | CLOSED {
            self.rx.line.close();
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

    /// One step of a receive driven by polls (the channel's `Stream`): `wait` is the
    /// receive's place in line, kept between polls; `join` makes a new one.
    pub(crate) fn poll_take<R: SemRef>(
        &self,
        wait: &mut Option<Pin<Box<RawAcquire<R>>>>,
        join: impl Fn(Option<usize>) -> R,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, RecvError>> {
        let backoff = Backoff::new();
        loop {
            match wait {
                Some(w) if !w.is_finished() => {
                    let Poll::Ready(waited) = w.as_mut().poll(cx) else {
                        return Poll::Pending;
                    };
                    let seen = Some(self.items.tail_position());
                    match self.look_after_wait(waited.is_ok()) {
                        Ok(item) => return Poll::Ready(Ok(item)),
                        Err(TryRecvError::Closed) => return Poll::Ready(Err(RecvError)),
                        Err(TryRecvError::Empty) => {
                            if waited.is_err() {
                                // As in `take_or_wait`: a reserve is about to give up.
                                backoff.snooze();
                            }
                            // Line up again, reusing the allocation.
                            w.set(RawAcquire::new(join(seen), 1));
                        }
                    }
                }
                _ => {
                    let mut seen = None;
                    if self.line_is_idle() {
                        let tail = self.items.tail_position();
                        match self.look() {
                            Ok(item) => return Poll::Ready(Ok(item)),
                            Err(TryRecvError::Closed) => return Poll::Ready(Err(RecvError)),
                            Err(TryRecvError::Empty) => seen = Some(tail),
                        }
                    }
                    match wait {
                        Some(w) => w.set(RawAcquire::new(join(seen), 1)),
                        None => *wait = Some(Box::pin(RawAcquire::new(join(seen), 1))),
                    }
                }
            }
        }
    }
}

/// What a wait in the receivers' line holds: something that reaches the queue, and the
/// tail position read before the receive's last look found nothing (`None`: it joined
/// without looking).
pub(crate) struct InLine<Q>(pub(crate) Q, pub(crate) Option<usize>);

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

impl<Q: QueueRef> SemRef for InLine<Q> {
    const LOOKS_AGAIN: bool = true;

    #[inline]
    fn raw(&self) -> &RawSemaphore {
        &self.0.queue().rx.line
    }

    #[inline]
    fn queued(&self) {
        self.0.queue().look_again(self.1);
    }

    #[inline]
    fn give_back(&self, n: u32) {
        debug_assert_eq!(n, 1);
        self.0.queue().pass_grant();
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

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("closed", &self.is_closed())
            .finish()
    }
}
