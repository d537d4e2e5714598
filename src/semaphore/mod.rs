//! `Semaphore` and `BoundedSemaphore`: the public face of the fair engine in [`raw`].
//!
//! Both types share one method set (written once, in `semaphore_api!`), and both hand out
//! the same permit types. They differ in one method: `Semaphore::add_permits` adds permits
//! freely, `BoundedSemaphore::release` only gives back permits taken with `forget()`.

pub(crate) mod future;
mod permit;
pub(crate) mod raw;
#[cfg(all(test, not(loom)))]
mod tests;

use core::fmt;
use std::time::{Duration, Instant};

pub use future::{Acquire, AcquireOwned};
pub use permit::{OwnedSemaphorePermit, SemaphorePermit};

use crate::error::{AcquireTimeoutError, Closed, TooManyReleases, TryAcquireError};
use crate::loom::{Arc, AtomicUsize, Ordering::*};
use raw::RawSemaphore;

/// A type that is, or wraps, a [`Semaphore`]: the `S` of
/// [`OwnedSemaphorePermit<S>`](OwnedSemaphorePermit). Sealed.
pub trait AsSemaphore: sealed::Sealed {
    #[doc(hidden)]
    fn as_semaphore(&self) -> &Semaphore;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Semaphore {}
    impl Sealed for super::BoundedSemaphore {}
}

impl AsSemaphore for Semaphore {
    #[inline]
    fn as_semaphore(&self) -> &Semaphore {
        self
    }
}

impl AsSemaphore for BoundedSemaphore {
    #[inline]
    fn as_semaphore(&self) -> &Semaphore {
        &self.sem
    }
}

/// A fair counting semaphore for async tasks and threads at once (Toro's `Semaphore`).
///
/// Waiters are served first in, first out: a large [`acquire_many`](Self::acquire_many)
/// at the head of the queue holds back later small ones, and
/// [`try_acquire`](Self::try_acquire) takes nothing while anyone waits. Every wait comes in
/// five forms: async (`acquire`), non-waiting (`try_acquire`), blocking
/// (`acquire_blocking`), and blocking with a relative or absolute deadline
/// (`acquire_timeout`, `acquire_deadline`). Async waits take a deadline through
/// [`WaitExt`](crate::WaitExt) on any executor.
///
/// Uncontended, an acquire is one compare-and-swap and a release one `fetch_add`; waiters
/// wait in an intrusive list, so a wait allocates nothing.
///
/// # Examples
///
/// ```
/// use toro_sync::Semaphore;
///
/// # futures::executor::block_on(async {
/// let sem = Semaphore::new(2);
/// let a = sem.acquire().await?;
/// let b = sem.try_acquire()?;
/// assert!(sem.is_locked());
/// drop((a, b));
/// assert_eq!(sem.available_permits(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub struct Semaphore {
    raw: RawSemaphore,
    /// Permits in existence: free plus held (initial + added - forgotten). It bounds
    /// `add_permits` (at most `MAX_PERMITS`, so permits coming back can never overflow the
    /// state word) and `BoundedSemaphore::release` (at most the initial value).
    total: AtomicUsize,
}

/// A semaphore whose count can never rise above its initial value (Toro's
/// `BoundedSemaphore`).
///
/// It has the whole [`Semaphore`] API except `add_permits`, which becomes
/// [`release`](Self::release): it gives back permits taken with
/// [`forget`](SemaphorePermit::forget), and refuses with [`TooManyReleases`] (changing
/// nothing) when that would raise the count above the initial value. Dropping a permit
/// always returns it.
///
/// # Examples
///
/// ```
/// use toro_sync::{BoundedSemaphore, TooManyReleases};
///
/// let sem = BoundedSemaphore::new(1);
/// sem.acquire_blocking()?.forget();
/// assert_eq!(sem.available_permits(), 0);
/// sem.release(1)?;
/// assert_eq!(sem.release(1), Err(TooManyReleases));
/// assert_eq!(sem.available_permits(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BoundedSemaphore {
    sem: Semaphore,
    initial: usize,
}

impl Semaphore {
    /// The most permits a semaphore can hold (`usize::MAX >> 3`).
    pub const MAX_PERMITS: usize = raw::MAX_PERMITS;

    /// A semaphore with `permits` free permits.
    ///
    /// # Panics
    /// If `permits > Semaphore::MAX_PERMITS` (a caller bug; at compile time in a `const`).
    ///
    /// # Examples
    /// ```
    /// use toro_sync::Semaphore;
    /// static LIMIT: Semaphore = Semaphore::new(8);
    /// assert_eq!(LIMIT.available_permits(), 8);
    /// ```
    #[cfg(not(loom))]
    pub const fn new(permits: usize) -> Self {
        Self {
            raw: RawSemaphore::new(permits),
            total: AtomicUsize::new(permits),
        }
    }

    /// A semaphore with `permits` free permits (not `const` under loom).
    #[cfg(loom)]
    pub fn new(permits: usize) -> Self {
        Self {
            raw: RawSemaphore::new(permits),
            total: AtomicUsize::new(permits),
        }
    }

    /// Adds `n` permits, waking waiters in order.
    ///
    /// # Panics
    /// If the permits in existence (free plus held) would pass [`Semaphore::MAX_PERMITS`]
    /// (a caller bug; nothing changes).
    ///
    /// # Examples
    /// ```
    /// use toro_sync::Semaphore;
    /// let sem = Semaphore::new(0);
    /// sem.add_permits(3);
    /// assert_eq!(sem.available_permits(), 3);
    /// ```
    pub fn add_permits(&self, n: usize) {
        // Relaxed: the counter is only a bound; the permits carry their own ordering.
        let added = self.total.fetch_update(Relaxed, Relaxed, |total| {
            total.checked_add(n).filter(|&t| t <= raw::MAX_PERMITS)
        });
        assert!(
            added.is_ok(),
            "add_permits: a semaphore holds at most MAX_PERMITS permits"
        );
        self.raw.release(n);
    }

    #[inline]
    fn sem(&self) -> &Semaphore {
        self
    }
}

impl BoundedSemaphore {
    /// The most permits a semaphore can hold.
    pub const MAX_PERMITS: usize = raw::MAX_PERMITS;

    /// A bounded semaphore with `permits` free permits, which is also its ceiling.
    ///
    /// # Panics
    /// If `permits > BoundedSemaphore::MAX_PERMITS`.
    #[cfg(not(loom))]
    pub const fn new(permits: usize) -> Self {
        Self {
            sem: Semaphore::new(permits),
            initial: permits,
        }
    }

    /// A bounded semaphore with `permits` free permits (not `const` under loom).
    #[cfg(loom)]
    pub fn new(permits: usize) -> Self {
        Self {
            sem: Semaphore::new(permits),
            initial: permits,
        }
    }

    /// The initial (and greatest) number of permits.
    pub fn initial_permits(&self) -> usize {
        self.initial
    }

    /// Gives back `n` permits that were taken with [`SemaphorePermit::forget`], waking
    /// waiters in order.
    ///
    /// # Errors
    /// [`TooManyReleases`] if fewer than `n` permits are forgotten, that is when the count
    /// would rise above the initial value once every held permit is back (Toro's
    /// `ValueError`). Nothing changes then.
    ///
    /// # Examples
    /// ```
    /// use toro_sync::BoundedSemaphore;
    /// let sem = BoundedSemaphore::new(2);
    /// sem.try_acquire_many(2)?.forget();
    /// assert!(sem.release(3).is_err());
    /// sem.release(2)?;
    /// assert_eq!(sem.available_permits(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release(&self, n: usize) -> Result<(), TooManyReleases> {
        // Relaxed: the counter is only a bound; the permits carry their own ordering.
        self.sem
            .total
            .fetch_update(Relaxed, Relaxed, |total| {
                total.checked_add(n).filter(|&t| t <= self.initial)
            })
            .map_err(|_| TooManyReleases)?;
        self.sem.raw.release(n);
        Ok(())
    }

    #[inline]
    fn sem(&self) -> &Semaphore {
        &self.sem
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f)
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("initial", &self.initial)
            .field("sem", &self.sem.raw)
            .finish()
    }
}

impl Default for Semaphore {
    /// A semaphore with no permits.
    fn default() -> Self {
        Self::new(0)
    }
}

#[inline]
fn check_many(n: u32) {
    assert!(
        n as usize <= raw::MAX_PERMITS,
        "acquire_many: asked for more than MAX_PERMITS permits"
    );
}

#[inline]
fn deadline_after(timeout: Duration) -> Option<Instant> {
    // A timeout too large to represent waits forever.
    Instant::now().checked_add(timeout)
}

/// The method set shared by `Semaphore` and `BoundedSemaphore`, written once.
macro_rules! semaphore_api {
    ($ty:ident) => {
        impl $ty {
            /// Free permits now (Toro's `counter`). Permits held back for the head of the
            /// queue are not counted.
            #[inline]
            pub fn available_permits(&self) -> usize {
                self.sem().raw.available()
            }

            /// Whether no permit is free (Toro's `locked()`).
            #[inline]
            pub fn is_locked(&self) -> bool {
                self.available_permits() == 0
            }

            /// Closes the semaphore: every waiter, async or blocking, wakes with
            /// [`Closed`], and every later acquire fails at once. Permits held stay valid
            /// and return on drop.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("use toro_sync::{", stringify!($ty), ", Closed};")]
            #[doc = concat!("let sem = ", stringify!($ty), "::new(1);")]
            /// sem.close();
            /// assert!(sem.is_closed());
            /// assert_eq!(sem.acquire_blocking().err(), Some(Closed));
            /// ```
            pub fn close(&self) {
                self.sem().raw.close();
            }

            /// Whether [`close`](Self::close) was called.
            #[inline]
            pub fn is_closed(&self) -> bool {
                self.sem().raw.is_closed()
            }

            /// Waits for one permit, first come first served.
            ///
            /// # Cancel safety
            /// Dropping the future leaves the queue; a permit already handed to it goes
            /// to the next waiter.
            ///
            /// # Errors
            /// [`Closed`] if the semaphore is or becomes closed.
            ///
            /// # Examples
            /// ```
            #[doc = concat!("use toro_sync::", stringify!($ty), ";")]
            /// # futures::executor::block_on(async {
            #[doc = concat!("let sem = ", stringify!($ty), "::new(1);")]
            /// let permit = sem.acquire().await.unwrap();
            /// assert_eq!(sem.available_permits(), 0);
            /// drop(permit);
            /// assert_eq!(sem.available_permits(), 1);
            /// # });
            /// ```
            #[inline]
            pub fn acquire(&self) -> Acquire<'_> {
                Acquire::new(self.sem(), 1)
            }

            /// Takes one permit if one is free and nobody is queued.
            ///
            /// # Errors
            /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
            #[inline]
            pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, TryAcquireError> {
                self.try_acquire_many(1)
            }

            /// Waits for one permit, parking the thread (after a short spin).
            ///
            /// # Errors
            /// [`Closed`] if the semaphore is or becomes closed.
            pub fn acquire_blocking(&self) -> Result<SemaphorePermit<'_>, Closed> {
                self.acquire_many_blocking(1)
            }

            /// Like [`acquire_blocking`](Self::acquire_blocking), giving up after `timeout`.
            ///
            /// # Errors
            /// [`AcquireTimeoutError::Timeout`] or [`AcquireTimeoutError::Closed`].
            pub fn acquire_timeout(
                &self,
                timeout: Duration,
            ) -> Result<SemaphorePermit<'_>, AcquireTimeoutError> {
                self.acquire_many_timeout(1, timeout)
            }

            /// Like [`acquire_blocking`](Self::acquire_blocking), giving up at `deadline`.
            /// A past deadline still succeeds when a permit is free at once.
            ///
            /// # Errors
            /// [`AcquireTimeoutError::Timeout`] or [`AcquireTimeoutError::Closed`].
            pub fn acquire_deadline(
                &self,
                deadline: Instant,
            ) -> Result<SemaphorePermit<'_>, AcquireTimeoutError> {
                self.acquire_many_deadline(1, deadline)
            }

            /// Waits for `n` permits at once, first come first served: while it waits at
            /// the head of the queue, later requests wait behind it. `n == 0` succeeds at
            /// once with an empty permit.
            ///
            /// # Cancel safety
            /// Dropping the future leaves the queue; permits already handed to it go to the
            /// next waiter.
            ///
            /// # Errors
            /// [`Closed`] if the semaphore is or becomes closed.
            ///
            /// # Panics
            #[doc = concat!("If `n > ", stringify!($ty), "::MAX_PERMITS` (only possible on 32-bit targets).")]
            #[inline]
            pub fn acquire_many(&self, n: u32) -> Acquire<'_> {
                check_many(n);
                Acquire::new(self.sem(), n)
            }

            /// Takes `n` permits if they are free and nobody is queued.
            ///
            /// # Errors
            /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
            #[inline]
            pub fn try_acquire_many(&self, n: u32) -> Result<SemaphorePermit<'_>, TryAcquireError> {
                self.sem().raw.try_acquire(n)?;
                Ok(SemaphorePermit::new(self.sem(), n as usize))
            }

            /// Waits for `n` permits, parking the thread (after a short spin).
            ///
            /// # Errors
            /// [`Closed`] if the semaphore is or becomes closed.
            pub fn acquire_many_blocking(&self, n: u32) -> Result<SemaphorePermit<'_>, Closed> {
                check_many(n);
                match self.sem().raw.acquire_blocking(n, None) {
                    Ok(()) => Ok(SemaphorePermit::new(self.sem(), n as usize)),
                    Err(_) => Err(Closed),
                }
            }

            /// Like [`acquire_many_blocking`](Self::acquire_many_blocking), giving up after
            /// `timeout`.
            ///
            /// # Errors
            /// [`AcquireTimeoutError::Timeout`] or [`AcquireTimeoutError::Closed`].
            pub fn acquire_many_timeout(
                &self,
                n: u32,
                timeout: Duration,
            ) -> Result<SemaphorePermit<'_>, AcquireTimeoutError> {
                match deadline_after(timeout) {
                    Some(at) => self.acquire_many_deadline(n, at),
                    None => Ok(self.acquire_many_blocking(n)?),
                }
            }

            /// Like [`acquire_many_blocking`](Self::acquire_many_blocking), giving up at
            /// `deadline`. A past deadline still succeeds when the permits are free at once.
            ///
            /// # Errors
            /// [`AcquireTimeoutError::Timeout`] or [`AcquireTimeoutError::Closed`].
            pub fn acquire_many_deadline(
                &self,
                n: u32,
                deadline: Instant,
            ) -> Result<SemaphorePermit<'_>, AcquireTimeoutError> {
                check_many(n);
                self.sem().raw.acquire_blocking(n, Some(deadline))?;
                Ok(SemaphorePermit::new(self.sem(), n as usize))
            }

            /// [`acquire`](Self::acquire) through an `Arc`: the permit holds the `Arc`.
            ///
            /// # Cancel safety
            /// As [`acquire`](Self::acquire).
            ///
            /// # Errors
            /// [`Closed`] if the semaphore is or becomes closed.
            ///
            /// # Examples
            /// ```
            /// use std::sync::Arc;
            #[doc = concat!("use toro_sync::", stringify!($ty), ";")]
            /// # futures::executor::block_on(async {
            #[doc = concat!("let sem = Arc::new(", stringify!($ty), "::new(1));")]
            /// let permit = sem.clone().acquire_owned().await.unwrap();
            /// std::thread::spawn(move || drop(permit)).join().unwrap();
            /// assert_eq!(sem.available_permits(), 1);
            /// # });
            /// ```
            #[inline]
            pub fn acquire_owned(self: Arc<Self>) -> AcquireOwned<Self> {
                AcquireOwned::new(self, 1)
            }

            /// [`try_acquire`](Self::try_acquire) through an `Arc`.
            ///
            /// # Errors
            /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
            pub fn try_acquire_owned(
                self: Arc<Self>,
            ) -> Result<OwnedSemaphorePermit<Self>, TryAcquireError> {
                self.try_acquire_many_owned(1)
            }

            /// [`acquire_blocking`](Self::acquire_blocking) through an `Arc`.
            ///
            /// # Errors
            /// [`Closed`] if the semaphore is or becomes closed.
            pub fn acquire_owned_blocking(
                self: Arc<Self>,
            ) -> Result<OwnedSemaphorePermit<Self>, Closed> {
                self.acquire_many_owned_blocking(1)
            }

            /// [`acquire_timeout`](Self::acquire_timeout) through an `Arc`.
            ///
            /// # Errors
            /// [`AcquireTimeoutError::Timeout`] or [`AcquireTimeoutError::Closed`].
            pub fn acquire_owned_timeout(
                self: Arc<Self>,
                timeout: Duration,
            ) -> Result<OwnedSemaphorePermit<Self>, AcquireTimeoutError> {
                self.acquire_many_owned_timeout(1, timeout)
            }

            /// [`acquire_deadline`](Self::acquire_deadline) through an `Arc`.
            ///
            /// # Errors
            /// [`AcquireTimeoutError::Timeout`] or [`AcquireTimeoutError::Closed`].
            pub fn acquire_owned_deadline(
                self: Arc<Self>,
                deadline: Instant,
            ) -> Result<OwnedSemaphorePermit<Self>, AcquireTimeoutError> {
                self.acquire_many_owned_deadline(1, deadline)
            }

            /// [`acquire_many`](Self::acquire_many) through an `Arc`.
            ///
            /// # Cancel safety
            /// As [`acquire_many`](Self::acquire_many).
            ///
            /// # Errors
            /// [`Closed`] if the semaphore is or becomes closed.
            ///
            /// # Panics
            /// As [`acquire_many`](Self::acquire_many).
            #[inline]
            pub fn acquire_many_owned(self: Arc<Self>, n: u32) -> AcquireOwned<Self> {
                check_many(n);
                AcquireOwned::new(self, n)
            }

            /// [`try_acquire_many`](Self::try_acquire_many) through an `Arc`.
            ///
            /// # Errors
            /// [`TryAcquireError::NoPermits`] or [`TryAcquireError::Closed`].
            pub fn try_acquire_many_owned(
                self: Arc<Self>,
                n: u32,
            ) -> Result<OwnedSemaphorePermit<Self>, TryAcquireError> {
                self.sem().raw.try_acquire(n)?;
                Ok(OwnedSemaphorePermit::new(self, n as usize))
            }

            /// [`acquire_many_blocking`](Self::acquire_many_blocking) through an `Arc`.
            ///
            /// # Errors
            /// [`Closed`] if the semaphore is or becomes closed.
            pub fn acquire_many_owned_blocking(
                self: Arc<Self>,
                n: u32,
            ) -> Result<OwnedSemaphorePermit<Self>, Closed> {
                check_many(n);
                match self.sem().raw.acquire_blocking(n, None) {
                    Ok(()) => Ok(OwnedSemaphorePermit::new(self, n as usize)),
                    Err(_) => Err(Closed),
                }
            }

            /// [`acquire_many_timeout`](Self::acquire_many_timeout) through an `Arc`.
            ///
            /// # Errors
            /// [`AcquireTimeoutError::Timeout`] or [`AcquireTimeoutError::Closed`].
            pub fn acquire_many_owned_timeout(
                self: Arc<Self>,
                n: u32,
                timeout: Duration,
            ) -> Result<OwnedSemaphorePermit<Self>, AcquireTimeoutError> {
                match deadline_after(timeout) {
                    Some(at) => self.acquire_many_owned_deadline(n, at),
                    None => Ok(self.acquire_many_owned_blocking(n)?),
                }
            }

            /// [`acquire_many_deadline`](Self::acquire_many_deadline) through an `Arc`.
            ///
            /// # Errors
            /// [`AcquireTimeoutError::Timeout`] or [`AcquireTimeoutError::Closed`].
            pub fn acquire_many_owned_deadline(
                self: Arc<Self>,
                n: u32,
                deadline: Instant,
            ) -> Result<OwnedSemaphorePermit<Self>, AcquireTimeoutError> {
                check_many(n);
                self.sem().raw.acquire_blocking(n, Some(deadline))?;
                Ok(OwnedSemaphorePermit::new(self, n as usize))
            }

            /// Waits until a permit is free, without keeping it (Toro's `Semaphore.wait`).
            ///
            /// It queues like an [`acquire`](Self::acquire) of one permit, so it does not
            /// overtake earlier waiters; when its turn comes the permit goes straight back
            /// (to the next waiter, if any).
            ///
            /// # Cancel safety
            /// As [`acquire`](Self::acquire).
            ///
            /// # Errors
            /// [`Closed`] if the semaphore is or becomes closed.
            pub async fn wait_unlocked(&self) -> Result<(), Closed> {
                self.acquire().await.map(drop)
            }

            /// [`wait_unlocked`](Self::wait_unlocked), parking the thread.
            ///
            /// # Errors
            /// [`Closed`] if the semaphore is or becomes closed.
            pub fn wait_unlocked_blocking(&self) -> Result<(), Closed> {
                self.acquire_blocking().map(drop)
            }

            /// [`wait_unlocked_blocking`](Self::wait_unlocked_blocking), giving up after
            /// `timeout`.
            ///
            /// # Errors
            /// [`AcquireTimeoutError::Timeout`] or [`AcquireTimeoutError::Closed`].
            pub fn wait_unlocked_timeout(&self, timeout: Duration) -> Result<(), AcquireTimeoutError> {
                self.acquire_timeout(timeout).map(drop)
            }

            /// [`wait_unlocked_blocking`](Self::wait_unlocked_blocking), giving up at
            /// `deadline`.
            ///
            /// # Errors
            /// [`AcquireTimeoutError::Timeout`] or [`AcquireTimeoutError::Closed`].
            pub fn wait_unlocked_deadline(&self, deadline: Instant) -> Result<(), AcquireTimeoutError> {
                self.acquire_deadline(deadline).map(drop)
            }
        }
    };
}

semaphore_api!(Semaphore);
semaphore_api!(BoundedSemaphore);
