//! What a host decides, sans-IO: [`Engine`] owns the core [`Broker`] and the store's
//! [`Log`], turns the core's effects into [`Event`]s for the binding, holds the publisher
//! confirms of stored messages until the transaction that holds them commits, and says
//! which transaction to run next. It reads no clock (time is an argument), awaits
//! nothing and calls no web API, so it runs natively too (`tests/host_engine.rs`,
//! `tests/fuzz_core.rs`); a driver does the I/O: in browsers and workers, the
//! `driver` module next to this one.
//!
//! A driver, in a loop:
//! - runs commands with [`Engine::with`] and hands [`Engine::poll_event`]'s events to the
//!   binding, and the ends of waits ([`Engine::poll_done`]) to whoever waits;
//! - when [`Engine::wants_write`], once per turn of its event loop, takes
//!   [`Engine::poll_write`]'s transaction, runs it, and reports how it ended
//!   ([`Engine::write_done`]), then takes the next one;
//! - reads back what [`Engine::page_ins_wanted`] names and hands it to
//!   [`Engine::page_in_done`];
//! - calls [`Engine::wake`] at [`Engine::next_wakeup`].
//!
//! Group commit: one transaction is in flight at a time; writes of the turns that pass
//! meanwhile gather into the next one, so batches grow with load and confirms cost one
//! commit per batch, not per message.
//!
//! A failed transaction (storage full, or upgraded by a newer tabbit) nacks the confirms
//! it held, with a storage error that says what to do. If a first delivery waits for a
//! delivery horizon meanwhile, the next transaction deletes the fence (see
//! [`crate::store::log`]), and if the store says a newer version upgraded it, the fence
//! is abandoned and deliveries go on from memory. The next batch waits a while after a
//! failure, the wait doubling from 20 ms up to a second; commands meanwhile gather into
//! it, as during any write.

use std::collections::VecDeque;
use std::rc::Rc;

use crate::core::fxhash::FxSet;
use crate::core::{AmqpError, Broker, ChannelRef, Confirm, Delivery, Effect, GetWait, ReplyCode, Returned, StoreOp};
use crate::store::{end_write, start_write, Batch, Log, Write};

/// Ready messages kept in memory at the head of a queue that pages; deeper ones keep
/// only their place once the store holds them.
pub const KEEP_LOADED: usize = 2048;
/// How far from the head paged-out messages are paged back in.
pub const PAGE_IN_WINDOW: usize = 1024;
/// Backoff between attempts after a failed transaction, doubling up to the maximum.
pub const MIN_RETRY_DELAY_MS: u64 = 20;
pub const MAX_RETRY_DELAY_MS: u64 = 1000;

/// How a confirm ends: `Ok` for an ack, `Err` with why for a nack.
pub type ConfirmResult = Result<(), AmqpError>;

/// What the host tells the binding, in the order it happened.
#[derive(Debug)]
pub enum Event {
    /// A publish on a confirm channel is settled.
    Confirm {
        channel: ChannelRef,
        seq: u64,
        result: ConfirmResult,
    },
    Deliver(Delivery),
    /// A mandatory message no queue took.
    Return(Returned),
    /// The broker cancelled a consumer (its queue was deleted).
    ConsumerCancelled {
        channel: ChannelRef,
        consumer_tag: Rc<str>,
    },
    /// A channel error closed a channel.
    ChannelClosed {
        channel: ChannelRef,
        error: AmqpError,
    },
}

/// A wait the engine gave an id for ([`Engine::flush`], [`Engine::committed`],
/// [`Engine::head_loaded`], [`Engine::get_wait`]) is over: `Err` when the writes it
/// waited for failed.
#[derive(Debug)]
pub struct Done {
    pub id: u64,
    pub result: Result<(), AmqpError>,
}

/// One transaction for the driver to run: every write of it, or none.
#[derive(Debug)]
pub struct Transaction {
    pub id: u64,
    pub writes: Vec<Write>,
    /// Empty every collection first: the store lost what it held and this transaction
    /// writes it all again ([`Engine::store_emptied`]).
    pub clear: bool,
}

/// How a transaction ended, as the storage said (the text is the storage's error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Committed,
    /// Storage is full (IndexedDB's `QuotaExceededError`).
    QuotaExceeded(String),
    /// A newer tabbit upgraded the database (IndexedDB's `VersionError`): no write of
    /// this one will commit again.
    Upgraded(String),
    /// Any other failure.
    Failed(String),
    /// The store lost everything it held before this transaction could run (the browser
    /// deleted the database under the broker: the site's data cleared, or the origin's
    /// storage evicted): see [`Engine::store_emptied`].
    Emptied(String),
}

impl WriteOutcome {
    /// Why the messages of a failed transaction were not stored, and what to do, for the
    /// publishers and `flush()` callers that waited for it.
    pub fn error(&self) -> Option<AmqpError> {
        let message = match self {
            WriteOutcome::Committed => return None,
            WriteOutcome::QuotaExceeded(e) => format!(
                "storage is full ({e}): the message was not stored; ack or purge stored messages, \
                 or ask the browser for more space (navigator.storage.persist()), then publish again"
            ),
            WriteOutcome::Upgraded(e) => format!(
                "another tab or worker upgraded this broker's database to a newer format ({e}): \
                 the message was not stored; reload this context to run the newer tabbit"
            ),
            WriteOutcome::Failed(e) => format!("the store refused the write ({e}): the message was not stored"),
            WriteOutcome::Emptied(e) => format!("the store lost what it held ({e}): the message was not stored"),
        };
        Some(AmqpError::new(ReplyCode::ResourceError, message))
    }
}

/// A page-in for the driver to run: read the segment records `segments` and hand what
/// it found to [`Engine::page_in_done`] (with this).
#[derive(Clone, Debug)]
pub struct PageIn {
    pub queue: Rc<str>,
    /// The positions wanted.
    pub seqs: Vec<u64>,
    /// The segments that hold them.
    pub segments: Vec<u64>,
}

/// Paging bodies out of memory and back in, for a store that reads single segments back.
#[derive(Clone, Copy, Debug)]
pub struct Paging {
    /// Ready messages kept in memory at the head of a queue (see [`KEEP_LOADED`]).
    pub keep_loaded: usize,
    /// How far from the head paged-out messages are paged back in (see [`PAGE_IN_WINDOW`]).
    pub window: usize,
}

impl Default for Paging {
    fn default() -> Self {
        Paging { keep_loaded: KEEP_LOADED, window: PAGE_IN_WINDOW }
    }
}

/// Someone waiting for writes to commit: a publisher confirm, or a wait with an id.
enum Waiter {
    Confirm { channel: ChannelRef, seq: u64 },
    Wait(u64),
}

/// Where the writing stands.
enum Writing {
    /// No transaction in flight.
    Idle,
    /// A batch is in flight, with the waiters it settles.
    Batch { id: u64, batch: Batch, waiters: Vec<Waiter> },
    /// A batch failed while a first delivery waited for a horizon: the fence's deletion
    /// is next (`id` once handed out).
    Unfence { id: Option<u64>, batch: Batch },
    /// After a failed transaction, the next starts at `until` (or at once if the clock
    /// went back before `since`).
    Backoff { since: u64, until: u64 },
}

impl Writing {
    /// The wait after a failed transaction is over at `now`.
    fn backoff_over(since: u64, until: u64, now: u64) -> bool {
        now >= until || now < since
    }
}

/// A host's decisions: see the module's documentation.
pub struct Engine {
    core: Broker,
    log: Option<Log>,
    paging: Option<Paging>,
    /// Waiters for the writes not yet in a batch.
    held: Vec<Waiter>,
    /// Waiters that came while a transaction was in flight (or during the wait after a
    /// failed one) with nothing new to write: those of a batch in flight are settled with
    /// it, the others wait for the next.
    late: Vec<Waiter>,
    writing: Writing,
    /// How long to wait before writing again after a failed transaction (ms).
    retry_delay: u64,
    /// The last id given to a transaction or a wait.
    last_id: u64,
    events: VecDeque<Event>,
    done: VecDeque<Done>,
    /// Queues with a page-in under way.
    paging_in: FxSet<Rc<str>>,
    /// Waits for the head of a queue to be paged in.
    head_waiters: Vec<(Rc<str>, u64)>,
    /// A copy of every effect taken from the core, when kept ([`Engine::keep_effects`]).
    effects: Option<Vec<Effect>>,
    closed: bool,
    /// The store was found emptied while a transaction was in flight: the log is rebuilt
    /// once that transaction ends ([`Engine::store_emptied`]).
    rebuild_due: bool,
    /// When the store was last found emptied, and how many messages it took with it in
    /// all (those whose bodies were paged out to it).
    emptied: Option<Emptied>,
}

/// The store lost what it held under a running broker ([`Engine::store_emptied`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Emptied {
    /// When it was found (ms), the last time.
    pub at: u64,
    /// Messages lost with it, every time so far: bodies paged out to it, nowhere else;
    /// `None` if not known (a store found emptied when the broker opened it).
    pub lost: Option<usize>,
}

impl Engine {
    /// An engine over `core`, writing through `log` if there is storage (without, durable
    /// queues behave as transient ones and confirms are immediate), paging if the store
    /// reads single segments back. Effects the core holds already (a recovery's) are
    /// taken by the first [`Engine::pump`].
    pub fn new(core: Broker, log: Option<Log>, paging: Option<Paging>) -> Engine {
        Engine {
            core,
            log,
            paging,
            held: Vec::new(),
            late: Vec::new(),
            writing: Writing::Idle,
            retry_delay: MIN_RETRY_DELAY_MS,
            last_id: 0,
            events: VecDeque::new(),
            done: VecDeque::new(),
            paging_in: FxSet::default(),
            head_waiters: Vec::new(),
            effects: None,
            closed: false,
            rebuild_due: false,
            emptied: None,
        }
    }

    /// Whether, when and at what cost the store was found emptied under this broker.
    pub fn emptied(&self) -> Option<Emptied> {
        self.emptied
    }

    /// The store the broker opened at `now` had held a broker's state and was found
    /// empty (the driver knows it from a mark kept outside the store): what it held is
    /// gone, and how many messages is not known.
    pub fn opened_emptied(&mut self, now: u64) {
        self.emptied = Some(Emptied { at: now, lost: None });
    }

    /// The store lost everything it held (IndexedDB's database was deleted under the
    /// broker and opened again empty). The broker still holds in memory every stored
    /// message but those paged out, so the log is rebuilt from it
    /// ([`Broker::durable_ops`]) and its first batch empties the store and writes it all
    /// again; the paged-out messages are gone ([`Emptied::lost`]). Confirms waiting for a
    /// write wait for that batch. With a transaction in flight, the rebuild waits for it
    /// to end (whatever it wrote went to the emptied store and is written again).
    pub fn store_emptied(&mut self, now: u64) {
        if self.log.is_none() {
            return;
        }
        match self.writing {
            Writing::Batch { .. } | Writing::Unfence { id: Some(_), .. } => self.rebuild_due = true,
            _ => {
                if let Writing::Unfence { id: None, .. } = self.writing {
                    self.writing = Writing::Idle;
                }
                self.rebuild(now, true);
                self.pump(now);
            }
        }
    }

    /// Rebuilds the log from the core (see [`Engine::store_emptied`]); `found`: the store
    /// was just found emptied (not a rewrite that failed, tried again).
    fn rebuild(&mut self, now: u64, found: bool) {
        // Ops the core holds still go to the old log first: the new one starts from the
        // core's state, which has them.
        self.pump(now);
        let (ops, lost) = self.core.durable_ops(now);
        // The removals of the paged-out messages it dropped go to the old log too: the
        // new one never has them.
        self.pump(now);
        let Some(old) = self.log.take() else { return };
        self.log = Some(Log::rebuilt(&old, &ops));
        self.rebuild_due = false;
        let before = self.emptied.map_or(Some(0), |e| e.lost);
        let at = if found { now } else { self.emptied.map_or(now, |e| e.at) };
        self.emptied = Some(Emptied { at, lost: before.map(|n| n + lost) });
    }

    /// The core, to read.
    pub fn core(&self) -> &Broker {
        &self.core
    }

    /// The core, for commands whose effects the caller leaves to the next
    /// [`Engine::pump`] (prefer [`Engine::with`]).
    pub fn core_mut(&mut self) -> &mut Broker {
        &mut self.core
    }

    /// The store's bookkeeping, if there is storage.
    pub fn log(&self) -> Option<&Log> {
        self.log.as_ref()
    }

    /// Runs a command on the core, then takes the effects it produced.
    pub fn with<T>(&mut self, now: u64, f: impl FnOnce(&mut Broker) -> T) -> T {
        let out = f(&mut self.core);
        self.pump(now);
        out
    }

    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// Takes the core's effects: store ops to the log, confirms settled or held for the
    /// commit, the rest as events.
    pub fn pump(&mut self, now: u64) {
        while let Some(effect) = self.core.poll_effect() {
            if let Some(kept) = &mut self.effects {
                kept.push(effect.clone());
            }
            let event = match effect {
                Effect::Store(op) => {
                    if let Some(log) = &mut self.log {
                        log.apply(&op);
                        // A horizon the log cannot store (no such stored queue) would
                        // never come back from a commit: nothing to wait for.
                        if let StoreOp::Horizon { queue, through } = &op {
                            if !log.has_queue(queue) {
                                self.core.horizon_stored(queue, *through, now);
                            }
                        }
                    }
                    continue;
                }
                Effect::Confirm(Confirm { channel, seq, ack, durable, refused }) => {
                    if ack && durable && self.log.is_some() {
                        self.held.push(Waiter::Confirm { channel, seq });
                        continue;
                    }
                    let result = match ack {
                        true => Ok(()),
                        false => Err(AmqpError::new(
                            ReplyCode::ResourceError,
                            refused.as_deref().unwrap_or("the queue the message was routed to was deleted meanwhile"),
                        )),
                    };
                    Event::Confirm { channel, seq, result }
                }
                Effect::Deliver(d) => Event::Deliver(d),
                Effect::Return(r) => Event::Return(r),
                Effect::ConsumerCancelled { channel, consumer_tag } => {
                    Event::ConsumerCancelled { channel, consumer_tag }
                }
                Effect::ChannelClosed { channel, error } => Event::ChannelClosed { channel, error },
            };
            self.events.push_back(event);
        }
    }

    /// The next event for the binding, in order.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether [`Engine::poll_event`] has one.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next wait that is over.
    pub fn poll_done(&mut self) -> Option<Done> {
        self.done.pop_front()
    }

    /// Keeps a copy of every effect taken from the core from now on ([`Engine::take_effects`]),
    /// for a test that checks the core as the engine drives it.
    pub fn keep_effects(&mut self) {
        self.effects.get_or_insert_with(Vec::new);
    }

    /// The effects kept since the last call.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        self.effects.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Whether [`Engine::poll_write`] has a transaction (or waiters to settle) at `now`.
    /// The driver takes it once per turn of its event loop, after the turn's commands,
    /// so that they go in one batch.
    pub fn wants_write(&self, now: u64) -> bool {
        if self.closed {
            return false;
        }
        match self.writing {
            Writing::Idle => self.log.as_ref().is_some_and(Log::has_pending) || !self.held.is_empty(),
            Writing::Unfence { id: None, .. } => true,
            Writing::Backoff { since, until } => Writing::backoff_over(since, until, now),
            _ => false,
        }
    }

    /// The transaction to run next: everything pending in one batch, or after a failed
    /// one while a first delivery waits, the fence's deletion. `None` while one is in
    /// flight, during the wait after a failure, or when there is nothing to write (then
    /// waiters with nothing to wait for are settled).
    pub fn poll_write(&mut self, now: u64) -> Option<Transaction> {
        if self.closed {
            return None;
        }
        if let Writing::Backoff { since, until } = self.writing {
            if !Writing::backoff_over(since, until, now) {
                return None;
            }
            // Waiters that came during the wait wait for the next batch (if there is none,
            // they are settled below).
            self.writing = Writing::Idle;
            self.held.append(&mut self.late);
        }
        match &mut self.writing {
            Writing::Idle => {}
            Writing::Unfence { id: id @ None, batch } => {
                self.last_id += 1;
                *id = Some(self.last_id);
                return Some(Transaction { id: self.last_id, writes: std::mem::take(&mut batch.writes), clear: false });
            }
            _ => return None,
        }
        let batch = self.log.as_mut().and_then(|log| start_write(log, &mut self.core, now));
        let waiters = std::mem::take(&mut self.held);
        match batch {
            Some(mut batch) => {
                let id = self.next_id();
                let writes = std::mem::take(&mut batch.writes);
                let clear = batch.clear;
                self.writing = Writing::Batch { id, batch, waiters };
                Some(Transaction { id, writes, clear })
            }
            None => {
                if !waiters.is_empty() {
                    // Nothing to write: as a transaction with nothing in it that commits.
                    self.page_out();
                    self.settle(waiters, None);
                    self.retry_delay = MIN_RETRY_DELAY_MS;
                }
                None
            }
        }
    }

    /// Transaction `id` ended: a batch settles its waiters (acks, or nacks with a storage
    /// error) and hands its delivery horizons to the core or takes its messages back
    /// (see [`end_write`]); committed, bodies of stored messages deep in queues page
    /// out. A failed batch is followed by the fence's deletion if a first delivery waits
    /// for a horizon, then by the wait before the next attempt. A fence's deletion that
    /// the store refuses because a newer version upgraded it abandons the fence: no
    /// write will ever commit, so deliveries go on from memory.
    pub fn write_done(&mut self, id: u64, outcome: WriteOutcome, now: u64) {
        let ok = outcome == WriteOutcome::Committed;
        self.rebuild_due |= matches!(outcome, WriteOutcome::Emptied(_));
        match std::mem::replace(&mut self.writing, Writing::Idle) {
            Writing::Batch { id: at, batch, waiters } if at == id => {
                // `flush()` calls that came while this batch was in flight wait for it too.
                let late = std::mem::take(&mut self.late);
                if self.rebuild_due {
                    // It wrote to a store that lost everything, or not at all: the rebuilt
                    // log writes it all again, and its waiters wait for that.
                    self.held.extend(waiters.into_iter().chain(late));
                    self.rebuild(now, true);
                    self.written(true, now);
                    self.pump(now);
                    return;
                }
                if batch.clear && !ok {
                    // The rewrite of an emptied store failed. Its messages stay in memory
                    // (most were confirmed before the store lost them): the next batch is
                    // the whole rewrite again. Its waiters are told, as for any failed
                    // write (a publisher that sends again may duplicate: at-least-once).
                    self.settle(waiters.into_iter().chain(late), outcome.error().as_ref());
                    self.rebuild(now, false);
                    self.written(false, now);
                    self.pump(now);
                    return;
                }
                let unfence = self.log.as_mut().and_then(|log| end_write(log, &mut self.core, batch, ok, now));
                if ok {
                    self.page_out();
                }
                self.settle(waiters.into_iter().chain(late), outcome.error().as_ref());
                // Storage refused a write that a first delivery waits for: deleting the
                // fence (which full storage allows) lets deliveries go on (see `store::log`).
                match unfence {
                    Some(batch) => self.writing = Writing::Unfence { id: None, batch },
                    None => self.written(ok, now),
                }
            }
            Writing::Unfence { id: Some(at), batch } if at == id => {
                if self.rebuild_due {
                    self.rebuild(now, true);
                    self.written(true, now);
                    self.pump(now);
                    return;
                }
                if let Some(log) = &mut self.log {
                    end_write(log, &mut self.core, batch, ok, now);
                    // Upgraded by a newer tabbit: no write will ever commit, serve from memory.
                    if matches!(outcome, WriteOutcome::Upgraded(_)) {
                        log.abandon_fence();
                        self.core.set_horizons_free(true, now);
                    }
                }
                // It followed a failed batch: the wait before the next attempt.
                self.written(false, now);
            }
            other => {
                // Not the transaction in flight.
                self.writing = other;
                return;
            }
        }
        // The deliveries the horizons let go.
        self.pump(now);
    }

    /// The writing after a batch (and the fence's deletion, if any) is done: the next
    /// transaction may start at once, or after a wait that doubles with each failure.
    fn written(&mut self, ok: bool, now: u64) {
        if ok {
            self.retry_delay = MIN_RETRY_DELAY_MS;
            self.writing = Writing::Idle;
            self.held.append(&mut self.late);
        } else {
            self.writing = Writing::Backoff { since: now, until: now.saturating_add(self.retry_delay) };
            self.retry_delay = (self.retry_delay * 2).min(MAX_RETRY_DELAY_MS);
        }
    }

    fn settle(&mut self, waiters: impl IntoIterator<Item = Waiter>, error: Option<&AmqpError>) {
        for w in waiters {
            let result = match error {
                None => Ok(()),
                Some(e) => Err(e.clone()),
            };
            match w {
                Waiter::Confirm { channel, seq } => self.events.push_back(Event::Confirm { channel, seq, result }),
                Waiter::Wait(id) => self.done.push_back(Done { id, result }),
            }
        }
    }

    /// Drops the bodies of committed messages deep in queues.
    fn page_out(&mut self) {
        let (Some(log), Some(paging)) = (&self.log, self.paging) else { return };
        self.core.page_out_all(paging.keep_loaded, |queue, seq| log.is_committed(queue, seq));
    }

    /// A wait ([`Done`]) until every write made so far has committed, or one failed.
    pub fn committed(&mut self) -> u64 {
        let id = self.next_id();
        let pending = self.log.as_ref().is_some_and(Log::has_pending) || !self.held.is_empty();
        if pending {
            self.held.push(Waiter::Wait(id));
        } else if !matches!(self.writing, Writing::Idle) {
            self.late.push(Waiter::Wait(id));
        } else {
            self.done.push_back(Done { id, result: Ok(()) });
        }
        id
    }

    /// `flush()`: a wait until every write made so far has committed, or one failed.
    /// Delivery horizons are lowered to what was handed out first (see
    /// [`Broker::retract_horizons`]), so that once it is over a crash brings back flagged
    /// `redelivered` exactly the messages that were delivered.
    pub fn flush(&mut self, now: u64) -> u64 {
        self.with(now, |core| core.retract_horizons(now));
        self.committed()
    }

    /// What a `get` of `queue` must wait for before it takes its head: nothing (`None`),
    /// or a wait: for its head to be paged in, or for the next commit (a higher delivery
    /// horizon is asked for; see [`crate::core::StoreOp::Horizon`]). Then ask again.
    pub fn get_wait(&mut self, queue: &str, now: u64) -> Option<u64> {
        match self.with(now, |core| core.get_wait(queue, now))? {
            GetWait::Paged => Some(self.head_loaded(queue)),
            // Asked for: stored with the next commit (or given up if it fails).
            GetWait::Horizon => Some(self.committed()),
        }
    }

    /// A wait until the head of `queue` is in memory (over at once if it is).
    pub fn head_loaded(&mut self, queue: &str) -> u64 {
        let id = self.next_id();
        if self.core.head_paged(queue) {
            self.head_waiters.push((queue.into(), id));
        } else {
            self.done.push_back(Done { id, result: Ok(()) });
        }
        id
    }

    /// The page-ins to start: the bodies of paged-out messages near the head of each
    /// queue that has no page-in under way.
    pub fn page_ins_wanted(&mut self) -> Vec<PageIn> {
        let (Some(log), Some(paging)) = (&self.log, self.paging) else { return Vec::new() };
        if self.closed {
            return Vec::new();
        }
        let wanted = self.core.page_in_wanted(paging.window, |q| self.paging_in.contains(q));
        let mut out = Vec::with_capacity(wanted.len());
        for (queue, seqs) in wanted {
            let segments = log.segments_for(&queue, &seqs);
            self.paging_in.insert(queue.clone());
            out.push(PageIn { queue, seqs, segments });
        }
        out
    }

    /// A page-in ended, with the segment records read back (`None` if the read failed:
    /// the next [`Engine::page_ins_wanted`] asks again). Waits for heads now in memory
    /// are over.
    pub fn page_in_done(&mut self, page: PageIn, read: Option<Vec<(u64, Vec<u8>)>>, now: u64) {
        self.paging_in.remove(&page.queue);
        if let (Some(segments), Some(log)) = (read, &self.log) {
            let (found, lost) = log.paged_in(&page.queue, &page.seqs, &segments);
            self.core.page_in(&page.queue, found, &lost, now);
        }
        let core = &self.core;
        let (loaded, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.head_waiters).into_iter().partition(|(q, _)| !core.head_paged(q));
        self.head_waiters = waiting;
        self.done.extend(loaded.into_iter().map(|(_, id)| Done { id, result: Ok(()) }));
        self.pump(now);
    }

    /// When to call [`Engine::wake`] next: the core's next deadline, or the end of the
    /// wait after a failed transaction, whichever is first. It visits every queue: once
    /// per turn of the event loop is enough.
    pub fn next_wakeup(&self) -> Option<u64> {
        if self.closed {
            return None;
        }
        let retry = match self.writing {
            Writing::Backoff { until, .. } => Some(until),
            _ => None,
        };
        match (self.core.next_deadline(), retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The time has come: the core's clock runs to `now`. (A wait after a failed
    /// transaction that is over lets [`Engine::poll_write`] go on.)
    pub fn wake(&mut self, now: u64) {
        self.core.tick(now);
        self.pump(now);
    }

    /// No more writes, page-ins or wake-ups: the driver closes its storage. Confirms from
    /// now on are immediate, as without storage.
    pub fn close(&mut self) {
        self.closed = true;
        self.log = None;
    }
}
