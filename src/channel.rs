//! Channels: a [`Queue`] behind cloneable [`Sender`] and [`Receiver`] handles (MPMC) that
//! count themselves and close the queue when the last sender or the last receiver goes.
//! Safe code only, layered on the queue.
//!
//! ```
//! use toro_sync::channel;
//!
//! let (tx, rx) = channel::bounded(8);
//! let producers: Vec<_> = (0..4)
//!     .map(|p| {
//!         let tx = tx.clone();
//!         std::thread::spawn(move || {
//!             for i in 0..100 {
//!                 tx.send_blocking(p * 100 + i).unwrap();
//!             }
//!         })
//!     })
//!     .collect();
//! drop(tx); // the queue closes when the producers' clones are gone too
//! let mut sum = 0;
//! while let Ok(x) = rx.recv_blocking() {
//!     sum += x;
//! }
//! for p in producers {
//!     p.join().unwrap();
//! }
//! assert_eq!(sum, (0..400).sum());
//! ```

use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::error::{
    Closed, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::loom::{Arc, AtomicUsize, Ordering::*};
use crate::queue::{InLine, Queue, QueueRef, RecvFuture, SendFuture, SendPermit, Side, Ticket};
use crate::semaphore::future::RawAcquire;

/// A bounded channel: at most `cap` items inside; senders wait while it is full. An item
/// sent while a receiver waits is handed to it and takes no place ([`Queue::bounded`]).
///
/// # Panics
/// As [`Queue::bounded`].
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    pair(Queue::bounded(cap))
}

/// An unbounded channel: `send` never waits.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    pair(Queue::unbounded())
}

fn pair<T>(queue: Queue<T>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        queue,
        senders: AtomicUsize::new(1),
        receivers: AtomicUsize::new(1),
    });
    (
        Sender { chan: chan.clone() },
        Receiver {
            chan,
            stream: None,
            offered: None,
        },
    )
}

struct Chan<T> {
    queue: Queue<T>,
    /// Live `Sender`s; the queue closes when it drops to zero.
    senders: AtomicUsize,
    /// Live `Receiver`s; the queue closes when it drops to zero.
    receivers: AtomicUsize,
}

/// Drops one handle from `count`, closing the queue if it was the last.
fn drop_handle<T>(chan: &Chan<T>, count: &AtomicUsize) {
    // AcqRel: the last one out sees every other handle's work before it closes (Acquire),
    // and its own is published to the close (Release), as `Arc`'s drop does.
    if count.fetch_sub(1, AcqRel) == 1 {
        chan.queue.close();
    }
}

/// The sending half of a channel. Clone it for more producers.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half of a channel. Clone it for more consumers; it is also a
/// [`Stream`](futures_core::Stream) (feature `stream`).
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
    /// The wait of `poll_next`, kept between polls (allocated once, reused).
    stream: StreamWait<T>,
    /// Rendezvous only: how the stream wait was covered, until a take spends it.
    offered: Option<Ticket>,
}

/// A sender that does not keep the channel open; [`upgrade`](Self::upgrade) it to send.
pub struct WeakSender<T> {
    chan: Arc<Chan<T>>,
}

/// Methods both halves share, written once.
macro_rules! handle_common {
    ($ty:ident) => {
        impl<T> $ty<T> {
            /// Items in the channel now.
            pub fn len(&self) -> usize {
                self.chan.queue.len()
            }

            /// Whether the channel holds no item now.
            pub fn is_empty(&self) -> bool {
                self.chan.queue.is_empty()
            }

            /// Whether no place is free for a `try_send` now.
            pub fn is_full(&self) -> bool {
                self.chan.queue.is_full()
            }

            /// The bound, `None` when unbounded.
            pub fn capacity(&self) -> Option<usize> {
                self.chan.queue.capacity()
            }

            /// Closes the channel for every handle: senders fail, receivers drain what is
            /// left and then get [`RecvError`].
            pub fn close(&self) {
                self.chan.queue.close()
            }

            /// Whether the channel is closed (by `close` or by the last handle of a side).
            pub fn is_closed(&self) -> bool {
                self.chan.queue.is_closed()
            }

            /// Live senders.
            pub fn sender_count(&self) -> usize {
                // Relaxed: a reading for the caller.
                self.chan.senders.load(Relaxed)
            }

            /// Live receivers.
            pub fn receiver_count(&self) -> usize {
                // Relaxed: a reading for the caller.
                self.chan.receivers.load(Relaxed)
            }
        }
    };
}

handle_common!(Sender);
handle_common!(Receiver);

impl<T> Sender<T> {
    /// Sends `item`, waiting while the channel is full. Cancel-safe as [`Queue::send`].
    ///
    /// It returns the queue's own future, not one wrapped around it: a layer of future
    /// costs each message a few nanoseconds.
    ///
    /// # Errors
    /// [`SendError`] with the item if the channel is or becomes closed.
    pub fn send(&self, item: T) -> SendFuture<'_, T> {
        self.chan.queue.send(item)
    }

    /// Sends `item` if a place is free now.
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the item.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        self.chan.queue.try_send(item)
    }

    /// Sends `item`, parking the thread while the channel is full.
    ///
    /// # Errors
    /// [`SendError`] with the item if the channel is or becomes closed.
    pub fn send_blocking(&self, item: T) -> Result<(), SendError<T>> {
        self.chan.queue.send_blocking(item)
    }

    /// [`send_blocking`](Self::send_blocking), giving up after `timeout`.
    ///
    /// # Errors
    /// [`SendTimeoutError`] with the item.
    pub fn send_timeout(&self, item: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan.queue.send_timeout(item, timeout)
    }

    /// [`send_blocking`](Self::send_blocking), giving up at `deadline`.
    ///
    /// # Errors
    /// [`SendTimeoutError`] with the item.
    pub fn send_deadline(&self, item: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.chan.queue.send_deadline(item, deadline)
    }

    /// Waits for a free place and holds it ([`Queue::reserve`]).
    ///
    /// # Errors
    /// [`Closed`] if the channel is or becomes closed.
    pub async fn reserve(&self) -> Result<SendPermit<'_, T>, Closed> {
        self.chan.queue.reserve().await
    }

    /// Holds a free place if there is one now.
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Closed`] (carrying `()`).
    pub fn try_reserve(&self) -> Result<SendPermit<'_, T>, TrySendError<()>> {
        self.chan.queue.try_reserve()
    }

    /// Waits for a free place, parking the thread.
    ///
    /// # Errors
    /// [`Closed`] if the channel is or becomes closed.
    pub fn reserve_blocking(&self) -> Result<SendPermit<'_, T>, Closed> {
        self.chan.queue.reserve_blocking()
    }

    /// [`reserve_blocking`](Self::reserve_blocking), giving up after `timeout`.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Closed`] (carrying `()`).
    pub fn reserve_timeout(
        &self,
        timeout: Duration,
    ) -> Result<SendPermit<'_, T>, SendTimeoutError<()>> {
        self.chan.queue.reserve_timeout(timeout)
    }

    /// [`reserve_blocking`](Self::reserve_blocking), giving up at `deadline`.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Closed`] (carrying `()`).
    pub fn reserve_deadline(
        &self,
        deadline: Instant,
    ) -> Result<SendPermit<'_, T>, SendTimeoutError<()>> {
        self.chan.queue.reserve_deadline(deadline)
    }

    /// Waits for a free place and holds it in a permit that owns this sender (so it keeps
    /// the channel open and can move to another task).
    ///
    /// # Cancel safety
    /// As [`reserve`](Self::reserve); the sender is dropped with the future.
    ///
    /// # Errors
    /// [`Closed`] if the channel is or becomes closed.
    ///
    /// # Examples
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, rx) = toro_sync::channel::bounded(1);
    /// let permit = tx.reserve_owned().await.unwrap();
    /// let tx = permit.send(5); // gives the sender back
    /// assert_eq!(rx.recv().await, Ok(5));
    /// # drop(tx); });
    /// ```
    pub async fn reserve_owned(self) -> Result<OwnedSendPermit<T>, Closed> {
        self.chan.queue.reserve().await.map(core::mem::forget)?;
        Ok(OwnedSendPermit { sender: Some(self) })
    }

    /// Holds a free place now, in a permit that owns this sender.
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], handing the sender back.
    pub fn try_reserve_owned(self) -> Result<OwnedSendPermit<T>, TrySendError<Self>> {
        let reserved = self.chan.queue.try_reserve().map(core::mem::forget);
        match reserved {
            Ok(()) => Ok(OwnedSendPermit { sender: Some(self) }),
            Err(TrySendError::Full(())) => Err(TrySendError::Full(self)),
            Err(TrySendError::Closed(())) => Err(TrySendError::Closed(self)),
        }
    }

    /// A handle that does not keep the channel open.
    pub fn downgrade(&self) -> WeakSender<T> {
        WeakSender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        // Relaxed: a new handle from a live one, as `Arc::clone`.
        self.chan.senders.fetch_add(1, Relaxed);
        Self {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        drop_handle(&self.chan, &self.chan.senders);
    }
}

impl<T> WeakSender<T> {
    /// A sender again, or `None` once every [`Sender`] is gone.
    pub fn upgrade(&self) -> Option<Sender<T>> {
        // Relaxed: the count only decides whether a live handle exists to copy, as
        // `Weak::upgrade`; the queue's own state orders the rest.
        self.chan
            .senders
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1).map(|_| n + 1))
            .ok()?;
        Some(Sender {
            chan: self.chan.clone(),
        })
    }
}

impl<T> Clone for WeakSender<T> {
    fn clone(&self) -> Self {
        Self {
            chan: self.chan.clone(),
        }
    }
}

/// A place reserved in a channel, holding its [`Sender`]: [`send`](Self::send) fills it and
/// gives the sender back; dropping it gives the place back.
#[must_use = "dropping a permit gives its place back at once"]
pub struct OwnedSendPermit<T> {
    /// `None` only after `send` took it.
    sender: Option<Sender<T>>,
}

impl<T> OwnedSendPermit<T> {
    /// Sends `item` into the reserved place (never fails, never waits) and returns the
    /// sender.
    pub fn send(mut self, item: T) -> Sender<T> {
        let sender = self.sender.take().expect("present until send");
        sender.chan.queue.permit_send(item);
        sender
    }
}

impl<T> Drop for OwnedSendPermit<T> {
    fn drop(&mut self) {
        if let Some(sender) = &self.sender {
            sender.chan.queue.permit_drop();
        }
    }
}

impl<T> Receiver<T> {
    /// Receives the oldest item, waiting while the channel is empty. Cancel-safe as
    /// [`Queue::recv`].
    ///
    /// It returns the queue's own future, as [`Sender::send`] does.
    ///
    /// # Errors
    /// [`RecvError`] once the channel is closed and drained.
    pub fn recv(&self) -> RecvFuture<'_, T> {
        self.chan.queue.recv()
    }

    /// Receives the oldest item if there is one now.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`], or [`TryRecvError::Closed`] once closed and drained.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.queue.try_recv()
    }

    /// Receives the oldest item, parking the thread while the channel is empty.
    ///
    /// # Errors
    /// [`RecvError`] once the channel is closed and drained.
    pub fn recv_blocking(&self) -> Result<T, RecvError> {
        self.chan.queue.recv_blocking()
    }

    /// [`recv_blocking`](Self::recv_blocking), giving up after `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.chan.queue.recv_timeout(timeout)
    }

    /// [`recv_blocking`](Self::recv_blocking), giving up at `deadline`.
    ///
    /// # Errors
    /// [`RecvTimeoutError`].
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.chan.queue.recv_deadline(deadline)
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        // Relaxed: a new handle from a live one, as `Arc::clone`.
        self.chan.receivers.fetch_add(1, Relaxed);
        Self {
            chan: self.chan.clone(),
            stream: None,
            offered: None,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // A pending stream wait leaves the line first (a grant passes on), then its offer
        // (rendezvous), then the count.
        self.stream = None;
        if let Some(ticket) = self.offered.take() {
            self.chan.queue.leave(ticket);
        }
        drop_handle(&self.chan, &self.chan.receivers);
    }
}

/// The stream's place in the receivers' line, kept in its box between polls.
type StreamWait<T> = Option<Pin<Box<Option<RawAcquire<InLine<ChanRef<T>>>>>>>;

/// What a stream wait holds: the channel, reaching its queue's receivers' line.
struct ChanRef<T>(Arc<Chan<T>>);

impl<T> QueueRef for ChanRef<T> {
    type Item = T;
    #[inline]
    fn queue(&self) -> &Queue<T> {
        &self.0.queue
    }
}

impl<T> Receiver<T> {
    /// One step of the stream: a receive whose place in line is kept in its box between
    /// polls (a rendezvous also keeps its offer until the take spends it).
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let queue = &self.chan.queue;
        if queue.is_rendezvous() && self.offered.is_none() {
            // Every rendezvous receive lends a place first (see `Queue`'s module docs).
            self.offered = Some(queue.offer());
        }
        let chan = &self.chan;
        let wait = self.stream.get_or_insert_with(|| Box::pin(None)).as_mut();
        let poll = queue.poll_take(
            wait,
            |seen| InLine(ChanRef(chan.clone()), Side::Receive(seen)),
            cx,
        );
        if poll.is_ready() {
            // Spent by the take, or moot: a closed queue takes no offer back.
            self.offered = None;
        }
        poll.map(Result::ok)
    }
}

#[cfg(feature = "stream")]
impl<T> futures_core::Stream for Receiver<T> {
    type Item = T;

    /// Yields items in order; ends once the channel is closed and drained. Dropping the
    /// receiver (or just not polling again) while an item was being handed over loses
    /// nothing: it goes to the next receiver.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("queue", &self.chan.queue)
            .finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("queue", &self.chan.queue)
            .finish()
    }
}

impl<T> fmt::Debug for WeakSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakSender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for OwnedSendPermit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSendPermit").finish_non_exhaustive()
    }
}
