//! What a cancelled receive costs, in toro-sync and in the channels of the benchmarks:
//! the checks behind the "Cancel-safe waits" row of README's feature table.
//!
//! ```sh
//! cargo run --release --example cancel
//! ```
//!
//! Each channel is `bounded(1)` and each future is polled by hand, so every run takes the
//! same steps:
//!
//! 1. **Item kept.** A receive waits (polled once: `Pending`); a send then completes; the
//!    receive is dropped without being polled again. Is the item still in the channel? A
//!    channel that hands the item straight into the waiting receive loses it here, unless
//!    its drop puts the item back.
//! 2. **Wake passed on.** Two receives wait; one item is sent; the receive that was woken
//!    is dropped without being polled. Is the other one woken, and does it get the item?
//!    (tokio's mpsc has one receiver, so it has no second receive.)
//!
//! The program prints a table and exits with an error if toro-sync fails a check.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// A waker that counts its wakes.
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counter() -> (Arc<Count>, Waker) {
    let count = Arc::new(Count(AtomicUsize::new(0)));
    let waker = Waker::from(count.clone());
    (count, waker)
}

fn poll<F: Future + ?Sized>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

/// What a check found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Found {
    Yes,
    No,
    NotApplicable,
}

impl Found {
    fn of(ok: bool) -> Self {
        if ok {
            Self::Yes
        } else {
            Self::No
        }
    }

    fn cell(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::No => "**no**",
            Self::NotApplicable => "—",
        }
    }
}

/// One channel's two checks. `$new` makes `(tx, rx)`; `$recv` (with `rx` bound) and
/// `$send` (with `tx` and `v` bound) make futures; `$try_recv` is `Some(item)` if one is
/// there now.
macro_rules! checks {
    (
        $new:expr,
        |$rx:ident| $recv:expr,
        |$tx:ident, $v:ident| $send:expr,
        |$rx2:ident| $try_recv:expr,
        $two_receivers:expr
    ) => {{
        let (_, idle) = counter();
        // 1. Item kept.
        let kept = {
            let ($tx, $rx) = $new;
            let (_, w) = counter();
            {
                let mut r = Box::pin($recv);
                assert!(
                    poll(r.as_mut(), &w).is_pending(),
                    "the channel starts empty"
                );
                let $v = 7u64;
                let mut s = Box::pin($send);
                assert!(
                    poll(s.as_mut(), &idle).is_ready(),
                    "a send into bounded(1) with a receive waiting completes"
                );
            }
            let $rx2 = &$rx;
            let found = $try_recv;
            Found::of(found == Some(7))
        };
        // 2. Wake passed on.
        let passed = if $two_receivers {
            let ($tx, $rx) = $new;
            let (c1, w1) = counter();
            let (c2, w2) = counter();
            let mut r1: Pin<Box<dyn Future<Output = _>>> = Box::pin($recv);
            let mut r2: Pin<Box<dyn Future<Output = _>>> = Box::pin($recv);
            assert!(poll(r1.as_mut(), &w1).is_pending());
            assert!(poll(r2.as_mut(), &w2).is_pending());
            let $v = 9u64;
            let mut s = Box::pin($send);
            assert!(poll(s.as_mut(), &idle).is_ready());
            let (woken, mut other, other_waker, other_count) = if c1.0.load(SeqCst) > 0 {
                (r1, r2, w2, c2)
            } else {
                (r2, r1, w1, c1)
            };
            drop(woken);
            let got = other_count.0.load(SeqCst) > 0
                && matches!(poll(other.as_mut(), &other_waker), Poll::Ready(Ok(9)));
            Found::of(got)
        } else {
            Found::NotApplicable
        };
        (kept, passed)
    }};
}

fn main() {
    let rows = [
        (
            "toro-sync",
            checks!(
                toro_sync::channel::bounded::<u64>(1),
                |rx| rx.recv(),
                |tx, v| tx.send(v),
                |rx| rx.try_recv().ok(),
                true
            ),
        ),
        (
            "tokio::sync::mpsc",
            checks!(
                {
                    let (tx, rx) = tokio::sync::mpsc::channel::<u64>(1);
                    (tx, std::cell::RefCell::new(rx))
                },
                |rx| {
                    // The future borrows the receiver; it is dropped before `try_recv`.
                    let mut rx = rx.borrow_mut();
                    async move { rx.recv().await.ok_or(()) }
                },
                |tx, v| tx.send(v),
                |rx| rx.borrow_mut().try_recv().ok(),
                false
            ),
        ),
        (
            "async-channel",
            checks!(
                async_channel::bounded::<u64>(1),
                |rx| rx.recv(),
                |tx, v| tx.send(v),
                |rx| rx.try_recv().ok(),
                true
            ),
        ),
        (
            "flume",
            checks!(
                flume::bounded::<u64>(1),
                |rx| rx.recv_async(),
                |tx, v| tx.send_async(v),
                |rx| rx.try_recv().ok(),
                true
            ),
        ),
        (
            "kanal",
            checks!(
                kanal::bounded_async::<u64>(1),
                |rx| rx.recv(),
                |tx, v| tx.send(v),
                |rx| rx.try_recv().ok().flatten(),
                true
            ),
        ),
    ];
    println!("| bounded(1), async | item kept when its receive is cancelled | wake passed on |");
    println!("|---|---|---|");
    for (name, (kept, passed)) in rows {
        println!("| {name} | {} | {} |", kept.cell(), passed.cell());
    }
    let (kept, passed) = rows[0].1;
    assert!(
        kept == Found::Yes && passed == Found::Yes,
        "toro-sync failed a cancel check"
    );
}
