//! Layer 5: `Queue<T>`, the FIFO queue of Toro (`Queue`, `put`/`get`, `maxsize`), for async
//! tasks and blocking threads at once. Safe code only: it is the segmented lock-free FIFO of
//! layer 4 plus two fair semaphores of layer 3 for the waiting, nothing written twice.
//!
//! # Accounting
//!
//! ```text
//!             slots: free places           ready: items a receiver may take
//!  send:  acquire 1 slot ──► push item ──► release 1 ready
//!  recv:                    acquire 1 ready ──► pop item ──► release 1 slot
//! ```
//!
//! - `slots` holds one permit per free place (`cap` of them; `MAX_PERMITS` when
//!   unbounded), so senders wait in its FIFO when the queue is full.
//! - `ready` holds one permit per item pushed and published, so receivers wait in its FIFO
//!   when the queue is empty. Its `release` (Release) after the push pairs with the
//!   receiver's acquire (Acquire): a receiver holding a `ready` permit always finds an item
//!   to pop (the segmented FIFO waits out a pusher between its claim and its write).
//! - Every wait is a semaphore acquire, so every wait is cancel-safe the way the semaphore's
//!   are: a `ready` permit handed to a receiver that is being dropped goes to the next
//!   receiver, and its item stays queued; a cancelled `send` never took a slot it keeps,
//!   and its item is dropped with the future, never pushed.
//!
//! # Close: "closed and drained"
//!
//! `close` closes `slots`: waiting and later senders fail with their item handed back.
//! Receivers go on taking what is inside. The queue is drained when every slot permit is
//! home: no item inside, and no sender between its slot and its push. A closed semaphore
//! grants no more and reports its free count on every release (layer 3), so the release
//! (or the close) that brings the last slot home sees it, and only then closes `ready`:
//! receivers waiting wake with [`RecvError`], later ones fail at once. No receiver is told
//! "drained" while an item is still on its way.
//!
//! # Rendezvous: `bounded(0)`
//!
//! A rendezvous queue has no places of its own: receivers lend them. Every receive, in
//! every form, first *offers* a place (one `slots` permit, released), then waits on
//! `ready` as above, and the take spends the offer instead of giving a slot back. So a
//! sender gets a place (and `reserve` a permit) only while a receiver waits unmatched,
//! and a send completes when the item is in the hands of the receivers' FIFO: a waiting
//! receiver is handed the `ready` permit at once, and a fresh receive never overtakes it.
//!
//! ```text
//!  recv:  lend 1 slot ──► acquire 1 ready ──► pop item ──► (the slot is spent)
//!  send:  acquire 1 slot ──► push item ──► release 1 ready
//! ```
//!
//! A receive that ends without an item (cancelled, timed out, `try_recv` finding
//! nothing) withdraws its offer by taking one free `slots` permit back. If senders have
//! taken them all, one sender's item is on its way with no receiver of its own: it stays
//! queued, the receive counts it as `surplus`, and the next receive is covered by it
//! instead of offering a place (`try_recv` and a timed receive first spin briefly for
//! it). So the free places never outnumber the receivers waiting for long: an orphaned
//! item costs one queued item, never a lasting spare place. `offers` and `surplus` sit
//! under a short lock, off the fast path of the other queues. Every receive adds one
//! offer (or spends one surplus) and every take spends one, so there are never fewer
//! places and items on their way than receivers waiting, and a waiting receiver and a
//! waiting sender always meet.
//!
//! Drained, for a rendezvous, is "every offer is a free permit again": no sender holds
//! one, and no item is inside (each item still holds the offer it was sent on). After a
//! close, every change to either count (a take, a withdrawal, a slot coming home) checks
//! `available == lent` under that lock; the later of two racing checks sees both changes,
//! so the last one closes `ready`.

mod permit;

use core::fmt;
use std::time::{Duration, Instant};

use crate::error::{
    AcquireTimeoutError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryAcquireError,
    TryRecvError, TrySendError,
};
use crate::loom::{Mutex, Spin};
use crate::segqueue::SegQueue;
use crate::semaphore::future::{RawAcquire, SemRef};
use crate::semaphore::raw::{RawSemaphore, MAX_PERMITS};

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
    items: SegQueue<T>,
    /// One permit per free place; receivers give them back after a pop.
    pub(crate) slots: RawSemaphore,
    /// One permit per item pushed and published; senders add them after a push.
    pub(crate) ready: RawSemaphore,
    /// `slots`' full count: the capacity, or `MAX_PERMITS` when unbounded; 0 for a
    /// rendezvous, whose places are lent by its receivers.
    places: usize,
    bounded: bool,
    /// Rendezvous only: the places receivers have offered and no take has spent yet
    /// (module docs, "Rendezvous").
    lent: Mutex<Lent>,
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
        Self::with_places(MAX_PERMITS, false)
    }

    fn with_places(places: usize, bounded: bool) -> Self {
        Self {
            items: SegQueue::new(),
            slots: RawSemaphore::new(places),
            ready: RawSemaphore::new(0),
            places,
            bounded,
            lent: Mutex::new(Lent::default()),
        }
    }

    /// Whether this is a `bounded(0)` rendezvous.
    #[inline]
    pub(crate) fn is_rendezvous(&self) -> bool {
        self.places == 0
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
        let free = self.slots.close();
        self.slot_report(Some(free));
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.slots.is_closed()
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
        match RawAcquire::new(Slots(self), 1).await {
            Ok(_) => {
                self.publish(item);
                Ok(())
            }
            Err(_) => Err(SendError(item)),
        }
    }

    /// Sends `item` if a place is free and no sender waits (Toro's `put_nowait`).
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the item.
    #[doc(alias = "put_nowait")]
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        match self.slots.try_acquire(1) {
            Ok(()) => {
                self.publish(item);
                Ok(())
            }
            Err(TryAcquireError::NoPermits) => Err(TrySendError::Full(item)),
            Err(TryAcquireError::Closed) => Err(TrySendError::Closed(item)),
        }
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
        match RawAcquire::new(&self.ready, 1).await {
            Ok(_) => {
                Offer::spent(offer);
                Ok(self.take())
            }
            Err(_) => Err(RecvError),
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
        match self.ready.try_acquire(1) {
            Ok(()) => {
                Offer::spent(offer);
                Ok(self.take())
            }
            Err(TryAcquireError::NoPermits) => match offer.and_then(Offer::withdraw_or_catch) {
                Some(item) => Ok(item),
                None => Err(TryRecvError::Empty),
            },
            Err(TryAcquireError::Closed) => Err(TryRecvError::Closed),
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
        match self.slots.acquire_blocking(1, deadline) {
            Ok(()) => {
                self.publish(item);
                Ok(())
            }
            Err(AcquireTimeoutError::Timeout) => Err(SendTimeoutError::Timeout(item)),
            Err(AcquireTimeoutError::Closed) => Err(SendTimeoutError::Closed(item)),
        }
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let offer = self.is_rendezvous().then(|| Offer::new(self));
        match self.ready.acquire_blocking(1, deadline) {
            Ok(()) => {
                Offer::spent(offer);
                Ok(self.take())
            }
            Err(AcquireTimeoutError::Timeout) => match offer.and_then(Offer::withdraw_or_catch) {
                Some(item) => Ok(item),
                None => Err(RecvTimeoutError::Timeout),
            },
            Err(AcquireTimeoutError::Closed) => Err(RecvTimeoutError::Closed),
        }
    }

    /// Pushes an item whose slot permit the caller holds, and lets a receiver take it.
    #[inline]
    pub(crate) fn publish(&self, item: T) {
        self.items.push(item);
        // `ready` closes only once every slot is home, and the caller's is not: this
        // release never meets a closed `ready`, and its report is always `None`.
        let report = self.ready.release(1);
        debug_assert!(report.is_none(), "ready closed while a slot was out");
    }

    /// Pops the item a `ready` permit was taken for, and gives its slot back (or, on a
    /// rendezvous, spends the offer it was sent on).
    #[inline]
    pub(crate) fn take(&self) -> T {
        let item = self
            .items
            .pop()
            .expect("a ready permit always has an item behind it");
        if self.is_rendezvous() {
            self.lend(|lent| lent.offers -= 1);
        } else {
            self.slot_report(self.slots.release(1));
        }
        item
    }

    /// Closes `ready` when a closed queue has every slot home: drained, nothing in flight.
    #[inline]
    pub(crate) fn slot_report(&self, report: Option<usize>) {
        if self.is_rendezvous() {
            if report.is_some() {
                self.lend(|_| {});
            }
        } else if report == Some(self.places) {
            self.ready.close();
        }
    }

    /// Rendezvous only: changes the offer counts, then closes `ready` if the queue is
    /// closed and every offer is a free permit again (module docs, "Rendezvous"). The
    /// lock makes the later of two racing checks see both changes.
    fn lend(&self, change: impl FnOnce(&mut Lent)) {
        let mut lent = self.lent.lock();
        change(&mut lent);
        if self.slots.is_closed() && self.slots.available() == lent.offers {
            self.ready.close();
        }
    }

    /// Rendezvous only: covers a receive. Normally it offers one place, which goes to the
    /// first waiting sender (or stays free for the next one); if a receive left earlier
    /// with an item on its way, that item covers this one instead.
    pub(crate) fn offer(&self) -> Ticket {
        let mut ticket = Ticket::Lent;
        self.lend(|lent| {
            if lent.surplus > 0 {
                lent.surplus -= 1;
                ticket = Ticket::Covered;
            } else {
                // Counted before the permit exists: `offers` never falls below the free
                // permits.
                lent.offers += 1;
            }
        });
        if let Ticket::Lent = ticket {
            self.slot_report(self.slots.release(1));
        }
        ticket
    }

    /// Rendezvous only: takes a receive's offer back if one is still free. `false` if
    /// senders took them all (or the receive was covered by an item on its way): an item
    /// is then coming, for the next receive.
    pub(crate) fn withdraw(&self, ticket: Ticket) -> bool {
        let free = matches!(ticket, Ticket::Lent) && self.slots.try_acquire(1).is_ok();
        if free {
            self.lend(|lent| lent.offers -= 1);
        }
        free
    }

    /// Rendezvous only: a receive leaves without the item its offer brought on its way;
    /// the next receive is covered by it instead of offering a place of its own.
    pub(crate) fn orphan(&self) {
        self.lend(|lent| lent.surplus += 1);
    }

    /// Rendezvous only: a receive ends without an item.
    pub(crate) fn leave(&self, ticket: Ticket) {
        if !self.withdraw(ticket) {
            self.orphan();
        }
    }
}

/// Rendezvous only: the offer counts, under one short lock.
#[derive(Default)]
struct Lent {
    /// Places offered by receivers and not yet spent by a take or withdrawn: free
    /// permits, permits held by senders, and items inside.
    offers: usize,
    /// Receives that left while an item they had brought on its way was still coming:
    /// that many items (or places) have no receiver of their own.
    surplus: usize,
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
            if queue.ready.try_acquire(1).is_ok() {
                return Some(queue.take());
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

/// A wait for a place: on `slots`, and a cancelled wait that gives a granted place back
/// reports it, so a closed queue whose last slot came home that way still drains.
pub(crate) struct Slots<'a, T>(pub(crate) &'a Queue<T>);

impl<T> SemRef for Slots<'_, T> {
    #[inline]
    fn raw(&self) -> &RawSemaphore {
        &self.0.slots
    }

    #[inline]
    fn released(&self, report: Option<usize>) {
        self.0.slot_report(report);
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
