//! The context that hosts a broker (wasm32): it owns the core, feeds its store ops to
//! the [`Log`], commits each event-loop turn's writes in one IndexedDB transaction
//! (group commit), holds publisher confirms until that transaction's `complete` event,
//! and runs the broker's clock with a timer.
//!
//! One transaction is in flight at a time; writes of the turns that pass meanwhile
//! gather into the next one, so batches grow with load and confirms cost one commit
//! per batch, not per message.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use crate::core::{AmqpError, Broker, BrokerConfig, ChannelRef, Confirm, Effect, ReplyCode};
use crate::store::indexeddb::{IndexedDb, StoreError};
use crate::store::{restore, Log};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

pub fn now() -> u64 {
    js_sys::Date::now() as u64
}

/// Where a broker keeps durable state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    IndexedDb,
    /// Nothing survives the context: durable queues behave as transient ones.
    Memory,
}

/// Someone waiting for writes to commit: a publisher confirm, or `flush()`.
enum Waiter {
    Confirm { channel: ChannelRef, seq: u64 },
    Flush(Function, Function),
}

/// How a confirm ends: `Ok` for an ack, `Err` with why for a nack.
pub type ConfirmResult = Result<(), AmqpError>;

/// Called with each settled confirm of a channel, in order.
pub type ConfirmSink = Box<dyn FnMut(ChannelRef, u64, ConfirmResult)>;

struct Inner {
    core: Broker,
    log: Option<Log>,
    db: Option<Rc<IndexedDb>>,
    /// Waiters for the writes not yet in a batch.
    held: Vec<Waiter>,
    /// Waiters for the batch in flight.
    in_flight: Option<Vec<Waiter>>,
    flush_scheduled: bool,
    timer: Option<(u64, JsValue)>,
    tick: Option<Closure<dyn FnMut()>>,
    confirm_sink: Option<ConfirmSink>,
    closed: bool,
}

/// A broker hosted in this context.
#[derive(Clone)]
pub struct Host {
    inner: Rc<RefCell<Inner>>,
    storage: Storage,
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
    } else {
        AmqpError::new(
            ReplyCode::ResourceError,
            format!("the store refused the write ({e}): the message was not stored"),
        )
    }
}

impl Host {
    /// Opens broker `name`: with IndexedDB, loads and restores what it holds.
    pub async fn open(name: &str, storage: Storage) -> Result<Host, AmqpError> {
        let seed = (js_sys::Math::random() * 9.0e15) as u64;
        let mut core = Broker::new(BrokerConfig { seed, ..Default::default() });
        let (mut log, mut db, mut problems) = (None, None, Vec::new());
        if storage == Storage::IndexedDb {
            let opened = IndexedDb::open(&format!("tabbit:{name}")).await.map_err(|e| {
                AmqpError::new(
                    ReplyCode::ResourceError,
                    format!(
                        "cannot open IndexedDB for broker '{name}' ({e}); to run without durability, \
                         connect with storage: 'memory'"
                    ),
                )
            })?;
            let (records, skipped) = opened.load().await.map_err(|e| {
                AmqpError::new(ReplyCode::ResourceError, format!("cannot read broker '{name}' from IndexedDB ({e})"))
            })?;
            problems = skipped;
            let (l, recovered) = Log::recover(records);
            problems.extend(restore(&mut core, recovered, now()));
            log = Some(l);
            db = Some(Rc::new(opened));
        }
        let inner = Rc::new(RefCell::new(Inner {
            core,
            log,
            db,
            held: Vec::new(),
            in_flight: None,
            flush_scheduled: false,
            timer: None,
            tick: None,
            confirm_sink: None,
            closed: false,
        }));
        let weak = Rc::downgrade(&inner);
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

    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// Records that recovery skipped, each with why.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Where settled confirms go.
    pub fn on_confirm(&self, sink: ConfirmSink) {
        self.inner.borrow_mut().confirm_sink = Some(sink);
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
        let mut settled: Vec<(ChannelRef, u64, ConfirmResult)> = Vec::new();
        {
            let mut guard = self.inner.borrow_mut();
            let inner = &mut *guard;
            while let Some(effect) = inner.core.poll_effect() {
                match effect {
                    Effect::Store(op) => {
                        if let Some(log) = &mut inner.log {
                            log.apply(&op);
                        }
                    }
                    Effect::Confirm(Confirm { channel, seq, ack, durable }) => {
                        if !ack {
                            let e = AmqpError::new(
                                ReplyCode::ResourceError,
                                "a queue refused the message (x-overflow reject-publish: it is full); consume or purge it",
                            );
                            settled.push((channel, seq, Err(e)));
                        } else if durable && inner.log.is_some() {
                            inner.held.push(Waiter::Confirm { channel, seq });
                        } else {
                            settled.push((channel, seq, Ok(())));
                        }
                    }
                    // No consumers or mandatory publishes in this binding yet.
                    Effect::Deliver(_) | Effect::Return(_) | Effect::ConsumerCancelled { .. } => {}
                    Effect::ChannelClosed { .. } => {}
                }
            }
            let wants_flush = inner.log.as_ref().is_some_and(Log::has_pending) || !inner.held.is_empty();
            if wants_flush && !inner.flush_scheduled && inner.in_flight.is_none() {
                inner.flush_scheduled = true;
                let host = self.clone();
                // Runs after the current task's synchronous code: one batch per turn.
                spawn_local(async move { host.flush_now().await });
            }
            Self::arm_timer(inner);
        }
        self.deliver_confirms(settled);
    }

    fn deliver_confirms(&self, settled: Vec<(ChannelRef, u64, ConfirmResult)>) {
        if settled.is_empty() {
            return;
        }
        let sink = self.inner.borrow_mut().confirm_sink.take();
        if let Some(mut sink) = sink {
            for (ch, seq, r) in settled {
                sink(ch, seq, r);
            }
            let mut inner = self.inner.borrow_mut();
            if inner.confirm_sink.is_none() {
                inner.confirm_sink = Some(sink);
            }
        }
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
    /// while more gathered meanwhile.
    async fn flush_now(&self) {
        loop {
            let (batch, waiters, db) = {
                let mut inner = self.inner.borrow_mut();
                inner.flush_scheduled = false;
                if inner.in_flight.is_some() {
                    return;
                }
                let now = now();
                let batch = inner.log.as_mut().and_then(|l| l.take_batch(now));
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
            let more = {
                let mut inner = self.inner.borrow_mut();
                // `flush()` calls that came while this batch was in flight wait for it too.
                let late = inner.in_flight.take().unwrap_or_default();
                if let (Err(_), Some(b)) = (&result, batch) {
                    if let Some(log) = &mut inner.log {
                        log.batch_failed(b);
                    }
                }
                let done = waiters.into_iter().chain(late);
                self.settle_waiters(done, result.as_ref().err());
                inner.log.as_ref().is_some_and(Log::has_pending) || !inner.held.is_empty()
            };
            if !more {
                return;
            }
        }
    }

    fn settle_waiters(&self, waiters: impl Iterator<Item = Waiter>, error: Option<&StoreError>) {
        let mut settled = Vec::new();
        for w in waiters {
            let result = match error {
                None => Ok(()),
                Some(e) => Err(storage_error(e)),
            };
            match w {
                Waiter::Confirm { channel, seq } => settled.push((channel, seq, result)),
                Waiter::Flush(resolve, reject) => {
                    let _ = match result {
                        Ok(()) => resolve.call0(&JsValue::NULL),
                        Err(e) => reject.call1(&JsValue::NULL, &crate::api::to_js(e)),
                    };
                }
            }
        }
        if settled.is_empty() {
            return;
        }
        // The sink may call back into the broker: run it without the borrow, in a microtask.
        let host = self.clone();
        spawn_local(async move { host.deliver_confirms(settled) });
    }

    /// Resolves when every write made so far has committed; rejects if one failed.
    pub fn flush(&self) -> Promise {
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
        if let Some(db) = inner.db.take() {
            db.close();
        }
        inner.log = None;
    }
}
