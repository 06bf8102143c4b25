//! The host's driver (wasm32): it runs the [`Engine`] in this context's event loop and
//! does its I/O. It decides nothing: it takes each transaction the engine hands out,
//! writes it to IndexedDB (or the storage adapter) and reports how it ended; reads back
//! the segments a page-in names; arms one timer at the engine's next wake-up; and hands
//! events to the binding, in order.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use js_sys::Function;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use super::engine::{Done, Engine, PageIn, Paging, WriteOutcome};
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
    /// `clear`: empty every collection first (only an IndexedDB database can be found
    /// emptied, so only it is asked to).
    async fn write(&self, writes: &[Write], clear: bool) -> Result<(), StoreError> {
        match self {
            Backend::IndexedDb(db) => db.write(writes, clear).await,
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
        Err(e) if e.is_emptied() => WriteOutcome::Emptied(e.to_string()),
        Err(e) => WriteOutcome::Failed(e.to_string()),
    }
}

/// What the driver tells the binding after its own work (a commit, a timer, a page-in)
/// or after [`Host::after`].
pub enum Notice {
    /// The engine has events: the binding takes them ([`Engine::poll_event`]) with
    /// [`Host::engine`].
    Events,
    /// A wait the binding asked the engine for ended.
    Done(Done),
}

/// Where notices go. It may call back into the host; a notice it causes is handed over
/// after the current one.
pub type EventSink = Box<dyn FnMut(Notice)>;

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
    /// This driver's own waits on the engine, by id: where the result goes.
    waits: FxMap<u64, Rc<WaitSlot>>,
    closed: bool,
}

/// Where the result of one of the engine's waits goes, and who to wake.
#[derive(Default)]
struct WaitSlot {
    result: RefCell<Option<Result<(), AmqpError>>>,
    waker: RefCell<Option<Waker>>,
}

impl WaitSlot {
    fn fill(&self, result: Result<(), AmqpError>) {
        *self.result.borrow_mut() = Some(result);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

/// A future of one of the engine's waits ([`Host::flush`]): `Err` when the writes it
/// waited for failed.
pub struct Wait(Rc<WaitSlot>);

impl Future for Wait {
    type Output = Result<(), AmqpError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.0.result.borrow_mut().take() {
            Some(r) => Poll::Ready(r),
            None => {
                *self.0.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
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
        let mut emptied = false;
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
            let (l, mut p) = recover(&opened, &mut core, pages.keep_loaded).await.map_err(|e| {
                AmqpError::new(ReplyCode::ResourceError, format!("cannot read IndexedDB database '{prefix}' ({e})"))
            })?;
            if opened.found_emptied() {
                emptied = true;
                p.push(format!(
                    "IndexedDB database '{prefix}' was deleted since a broker last used it (the site's data \
                     cleared, or the browser could not open it): what it held is lost"
                ));
            }
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
        if emptied {
            inner.borrow_mut().engine.opened_emptied(now());
        }
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

    /// Where notices go.
    pub fn on_event(&self, sink: EventSink) {
        self.inner.borrow_mut().sink = Some(sink);
    }

    /// Runs `f` on the engine. The caller calls [`Host::after`] once it has released
    /// what the sink needs.
    pub fn engine<T>(&self, f: impl FnOnce(&mut Engine) -> T) -> T {
        f(&mut self.inner.borrow_mut().engine)
    }

    /// After every call into the engine: the write loop scheduled if there is something
    /// to write, the timer checked, events handed over, page-ins started.
    pub fn after(&self) {
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

    /// Settles this driver's own waits that are over (resolving a promise runs nothing
    /// now), and tells the sink of the binding's waits and of events, outside any borrow;
    /// a nested call (from inside the sink) leaves its notices to the outer loop, which
    /// keeps them in order. Without a sink, events are dropped.
    fn dispatch_events(&self) {
        let mut sink = {
            let mut inner = self.inner.borrow_mut();
            if inner.dispatching {
                return;
            }
            inner.dispatching = true;
            inner.sink.take()
        };
        loop {
            let next = {
                let mut guard = self.inner.borrow_mut();
                let inner = &mut *guard;
                match inner.engine.poll_done() {
                    Some(done) => match inner.waits.remove(&done.id) {
                        Some(callbacks) => Some(Ok((done, callbacks))),
                        None => Some(Err(Notice::Done(done))),
                    },
                    None if inner.engine.has_events() => match &sink {
                        Some(_) => Some(Err(Notice::Events)),
                        None => {
                            while inner.engine.poll_event().is_some() {}
                            None
                        }
                    },
                    None => None,
                }
            };
            match next {
                Some(Ok((done, slot))) => slot.fill(done.result),
                Some(Err(notice)) => {
                    let events = matches!(notice, Notice::Events);
                    if let Some(sink) = &mut sink {
                        sink(notice);
                    }
                    // Events the binding did not take (it no longer hosts) are dropped.
                    if events {
                        while self.inner.borrow_mut().engine.poll_event().is_some() {}
                    }
                }
                None => break,
            }
        }
        let mut inner = self.inner.borrow_mut();
        if inner.sink.is_none() {
            inner.sink = sink;
        }
        inner.dispatching = false;
    }

    /// The engine's wait `id`, over when the engine says so: make it before the next
    /// [`Host::dispatch_events`].
    fn wait(&self, id: u64) -> Wait {
        let slot = Rc::new(WaitSlot::default());
        self.inner.borrow_mut().waits.insert(id, slot.clone());
        Wait(slot)
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
            Some(Backend::IndexedDb(db)) => db.segments(&page.segments).await,
            _ => Ok(Vec::new()),
        };
        let mut inner = self.inner.borrow_mut();
        if read.as_ref().is_err_and(StoreError::is_emptied) {
            inner.engine.store_emptied(now());
        }
        // A failed read is tried again after the next command.
        inner.engine.page_in_done(page, read.ok(), now());
        drop(inner);
        self.after();
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
            let result = db.write(&transaction.writes, transaction.clear).await;
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
    pub fn flush(&self) -> Wait {
        let id = self.inner.borrow_mut().engine.flush(now());
        let wait = self.wait(id);
        self.after();
        wait
    }

    /// Stops the clock and closes the database once pending writes are done.
    pub async fn close(&self) {
        let _ = self.flush().await;
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
