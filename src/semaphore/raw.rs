//! Layer 3: the fair semaphore engine under `Semaphore`, `BoundedSemaphore` (and later
//! `Mutex` and `RwLock`): one atomic state word with a lock-free fast path, and the waiter
//! queue of layer 2 for the slow path.
//!
//! # The state word
//!
//! ```text
//! usize::BITS-1                    2   1   0
//! +--------------------------------+---+---+
//! |          free permits          | W | C |
//! +--------------------------------+---+---+
//! C = CLOSED:  set once by `close`, never cleared
//! W = WAITERS: the waiter list is not empty; set and cleared only under the list's lock
//! ```
//!
//! # Protocol
//!
//! - **Acquire, fast path**: one CAS that takes `n` permits, allowed only while `W` is clear
//!   (FIFO: nobody may overtake a queued waiter) and `C` is clear.
//! - **Release**: one `fetch_add` of the permits. If the previous word had `W` set, the
//!   releaser then takes the lock and hands the free permits to the queue in order
//!   ([`RawSemaphore::assign_locked`]); permits may sit in the word with `W` set only until
//!   that releaser gets the lock, and a fast-path acquire never takes them meanwhile. A
//!   releaser that already sees `W` in a plain load skips the word: it takes the lock and
//!   hands its permits to the head directly ([`RawSemaphore::release_to_waiters`]).
//! - **Acquire, slow path** (under the lock): if the list is empty, take what is free; if that
//!   is not enough, set `W` in the same CAS and queue with the rest owed. If the list is not
//!   empty, queue at the back. Only the head of the queue ever holds part of its permits.
//! - **Cancel** (a dropped future, a timed-out thread), under the lock: unlink, give back the
//!   part already held, and run the hand-off again, so a permit given to a waiter that is
//!   going away passes to the next one. If the node was already `GRANTED`, the whole grant
//!   is released like any permit.
//! - **Close**: set `C`, then under the lock unlink every waiter as `CLOSED` and return the
//!   partial permits to the word. From `C` on no waiter is granted (a grant after the close
//!   would let a waiter act after it).
//!
//! Invariants, both changed only under the lock: `W` is set exactly when the list is not
//! empty; a non-head waiter holds no permits.

use core::pin::Pin;
use core::task::{Context, Poll};
use std::time::Instant;

use crate::error::{AcquireTimeoutError, Closed, TryAcquireError};
use crate::loom::{fence, AtomicUsize, Mutex, MutexGuard, Ordering::*};
use crate::wait::{self, Notify, Payload, WaitList, Waiter, WakeList, CLOSED, GRANTED, WAITING};

const CLOSED_BIT: usize = 1;
const WAITERS_BIT: usize = 1 << 1;
const PERMIT_SHIFT: u32 = 2;

/// The most permits a semaphore can hold: leaves headroom above the bits so a `fetch_add`
/// of permits that were taken out of the word can never carry into the top bit.
pub(crate) const MAX_PERMITS: usize = usize::MAX >> (PERMIT_SHIFT + 1);

#[inline]
const fn permits(state: usize) -> usize {
    state >> PERMIT_SHIFT
}

#[inline]
const fn encode(permits: usize) -> usize {
    permits << PERMIT_SHIFT
}

pub(crate) struct RawSemaphore {
    state: AtomicUsize,
    waiters: Mutex<WaitList>,
}

impl core::fmt::Debug for RawSemaphore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = self.state.load(Relaxed);
        f.debug_struct("Semaphore")
            .field("permits", &permits(state))
            .field("waiters", &(state & WAITERS_BIT != 0))
            .field("closed", &(state & CLOSED_BIT != 0))
            .finish()
    }
}

/// What the slow path of an acquire found.
enum Enqueued {
    Granted,
    Closed,
    Queued,
}

/// Whose node a grant of the head completed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Head {
    /// The granting waiter's own (no wake: it is running).
    Mine,
    /// Another waiter's (woken).
    Other,
}

/// What a waiter does right after its node joined the queue, still under the waiter lock:
/// the queue layer looks at its FIFO once more (see `Queue`'s module docs, "Lines"). A
/// plain semaphore does nothing (`()`).
///
/// Under the lock, so that a grant made by someone else (who must take the lock) reaches
/// the waiter only as its poll returns: a task woken while it is still being polled is
/// rescheduled as if it had yielded, on the worker that polled it, and a consumer and its
/// producer would stay apart on two workers.
pub(crate) trait OnJoin {
    /// Whether what the waiter waits for may be there already: then the head of the queue
    /// is granted (`look` counts that grant).
    #[inline]
    fn look(&self) -> bool {
        false
    }

    /// A grant `look` asked for was not made (the semaphore is closed): uncount it.
    #[inline]
    fn not_granted(&self) {}

    /// Under the lock, the head about to be granted brings `payload`: as the `serve` of
    /// [`RawSemaphore::grant_head_else`]. `true` asks for [`served`](Self::served) after
    /// the lock.
    #[inline]
    fn serve(&self, _payload: Payload) -> bool {
        false
    }

    /// After the lock, when [`serve`](Self::serve) said so.
    #[inline]
    fn served(&self) {}
}

impl OnJoin for () {}

impl RawSemaphore {
    /// # Panics
    /// If `permits > MAX_PERMITS`.
    #[cfg(not(loom))]
    pub(crate) const fn new(permits: usize) -> Self {
        assert!(
            permits <= MAX_PERMITS,
            "a semaphore holds at most MAX_PERMITS permits"
        );
        Self {
            state: AtomicUsize::new(encode(permits)),
            waiters: Mutex::new(WaitList::new()),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new(permits: usize) -> Self {
        assert!(
            permits <= MAX_PERMITS,
            "a semaphore holds at most MAX_PERMITS permits"
        );
        Self {
            state: AtomicUsize::new(encode(permits)),
            waiters: Mutex::new(WaitList::new()),
        }
    }

    /// How many waiters are queued (tests only: walks the list under the lock).
    #[cfg(test)]
    pub(crate) fn queued_len(&self) -> usize {
        self.waiters.lock().len()
    }

    /// The first step of `close` alone, so a test can run a release between it and the rest.
    #[cfg(test)]
    pub(crate) fn set_closed_bit_for_test(&self) {
        self.state.fetch_or(CLOSED_BIT, AcqRel);
    }

    /// Free permits (a momentary reading).
    #[inline]
    pub(crate) fn available(&self) -> usize {
        // Relaxed: a reading for the caller, it orders nothing.
        permits(self.state.load(Relaxed))
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        // Acquire: pairs with the `AcqRel` of `close`, so a caller who sees closed sees what
        // was done before the close.
        self.state.load(Acquire) & CLOSED_BIT != 0
    }

    /// Takes `n` permits without waiting; fails while anyone is queued.
    #[inline]
    pub(crate) fn try_acquire(&self, n: u32) -> Result<(), TryAcquireError> {
        let n = n as usize;
        // Relaxed: only a first guess for the CAS below.
        let mut cur = self.state.load(Relaxed);
        loop {
            if cur & CLOSED_BIT != 0 {
                // Acquire: the `C` was read relaxed; this fence makes the failure see what
                // came before the close (pairs with the `AcqRel` of `close`), so a caller
                // told "closed" finds the layer above closed too.
                fence(Acquire);
                return Err(TryAcquireError::Closed);
            }
            if cur & WAITERS_BIT != 0 || permits(cur) < n {
                return Err(TryAcquireError::NoPermits);
            }
            // Acquire on success: pairs with the `Release` of the `fetch_add` in `release`,
            // so this holder sees every write made under the permits by their last holder.
            // Relaxed on failure: we only retry with the fresh value.
            match self
                .state
                .compare_exchange_weak(cur, cur - encode(n), Acquire, Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Gives back `n` permits that were taken from this semaphore, handing them to waiters
    /// in FIFO order.
    #[inline]
    pub(crate) fn release(&self, n: usize) {
        // Relaxed: only picks the path. With `W` seen, the permits go straight to the
        // waiters under the lock; a `W` set after this load is seen by the `fetch_add`.
        if self.state.load(Relaxed) & WAITERS_BIT != 0 {
            return self.release_to_waiters(n);
        }
        // Release: publishes the holder's writes to whoever takes these permits next (a
        // fast-path CAS or `assign_locked`, both `Acquire`).
        let prev = self.state.fetch_add(encode(n), Release);
        if prev & WAITERS_BIT != 0 {
            self.assign();
        }
    }

    /// A release while waiters are queued: under the lock, hands the permits to the head
    /// of the queue directly, without passing them through the word (two read-modify-writes
    /// of the contended state word fewer per hand-off). What is left over (the queue
    /// emptied, the wake batch filled, or the semaphore is closed) goes through the word as
    /// in [`Self::release`].
    #[cold]
    fn release_to_waiters(&self, n: usize) {
        let mut left = n;
        let mut wakes = WakeList::new();
        let mut list = self.waiters.lock();
        // Relaxed: `W` is exact under this lock; `C` may be set by a close racing us, and
        // granting then is the release ordered before the close.
        if self.state.load(Relaxed) & CLOSED_BIT == 0 {
            while left > 0 && !wakes.is_full() {
                let Some(head) = list.front() else { break };
                // SAFETY: lock held (`list`), and the head is linked in it.
                #[allow(unsafe_code)]
                let need = unsafe { head.with_locked(|l| l.need) } as usize;
                let give = need.min(left);
                left -= give;
                // The node's `Release` store of `GRANTED` publishes the releaser's writes to
                // the waiter, as the word's `Release` would have.
                list.give_front(give as u32, &mut wakes);
            }
        }
        if left > 0 {
            // Release: as in `release`.
            self.state.fetch_add(encode(left), Release);
        }
        // Serves on from the word if waiters remain, and clears `W` if the queue emptied.
        self.assign_all(list, &mut wakes);
    }

    /// Closes: later acquires fail, and every queued waiter wakes with `Closed` (none is
    /// granted any more, see `assign_locked`).
    pub(crate) fn close(&self) {
        // AcqRel: Release publishes what came before the close to whoever sees `C`; Acquire
        // is for symmetry with waiters' reads under the lock (the lock orders those anyway).
        self.state.fetch_or(CLOSED_BIT, AcqRel);
        let mut wakes = WakeList::new();
        loop {
            let mut list = self.waiters.lock();
            let mut returned = 0usize;
            while !list.is_empty() && !wakes.is_full() {
                let head = list.front().expect("list is not empty");
                // SAFETY: we hold the list's lock; the head is linked in it.
                #[allow(unsafe_code)]
                let held = unsafe { head.with_locked(|l| l.held) };
                returned += held as usize;
                list.complete_front(CLOSED, &mut wakes);
            }
            if returned > 0 {
                // Release: as in `release`, for the partial permits given back.
                self.state.fetch_add(encode(returned), Release);
            }
            let done = list.is_empty();
            if done {
                // Relaxed: `W` orders nothing by itself; permits carry their own Release.
                self.state.fetch_and(!WAITERS_BIT, Relaxed);
            }
            drop(list);
            wakes.wake_all();
            if done {
                return;
            }
        }
    }

    /// Takes the lock and hands free permits to the queue.
    #[cold]
    fn assign(&self) {
        let mut wakes = WakeList::new();
        self.assign_all(self.waiters.lock(), &mut wakes);
    }

    /// Runs [`Self::assign_locked`] until it is done, dropping the lock to fire each full
    /// batch of wakes; ends with the lock dropped and every wake fired.
    fn assign_all<'a>(&'a self, mut list: MutexGuard<'a, WaitList>, wakes: &mut WakeList) {
        while self.assign_locked(&mut list, wakes) {
            drop(list);
            wakes.wake_all();
            list = self.waiters.lock();
        }
        drop(list);
        wakes.wake_all();
    }

    /// Moves free permits from the word to the head of the queue, completing waiters in
    /// order while they are satisfied; clears `W` when the queue empties. Returns `true`
    /// when it stopped only because `wakes` is full (call again after waking them).
    fn assign_locked(&self, list: &mut MutexGuard<'_, WaitList>, wakes: &mut WakeList) -> bool {
        // Relaxed: a first guess for the CAS.
        let mut cur = self.state.load(Relaxed);
        loop {
            let Some(head) = list.front() else {
                // The queue is empty: let the fast path see the free permits again.
                // Relaxed: `W` orders nothing by itself; permits carry their own Release.
                self.state.fetch_and(!WAITERS_BIT, Relaxed);
                return false;
            };
            if wakes.is_full() {
                return true;
            }
            if cur & CLOSED_BIT != 0 {
                // `close` is on its way to (or inside) its loop under this lock: it
                // completes every waiter as `CLOSED`. Granting one now would let it act
                // after the close (a sender pushing into a queue closed and drained).
                return false;
            }
            // SAFETY: lock held (`list`), and the head is linked in it.
            #[allow(unsafe_code)]
            let need = unsafe { head.with_locked(|l| l.need) } as usize;
            let free = permits(cur);
            if free == 0 && need > 0 {
                return false;
            }
            let take = free.min(need);
            // Acquire: pairs with the `Release` of whoever released these permits; the
            // waiter then synchronises with us through its node's state.
            // Relaxed on failure: retry with the fresh value.
            match self
                .state
                .compare_exchange_weak(cur, cur - encode(take), Acquire, Relaxed)
            {
                Ok(_) => cur -= encode(take),
                Err(actual) => {
                    cur = actual;
                    continue;
                }
            }
            if !list.give_front(take as u32, wakes) {
                return false;
            }
        }
    }

    /// The slow path of an acquire: under the lock, take what is free or queue `waiter`.
    /// `notify` is made before the lock is taken: a `Waker::clone` may run user code, and
    /// if it panics nothing has changed yet.
    fn enqueue(
        &self,
        waiter: Pin<&Waiter>,
        n: u32,
        notify: Notify,
        join: &impl OnJoin,
    ) -> Enqueued {
        let mut list = self.waiters.lock();
        // Relaxed: a first guess for the CAS; `C` and `W` are decided under this lock or
        // rechecked by the CAS.
        let mut cur = self.state.load(Relaxed);
        loop {
            if cur & CLOSED_BIT != 0 {
                // Acquire: as in `try_acquire`.
                fence(Acquire);
                return Enqueued::Closed;
            }
            if !list.is_empty() {
                // `W` is set and the permits in the word (if any) belong to a releaser on
                // its way to this lock: queue behind the others.
                // SAFETY: the node is fresh and the caller keeps it pinned until it is
                // unlinked (its `Drop` leaves the list).
                #[allow(unsafe_code)]
                unsafe {
                    list.push_back(waiter, notify, n)
                };
                return self.joined(list, waiter.get_ref(), join);
            }
            let free = permits(cur);
            let (new, granted) = if free >= n as usize {
                (cur - encode(n as usize), true)
            } else {
                ((cur - encode(free)) | WAITERS_BIT, false)
            };
            // Acquire: pairs with the `Release` of the permits' last releaser. SeqCst: the
            // store half of the queue layer's "join the line, then look" (its `W`, then the
            // `SeqCst` loads of `OnJoin::look`; `Queue`'s module docs, "Lines").
            // Relaxed on failure: retry.
            match self.state.compare_exchange_weak(cur, new, SeqCst, Relaxed) {
                Ok(_) if granted => return Enqueued::Granted,
                Ok(_) => {
                    // SAFETY: as above.
                    #[allow(unsafe_code)]
                    unsafe {
                        list.push_back(waiter, notify, n - free as u32);
                        waiter.with_locked(|l| l.held = free as u32);
                    };
                    return self.joined(list, waiter.get_ref(), join);
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// `waiter` has just been linked (the lock is still held): runs the waiter's
    /// [`OnJoin::look`], and grants the head if it asks for it. A grant of `waiter` itself
    /// completes it with no wake (it is running): it returns `Granted`.
    fn joined(
        &self,
        list: MutexGuard<'_, WaitList>,
        waiter: &Waiter,
        join: &impl OnJoin,
    ) -> Enqueued {
        if !join.look() {
            return Enqueued::Queued;
        }
        let mut served = false;
        let granted = self.grant_head_locked(
            list,
            Some(waiter),
            |payload| {
                if let Some(payload) = payload {
                    served = join.serve(payload);
                }
            },
            || join.not_granted(),
        );
        if served {
            join.served();
        }
        match granted {
            Some(Head::Mine) => Enqueued::Granted,
            Some(Head::Other) | None => Enqueued::Queued,
        }
    }

    /// Leaves the queue (a cancelled or timed-out waiter). Returns the node's final state:
    /// `GRANTED` means the caller now owns all the permits it asked for; `WAITING` means it
    /// left unserved, its partial permits passed on.
    fn leave(&self, waiter: &Waiter) -> u8 {
        let state = waiter.state();
        if state != WAITING {
            return state;
        }
        let mut wakes = WakeList::new();
        let mut list = self.waiters.lock();
        // Under the lock the state is final: nobody else changes it now.
        let state = waiter.state();
        if state != WAITING {
            return state;
        }
        // SAFETY: lock held; the node is `WAITING`, so it is linked in this list.
        #[allow(unsafe_code)]
        let (held, notify) = unsafe {
            list.remove(waiter);
            waiter.with_locked(|l| (l.held, l.notify.take()))
        };
        if held > 0 {
            // Release: the partial permits go back to the word for the next head.
            self.state.fetch_add(encode(held as usize), Release);
        }
        self.assign_all(list, &mut wakes);
        drop(notify); // a `Waker` drop may run user code: outside the lock
        WAITING
    }

    /// Polls an acquire of `n` permits whose node is `waiter`; `queued` tracks whether the
    /// node was linked. Returns `Ready(Ok)` when the permits are the caller's.
    ///
    /// The poll of a queued node that was served (the poll its wake brings) is one load of
    /// the node's state, inlined into the caller; the first poll, and a poll that finds
    /// the node still waiting, are calls.
    #[inline]
    pub(crate) fn poll_acquire(
        &self,
        waiter: Pin<&Waiter>,
        queued: &mut bool,
        n: u32,
        cx: &mut Context<'_>,
        join: &impl OnJoin,
    ) -> Poll<Result<(), Closed>> {
        if !*queued {
            return self.poll_first(waiter, queued, n, cx, join);
        }
        match waiter.state() {
            GRANTED => Poll::Ready(Ok(())),
            CLOSED => Poll::Ready(Err(Closed)),
            _ => self.poll_waiting(waiter, cx),
        }
    }

    /// The first poll of an acquire: takes the permits if it may, else queues the node.
    #[inline(never)]
    fn poll_first(
        &self,
        waiter: Pin<&Waiter>,
        queued: &mut bool,
        n: u32,
        cx: &mut Context<'_>,
        join: &impl OnJoin,
    ) -> Poll<Result<(), Closed>> {
        match self.try_acquire(n) {
            Ok(()) => return Poll::Ready(Ok(())),
            Err(TryAcquireError::Closed) => return Poll::Ready(Err(Closed)),
            Err(TryAcquireError::NoPermits) => {}
        }
        if n == 0 {
            return Poll::Ready(Ok(()));
        }
        match self.enqueue(waiter, n, Notify::Task(cx.waker().clone()), join) {
            Enqueued::Granted => Poll::Ready(Ok(())),
            Enqueued::Closed => Poll::Ready(Err(Closed)),
            Enqueued::Queued => {
                *queued = true;
                Poll::Pending
            }
        }
    }

    /// A poll of a queued node that found it still waiting (an early poll, from a
    /// `select!` or a combinator): makes sure the stored waker is this task's current one.
    #[inline(never)]
    fn poll_waiting(&self, waiter: Pin<&Waiter>, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        let list = self.waiters.lock();
        let old = match waiter.state() {
            GRANTED => return Poll::Ready(Ok(())),
            CLOSED => return Poll::Ready(Err(Closed)),
            // SAFETY: lock held; the node is `WAITING`, so linked in this list.
            #[allow(unsafe_code)]
            _ => unsafe {
                waiter.with_locked(|l| match &l.notify {
                    Some(Notify::Task(w)) if w.will_wake(cx.waker()) => None,
                    _ => l.notify.replace(Notify::Task(cx.waker().clone())),
                })
            },
        };
        drop(list);
        drop(old);
        Poll::Pending
    }

    /// Cancels an acquire future's wait: called from its `Drop` when it was queued and
    /// did not return its permits. Permits handed to it in part pass on to the next waiter.
    /// Returns `true` if the wait had been granted in full meanwhile: the caller owns the
    /// permits and must give them back (`release`, or the layer's own hand-on).
    pub(crate) fn cancel_acquire(&self, waiter: &Waiter) -> bool {
        self.leave(waiter) == GRANTED
    }

    /// Whether anyone waits in the queue. `SeqCst`: the queue layer's waking is a
    /// store-load pair (a sender's claim of a slot, then this load; a receiver's `W`, then
    /// a fence and its look at the slots), see `Queue`'s module docs.
    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        self.state.load(SeqCst) & WAITERS_BIT != 0
    }

    /// Grants the head of the queue all it still needs, without taking anything from the
    /// word: a grant that is not made of permits (the queue layer's "an item is there for
    /// you"). Returns `false`, changing nothing, when nobody waits or the semaphore is
    /// closed.
    #[cfg(test)]
    pub(crate) fn grant_head(&self) -> bool {
        self.grant_head_else(|_| {}, || {})
    }

    /// [`grant_head`](Self::grant_head), running `none` under the waiter lock when there
    /// is nobody to grant: so a waiter that joins the queue after this call sees what
    /// `none` did (the lock orders them), and one that joined before is granted. If the
    /// head is there to be granted, `serve` runs first, under the lock, with the item the
    /// head brings ([`Waiter::carrying`]), if any.
    #[cold]
    pub(crate) fn grant_head_else(
        &self,
        serve: impl FnOnce(Option<Payload>),
        none: impl FnOnce(),
    ) -> bool {
        self.grant_head_locked(self.waiters.lock(), None, serve, none)
            .is_some()
    }

    /// [`grant_head_else`](Self::grant_head_else) with the lock held; says whose node it
    /// granted (`None`: nobody's). `me` is the caller's own node, if the caller is a
    /// waiter granting from its look on joining: if it is the head, it is completed
    /// without a wake ([`Head::Mine`]). A waker woken while its task
    /// runs reschedules that task as if it had yielded, which on a work-stealing executor
    /// hands it to another worker. Ends with the lock dropped and every wake fired.
    fn grant_head_locked(
        &self,
        mut list: MutexGuard<'_, WaitList>,
        me: Option<&Waiter>,
        serve: impl FnOnce(Option<Payload>),
        none: impl FnOnce(),
    ) -> Option<Head> {
        // Relaxed: `C` is set before `close` takes this lock, and `close` completes every
        // waiter as `CLOSED` under it; a grant after `C` would act after the close.
        if self.state.load(Relaxed) & CLOSED_BIT != 0 {
            none();
            return None;
        }
        let Some(head) = list.front() else {
            none();
            return None;
        };
        serve(head.payload());
        let whose = if me.is_some_and(|me| core::ptr::eq(me, head)) {
            Head::Mine
        } else {
            Head::Other
        };
        // One node, one `Notify`: no `WakeList`. With one, a grant took 304 instructions,
        // now 244 (`valgrind --tool=callgrind target/release/examples/handoff 300000 toro`).
        let notify = list.grant_front();
        // Only the queue layer's lines grant this way, and their word never holds
        // permits: there is nothing to serve on from it (`assign_locked`), only `W` to
        // clear if the queue emptied.
        debug_assert_eq!(permits(self.state.load(Relaxed)), 0);
        if list.is_empty() {
            // Relaxed: as in `assign_locked`.
            self.state.fetch_and(!WAITERS_BIT, Relaxed);
        }
        drop(list);
        match (whose, notify) {
            // The caller's own node: it is running, so its waker (or thread handle) is
            // dropped, after the lock, not woken.
            (Head::Mine, notify) => drop(notify),
            (Head::Other, Some(notify)) => notify.wake(),
            (Head::Other, None) => {}
        }
        Some(whose)
    }

    /// Acquires `n` permits, parking the thread (after a short spin) until they are given,
    /// the semaphore closes, or `deadline` passes.
    pub(crate) fn acquire_blocking(
        &self,
        n: u32,
        deadline: Option<Instant>,
    ) -> Result<(), AcquireTimeoutError> {
        self.acquire_blocking_then(n, deadline, None, &())
    }

    /// [`Self::acquire_blocking`] with the queue layer's additions: the node brings
    /// `payload` ([`Waiter::carrying`]), and `join` runs when the thread joins the queue.
    pub(crate) fn acquire_blocking_then(
        &self,
        n: u32,
        deadline: Option<Instant>,
        payload: Option<Payload>,
        join: &impl OnJoin,
    ) -> Result<(), AcquireTimeoutError> {
        match self.try_acquire(n) {
            Ok(()) => return Ok(()),
            Err(TryAcquireError::Closed) => return Err(AcquireTimeoutError::Closed),
            Err(TryAcquireError::NoPermits) if n == 0 => return Ok(()),
            Err(TryAcquireError::NoPermits) => {}
        }
        let waiter = core::pin::pin!(Waiter::carrying(payload));
        let waiter = waiter.into_ref();
        match self.enqueue(waiter, n, Notify::thread(), join) {
            Enqueued::Granted => return Ok(()),
            Enqueued::Closed => return Err(AcquireTimeoutError::Closed),
            Enqueued::Queued => {}
        }
        match wait::park_until(&waiter, deadline) {
            GRANTED => Ok(()),
            CLOSED => Err(AcquireTimeoutError::Closed),
            // Timed out: leave; a grant that raced the timeout is ours, so the wait
            // succeeded after all (a past deadline still succeeds when the grant is there).
            _ => match self.leave(&waiter) {
                GRANTED => Ok(()),
                CLOSED => Err(AcquireTimeoutError::Closed),
                _ => Err(AcquireTimeoutError::Timeout),
            },
        }
    }
}
