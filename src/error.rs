//! Every error type of the crate: small plain values, unit structs when there is nothing to
//! carry, enums when the cause matters, the item handed back by `into_inner()`.
//! `Display` is lower case without a period; `Debug` never requires `T: Debug`.

use core::fmt;

macro_rules! unit_error {
    ($(#[$doc:meta])* $name:ident, $msg:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($msg)
            }
        }

        impl std::error::Error for $name {}
    };
}

unit_error!(
    /// The primitive was closed: a wait on a closed semaphore or queue ends with this.
    ///
    /// ```
    /// use toro_sync::{Closed, Semaphore};
    /// let sem = Semaphore::new(1);
    /// sem.close();
    /// assert_eq!(sem.acquire_blocking().err(), Some(Closed));
    /// ```
    Closed,
    "closed"
);

unit_error!(
    /// A deadline passed before the wait finished (Toro's `False` from a timed wait).
    ///
    /// ```
    /// use std::time::Duration;
    /// use toro_sync::{Semaphore, WaitExt, Timeout};
    /// let sem = Semaphore::new(0);
    /// let r = futures::executor::block_on(sem.acquire().timeout(Duration::from_millis(1)));
    /// assert_eq!(r.err(), Some(Timeout));
    /// ```
    Timeout,
    "deadline has elapsed"
);

unit_error!(
    /// A receive on a queue that is closed and drained.
    RecvError,
    "receiving on a closed and empty queue"
);

unit_error!(
    /// `BoundedSemaphore::release` would raise the count above the initial value.
    ///
    /// ```
    /// use toro_sync::{BoundedSemaphore, TooManyReleases};
    /// let sem = BoundedSemaphore::new(2);
    /// assert_eq!(sem.release(1), Err(TooManyReleases));
    /// assert_eq!(sem.available_permits(), 2);
    /// ```
    TooManyReleases,
    "released more permits than the bounded semaphore was created with"
);

unit_error!(
    /// `task_done` (or `WaitGroup::done`) was called more times than items were sent.
    TaskDoneError,
    "task_done called more times than there were items"
);

unit_error!(
    /// A value is not set yet (`AsyncResult::try_get`).
    NotReady,
    "value not set yet"
);

unit_error!(
    /// `try_lock`, `try_read` or `try_write` found the lock taken.
    TryLockError,
    "lock is held"
);

/// Why `try_acquire` failed.
///
/// ```
/// use toro_sync::{Semaphore, TryAcquireError};
/// let sem = Semaphore::new(0);
/// assert_eq!(sem.try_acquire().err(), Some(TryAcquireError::NoPermits));
/// sem.close();
/// assert_eq!(sem.try_acquire().err(), Some(TryAcquireError::Closed));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TryAcquireError {
    /// Not enough permits are free, or others are queued ahead (FIFO: no barging).
    NoPermits,
    /// The semaphore is closed.
    Closed,
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoPermits => "no permits available",
            Self::Closed => "semaphore closed",
        })
    }
}

impl std::error::Error for TryAcquireError {}

/// Why a blocking acquire with a deadline failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AcquireTimeoutError {
    /// The deadline passed first.
    Timeout,
    /// The semaphore closed first.
    Closed,
}

impl fmt::Display for AcquireTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "deadline has elapsed",
            Self::Closed => "semaphore closed",
        })
    }
}

impl std::error::Error for AcquireTimeoutError {}

impl From<Closed> for AcquireTimeoutError {
    fn from(_: Closed) -> Self {
        Self::Closed
    }
}

impl From<Timeout> for AcquireTimeoutError {
    fn from(_: Timeout) -> Self {
        Self::Timeout
    }
}

impl From<Closed> for TryAcquireError {
    fn from(_: Closed) -> Self {
        Self::Closed
    }
}

/// Why a receive with a deadline failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecvTimeoutError {
    /// The deadline passed first.
    Timeout,
    /// The queue is closed and drained.
    Closed,
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "deadline has elapsed",
            Self::Closed => "receiving on a closed and empty queue",
        })
    }
}

impl std::error::Error for RecvTimeoutError {}

/// Why `try_recv` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TryRecvError {
    /// Nothing to receive now.
    Empty,
    /// The queue is closed and drained.
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "receiving on an empty queue",
            Self::Closed => "receiving on a closed and empty queue",
        })
    }
}

impl std::error::Error for TryRecvError {}

/// A send on a closed queue; the item comes back.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Why `try_send` failed; the item comes back.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrySendError<T> {
    /// The queue is full.
    Full(T),
    /// The queue is closed.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(t) | Self::Closed(t) => t,
        }
    }

    /// Whether the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

/// Why a send with a deadline failed; the item comes back.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendTimeoutError<T> {
    /// The deadline passed first.
    Timeout(T),
    /// The queue is closed.
    Closed(T),
}

impl<T> SendTimeoutError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Timeout(t) | Self::Closed(t) => t,
        }
    }

    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

/// `AsyncResult::set` on a value already set; the new value comes back.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AlreadySet<T>(pub T);

impl<T> AlreadySet<T> {
    /// The value that was not stored.
    pub fn into_inner(self) -> T {
        self.0
    }
}

macro_rules! item_error_fmt {
    ($name:ident, |$s:ident| $debug:expr, $display:expr) => {
        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let $s = self;
                f.write_str($debug)
            }
        }

        impl<T> fmt::Display for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let $s = self;
                f.write_str($display)
            }
        }

        impl<T> std::error::Error for $name<T> {}
    };
}

item_error_fmt!(SendError, |_s| "SendError(..)", "sending on a closed queue");
item_error_fmt!(
    TrySendError,
    |s| match s {
        TrySendError::Full(_) => "Full(..)",
        TrySendError::Closed(_) => "Closed(..)",
    },
    match s {
        TrySendError::Full(_) => "sending on a full queue",
        TrySendError::Closed(_) => "sending on a closed queue",
    }
);
item_error_fmt!(
    SendTimeoutError,
    |s| match s {
        SendTimeoutError::Timeout(_) => "Timeout(..)",
        SendTimeoutError::Closed(_) => "Closed(..)",
    },
    match s {
        SendTimeoutError::Timeout(_) => "deadline has elapsed",
        SendTimeoutError::Closed(_) => "sending on a closed queue",
    }
);
item_error_fmt!(AlreadySet, |_s| "AlreadySet(..)", "value already set");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_lower_case_without_period() {
        let all: [&dyn std::error::Error; 13] = [
            &Closed,
            &Timeout,
            &RecvError,
            &TooManyReleases,
            &TaskDoneError,
            &NotReady,
            &TryLockError,
            &TryAcquireError::NoPermits,
            &AcquireTimeoutError::Timeout,
            &SendError(1),
            &TrySendError::Full(1),
            &SendTimeoutError::Closed(1),
            &AlreadySet(1),
        ];
        for e in all {
            let s = e.to_string();
            assert!(s.chars().next().unwrap().is_lowercase(), "{s}");
            assert!(!s.ends_with('.'), "{s}");
        }
    }

    #[test]
    fn items_come_back() {
        struct NoDebug(u8);
        assert_eq!(SendError(NoDebug(1)).into_inner().0, 1);
        assert_eq!(TrySendError::Full(NoDebug(2)).into_inner().0, 2);
        assert_eq!(TrySendError::Closed(NoDebug(3)).into_inner().0, 3);
        assert_eq!(SendTimeoutError::Timeout(NoDebug(4)).into_inner().0, 4);
        assert_eq!(AlreadySet(NoDebug(5)).into_inner().0, 5);
        assert_eq!(format!("{:?}", TrySendError::Full(NoDebug(0))), "Full(..)");
        assert_eq!(
            AcquireTimeoutError::from(Closed),
            AcquireTimeoutError::Closed
        );
        assert_eq!(TryAcquireError::from(Closed), TryAcquireError::Closed);
    }
}
