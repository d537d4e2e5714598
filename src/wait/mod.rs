//! Layer 2: the waiter queue, the heart of every primitive that waits.
//!
//! # Design: an intrusive list under a short lock
//!
//! A waiter is a [`Waiter`] node that lives inside the pinned future that waits (or on the
//! stack of the thread that blocks), so a wait allocates nothing, and a spike of waiters
//! leaves no memory behind once they are gone. Nodes are linked into a doubly linked FIFO
//! [`WaitList`], which its primitive keeps inside a [`Mutex`](crate::loom::Mutex). Every field
//! of a node except `state` is touched only with that lock held. A node is either a task
//! (its `Waker`) or a parked thread (its `Thread`): the two wait side by side in one list.
//!
//! A waker (the lock holder) unlinks a node, moves its [`Notify`] out, and then stores the
//! node's final `state` (`GRANTED` or `CLOSED`) with `Release`. From that store on it never
//! touches the node again, because the waiter may read the state without the lock, return,
//! and free the node. The `Notify`s are collected in a [`WakeList`] and fired after the lock
//! is dropped, so no user code (a `Waker`) runs under it.
//!
//! DESIGN.md names a second, fully lock-free design: cells in segments claimed by
//! fetch-and-add (Koval et al., CQS, PLDI 2023). It was not prototyped for this layer, for
//! three reasons. The semaphore above takes this lock only when someone must wait or be
//! woken, and then the cost is dominated by the wake itself (a task re-schedule or a thread
//! unpark), not by the lock. The cell design would add a segment allocation and
//! reclamation protocol under every primitive, where this list allocates nothing. And it
//! makes strict FIFO with `acquire_many` (a large request at the head holds back later
//! small ones) much harder to keep. The figures (`cargo bench --bench semaphore`, 2-core
//! machine, median ns per acquire+release, same run; README has the latest table): S1
//! uncontended 15.1 against tokio 30.5 and async-lock 27.7; S2 64 tasks on 4 permits 29.0
//! against 243 and 62.1; on 1 permit, where strict FIFO makes every contended acquire a
//! hand-off, 116 against tokio 156, level with a bare ring of 64 tasks waking each other
//! (120), the floor for a task hand-off; S3 two blocking threads on 1 permit 80.7 against
//! tokio 9822. The hand-off through this list already beats tokio's (also an intrusive
//! list) by the margins the foundation issue asks for; the segmented cells of layer 4 are
//! where lock-freedom pays.
//!
//! # Blocking waiters
//!
//! [`park_until`] spins briefly (crossbeam-utils' `Backoff`: a few hundred nanoseconds of
//! spinning, then a few `yield_now`s) before it parks, so a FIFO hand-off between two busy
//! threads does not cost a futex sleep and wake. Async waiters never spin.

use core::marker::PhantomPinned;
use core::mem::MaybeUninit;
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::Waker;
use std::time::Instant;

use crate::loom::thread::{self, Thread};
use crate::loom::{AtomicU8, Ordering::*, Spin, UnsafeCell};

/// The node is linked and waiting.
pub(crate) const WAITING: u8 = 0;
/// The node was served (given its permits, notified) and unlinked.
pub(crate) const GRANTED: u8 = 1;
/// The primitive closed; the node was unlinked unserved.
pub(crate) const CLOSED: u8 = 2;

/// Who to wake: a task or a parked thread.
pub(crate) enum Notify {
    Task(Waker),
    Thread(Thread),
}

impl Notify {
    /// The current thread, for a blocking waiter.
    pub(crate) fn thread() -> Self {
        Self::Thread(thread::current())
    }

    pub(crate) fn wake(self) {
        match self {
            Self::Task(waker) => waker.wake(),
            Self::Thread(thread) => thread.unpark(),
        }
    }
}

/// The fields of a node that only the holder of its list's lock may touch.
pub(crate) struct Locked {
    prev: Option<NonNull<Waiter>>,
    next: Option<NonNull<Waiter>>,
    /// Who to wake; `None` once taken by the waker.
    pub(crate) notify: Option<Notify>,
    /// The primitive's words for this waiter; the semaphore: permits still owed to it,
    /// and permits already handed to it (only the head of the queue holds any).
    pub(crate) need: u32,
    pub(crate) held: u32,
}

/// Where a waiting sender keeps its item (the queue layer's `ItemSlot<T>`, its type
/// erased here): whoever serves the node under its list's lock may move the item out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Payload(NonNull<()>);

// SAFETY: a plain address; the slot behind it is only reached under the lock of the list
// the node is linked into (the queue layer's contract, see `Waiter::carrying`).
#[allow(unsafe_code)]
unsafe impl Send for Payload {}
// SAFETY: as for `Send`.
#[allow(unsafe_code)]
unsafe impl Sync for Payload {}

impl Payload {
    pub(crate) fn new<S>(slot: &S) -> Self {
        Self(NonNull::from(slot).cast())
    }

    /// The slot's address, for the one type that made it.
    pub(crate) fn get(self) -> NonNull<()> {
        self.0
    }
}

/// A waiter: one node of a [`WaitList`]. It must stay pinned while linked.
pub(crate) struct Waiter {
    /// Guarded by the lock of the list the node is linked into.
    locked: UnsafeCell<Locked>,
    /// Fixed at creation: the item this waiter brings, for whoever serves it.
    payload: Option<Payload>,
    /// `WAITING` while linked, then `GRANTED` or `CLOSED`; written only by the lock holder,
    /// read by the waiter without the lock.
    state: AtomicU8,
    /// Linked nodes are pointed to: never move one.
    _pin: PhantomPinned,
}

// SAFETY: the raw links are only followed under the list's lock, and `Notify` is `Send`.
#[allow(unsafe_code)]
unsafe impl Send for Waiter {}
// SAFETY: shared access to `locked` is serialised by the list's lock (every accessor is
// `unsafe` with that as its contract); `state` is atomic.
#[allow(unsafe_code)]
unsafe impl Sync for Waiter {}

impl Waiter {
    /// A node, which brings an item if `payload` is `Some`: it points to a slot that its owner touches only
    /// while the node is not linked, and a lock holder of its list only while it is.
    pub(crate) fn carrying(payload: Option<Payload>) -> Self {
        Self {
            payload,
            locked: UnsafeCell::new(Locked {
                prev: None,
                next: None,
                notify: None,
                need: 0,
                held: 0,
            }),
            state: AtomicU8::new(WAITING),
            _pin: PhantomPinned,
        }
    }

    /// The item this waiter brings, if any (see [`Waiter::carrying`]).
    #[inline]
    pub(crate) fn payload(&self) -> Option<Payload> {
        self.payload
    }

    /// The node's state as the waiter sees it, without the lock.
    ///
    /// Acquire: pairs with the `Release` in [`WaitList::complete`], so a waiter that sees
    /// `GRANTED` also sees everything the waker did before (the permits it handed over,
    /// and through them the writes of whoever released them).
    #[inline]
    pub(crate) fn state(&self) -> u8 {
        self.state.load(Acquire)
    }

    /// Runs `f` on the lock-guarded fields.
    ///
    /// # Safety
    /// The caller holds the lock of the list this node is linked into (or, if it is not
    /// linked, the lock of the list it will be or was linked into), and does not call this
    /// again from inside `f`.
    #[inline]
    #[allow(unsafe_code)]
    pub(crate) unsafe fn with_locked<R>(&self, f: impl FnOnce(&mut Locked) -> R) -> R {
        // SAFETY: the caller holds the one lock that guards `locked`, so no other reference
        // to it exists for the duration of `f`.
        self.locked.with_mut(|p| f(unsafe { &mut *p }))
    }
}

/// A FIFO of pinned [`Waiter`]s. It lives inside its primitive's mutex: holding
/// `&mut WaitList` means holding that lock.
pub(crate) struct WaitList {
    head: Option<NonNull<Waiter>>,
    tail: Option<NonNull<Waiter>>,
}

// SAFETY: the list only holds pointers to `Send + Sync` nodes, followed under its lock.
#[allow(unsafe_code)]
unsafe impl Send for WaitList {}

#[allow(unsafe_code)]
impl WaitList {
    pub(crate) const fn new() -> Self {
        Self {
            head: None,
            tail: None,
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// How many nodes are linked (tests only).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let mut n = 0;
        let mut cur = self.head;
        while let Some(node) = cur {
            n += 1;
            // SAFETY: linked nodes are alive (`push_back` [2]); the lock is held (`&self`
            // borrows the list inside its mutex).
            cur = unsafe { node.as_ref().with_locked(|l| l.next) };
        }
        n
    }

    /// Links `waiter` at the back with `notify` and `need` (and `held` zero).
    ///
    /// # Safety
    /// [1] `waiter` is in no list (fresh, or completed and not relinked), and [2] it stays
    /// pinned and alive until a lock holder unlinks it ([`Self::remove`], [`Self::pop_front`]).
    pub(crate) unsafe fn push_back(&mut self, waiter: Pin<&Waiter>, notify: Notify, need: u32) {
        let ptr = NonNull::from(waiter.get_ref());
        let old_tail = self.tail;
        // SAFETY: we hold the lock (`&mut self`); by [1] nobody else links this node.
        unsafe {
            waiter.with_locked(|l| {
                l.prev = old_tail;
                l.next = None;
                l.notify = Some(notify);
                l.need = need;
                l.held = 0;
            });
        }
        // Relaxed: the node is not visible to any other thread yet, and every later reader
        // of `state` synchronises through this lock or through the `Release` in `complete`.
        waiter.state.store(WAITING, Relaxed);
        match old_tail {
            // SAFETY: linked nodes are alive by [2] of their own `push_back`; lock held.
            Some(tail) => unsafe { tail.as_ref().with_locked(|l| l.next = Some(ptr)) },
            None => self.head = Some(ptr),
        }
        self.tail = Some(ptr);
    }

    /// The first waiter, if any. The reference is valid while the lock is held and the
    /// node is linked.
    #[inline]
    pub(crate) fn front(&self) -> Option<&Waiter> {
        // SAFETY: a linked node is alive and pinned (`push_back` [2]); it cannot be unlinked
        // while `&self` borrows the list under its lock.
        self.head.map(|p| unsafe { p.as_ref() })
    }

    /// Unlinks `waiter`.
    ///
    /// # Safety
    /// `waiter` is linked into this list.
    pub(crate) unsafe fn remove(&mut self, waiter: &Waiter) {
        // SAFETY: lock held (`&mut self`), and the caller says the node is linked here, so
        // its neighbours are linked here too and alive.
        unsafe {
            let (prev, next) = waiter.with_locked(|l| (l.prev.take(), l.next.take()));
            match prev {
                Some(p) => p.as_ref().with_locked(|l| l.next = next),
                None => self.head = next,
            }
            match next {
                Some(n) => n.as_ref().with_locked(|l| l.prev = prev),
                None => self.tail = prev,
            }
        }
    }

    /// Unlinks the first waiter, takes its `Notify` into `wakes`, and publishes `state`
    /// (`GRANTED` or `CLOSED`) to it. After this the node may be freed at any moment by its
    /// owner, so nothing here touches it after the store.
    pub(crate) fn complete_front(&mut self, state: u8, wakes: &mut WakeList) {
        if let Some(notify) = self.take_front(state) {
            wakes.push(notify);
        }
    }

    /// [`complete_front`](Self::complete_front) for one waiter: returns its `Notify`
    /// (`None` if the list is empty or the node's was taken), for the caller to fire (or
    /// drop) after the lock. A grant of the head alone needs no [`WakeList`].
    fn take_front(&mut self, state: u8) -> Option<Notify> {
        let head = self.head?;
        // SAFETY: the head is linked in this list, which we hold locked.
        unsafe {
            self.remove(head.as_ref());
            Self::complete(head, state)
        }
    }

    /// Hands `give` permits (at most its `need`) to the first waiter: completes it as
    /// `GRANTED` when they cover its need (returns `true`), else adds them to what it holds
    /// (returns `false`).
    pub(crate) fn give_front(&mut self, give: u32, wakes: &mut WakeList) -> bool {
        let covered = self.give_head(|_| give);
        if covered {
            self.complete_front(GRANTED, wakes);
        }
        covered
    }

    /// Hands the first waiter all it still needs and completes it as `GRANTED`, returning
    /// its `Notify` as [`take_front`](Self::take_front) does: a grant of the head alone,
    /// with no [`WakeList`].
    pub(crate) fn grant_front(&mut self) -> Option<Notify> {
        let covered = self.give_head(|need| need);
        debug_assert!(
            covered || self.is_empty(),
            "a grant covers all the head needs"
        );
        self.take_front(GRANTED)
    }

    /// Moves `give(need)` permits (at most `need`) from the head's need to what it holds;
    /// returns whether its need is now covered (`false` if the list is empty).
    fn give_head(&mut self, give: impl FnOnce(u32) -> u32) -> bool {
        let Some(head) = self.head else { return false };
        // SAFETY: the head is linked in this list, which we hold locked (`&mut self`).
        unsafe {
            head.as_ref().with_locked(|l| {
                let give = give(l.need);
                debug_assert!(give <= l.need);
                l.need -= give;
                l.held += give;
                l.need == 0
            })
        }
    }

    /// Publishes `state` to an unlinked node and returns its `Notify`.
    ///
    /// The node is passed as a pointer, not a reference: its owner may free it as soon as
    /// it sees the store, while this function has not returned yet, and a reference
    /// argument would still be protected then (deallocating it is undefined behaviour
    /// under Stacked Borrows; Miri reports it). The store goes through a reference to the
    /// atomic alone, made here.
    ///
    /// # Safety
    /// The node was just unlinked from this list under the lock still held.
    unsafe fn complete(node: NonNull<Waiter>, state: u8) -> Option<Notify> {
        // SAFETY: the caller holds the lock that guards the node, which is alive until the
        // store below.
        let notify = unsafe { node.as_ref().with_locked(|l| l.notify.take()) };
        // SAFETY: alive until this store (the owner frees it only after seeing it).
        let state_word: &AtomicU8 = unsafe { &(*node.as_ptr()).state };
        // Release: publishes what the waker did for this node (permits handed over, the
        // `notify` taken) to the waiter's `Acquire` load in `Waiter::state`.
        state_word.store(state, Release);
        notify
    }
}

/// Wakes collected under a lock, fired after it is dropped.
///
/// The entries past `len` are left uninitialised, so that making a list and dropping an
/// empty one cost nothing. As an array of `Option<Notify>` it was 384 bytes set by a
/// `memset` on every make and 16 discriminants checked on every drop: a `bounded(1)`
/// hand-off between two tasks on one thread took 1439 instructions a message with it,
/// 1252 without (`valgrind --tool=callgrind`, 20,000 messages, `futures`' `LocalPool`).
pub(crate) struct WakeList {
    /// `items[..len]` are initialised; the rest are not.
    items: [MaybeUninit<Notify>; Self::CAP],
    len: usize,
}

impl WakeList {
    const CAP: usize = 16;

    #[inline]
    pub(crate) fn new() -> Self {
        Self {
            items: [const { MaybeUninit::uninit() }; Self::CAP],
            len: 0,
        }
    }

    /// Whether no more wakes fit: the caller must drop its lock and [`Self::wake_all`].
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.len == Self::CAP
    }

    #[inline]
    fn push(&mut self, notify: Notify) {
        debug_assert!(!self.is_full());
        self.items[self.len].write(notify);
        self.len += 1;
    }

    /// Wakes every collected waiter, oldest first. Call without holding any lock.
    #[inline]
    pub(crate) fn wake_all(&mut self) {
        // Emptied first: if a waker panics, the wakes after it are leaked, never read twice.
        let len = core::mem::replace(&mut self.len, 0);
        for item in &self.items[..len] {
            // SAFETY: `items[..len]` were initialised by `push`, and each is read once:
            // `len` is already 0, so neither this loop nor `drop` reads them again.
            let notify = unsafe { item.assume_init_read() };
            notify.wake();
        }
    }
}

impl Drop for WakeList {
    fn drop(&mut self) {
        self.wake_all();
    }
}

/// Blocks the current thread until `waiter` leaves `WAITING` or `deadline` passes: spins
/// briefly, then parks. Returns the final state, or `WAITING` when the deadline passed
/// first (the caller then leaves the list under its lock, where the state is decided).
pub(crate) fn park_until(waiter: &Waiter, deadline: Option<Instant>) -> u8 {
    let past_deadline = deadline.is_some_and(|d| Instant::now() >= d);
    if !past_deadline {
        let spin = Spin::new();
        loop {
            let state = waiter.state();
            if state != WAITING {
                return state;
            }
            if !spin.spin() {
                break;
            }
        }
    }
    loop {
        let state = waiter.state();
        if state != WAITING {
            return state;
        }
        match deadline {
            None => thread::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return WAITING;
                }
                thread::park_timeout(deadline - now);
            }
        }
    }
}
