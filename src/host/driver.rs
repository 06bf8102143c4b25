//! The host's driver (wasm32): it runs the [`Engine`] in this context's event loop and
//! does its I/O. It decides nothing: it takes each transaction the engine hands out,
//! writes it to IndexedDB (or the storage adapter) and reports how it ended; reads back
//! the segments a page-in names; arms one timer at the engine's next wake-up; and hands
//! events to the binding, in order.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use super::engine::{Engine, Event, PageIn, Paging, WriteOutcome};
use crate::core::fxhash::FxMap;
use crate::core::{AmqpError, Broker, BrokerConfig, ReplyCode};
use crate::store::adapter::JsAdapter;
use crate::store::indexeddb::{IndexedDb, StoreError};
use crate::store::{restore, Log, Recovery, Write};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
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
    async fn write(&self, writes: &[Write]) -> Result<(), StoreError> {
        match self {
            Backend::IndexedDb(db) => db.write(writes).await,
            Backend::Adapter(a) => a.write(writes).await,
        }
    }
}

/// How a write ended, in the engine's terms.
fn outcome(result: Result<(), StoreError>) -> WriteOutcome {
    match result {
        Ok(()) => WriteOutcome::Committed,
        Err(e) if e.is_quota() => WriteOutcome::QuotaExceeded(e.to_string()),
        Err(e) if e.name == "VersionError" => WriteOutcome::Upgraded(e.to_string()),
        Err(e) => WriteOutcome::Failed(e.to_string()),
    }
}

/// Where events go. It may call back into the host: events it causes are queued and
/// handed over after the current one, so each consumer sees its messages in order.
pub type EventSink = Box<dyn FnMut(Event)>;

struct Inner {
    engine: Engine,
    db: Option<Rc<Backend>>,
    /// A write loop is scheduled for the end of the turn.
    write_scheduled: bool,
    /// A write loop runs (a transaction is in flight, or the next follows it).
    writing: bool,
    /// The timer is re-armed at the end of the turn.
    timer_check_scheduled: bool,
    timer: Option<(u64, JsValue)>,
    tick: Option<Closure<dyn FnMut()>>,
    sink: Option<EventSink>,
    /// An event is being handed over: nested calls only queue theirs.
    dispatching: bool,
    /// The promises of the engine's waits, by id: resolve, reject.
    waits: FxMap<u64, (Function, Function)>,
    closed: bool,
}

/// A broker hosted in this context.
#[derive(Clone)]
pub struct Host {
    inner: Rc<RefCell<Inner>>,
    storage: &'static str,
    problems: Rc<Vec<String>>,
}

/// Segments read at a time while recovering.
const RECOVERY_CHUNK: u32 = 64;

/// Restores what the database holds into `core`, streaming the message log a chunk at a
/// time and leaving messages deep in queues paged out.
async fn recover(db: &IndexedDb, core: &mut Broker, keep_loaded: usize) -> Result<(Log, Vec<String>), StoreError> {
    let (records, problems) = db.load_meta().await?;
    let mut recovery = Recovery::start(core, records, problems, keep_loaded, now());
    let mut after = None;
    loop {
        let (segments, next) = db.segments_after(after, RECOVERY_CHUNK, recovery.problems()).await?;
        recovery.segments(core, segments);
        match next {
            Some(id) => after = Some(id),
            None => break,
        }
    }
    Ok(recovery.finish(core))
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
        // Only IndexedDB reads single segments back, which paging needs.
        let mut paging = None;
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
            let pages = Paging::default();
            let (l, p) = recover(&opened, &mut core, pages.keep_loaded).await.map_err(|e| {
                AmqpError::new(ReplyCode::ResourceError, format!("cannot read IndexedDB database '{prefix}' ({e})"))
            })?;
            (log, problems, paging) = (Some(l), p, Some(pages));
            db = Some(Rc::new(Backend::IndexedDb(opened)));
        }
        let inner = Rc::new(RefCell::new(Inner {
            engine: Engine::new(core, log, paging),
            db,
            write_scheduled: false,
            writing: false,
            timer_check_scheduled: false,
            timer: None,
            tick: None,
            sink: None,
            dispatching: false,
            waits: FxMap::default(),
            closed: false,
        }));
        let weak = Rc::downgrade(&inner);
        let storage = storage.name();
        inner.borrow_mut().tick = Some(Closure::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.borrow_mut().timer = None;
                let host = Host { inner, storage, problems: Rc::new(Vec::new()) };
                host.inner.borrow_mut().engine.wake(now());
                host.after();
            }
        }));
        let host = Host { inner, storage, problems: Rc::new(problems) };
        // What recovery left: its store ops.
        host.inner.borrow_mut().engine.pump(now());
        host.after();
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
        let out = self.inner.borrow_mut().engine.with(now(), f);
        self.after();
        out
    }

    /// Reads the core without commands.
    pub fn read<T>(&self, f: impl FnOnce(&Broker) -> T) -> T {
        f(self.inner.borrow().engine.core())
    }

    /// After every call into the engine: the write loop scheduled if there is something
    /// to write, the timer checked, events handed over, page-ins started.
    fn after(&self) {
        {
            let mut guard = self.inner.borrow_mut();
            let inner = &mut *guard;
            if !inner.write_scheduled && !inner.writing && inner.engine.wants_write(now()) {
                inner.write_scheduled = true;
                let host = self.clone();
                // Runs after the current task's synchronous code: one batch per turn.
                spawn_local(async move { host.write_loop().await });
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

    /// Ends the waits that are over (resolving a promise runs nothing now), then hands
    /// queued events to the sink, outside any borrow; a nested call (from inside the
    /// sink) leaves its events to the outer loop, which keeps them in order.
    fn dispatch_events(&self) {
        self.settle_waits();
        let mut sink = {
            let mut inner = self.inner.borrow_mut();
            if inner.dispatching {
                return;
            }
            let Some(sink) = inner.sink.take() else {
                while inner.engine.poll_event().is_some() {}
                return;
            };
            inner.dispatching = true;
            sink
        };
        loop {
            let event = self.inner.borrow_mut().engine.poll_event();
            match event {
                Some(e) => sink(e),
                None => break,
            }
            self.settle_waits();
        }
        let mut inner = self.inner.borrow_mut();
        inner.sink = Some(sink);
        inner.dispatching = false;
    }

    fn settle_waits(&self) {
        loop {
            let (done, callbacks) = {
                let mut inner = self.inner.borrow_mut();
                let Some(done) = inner.engine.poll_done() else { return };
                let callbacks = inner.waits.remove(&done.id);
                (done, callbacks)
            };
            let Some((resolve, reject)) = callbacks else { continue };
            let _ = match done.result {
                Ok(()) => resolve.call0(&JsValue::NULL),
                Err(e) => reject.call1(&JsValue::NULL, &crate::api::to_js(e)),
            };
        }
    }

    /// A promise for the engine's wait `id`, settled when the engine says it is over:
    /// make it before the next [`Host::dispatch_events`].
    fn wait(&self, id: u64) -> Promise {
        Promise::new(&mut |resolve, reject| {
            self.inner.borrow_mut().waits.insert(id, (resolve, reject));
        })
    }

    /// Starts reading back the bodies of paged-out messages near the head of each queue.
    fn start_page_ins(&self) {
        let wanted = self.inner.borrow_mut().engine.page_ins_wanted();
        for page in wanted {
            let host = self.clone();
            spawn_local(async move { host.page_in(page).await });
        }
    }

    async fn page_in(&self, page: PageIn) {
        let db = self.inner.borrow().db.clone();
        let read = match db.as_deref() {
            Some(Backend::IndexedDb(db)) => db.segments(&page.segments).await.ok(),
            _ => Some(Vec::new()),
        };
        // A failed read is tried again after the next command.
        self.inner.borrow_mut().engine.page_in_done(page, read, now());
        self.after();
    }

    /// Resolves once a `get` of `queue` can take its head (at once if it can, or if
    /// there is no such queue): the head is in memory, and a first delivery of it is
    /// within the stored delivery horizon (see [`crate::core::StoreOp::Horizon`]).
    pub async fn get_ready(&self, queue: &str) {
        loop {
            let wait = self.inner.borrow_mut().engine.get_wait(queue, now());
            let promise = wait.map(|id| self.wait(id));
            self.after();
            let Some(promise) = promise else { return };
            let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
        }
    }

    /// Whether a `get` of `queue` can take its head now (see [`Host::get_ready`]).
    pub fn can_get(&self, queue: &str) -> bool {
        self.read(|core| core.get_ready(queue, now()))
    }

    /// Resolves once the head of `queue` is in memory (at once if it is).
    pub fn head_loaded(&self, queue: &str) -> Promise {
        let id = self.inner.borrow_mut().engine.head_loaded(queue);
        let promise = self.wait(id);
        // A page-in for it is under way, or starts now (a read that failed is tried again).
        self.after();
        promise
    }

    fn arm_timer(inner: &mut Inner) {
        let Some(deadline) = inner.engine.next_wakeup() else { return };
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

    /// Writes each transaction the engine hands out and tells it how it ended; repeats
    /// while more gathered meanwhile (the engine hands out nothing during the wait after
    /// a failure: the timer brings the loop back).
    async fn write_loop(&self) {
        loop {
            let (transaction, db) = {
                let mut guard = self.inner.borrow_mut();
                let inner = &mut *guard;
                inner.write_scheduled = false;
                let Some(db) = inner.db.clone() else { break };
                let Some(transaction) = inner.engine.poll_write(now()) else { break };
                inner.writing = true;
                (transaction, db)
            };
            let result = db.write(&transaction.writes).await;
            self.inner.borrow_mut().engine.write_done(transaction.id, outcome(result), now());
            self.after();
        }
        self.inner.borrow_mut().writing = false;
        // What the last poll settled (waiters with nothing to write), and the timer for a retry.
        self.after();
    }

    /// Resolves when every write made so far has committed; rejects if one failed.
    /// Delivery horizons are lowered to what was handed out first (see
    /// [`Broker::retract_horizons`]), so that once it resolves a crash brings back
    /// flagged `redelivered` exactly the messages that were delivered.
    pub fn flush(&self) -> Promise {
        let id = self.inner.borrow_mut().engine.flush(now());
        let promise = self.wait(id);
        self.after();
        promise
    }

    /// Stops the clock and closes the database once pending writes are done.
    pub async fn close(&self) {
        let _ = wasm_bindgen_futures::JsFuture::from(self.flush()).await;
        let mut inner = self.inner.borrow_mut();
        inner.closed = true;
        inner.engine.close();
        if let Some((_, id)) = inner.timer.take() {
            clear_timeout(&id);
        }
        if let Some(Backend::IndexedDb(db)) = inner.db.take().as_deref() {
            db.close();
        }
    }
}
