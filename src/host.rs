//! The context that hosts a broker (wasm32): it owns the core, feeds its store ops to
//! the [`Log`], commits each event-loop turn's writes in one IndexedDB transaction
//! (group commit), holds publisher confirms until that transaction's `complete` event,
//! and runs the broker's clock with a timer.
//!
//! One transaction is in flight at a time; writes of the turns that pass meanwhile
//! gather into the next one, so batches grow with load and confirms cost one commit
//! per batch, not per message.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use crate::core::fxhash::{FxMap, FxSet};
use crate::core::{
    AmqpError, Broker, BrokerConfig, ChannelRef, Confirm, Delivery, Effect, GetWait, ReplyCode, Returned, StoreOp,
};
use crate::store::adapter::JsAdapter;
use crate::store::indexeddb::{IndexedDb, StoreError};
use crate::store::{end_write, finish_restore, restore, restore_message, restore_topology, start_write, Log};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// Resolves after `ms` milliseconds (a timer: other tasks run meanwhile).
async fn sleep(ms: f64) {
    let timer = Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(timer).await;
}

thread_local! {
    /// The clock as read once in this turn of the event loop.
    static TURN_NOW: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// The time (ms since the epoch), read once per turn of the event loop: every command of
/// one turn happens at the same instant. Reading `Date.now()` per command was 8% of a
/// host's time serving other tabs (scripts/bench --profile, row (h)).
pub fn now() -> u64 {
    TURN_NOW.with(|c| match c.get() {
        Some(t) => t,
        None => {
            let t = js_sys::Date::now() as u64;
            c.set(Some(t));
            spawn_local(async { TURN_NOW.with(|c| c.set(None)) });
            t
        }
    })
}

/// Where a broker keeps durable state.
#[derive(Clone, Debug)]
pub enum Storage {
    IndexedDb,
    /// Nothing survives the context: durable queues behave as transient ones.
    Memory,
    /// A storage object the app hands in (see [`crate::store::adapter`]).
    Adapter(JsValue),
}

impl Storage {
    /// From `connect()`'s `storage` option: `'indexeddb'`, `'memory'`, an adapter object,
    /// or nothing (IndexedDB where it exists, else memory).
    pub fn from_js(v: &JsValue) -> Result<Storage, AmqpError> {
        if v.is_undefined() || v.is_null() {
            let has_idb = js_sys::Reflect::get(&js_sys::global(), &"indexedDB".into()).is_ok_and(|v| v.is_object());
            return Ok(if has_idb { Storage::IndexedDb } else { Storage::Memory });
        }
        match v.as_string().as_deref() {
            Some("memory") => Ok(Storage::Memory),
            Some("indexeddb") => Ok(Storage::IndexedDb),
            None if v.is_object() => Ok(Storage::Adapter(v.clone())),
            _ => Err(AmqpError::precondition(
                "unknown storage: use 'indexeddb', 'memory', or an adapter object { load(), write(writes) }",
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Storage::IndexedDb => "indexeddb",
            Storage::Memory => "memory",
            Storage::Adapter(_) => "adapter",
        }
    }
}

/// Where the records go.
enum Backend {
    IndexedDb(IndexedDb),
    Adapter(JsAdapter),
}

impl Backend {
    async fn write(&self, batch: &crate::store::Batch) -> Result<(), StoreError> {
        match self {
            Backend::IndexedDb(db) => db.write(batch).await,
            Backend::Adapter(a) => a.write(batch).await,
        }
    }

    /// Whether single segments can be read back, which paging needs.
    fn pages(&self) -> bool {
        matches!(self, Backend::IndexedDb(_))
    }
}

/// Someone waiting for writes to commit: a publisher confirm, or `flush()`.
enum Waiter {
    Confirm { channel: ChannelRef, seq: u64 },
    Flush(Function, Function),
}

/// How a confirm ends: `Ok` for an ack, `Err` with why for a nack.
pub type ConfirmResult = Result<(), AmqpError>;

/// What the host tells the binding, in the order it happened.
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

/// Where events go. It may call back into the host: events it causes are queued and
/// handed over after the current one, so each consumer sees its messages in order.
pub type EventSink = Box<dyn FnMut(Event)>;

struct Inner {
    core: Broker,
    log: Option<Log>,
    db: Option<Rc<Backend>>,
    /// Waiters for the writes not yet in a batch.
    held: Vec<Waiter>,
    /// Waiters for the batch in flight.
    in_flight: Option<Vec<Waiter>>,
    flush_scheduled: bool,
    /// The timer is re-armed at the end of the turn.
    timer_check_scheduled: bool,
    timer: Option<(u64, JsValue)>,
    tick: Option<Closure<dyn FnMut()>>,
    sink: Option<EventSink>,
    events: VecDeque<Event>,
    /// An event is being handed over: nested pumps only queue theirs.
    dispatching: bool,
    /// Queues with a page-in under way.
    paging_in: FxSet<Rc<str>>,
    /// `get` calls waiting for their queue's head to be paged in.
    head_waiters: Vec<(Rc<str>, Function)>,
    /// How long to wait before writing again after a failed transaction (ms).
    retry_delay: f64,
    closed: bool,
}

/// A broker hosted in this context.
#[derive(Clone)]
pub struct Host {
    inner: Rc<RefCell<Inner>>,
    storage: &'static str,
    problems: Rc<Vec<String>>,
}

fn storage_error(e: &StoreError) -> AmqpError {
    if e.is_quota() {
        AmqpError::new(
            ReplyCode::ResourceError,
            format!(
                "storage is full ({e}): the message was not stored; ack or purge stored messages, \
                 or ask the browser for more space (navigator.storage.persist()), then publish again"
            ),
        )
    } else if e.name == "VersionError" {
        AmqpError::new(
            ReplyCode::ResourceError,
            format!(
                "another tab or worker upgraded this broker's database to a newer format ({e}): \
                 the message was not stored; reload this context to run the newer tabbit"
            ),
        )
    } else {
        AmqpError::new(
            ReplyCode::ResourceError,
            format!("the store refused the write ({e}): the message was not stored"),
        )
    }
}

/// Ready messages kept in memory at the head of a queue that pages; deeper ones keep
/// only their place once the store holds them.
const KEEP_LOADED: usize = 2048;
/// How far from the head paged-out messages are paged back in.
const PAGE_IN_WINDOW: usize = 1024;
/// Backoff between attempts after a failed transaction, doubling up to the maximum.
const MIN_RETRY_DELAY_MS: f64 = 20.0;
const MAX_RETRY_DELAY_MS: f64 = 1000.0;
/// Segments read at a time while recovering.
const RECOVERY_CHUNK: u32 = 64;

/// Restores what the database holds into `core`, streaming the message log a chunk at a
/// time and leaving messages deep in queues paged out.
async fn recover(db: &IndexedDb, core: &mut Broker) -> Result<(Log, Vec<String>), StoreError> {
    let now = now();
    let (records, mut problems) = db.load_meta().await?;
    let (mut log, mut recovered) = Log::recover_meta(records);
    problems.extend(restore_topology(core, &mut recovered, now));
    let mut loaded: FxMap<Rc<str>, usize> = FxMap::default();
    let mut after = None;
    loop {
        let (segments, next) = db.segments_after(after, RECOVERY_CHUNK, &mut problems).await?;
        let mut restore_problems = Vec::new();
        for (id, bytes) in segments {
            log.recover_segment(id, &bytes, &mut problems, &mut |queue, mut m| {
                let n = loaded.entry(queue.clone()).or_default();
                *n += 1;
                if *n > KEEP_LOADED && core.can_page(queue) {
                    m.message = None;
                }
                restore_message(core, queue, m, now, &mut restore_problems);
            });
        }
        problems.append(&mut restore_problems);
        match next {
            Some(id) => after = Some(id),
            None => break,
        }
    }
    for (queue, horizon) in log.finish_recovery() {
        core.restore_horizon(&queue, horizon);
    }
    finish_restore(core, now);
    Ok((log, problems))
}

impl Host {
    /// Opens the broker whose resources are named `prefix…` (`crate::mesh::resource_prefix`):
    /// with IndexedDB, loads and restores what its database `prefix` holds.
    pub async fn open(prefix: &str, storage: Storage, limits: crate::core::Limits) -> Result<Host, AmqpError> {
        let seed = (js_sys::Math::random() * 9.0e15) as u64;
        // With storage, first deliveries wait for their queue's delivery horizon to be stored.
        let delivery_horizon = !matches!(storage, Storage::Memory);
        let mut core = Broker::new(BrokerConfig { seed, limits, delivery_horizon });
        let (mut log, mut db, mut problems): (Option<Log>, _, _) = (None, None, Vec::new());
        if let Storage::Adapter(obj) = &storage {
            let failed =
                |e: StoreError| AmqpError::new(ReplyCode::ResourceError, format!("storage adapter failed: {e}"));
            let adapter = JsAdapter::new(obj.clone()).map_err(|e| AmqpError::precondition(e.message))?;
            let (records, skipped) = adapter.load().await.map_err(failed)?;
            let (l, recovered) = Log::recover(records);
            problems = skipped;
            problems.extend(restore(&mut core, recovered, now()));
            (log, db) = (Some(l), Some(Rc::new(Backend::Adapter(adapter))));
        }
        if let Storage::IndexedDb = storage {
            let opened = IndexedDb::open(prefix).await.map_err(|e| {
                AmqpError::new(
                    ReplyCode::ResourceError,
                    format!(
                        "cannot open IndexedDB database '{prefix}' ({e}); to run without durability, \
                         connect with storage: 'memory'"
                    ),
                )
            })?;
            let (l, p) = recover(&opened, &mut core).await.map_err(|e| {
                AmqpError::new(ReplyCode::ResourceError, format!("cannot read IndexedDB database '{prefix}' ({e})"))
            })?;
            (log, problems) = (Some(l), p);
            db = Some(Rc::new(Backend::IndexedDb(opened)));
        }
        let inner = Rc::new(RefCell::new(Inner {
            core,
            log,
            db,
            held: Vec::new(),
            in_flight: None,
            flush_scheduled: false,
            timer_check_scheduled: false,
            timer: None,
            tick: None,
            sink: None,
            events: VecDeque::new(),
            dispatching: false,
            paging_in: FxSet::default(),
            head_waiters: Vec::new(),
            retry_delay: MIN_RETRY_DELAY_MS,
            closed: false,
        }));
        let weak = Rc::downgrade(&inner);
        let storage = storage.name();
        inner.borrow_mut().tick = Some(Closure::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.borrow_mut().timer = None;
                let host = Host { inner, storage, problems: Rc::new(Vec::new()) };
                host.with(|core| {
                    core.tick(now());
                });
            }
        }));
        let host = Host { inner, storage, problems: Rc::new(problems) };
        host.pump();
        Ok(host)
    }

    /// `'indexeddb'`, `'memory'` or `'adapter'`.
    pub fn storage(&self) -> &'static str {
        self.storage
    }

    /// Records that recovery skipped, each with why.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Where events go.
    pub fn on_event(&self, sink: EventSink) {
        self.inner.borrow_mut().sink = Some(sink);
    }

    /// Runs a command on the core, then handles the effects it produced.
    pub fn with<T>(&self, f: impl FnOnce(&mut Broker) -> T) -> T {
        let out = f(&mut self.inner.borrow_mut().core);
        self.pump();
        out
    }

    /// Reads the core without commands.
    pub fn read<T>(&self, f: impl FnOnce(&Broker) -> T) -> T {
        f(&self.inner.borrow().core)
    }

    /// Handles effects: store ops to the log, confirms settled or held for the commit.
    fn pump(&self) {
        {
            let mut guard = self.inner.borrow_mut();
            let inner = &mut *guard;
            while let Some(effect) = inner.core.poll_effect() {
                let event = match effect {
                    Effect::Store(op) => {
                        if let Some(log) = &mut inner.log {
                            log.apply(&op);
                            // A horizon the log cannot store (no such stored queue) would
                            // never come back from a commit: nothing to wait for.
                            if let StoreOp::Horizon { queue, through } = &op {
                                if !log.has_queue(queue) {
                                    inner.core.horizon_stored(queue, *through, now());
                                }
                            }
                        }
                        continue;
                    }
                    Effect::Confirm(Confirm { channel, seq, ack, durable, refused }) => {
                        if ack && durable && inner.log.is_some() {
                            inner.held.push(Waiter::Confirm { channel, seq });
                            continue;
                        }
                        let result = match ack {
                            true => Ok(()),
                            false => Err(AmqpError::new(
                                ReplyCode::ResourceError,
                                refused
                                    .as_deref()
                                    .unwrap_or("the queue the message was routed to was deleted meanwhile"),
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
                inner.events.push_back(event);
            }
            let wants_flush = inner.log.as_ref().is_some_and(Log::has_pending) || !inner.held.is_empty();
            if wants_flush && !inner.flush_scheduled && inner.in_flight.is_none() {
                inner.flush_scheduled = true;
                let host = self.clone();
                // Runs after the current task's synchronous code: one batch per turn.
                spawn_local(async move { host.flush_now().await });
            }
            if !inner.timer_check_scheduled && !inner.closed {
                inner.timer_check_scheduled = true;
                let host = self.clone();
                // Once per turn, not per command: finding the next deadline visits every queue.
                spawn_local(async move {
                    let mut inner = host.inner.borrow_mut();
                    inner.timer_check_scheduled = false;
                    Self::arm_timer(&mut inner);
                });
            }
        }
        self.dispatch_events();
        self.start_page_ins();
    }

    /// Hands queued events to the sink, outside any borrow; a nested call (from inside
    /// the sink) leaves its events to the outer loop, which keeps them in order.
    fn dispatch_events(&self) {
        let mut sink = {
            let mut inner = self.inner.borrow_mut();
            if inner.dispatching || inner.events.is_empty() {
                return;
            }
            let Some(sink) = inner.sink.take() else {
                inner.events.clear();
                return;
            };
            inner.dispatching = true;
            sink
        };
        loop {
            let event = self.inner.borrow_mut().events.pop_front();
            match event {
                Some(e) => sink(e),
                None => break,
            }
        }
        let mut inner = self.inner.borrow_mut();
        inner.sink = Some(sink);
        inner.dispatching = false;
    }

    /// Starts reading back the bodies of paged-out messages near the head of each queue.
    fn start_page_ins(&self) {
        let wanted = {
            let inner = self.inner.borrow();
            if inner.db.is_none() || inner.closed {
                return;
            }
            inner.core.page_in_wanted(PAGE_IN_WINDOW, |q| inner.paging_in.contains(q))
        };
        for (queue, seqs) in wanted {
            self.inner.borrow_mut().paging_in.insert(queue.clone());
            let host = self.clone();
            spawn_local(async move { host.page_in(queue, seqs).await });
        }
    }

    async fn page_in(&self, queue: Rc<str>, seqs: Vec<u64>) {
        let (db, ids) = {
            let inner = self.inner.borrow();
            let Some(log) = &inner.log else { return };
            (inner.db.clone(), log.segments_for(&queue, &seqs))
        };
        let read = match db.as_deref() {
            Some(Backend::IndexedDb(db)) => db.segments(&ids).await,
            _ => Ok(Vec::new()),
        };
        let waiters = {
            let mut inner = self.inner.borrow_mut();
            inner.paging_in.remove(&queue);
            // A failed read is tried again by the next pump.
            if let (Ok(segments), Some(log)) = (read, &inner.log) {
                let (found, lost) = log.paged_in(&queue, &seqs, &segments);
                inner.core.page_in(&queue, found, &lost, now());
            }
            let (ready, waiting): (Vec<_>, Vec<_>) =
                std::mem::take(&mut inner.head_waiters).into_iter().partition(|(q, _)| !inner.core.head_paged(q));
            inner.head_waiters = waiting;
            ready
        };
        for (_, resolve) in waiters {
            let _ = resolve.call0(&JsValue::NULL);
        }
        self.pump();
    }

    /// Resolves once a `get` of `queue` can take its head (at once if it can, or if
    /// there is no such queue): the head is in memory, and a first delivery of it is
    /// within the stored delivery horizon (see [`crate::core::StoreOp::Horizon`]).
    pub async fn get_ready(&self, queue: &str) {
        loop {
            let wait = self.with(|core| core.get_wait(queue, now()));
            let promise = match wait {
                None => return,
                Some(GetWait::Paged) => self.head_loaded(queue),
                // Asked for: stored with the next commit (or given up if it fails).
                Some(GetWait::Horizon) => self.committed(),
            };
            let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
        }
    }

    /// Whether a `get` of `queue` can take its head now (see [`Host::get_ready`]).
    pub fn can_get(&self, queue: &str) -> bool {
        self.read(|core| core.get_ready(queue, now()))
    }

    /// Resolves once the head of `queue` is in memory (at once if it is).
    pub fn head_loaded(&self, queue: &str) -> Promise {
        let promise = Promise::new(&mut |resolve, _reject| {
            let mut inner = self.inner.borrow_mut();
            if inner.core.head_paged(queue) {
                inner.head_waiters.push((queue.into(), resolve));
            } else {
                let _ = resolve.call0(&JsValue::NULL);
            }
        });
        // A page-in for it is under way, or starts now (a read that failed is tried again).
        self.start_page_ins();
        promise
    }

    /// Drops the bodies of committed messages deep in queues.
    fn page_out(inner: &mut Inner) {
        let (Some(log), Some(db)) = (&inner.log, &inner.db) else { return };
        if !db.pages() {
            return;
        }
        inner.core.page_out_all(KEEP_LOADED, |queue, seq| log.is_committed(queue, seq));
    }

    fn arm_timer(inner: &mut Inner) {
        let Some(deadline) = inner.core.next_deadline() else { return };
        if inner.closed || inner.timer.as_ref().is_some_and(|(t, _)| *t <= deadline) {
            return;
        }
        if let Some((_, id)) = inner.timer.take() {
            clear_timeout(&id);
        }
        let Some(tick) = &inner.tick else { return };
        let delay = deadline.saturating_sub(now()) as f64;
        let id = set_timeout(tick.as_ref().unchecked_ref(), delay.min(2_147_483_647.0));
        inner.timer = Some((deadline, id));
    }

    /// Writes everything pending in one transaction, then settles its waiters; repeats
    /// while more gathered meanwhile. After a failed write (storage full, or upgraded
    /// elsewhere) it waits before the next, doubling the wait up to a second; commands
    /// meanwhile gather into the next batch, as during any write.
    async fn flush_now(&self) {
        loop {
            let (batch, waiters, db) = {
                let mut guard = self.inner.borrow_mut();
                let inner = &mut *guard;
                inner.flush_scheduled = false;
                if inner.in_flight.is_some() {
                    return;
                }
                let batch = inner.log.as_mut().and_then(|l| start_write(l, &mut inner.core, now()));
                let waiters = std::mem::take(&mut inner.held);
                if batch.is_none() && waiters.is_empty() {
                    return;
                }
                let Some(db) = inner.db.clone() else { return };
                inner.in_flight = Some(Vec::new());
                (batch, waiters, db)
            };
            let result = match &batch {
                Some(b) => db.write(b).await,
                None => Ok(()),
            };
            let unfence = {
                let mut guard = self.inner.borrow_mut();
                let inner = &mut *guard;
                // `flush()` calls that came while this batch was in flight wait for it too.
                let late = inner.in_flight.replace(Vec::new()).unwrap_or_default();
                let mut unfence = None;
                if let (Some(log), Some(b)) = (&mut inner.log, batch) {
                    unfence = end_write(log, &mut inner.core, b, result.is_ok(), now());
                }
                if result.is_ok() {
                    Self::page_out(inner);
                }
                Self::settle_waiters(inner, waiters.into_iter().chain(late), result.as_ref().err());
                unfence
            };
            // Storage refused a write that a first delivery waits for: deleting the fence
            // (which full storage allows) lets deliveries go on (see `store::log`).
            if let Some(unfence) = unfence {
                let result = db.write(&unfence).await;
                let mut guard = self.inner.borrow_mut();
                let inner = &mut *guard;
                if let Some(log) = &mut inner.log {
                    end_write(log, &mut inner.core, unfence, result.is_ok(), now());
                    // Upgraded by a newer tabbit: no write will ever commit, serve from memory.
                    if result.is_err_and(|e| e.name == "VersionError") {
                        log.abandon_fence();
                        inner.core.set_horizons_free(true, now());
                    }
                }
            }
            // The deliveries the horizons let go, and the events settled above.
            self.pump();
            if result.is_err() {
                let delay = self.inner.borrow().retry_delay;
                sleep(delay).await;
                self.inner.borrow_mut().retry_delay = (delay * 2.0).min(MAX_RETRY_DELAY_MS);
            } else {
                self.inner.borrow_mut().retry_delay = MIN_RETRY_DELAY_MS;
            }
            // `flush()` calls that came since wait for the next batch (if there is none,
            // the next turn of the loop settles them and returns).
            let mut inner = self.inner.borrow_mut();
            let late = inner.in_flight.take().unwrap_or_default();
            inner.held.extend(late);
        }
    }

    fn settle_waiters(inner: &mut Inner, waiters: impl Iterator<Item = Waiter>, error: Option<&StoreError>) {
        for w in waiters {
            let result = match error {
                None => Ok(()),
                Some(e) => Err(storage_error(e)),
            };
            match w {
                Waiter::Confirm { channel, seq } => inner.events.push_back(Event::Confirm { channel, seq, result }),
                Waiter::Flush(resolve, reject) => {
                    let _ = match result {
                        Ok(()) => resolve.call0(&JsValue::NULL),
                        Err(e) => reject.call1(&JsValue::NULL, &crate::api::to_js(e)),
                    };
                }
            }
        }
    }

    /// Resolves when every write made so far has committed; rejects if one failed.
    /// Delivery horizons are lowered to what was handed out first (see
    /// [`Broker::retract_horizons`]), so that once it resolves a crash brings back
    /// flagged `redelivered` exactly the messages that were delivered.
    pub fn flush(&self) -> Promise {
        self.with(|core| core.retract_horizons(now()));
        self.committed()
    }

    /// Resolves when every write made so far has committed; rejects if one failed.
    fn committed(&self) -> Promise {
        Promise::new(&mut |resolve, reject| {
            let mut inner = self.inner.borrow_mut();
            let pending = inner.log.as_ref().is_some_and(Log::has_pending) || !inner.held.is_empty();
            if pending {
                inner.held.push(Waiter::Flush(resolve, reject));
            } else if let Some(late) = &mut inner.in_flight {
                late.push(Waiter::Flush(resolve, reject));
            } else {
                let _ = resolve.call0(&JsValue::NULL);
            }
        })
    }

    /// Stops the clock and closes the database once pending writes are done.
    pub async fn close(&self) {
        let _ = wasm_bindgen_futures::JsFuture::from(self.flush()).await;
        let mut inner = self.inner.borrow_mut();
        inner.closed = true;
        if let Some((_, id)) = inner.timer.take() {
            clear_timeout(&id);
        }
        if let Some(Backend::IndexedDb(db)) = inner.db.take().as_deref() {
            db.close();
        }
        inner.log = None;
    }
}
