//! # toro-sync
//!
//! Toro's locks and queues for Rust: the synchronization primitives that threads have,
//! for async tasks on any executor and for blocking threads at once, fair (first in, first
//! out), cancel-safe, with a deadline on every wait and a non-waiting twin of every wait.
//!
//! This release has the foundation, [`Semaphore`] and [`BoundedSemaphore`] with the error
//! types and [`WaitExt`] for async deadlines, and the FIFO [`Queue`] (bounded, unbounded,
//! and the `bounded(0)` rendezvous) with its [`channel`]s. Locks, conditions, events and
//! the priority, LIFO and joinable queues are layered on the same engine next.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use toro_sync::{Semaphore, WaitExt};
//!
//! let sem = Arc::new(Semaphore::new(2));
//!
//! // A blocking thread and an async task share one semaphore.
//! let s = sem.clone();
//! let thread = std::thread::spawn(move || {
//!     let _permit = s.acquire_blocking().unwrap();
//!     std::thread::sleep(Duration::from_millis(5));
//! });
//! futures::executor::block_on(async {
//!     let _permit = sem.acquire().await.unwrap();
//!     // A deadline on any wait, with no runtime timer.
//!     let _ = sem.acquire_many(2).timeout(Duration::from_millis(1)).await;
//! });
//! thread.join().unwrap();
//! assert_eq!(sem.available_permits(), 2);
//! ```
//!
//! # Layers
//!
//! 1. `loom`: the one std/loom switch for atomics, cells, locks and parking.
//! 2. `wait`: the FIFO waiter queue (an intrusive list of pinned nodes), tasks and parked
//!    threads side by side.
//! 3. `semaphore`: the atomic state word with a lock-free fast path over that queue.
//! 4. `segqueue`: the segmented lock-free MPMC FIFO of items.
//! 5. `queue` and `channel`: the FIFO queue (the FIFO of 4, whose tail word also counts
//!    the places reserved and holds the closed bit, so that its claims check the bound;
//!    plus a waiting line of 3 for receivers and one for senders, and for a rendezvous a
//!    semaphore of lent places) and sender/receiver handles over it.
//!
//! # When std's primitives are better
//!
//! If only threads ever wait and fairness does not matter, `std::sync::Mutex` and
//! `std::sync::Condvar` are smaller and need no heap. toro-sync is for code where async
//! tasks wait, or tasks and threads wait on the same object, or FIFO order and deadlines
//! matter.

#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

#[cfg(not(feature = "std"))]
compile_error!("toro-sync needs its `std` feature for now (blocking waits, the deadline timer and the waiter lock use std)");

mod loom;
#[cfg(test)]
mod test_waker;

// Layer 2: the waiter queue (intrusive list: unsafe, proved in the module).
#[allow(unsafe_code)]
mod wait;

// Layer 3: the semaphore engine and its public face.
mod semaphore;

// Layer 4: the segmented lock-free FIFO (raw segments: unsafe, proved in the module).
#[allow(unsafe_code)]
mod segqueue;

// Layer 5: the queues, safe code over layers 3 and 4.
mod queue;

// Layer 5: channels, sender/receiver handles over a queue (safe).
pub mod channel;

// Async deadlines on any future.
mod deadline;

pub mod error;

pub use deadline::{Deadline, WaitExt};
pub use error::{
    AcquireTimeoutError, AlreadySet, Closed, NotReady, RecvError, RecvTimeoutError, SendError,
    SendTimeoutError, TaskDoneError, Timeout, TooManyReleases, TryAcquireError, TryLockError,
    TryRecvError, TrySendError,
};
pub use queue::{Queue, RecvFuture, SendFuture, SendPermit};
pub use semaphore::{
    Acquire, AcquireOwned, AsSemaphore, BoundedSemaphore, OwnedSemaphorePermit, Semaphore,
    SemaphorePermit,
};

/// Hooks for the loom models in `loom-tests/`; not part of the API.
#[cfg(loom)]
#[doc(hidden)]
pub mod __loom {
    pub use crate::deadline::race;
    pub use crate::segqueue::chunk_model as chunk;
    pub use crate::segqueue::SegQueue;
}

/// README.md's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
