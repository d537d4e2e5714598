//! `WaitExt`: a deadline on any future, on any executor, with no runtime timer.
//!
//! The timer is `futures-timer`'s global timer: one helper thread, started on first use,
//! that keeps a heap of deadlines and wakes each future's task when its time comes. It was
//! chosen over a hand-written timer thread because it is the well-kept library for exactly
//! this (used by async-std and others), and a deadline needs nothing more. A deadline that
//! is already past, or a future that is ready at its first poll, never touches the timer,
//! and a `timeout` reads the clock only once its future has had to wait.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::error::Timeout;

/// Deadlines for any future: `fut.timeout(d)` and `fut.deadline(at)` resolve to
/// `Ok(output)` if `fut` finishes first and to `Err(Timeout)` otherwise, on any executor.
///
/// The wait futures of this crate are cancel-safe, so a timed-out wait loses nothing: the
/// inner future is dropped with the `Deadline`, which leaves the queue (a permit handed to
/// it at the last moment goes to the next waiter).
///
/// The inner future is always polled first, so a zero or past deadline still succeeds
/// when the wait is ready at once.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use toro_sync::{Semaphore, Timeout, WaitExt};
///
/// # futures::executor::block_on(async {
/// let sem = Semaphore::new(1);
/// let held = sem.acquire().await.unwrap();
/// // Nothing else wakes this task: the crate's timer does, with no runtime involved.
/// assert_eq!(sem.acquire().timeout(Duration::from_millis(10)).await.err(), Some(Timeout));
/// drop(held);
/// let permit = sem.acquire().timeout(Duration::ZERO).await; // ready at once: succeeds
/// assert!(matches!(permit, Ok(Ok(_))));
/// # });
/// ```
pub trait WaitExt: Future + Sized {
    /// Gives up after `timeout`, counted from the future's first poll: the clock is read
    /// only once the inner future has returned `Pending`, so a wait that is ready at its
    /// first poll never reads it.
    fn timeout(self, timeout: Duration) -> Deadline<Self> {
        Deadline::new(self, When::After(timeout))
    }

    /// Gives up at `deadline`.
    fn deadline(self, deadline: Instant) -> Deadline<Self> {
        Deadline::new(self, When::At(deadline))
    }
}

impl<F: Future> WaitExt for F {}

/// The future of [`WaitExt::timeout`] and [`WaitExt::deadline`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Deadline<F> {
    race: Race<F, Timer>,
}

impl<F> Deadline<F> {
    fn new(fut: F, when: When) -> Self {
        Self {
            race: Race {
                fut,
                timer: Timer { when, delay: None },
            },
        }
    }

    /// The inner future, dropping the deadline.
    pub fn into_inner(self) -> F {
        self.race.fut
    }
}

impl<F: Future> Future for Deadline<F> {
    type Output = Result<F::Output, Timeout>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: a plain projection to the only field; it is never moved out while pinned
        // (`into_inner` takes `self` by value, so it is not pinned then).
        #[allow(unsafe_code)]
        let race = unsafe { self.map_unchecked_mut(|s| &mut s.race) };
        race.poll(cx)
    }
}

/// When a [`Timer`] fires.
#[derive(Debug, Clone, Copy)]
enum When {
    /// This long after its first poll (`timeout`): an `Instant::now()` costs 25 ns on
    /// this project's machine, and a wait that is ready at once never polls its timer.
    After(Duration),
    /// At this instant.
    At(Instant),
    /// Never: a timeout too large for an `Instant`.
    Never,
}

/// The deadline timer, polled only after the inner future returned `Pending`.
#[derive(Debug)]
struct Timer {
    when: When,
    /// Created on the first poll that finds the deadline still ahead.
    delay: Option<futures_timer::Delay>,
}

impl Future for Timer {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        let at = match self.when {
            When::Never => return Poll::Pending,
            When::At(at) => at,
            When::After(timeout) => {
                let Some(at) = now.checked_add(timeout) else {
                    self.when = When::Never;
                    return Poll::Pending;
                };
                self.when = When::At(at);
                at
            }
        };
        if now >= at {
            return Poll::Ready(());
        }
        self.delay
            .get_or_insert_with(|| futures_timer::Delay::new(at - now))
            .poll_unpin(cx)
    }
}

trait PollUnpin: Future + Unpin {
    fn poll_unpin(&mut self, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(self).poll(cx)
    }
}

impl<F: Future + Unpin> PollUnpin for F {}

/// A future raced against a timer: the future is polled first, so it wins a tie.
#[derive(Debug)]
pub(crate) struct Race<F, D> {
    fut: F,
    timer: D,
}

impl<F: Future, D: Future<Output = ()>> Future for Race<F, D> {
    type Output = Result<F::Output, Timeout>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `fut` and `timer` are structurally pinned: reached only through these
        // pins and never moved out while `self` is pinned.
        #[allow(unsafe_code)]
        let (fut, timer) = unsafe {
            let this = self.get_unchecked_mut();
            (
                Pin::new_unchecked(&mut this.fut),
                Pin::new_unchecked(&mut this.timer),
            )
        };
        if let Poll::Ready(out) = fut.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match timer.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Timeout)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// loom models race a wait against a model-driven timer through the same `Race`.
#[cfg(loom)]
pub fn race<F: Future, D: Future<Output = ()>>(
    fut: F,
    timer: D,
) -> impl Future<Output = Result<F::Output, Timeout>> {
    Race { fut, timer }
}
