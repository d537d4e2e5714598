//! Shared pieces of the loom models (built only under `--cfg loom`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
use std::task::{Context, Poll, Waker};

use loom::cell::UnsafeCell;
use loom::sync::{Arc, Mutex};

/// The preemption bound of every model unless `LOOM_MAX_PREEMPTIONS` says otherwise: 3
/// keeps the whole suite well under a minute on two cores in release and covers the
/// lost-wake and lost-permit races (each needs one or two preemptions) with one to spare.
pub const PREEMPTION_BOUND: usize = 3;

/// Runs `f` under loom with [`PREEMPTION_BOUND`] (or `LOOM_MAX_PREEMPTIONS`), and prints
/// how many executions it explored (see them with `-- --nocapture`).
pub fn model<F>(name: &str, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    model_bounded(name, PREEMPTION_BOUND, f);
}

/// [`model`] with a preemption bound of its own, for the few models of three busy
/// threads whose full bound of 3 runs for many minutes (`LOOM_MAX_PREEMPTIONS` still
/// overrides it, for a deeper run at release time).
pub fn model_bounded<F>(name: &str, bound: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    // std's atomic on purpose: a counter of executions outside the model.
    let runs = std::sync::Arc::new(StdAtomicUsize::new(0));
    let counted = runs.clone();
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    let bound = builder.preemption_bound;
    builder.check(move || {
        counted.fetch_add(1, StdOrdering::Relaxed);
        f();
    });
    println!(
        "{name}: {} executions (preemption bound {bound:?})",
        runs.load(StdOrdering::Relaxed)
    );
}

/// Polls `fut` once with a waker that does nothing: the first half of "poll once, then
/// drop", or a check that a queued waiter is still pending.
pub fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// Data that only the holder of a permit touches. loom reports a data race if two
/// threads reach it without a happens-before edge between them, so every access checks
/// that the permit hand-off both excludes and publishes.
pub struct Guarded(UnsafeCell<usize>);

// SAFETY: every access goes through `bump`/`get`, whose callers promise exclusion (a
// permit of a one-permit semaphore, or a joined thread); loom checks that promise.
unsafe impl Sync for Guarded {}

impl Guarded {
    pub fn new() -> Self {
        Self(UnsafeCell::new(0))
    }

    /// Adds one. The caller holds the permit that guards this cell.
    pub fn bump(&self) {
        self.0.with_mut(|p| {
            // SAFETY: exclusive by the caller's permit (checked by loom).
            unsafe { *p += 1 }
        });
    }

    /// The count. No permit holder may run concurrently (checked by loom).
    pub fn get(&self) -> usize {
        // SAFETY: as in `bump`.
        self.0.with(|p| unsafe { *p })
    }
}

impl Default for Guarded {
    fn default() -> Self {
        Self::new()
    }
}

/// The state a [`Timer`] shares with its [`Trigger`]: fired, and the waker to call.
struct TimerState {
    fired: bool,
    waker: Option<Waker>,
}

/// A stand-in for the deadline timer that a model thread fires: ready once
/// [`Trigger::fire`] ran, and it wakes its task then.
pub struct Timer(Arc<Mutex<TimerState>>);

/// The other half of a [`Timer`]: "the deadline passed".
#[derive(Clone)]
pub struct Trigger(Arc<Mutex<TimerState>>);

/// A model-driven timer and its trigger.
pub fn timer() -> (Timer, Trigger) {
    let state = Arc::new(Mutex::new(TimerState {
        fired: false,
        waker: None,
    }));
    (Timer(state.clone()), Trigger(state))
}

impl Trigger {
    /// The deadline passes now: the timer is ready from here on, and its task is woken.
    pub fn fire(&self) {
        let waker = {
            let mut state = self.0.lock().unwrap();
            state.fired = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Future for Timer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.0.lock().unwrap();
        if state.fired {
            return Poll::Ready(());
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
