//! The std/loom switch: the one place that imports atomics, `UnsafeCell`, `Arc`, `Mutex`,
//! thread parking and spinning. Under `--cfg loom` every item is loom's, so the models in
//! `loom-tests/` explore the real code; otherwise they are std's (plus crossbeam-utils'
//! `Backoff`). No other file imports `std::sync::atomic` or `std::thread` directly.
//!
//! The cfg is `loom`, not `all(test, loom)`: `loom-tests/` builds this crate as a plain
//! dependency, where `cfg(test)` is false.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize};

/// loom's leak tracking for memory that loom does not allocate: a model fails if a `Track`
/// is still alive at its end (the arena's chunks carry one in their header).
#[cfg(loom)]
pub(crate) use loom::alloc::Track;

/// Always std's `Arc`, also under loom: the owned API takes `self: Arc<Self>`, which stable
/// Rust allows only for std's `Arc`. Nothing in the crate needs loom to track a refcount.
pub(crate) use std::sync::Arc;

pub(crate) use std::sync::atomic::Ordering;

/// `UnsafeCell` with loom's closure API, so loom can check every access.
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `UnsafeCell` with loom's closure API, so loom can check every access.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// A mutex whose `lock` ignores poisoning: every critical section in this crate leaves its
/// data consistent before anything in it can panic, so a poisoned lock is still sound.
#[derive(Debug)]
pub(crate) struct Mutex<T> {
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
    #[cfg(not(loom))]
    inner: std::sync::Mutex<T>,
}

#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    #[cfg(not(loom))]
    pub(crate) const fn new(value: T) -> Self {
        Self {
            inner: std::sync::Mutex::new(value),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new(value: T) -> Self {
        Self {
            inner: loom::sync::Mutex::new(value),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Thread parking: `current`, `park`, `park_timeout` and `Thread::unpark`.
pub(crate) mod thread {
    #[cfg(loom)]
    pub(crate) use loom::thread::{current, park, Thread};
    #[cfg(not(loom))]
    pub(crate) use std::thread::{current, park, park_timeout, Thread};

    /// loom has no timed park; a timed blocking wait is never run inside a model (its
    /// deadline reads the real clock, which a model must not), so this only type-checks.
    #[cfg(loom)]
    pub(crate) fn park_timeout(_: std::time::Duration) {
        park()
    }
}

/// A bounded spin before a blocking waiter parks. Inside a loom model a spin would only
/// multiply the interleavings, so there it gives up at once and the waiter parks.
pub(crate) struct Spin {
    #[cfg(not(loom))]
    backoff: crossbeam_utils::Backoff,
}

impl Spin {
    #[inline]
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(not(loom))]
            backoff: crossbeam_utils::Backoff::new(),
        }
    }

    /// Spins or yields once; returns `false` when the budget is spent and the caller should park.
    #[inline]
    pub(crate) fn spin(&self) -> bool {
        #[cfg(not(loom))]
        {
            if self.backoff.is_completed() {
                return false;
            }
            self.backoff.snooze();
            true
        }
        #[cfg(loom)]
        {
            false
        }
    }
}

/// An unbounded wait for a step another thread has already committed to and takes without
/// blocking (a claimed slot being written, the next segment being linked), and the pause
/// after a lost compare-and-swap. Unlike [`Spin`] it never gives up: there is nobody to park
/// for. In the std build it is crossbeam-utils' `Backoff`; under loom `snooze` yields, so
/// the model runs the thread being waited for, and `spin` does nothing (the lost race
/// already was the other thread's step).
pub(crate) struct Backoff {
    #[cfg(not(loom))]
    inner: crossbeam_utils::Backoff,
}

impl Backoff {
    #[inline]
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(not(loom))]
            inner: crossbeam_utils::Backoff::new(),
        }
    }

    /// After a lost compare-and-swap: a short spin before the retry.
    #[inline]
    pub(crate) fn spin(&self) {
        #[cfg(not(loom))]
        self.inner.spin();
    }

    /// While waiting for another thread's step: spin, then yield to the OS scheduler.
    #[inline]
    pub(crate) fn snooze(&self) {
        #[cfg(not(loom))]
        self.inner.snooze();
        #[cfg(loom)]
        loom::thread::yield_now();
    }
}

/// A statistics counter for tests and loom models (how many segments are alive, how many
/// were ever allocated). No protocol reads it, so it is std's atomic even under loom: the
/// model need not explore its interleavings.
#[cfg(any(test, loom))]
#[derive(Debug)]
pub(crate) struct Counter(std::sync::atomic::AtomicUsize);

#[cfg(any(test, loom))]
impl Counter {
    pub(crate) const fn new(n: usize) -> Self {
        Self(std::sync::atomic::AtomicUsize::new(n))
    }

    pub(crate) fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, n: usize) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}
