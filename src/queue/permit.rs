//! `reserve`: a place in the queue held ahead of the item, the cancel-safe way to send from
//! a `select!`. A [`SendPermit`] is one reservation counted in the FIFO's tail word (which
//! a bounded queue counts against its capacity), plus, for a rendezvous, the place a
//! receiver lent; `send` spends it on an item (which neither fails nor waits, and is
//! delivered even after a close), dropping it gives the place back.

use core::fmt;
use core::mem::ManuallyDrop;
use std::time::{Duration, Instant};

use super::Queue;
use crate::error::{AcquireTimeoutError, Closed, SendTimeoutError, TryAcquireError, TrySendError};
use crate::segqueue::{Refused, UNBOUNDED};
use crate::semaphore::future::RawAcquire;

/// One place reserved in a [`Queue`]: [`send`](Self::send) fills it without failing or
/// waiting; dropping the permit gives the place back (and wakes a waiting sender).
///
/// A permit holds capacity, not a place in line: items enter in the order their `send` is
/// called. An item sent through a permit after [`Queue::close`] is still delivered.
#[must_use = "dropping a permit gives its place back at once"]
pub struct SendPermit<'a, T> {
    queue: &'a Queue<T>,
}

impl<'a, T> SendPermit<'a, T> {
    /// Sends `item` into the reserved place.
    #[inline]
    pub fn send(self, item: T) {
        let this = ManuallyDrop::new(self);
        this.queue.permit_send(item);
    }
}

impl<T> Drop for SendPermit<'_, T> {
    fn drop(&mut self) {
        self.queue.permit_drop();
    }
}

impl<T> fmt::Debug for SendPermit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendPermit").finish_non_exhaustive()
    }
}

impl<T> Queue<T> {
    /// Waits for a free place and holds it in a [`SendPermit`].
    ///
    /// # Cancel safety
    /// Dropping the future holds nothing: a place handed to it passes to the next sender.
    ///
    /// # Errors
    /// [`Closed`] if the queue is or becomes closed first.
    ///
    /// # Examples
    /// ```
    /// use toro_sync::Queue;
    /// # futures::executor::block_on(async {
    /// let q = Queue::bounded(1);
    /// let permit = q.reserve().await.unwrap();
    /// assert!(q.is_full() && q.is_empty());
    /// permit.send("item");
    /// assert_eq!(q.try_recv(), Ok("item"));
    /// # });
    /// ```
    pub async fn reserve(&self) -> Result<SendPermit<'_, T>, Closed> {
        if self.has_places() {
            self.place_or_wait(|| self.items.reserve(self.places as u64))
                .await?;
            return Ok(SendPermit { queue: self });
        }
        if self.is_rendezvous() {
            RawAcquire::new(&*self.slots, 1).await?;
        }
        self.permit()
    }

    /// Holds a free place if there is one and no sender waits.
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Closed`] (carrying `()`).
    pub fn try_reserve(&self) -> Result<SendPermit<'_, T>, TrySendError<()>> {
        if self.has_places() {
            return match self.try_place((), |()| self.items.reserve(self.places as u64)) {
                Ok(()) => Ok(SendPermit { queue: self }),
                Err(Refused::Full(())) => Err(TrySendError::Full(())),
                Err(Refused::Closed(())) => Err(TrySendError::Closed(())),
            };
        }
        if self.is_rendezvous() {
            match self.slots.try_acquire(1) {
                Ok(()) => {}
                Err(TryAcquireError::NoPermits) => return Err(TrySendError::Full(())),
                Err(TryAcquireError::Closed) => return Err(TrySendError::Closed(())),
            }
        }
        self.permit().map_err(|Closed| TrySendError::Closed(()))
    }

    /// Waits for a free place, parking the thread.
    ///
    /// # Errors
    /// [`Closed`] if the queue is or becomes closed first.
    pub fn reserve_blocking(&self) -> Result<SendPermit<'_, T>, Closed> {
        self.reserve_until(None).map_err(|_| Closed)
    }

    /// [`reserve_blocking`](Self::reserve_blocking), giving up after `timeout`.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Closed`] (carrying `()`).
    pub fn reserve_timeout(
        &self,
        timeout: Duration,
    ) -> Result<SendPermit<'_, T>, SendTimeoutError<()>> {
        self.reserve_until(Instant::now().checked_add(timeout))
    }

    /// [`reserve_blocking`](Self::reserve_blocking), giving up at `deadline`.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Closed`] (carrying `()`).
    pub fn reserve_deadline(
        &self,
        deadline: Instant,
    ) -> Result<SendPermit<'_, T>, SendTimeoutError<()>> {
        self.reserve_until(Some(deadline))
    }

    fn reserve_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<SendPermit<'_, T>, SendTimeoutError<()>> {
        if self.has_places() {
            return match self
                .place_or_park(deadline, None, || self.items.reserve(self.places as u64))
            {
                Ok(()) => Ok(SendPermit { queue: self }),
                Err(AcquireTimeoutError::Timeout) => Err(SendTimeoutError::Timeout(())),
                Err(AcquireTimeoutError::Closed) => Err(SendTimeoutError::Closed(())),
            };
        }
        if self.is_rendezvous() {
            match self.slots.acquire_blocking(1, deadline) {
                Ok(()) => {}
                Err(AcquireTimeoutError::Timeout) => return Err(SendTimeoutError::Timeout(())),
                Err(AcquireTimeoutError::Closed) => return Err(SendTimeoutError::Closed(())),
            }
        }
        self.permit().map_err(|Closed| SendTimeoutError::Closed(()))
    }

    /// Makes the permit of a reserve on an unbounded queue, or on a rendezvous whose
    /// receiver lent the place (which goes back if the queue closed meanwhile).
    fn permit(&self) -> Result<SendPermit<'_, T>, Closed> {
        if self.items.reserve(UNBOUNDED).is_err() {
            if self.is_rendezvous() {
                self.slots.release(1);
            }
            return Err(Closed);
        }
        Ok(SendPermit { queue: self })
    }
}
