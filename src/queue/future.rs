//! The futures of [`Queue::send`] and [`Queue::recv`], written out as types rather than
//! `async fn`s.
//!
//! A wait's place in its line (a waiter node, inline: a wait allocates nothing) is most of
//! a future's size. As `async fn`s a send and a receive nested that place in two or three
//! state machines, each with its own copy of the queue reference (and, for a receive, of
//! the rendezvous offer): 216 and 192 bytes, so every move of the future (into a
//! combinator that takes it by value, `WaitExt::timeout`, a `select!`) was a `memcpy`
//! call. Here each is one field for the place beside the queue and the item (or the
//! offer): [`RecvFuture`] is 112 bytes for every `T`, [`SendFuture`] 120 for a `u64`,
//! under the 128 that x86-64 copies with a few vector moves. Their waits are dropped by
//! hand, and only if there is one, so the fast path makes no call of a wait's drop glue.
//!
//! Each `poll` is its fast path alone (a first try that needs no wait: a push, or a pop,
//! and the loads of the other side's line), inlined into the caller, with everything a
//! wait needs in a separate function; the FIFO's claims are split the same way (the
//! slow path takes segment boundaries and retries). So a send and a receive inline to the
//! one compare-and-swap each and a few loads: 100,000 sends then 100,000 receives on one
//! thread, polled in place, take 11.4 million instructions on an unbounded `u64` channel
//! (kanal: 10.2 million), against 24.6 million when the polls and claims were single
//! functions that the compiler would not inline (`valgrind --tool=callgrind`; README,
//! "Channel").
//!
//! Both keep the one rule of a pinned waiter: the field that holds the place is only
//! reached through `Pin`, never moved out, and is dropped in place.

use core::fmt;
use core::future::Future;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use super::{InLine, ItemSlot, Queue, Side, Ticket};
use crate::error::{Closed, RecvError, SendError};
use crate::segqueue::Refused;
use crate::semaphore::future::RawAcquire;
use crate::semaphore::raw::RawSemaphore;
use crate::wait::Payload;

/// The future of [`Queue::recv`] (and of the channel's `Receiver::recv`).
///
/// # Cancel safety
/// Dropping it loses no item: an item handed to it at the last moment goes to the next
/// receiver, or stays queued.
#[must_use = "futures do nothing unless polled"]
pub struct RecvFuture<'a, T> {
    queue: &'a Queue<T>,
    /// The receive's place in the receivers' line, while it waits (`None` before its
    /// first look). Structurally pinned. Dropped by hand, only if there is one: the drop
    /// glue of a wait is a call the fast path need not make.
    wait: ManuallyDrop<Option<RawAcquire<InLine<&'a Queue<T>>>>>,
    /// Rendezvous only: this receive's cover, from its first poll until the take spends it.
    offered: Option<Ticket>,
    /// `Ready` was returned.
    done: bool,
}

impl<'a, T> RecvFuture<'a, T> {
    #[inline]
    pub(super) fn new(queue: &'a Queue<T>) -> Self {
        Self {
            queue,
            wait: ManuallyDrop::new(None),
            offered: None,
            done: false,
        }
    }
}

impl<T> Future for RecvFuture<'_, T> {
    type Output = Result<T, RecvError>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: only `wait` is structurally pinned: it is reached below only through
        // `Pin::new_unchecked`, never moved out, and `Drop` empties it in place. The other
        // fields are plain values, never pinned.
        #[allow(unsafe_code)]
        let this = unsafe { self.get_unchecked_mut() };
        assert!(!this.done, "`RecvFuture` polled after completion");
        let queue = this.queue;
        if queue.is_rendezvous() && this.offered.is_none() {
            // Every rendezvous receive lends a place first (module docs, "Rendezvous").
            this.offered = Some(queue.offer());
        }
        // SAFETY: `this` is pinned, so its field `wait` is (see above).
        #[allow(unsafe_code)]
        let wait = unsafe { Pin::new_unchecked(&mut *this.wait) };
        let got = ready!(queue.poll_take(wait, |seen| InLine(queue, Side::Receive(seen)), cx));
        this.done = true;
        if let Some(ticket) = this.offered.take() {
            if got.is_err() {
                // Closed and drained: the offer is taken back (or left to the next receive).
                queue.leave(ticket);
            }
            // Otherwise the take spent it.
        }
        Poll::Ready(got)
    }
}

impl<T> Drop for RecvFuture<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.wait.is_some() {
            self.leave_line();
        }
        if let Some(ticket) = self.offered.take() {
            // After the wait (a grant handed to it has passed on), as for a channel
            // receiver's stream.
            self.queue.leave(ticket);
        }
    }
}

impl<T> RecvFuture<'_, T> {
    /// Drops the wait of a receive that waited: it leaves the line if it is still in it.
    #[cold]
    fn leave_line(&mut self) {
        // SAFETY: [1] dropped once: only here, from `drop`, and never used after it;
        // [2] in place, which the pinning of `wait` allows (see `poll`).
        #[allow(unsafe_code)]
        unsafe {
            ManuallyDrop::drop(&mut self.wait)
        };
    }
}

impl<T> fmt::Debug for RecvFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvFuture")
            .field(
                "waiting",
                &self.wait.as_ref().is_some_and(|w| !w.is_finished()),
            )
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// The future of [`Queue::send`] (and of the channel's `Sender::send`).
///
/// # Cancel safety
/// Dropping it before it completes has not sent the item (it is dropped with the future,
/// and a place handed to the future passes to the next sender), unless a receive had
/// already moved it in: then it was sent, exactly once.
#[must_use = "futures do nothing unless polled"]
pub struct SendFuture<'a, T> {
    /// Where the send is. Structurally pinned. Dropped by hand, before `slot` (a node in
    /// the senders' line points to `slot`, and leaving the line reads it), and only in a
    /// state that holds a wait: the drop glue of a wait is a call the fast path need
    /// not make.
    wait: ManuallyDrop<SendWait<'a, T>>,
    queue: &'a Queue<T>,
    /// The item, until it is pushed or moved in (by whoever frees a place while the send
    /// waits in the senders' line). Pinned with the future: the node points to it.
    slot: ItemSlot<T>,
}

/// Where a [`SendFuture`] is.
enum SendWait<'a, T> {
    /// Not polled yet.
    New,
    /// In the senders' line of a queue with places; the node carries the item's slot.
    InLine(RawAcquire<InLine<&'a Queue<T>>>),
    /// Rendezvous: waiting for a place that a receiver lends (a `slots` permit).
    Lent(RawAcquire<&'a RawSemaphore>),
    /// `Ready` was returned.
    Done,
}

impl<'a, T> SendFuture<'a, T> {
    #[inline]
    pub(super) fn new(queue: &'a Queue<T>, item: T) -> Self {
        Self {
            wait: ManuallyDrop::new(SendWait::New),
            queue,
            slot: ItemSlot::new(item),
        }
    }
}

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    /// The first poll's try (`Queue::send_now`) is the fast path, written here alone so
    /// that it inlines into the caller; a wait, and every send on a rendezvous, go on in
    /// `poll_slow`.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `wait` is structurally pinned: a wait inside it is reached only through
        // `Pin::new_unchecked` (in `poll_slow`), never moved out, and replaced only by
        // assignment, which drops it in place. `slot` never moves either (a node points
        // to it); it is reached by shared reference only. `queue` is a plain reference.
        // `this` is pinned again, unmoved, for `poll_slow`.
        #[allow(unsafe_code)]
        let this = unsafe { self.get_unchecked_mut() };
        if let SendWait::New = *this.wait {
            let queue = this.queue;
            let slot = &this.slot;
            // The first try, with the item in hand.
            // SAFETY: no node carrying `slot` is in a line: the send has not waited.
            #[allow(unsafe_code)]
            let item = unsafe { slot.take() };
            match queue.send_now(item) {
                Ok(()) => return Self::finish_new(&mut this.wait, Ok(())),
                Err(Refused::Closed(item)) => {
                    return Self::finish_new(&mut this.wait, Err(SendError(item)))
                }
                Err(Refused::Full(item)) => {
                    // SAFETY: as above.
                    #[allow(unsafe_code)]
                    unsafe {
                        slot.with(|s| *s = Some(item));
                    }
                    if queue.has_places() {
                        *this.wait = SendWait::InLine(Self::line_up(queue, slot));
                    }
                    // A rendezvous send stays `New`: `poll_slow` waits for a lent place.
                }
            }
        }
        // SAFETY: `this` came from a `Pin` and was not moved.
        #[allow(unsafe_code)]
        unsafe { Pin::new_unchecked(this) }.poll_slow(cx)
    }
}

impl<T> SendFuture<'_, T> {
    /// A send that waits (or will: a rendezvous's, before its first wait).
    #[inline(never)]
    fn poll_slow(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError<T>>> {
        // SAFETY: as in `poll`: only `wait` is structurally pinned, and it is reached
        // only through `Pin::new_unchecked`, never moved out.
        #[allow(unsafe_code)]
        let this = unsafe { self.get_unchecked_mut() };
        let queue = this.queue;
        let slot = &this.slot;
        // SAFETY (every `slot.with` and `slot.take` below): the slot is touched only
        // while no node carrying it is in the senders' line: before the first wait, or
        // once a wait has ended (granted or closed, decided under the line's lock).
        loop {
            match &mut *this.wait {
                SendWait::New => {
                    // `poll` served the other kinds of queue.
                    debug_assert!(queue.is_rendezvous());
                    *this.wait = SendWait::Lent(RawAcquire::new(&*queue.slots, 1));
                }
                SendWait::InLine(wait) => {
                    // SAFETY: structurally pinned (see above).
                    #[allow(unsafe_code)]
                    let wait = unsafe { Pin::new_unchecked(wait) };
                    if ready!(wait.poll(cx)).is_err() {
                        // SAFETY: no node carrying `slot` is in a line (the rule above).
                        #[allow(unsafe_code)]
                        let item = unsafe { slot.take() };
                        return Self::finish(&mut *this.wait, Err(SendError(item)));
                    }
                    // SAFETY: no node carrying `slot` is in a line (the rule above).
                    #[allow(unsafe_code)]
                    let mut attempt = || unsafe { slot.with(|item| queue.try_push(item)) };
                    match queue.use_grant(Some(slot), &mut attempt) {
                        Ok(()) => return Self::finish(&mut *this.wait, Ok(())),
                        Err(Refused::Closed(())) => {
                            // SAFETY: no node carrying `slot` is in a line (the rule above).
                            #[allow(unsafe_code)]
                            let item = unsafe { slot.take() };
                            return Self::finish(&mut *this.wait, Err(SendError(item)));
                        }
                        // A newcomer took the place first: line up again, at the back.
                        Err(Refused::Full(())) => {
                            *this.wait = SendWait::InLine(Self::line_up(queue, slot));
                        }
                    }
                }
                SendWait::Lent(wait) => {
                    // SAFETY: structurally pinned (see above).
                    #[allow(unsafe_code)]
                    let wait = unsafe { Pin::new_unchecked(wait) };
                    let lent = ready!(wait.poll(cx));
                    // SAFETY: no node carrying `slot` is in a line (the rule above).
                    #[allow(unsafe_code)]
                    let item = unsafe { slot.take() };
                    let sent = match lent {
                        Ok(_) => queue.publish(item).map_err(SendError),
                        Err(Closed) => Err(SendError(item)),
                    };
                    return Self::finish(&mut *this.wait, sent);
                }
                SendWait::Done => panic!("`SendFuture` polled after completion"),
            }
        }
    }
}

impl<'a, T> SendFuture<'a, T> {
    /// A wait in the senders' line that brings the item in `slot`.
    #[inline]
    fn line_up(queue: &'a Queue<T>, slot: &ItemSlot<T>) -> RawAcquire<InLine<&'a Queue<T>>> {
        RawAcquire::new(InLine(queue, Side::Send(Some(Payload::new(slot)))), 1)
    }

    /// Ends a send that is still `New` (it never waited) with `result`.
    #[inline]
    fn finish_new(
        wait: &mut SendWait<'a, T>,
        result: Result<(), SendError<T>>,
    ) -> Poll<Result<(), SendError<T>>> {
        debug_assert!(matches!(wait, SendWait::New));
        // `New` holds nothing to drop: forgetting it spares the fast path a call of the
        // drop glue of every state (34 instructions a call, by callgrind).
        core::mem::forget(core::mem::replace(wait, SendWait::Done));
        Poll::Ready(result)
    }

    /// Ends the send with `result`.
    #[inline]
    fn finish(
        wait: &mut SendWait<'a, T>,
        result: Result<(), SendError<T>>,
    ) -> Poll<Result<(), SendError<T>>> {
        // Assigning drops a finished wait in place, as pinning allows.
        *wait = SendWait::Done;
        Poll::Ready(result)
    }
}

impl<T> Drop for SendFuture<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if matches!(*self.wait, SendWait::InLine(_) | SendWait::Lent(_)) {
            self.leave_line();
        }
        // `New` and `Done` hold nothing to drop; `slot` is dropped after this.
    }
}

impl<T> SendFuture<'_, T> {
    /// Drops the wait of a send that waited: it leaves its line if it is still in it (a
    /// place handed to it passes on), reading `slot`, which is dropped only after this.
    #[cold]
    fn leave_line(&mut self) {
        // SAFETY: [1] dropped once: only here, from `drop`, and never used after it;
        // [2] in place, which the pinning of `wait` allows (see `poll`).
        #[allow(unsafe_code)]
        unsafe {
            ManuallyDrop::drop(&mut self.wait)
        };
    }
}

impl<T> fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.wait {
            SendWait::New => "new",
            SendWait::InLine(w) if w.is_finished() => "woken",
            SendWait::Lent(w) if w.is_finished() => "woken",
            SendWait::InLine(_) | SendWait::Lent(_) => "waiting",
            SendWait::Done => "done",
        };
        f.debug_struct("SendFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
