//! The acquire futures: one generic engine future over "something that reaches a semaphore"
//! (a reference or an `Arc`), wrapped by the public `Acquire` and `AcquireOwned`.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::raw::{OnJoin, RawSemaphore};
use super::{AsSemaphore, OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use crate::error::Closed;
use crate::loom::Arc;
use crate::wait::{Payload, Waiter};

/// A handle that reaches a semaphore's engine, and what its waits do when they join the
/// waiter queue ([`OnJoin`]: nothing, except in the queue layer).
pub(crate) trait SemRef: OnJoin {
    fn raw(&self) -> &RawSemaphore;

    /// The item a wait brings for whoever serves it ([`Waiter::carrying`]): a waiting
    /// sender's, in the queue layer.
    #[inline]
    fn payload(&self) -> Option<Payload> {
        None
    }

    /// Gives back the grant of an acquire that was dropped after it had been granted in
    /// full: a release of its `n` permits, unless the layer's grants are not permits.
    #[inline]
    fn give_back(&self, n: u32) {
        self.raw().release(n as usize);
    }
}

impl OnJoin for &Semaphore {}
impl SemRef for &Semaphore {
    #[inline]
    fn raw(&self) -> &RawSemaphore {
        &self.raw
    }
}

/// The queue layer waits on bare engines.
impl OnJoin for &RawSemaphore {}
impl SemRef for &RawSemaphore {
    #[inline]
    fn raw(&self) -> &RawSemaphore {
        self
    }
}

impl<S: AsSemaphore> OnJoin for Arc<S> {}
impl<S: AsSemaphore> SemRef for Arc<S> {
    #[inline]
    fn raw(&self) -> &RawSemaphore {
        &(**self).as_semaphore().raw
    }
}

/// An acquire of `n` permits in progress: the node, whether it is queued, and the handle,
/// given back to the caller with the permits.
pub(crate) struct RawAcquire<R: SemRef> {
    /// `None` once the future has finished (the handle went out with the permits).
    sem: Option<R>,
    n: u32,
    /// The node was linked into the waiter list (its state is meaningful from then on).
    queued: bool,
    waiter: Waiter,
}

impl<R: SemRef> RawAcquire<R> {
    #[inline]
    pub(crate) fn new(sem: R, n: u32) -> Self {
        let waiter = Waiter::carrying(sem.payload());
        Self {
            sem: Some(sem),
            n,
            queued: false,
            waiter,
        }
    }

    /// Whether the future has completed (its handle went out with the permits, or it
    /// failed): polling it again would panic.
    #[inline]
    pub(crate) fn is_finished(&self) -> bool {
        self.sem.is_none()
    }
}

impl<R: SemRef> Future for RawAcquire<R> {
    type Output = Result<R, Closed>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `waiter` is structurally pinned (it is only ever reached through the pin
        // below and never moved out); no other field is, and none is moved while linked.
        #[allow(unsafe_code)]
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: `this.waiter` lives inside the pinned future: it does not move until the
        // future is dropped, and `Drop` unlinks it first.
        #[allow(unsafe_code)]
        let waiter = unsafe { Pin::new_unchecked(&this.waiter) };
        let sem = this
            .sem
            .as_ref()
            .expect("acquire future polled after completion");
        match sem
            .raw()
            .poll_acquire(waiter, &mut this.queued, this.n, cx, sem)
        {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(this.sem.take().expect("checked above"))),
            Poll::Ready(Err(Closed)) => {
                this.sem = None;
                Poll::Ready(Err(Closed))
            }
        }
    }
}

impl<R: SemRef> Drop for RawAcquire<R> {
    fn drop(&mut self) {
        if let (Some(sem), true) = (&self.sem, self.queued) {
            if sem.raw().cancel_acquire(&self.waiter) {
                sem.give_back(self.n);
            }
        }
    }
}

/// The future of [`Semaphore::acquire`] and [`Semaphore::acquire_many`] (and of the same
/// methods of [`BoundedSemaphore`](crate::BoundedSemaphore)).
///
/// # Cancel safety
/// Dropping it leaves the queue; permits already handed to it go to the next waiter.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a> {
    inner: RawAcquire<&'a Semaphore>,
}

impl<'a> Acquire<'a> {
    #[inline]
    pub(crate) fn new(sem: &'a Semaphore, n: u32) -> Self {
        Self {
            inner: RawAcquire::new(sem, n),
        }
    }
}

impl<'a> Future for Acquire<'a> {
    type Output = Result<SemaphorePermit<'a>, Closed>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let n = self.inner.n;
        // SAFETY: a plain projection to the only field; it is never moved out.
        #[allow(unsafe_code)]
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.inner) };
        inner
            .poll(cx)
            .map(|r| r.map(|sem| SemaphorePermit::new(sem, n as usize)))
    }
}

impl core::fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Acquire")
            .field("permits", &self.inner.n)
            .finish_non_exhaustive()
    }
}

/// The future of [`Semaphore::acquire_owned`] and [`Semaphore::acquire_many_owned`] (and
/// of the same methods of [`BoundedSemaphore`](crate::BoundedSemaphore)).
///
/// # Cancel safety
/// Dropping it leaves the queue; permits already handed to it go to the next waiter.
#[must_use = "futures do nothing unless polled"]
pub struct AcquireOwned<S: AsSemaphore = Semaphore> {
    inner: RawAcquire<Arc<S>>,
}

impl<S: AsSemaphore> AcquireOwned<S> {
    #[inline]
    pub(crate) fn new(sem: Arc<S>, n: u32) -> Self {
        Self {
            inner: RawAcquire::new(sem, n),
        }
    }
}

impl<S: AsSemaphore> Future for AcquireOwned<S> {
    type Output = Result<OwnedSemaphorePermit<S>, Closed>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let n = self.inner.n;
        // SAFETY: a plain projection to the only field; it is never moved out.
        #[allow(unsafe_code)]
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.inner) };
        inner
            .poll(cx)
            .map(|r| r.map(|sem| OwnedSemaphorePermit::new(sem, n as usize)))
    }
}

impl<S: AsSemaphore> core::fmt::Debug for AcquireOwned<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AcquireOwned")
            .field("permits", &self.inner.n)
            .finish_non_exhaustive()
    }
}
