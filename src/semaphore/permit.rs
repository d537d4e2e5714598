//! Permits: what an acquire hands out. Dropping one gives its permits back.

use core::fmt;
use core::mem::ManuallyDrop;

use super::{AsSemaphore, Semaphore};
use crate::loom::{Arc, Ordering::*};

/// Permits borrowed from a [`Semaphore`] (or a [`BoundedSemaphore`](crate::BoundedSemaphore));
/// dropping it gives them back.
///
/// # Examples
/// ```
/// use toro_sync::Semaphore;
/// let sem = Semaphore::new(3);
/// let mut permit = sem.try_acquire_many(3)?;
/// let one = permit.split(1).unwrap();
/// assert_eq!((permit.num_permits(), one.num_permits()), (2, 1));
/// drop(one);
/// assert_eq!(sem.available_permits(), 1);
/// # Ok::<(), toro_sync::TryAcquireError>(())
/// ```
#[must_use = "dropping a permit releases it at once"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    n: usize,
}

/// Permits of a semaphore held through an `Arc`, so the permit is `'static`; dropping it
/// gives them back. `S` is [`Semaphore`] or [`BoundedSemaphore`](crate::BoundedSemaphore).
#[must_use = "dropping a permit releases it at once"]
pub struct OwnedSemaphorePermit<S: AsSemaphore = Semaphore> {
    sem: Arc<S>,
    n: usize,
}

fn forget_permits(sem: &Semaphore, n: usize) {
    // Relaxed: the count is only a bound for `add_permits` and `release`.
    sem.total.fetch_sub(n, Relaxed);
}

impl<'a> SemaphorePermit<'a> {
    #[inline]
    pub(crate) fn new(sem: &'a Semaphore, n: usize) -> Self {
        Self { sem, n }
    }

    /// Keeps the permits out of the semaphore for good (a `BoundedSemaphore` can take them
    /// back with `release`).
    pub fn forget(self) {
        let this = ManuallyDrop::new(self);
        forget_permits(this.sem, this.n);
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.n
    }

    /// Moves the permits of `other` into `self`.
    ///
    /// # Panics
    /// If `other` comes from a different semaphore (a caller bug, as in tokio).
    pub fn merge(&mut self, other: Self) {
        assert!(
            core::ptr::eq(self.sem, other.sem),
            "merge: permits from different semaphores"
        );
        let other = ManuallyDrop::new(other);
        self.n += other.n;
    }

    /// Splits `n` permits off into a new permit; `None` (and no change) if this holds fewer.
    pub fn split(&mut self, n: usize) -> Option<Self> {
        self.n = self.n.checked_sub(n)?;
        Some(Self { sem: self.sem, n })
    }
}

impl Drop for SemaphorePermit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.sem.raw.release(self.n);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.n)
            .finish_non_exhaustive()
    }
}

impl<S: AsSemaphore> OwnedSemaphorePermit<S> {
    #[inline]
    pub(crate) fn new(sem: Arc<S>, n: usize) -> Self {
        Self { sem, n }
    }

    /// Keeps the permits out of the semaphore for good (a `BoundedSemaphore` can take them
    /// back with `release`).
    pub fn forget(mut self) {
        forget_permits(self.sem.as_semaphore(), self.n);
        // Dropping `self` now releases no permits, only the `Arc`.
        self.n = 0;
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.n
    }

    /// Moves the permits of `other` into `self`.
    ///
    /// # Panics
    /// If `other` comes from a different semaphore (a caller bug, as in tokio).
    pub fn merge(&mut self, mut other: Self) {
        assert!(
            Arc::ptr_eq(&self.sem, &other.sem),
            "merge: permits from different semaphores"
        );
        self.n += core::mem::take(&mut other.n);
    }

    /// Splits `n` permits off into a new permit; `None` (and no change) if this holds fewer.
    pub fn split(&mut self, n: usize) -> Option<Self> {
        self.n = self.n.checked_sub(n)?;
        Some(Self {
            sem: self.sem.clone(),
            n,
        })
    }

    /// The semaphore these permits belong to.
    pub fn semaphore(&self) -> &Arc<S> {
        &self.sem
    }
}

impl<S: AsSemaphore> Drop for OwnedSemaphorePermit<S> {
    #[inline]
    fn drop(&mut self) {
        self.sem.as_semaphore().raw.release(self.n);
    }
}

impl<S: AsSemaphore> fmt::Debug for OwnedSemaphorePermit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("permits", &self.n)
            .finish_non_exhaustive()
    }
}
