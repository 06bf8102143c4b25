//! The amqplib-shaped classes under the package's `connect()` (`js/index.js` wraps them
//! in promises and events): `RawBroker` (one per broker name in a context),
//! `RawConnection`, `RawChannel`. Methods answer at once or throw an `Error` with the
//! AMQP `code`; the host's events reach each channel's consumers, confirm callbacks and
//! `emit` function.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise};
use wasm_bindgen::prelude::*;

use super::convert::{self, get, opt_bool, set, table, Fields};
use super::to_js;
use crate::core::fxhash::FxMap;
use crate::core::{AmqpError, ChannelRef, ConnId, Delivery, ReplyCode};
use crate::host::{now, Event, Host, Storage};

/// What a channel's JS side listens with.
struct Handlers {
    /// Consumer tag → the callback that takes each message (and `null` when the broker
    /// cancels the consumer).
    consumers: FxMap<Rc<str>, Function>,
    /// Confirm sequence number → the publish callback `(err) => …`, if one was given.
    callbacks: FxMap<u64, Function>,
    /// Publishes not yet confirmed.
    outstanding: BTreeSet<u64>,
    /// `waitForConfirms()` calls: every publish up to `upto` settles first.
    waiters: Vec<ConfirmWaiter>,
    /// `emit(name, arg)`: the JS channel's events (`return`, `error`, `close`).
    emit: Function,
}

struct ConfirmWaiter {
    upto: u64,
    resolve: Function,
    reject: Function,
    nacked: bool,
}

impl Handlers {
    /// Resolves the `waitForConfirms` calls whose publishes have all settled.
    fn settle_waiters(&mut self) {
        let first_open = self.outstanding.first().copied().unwrap_or(u64::MAX);
        self.waiters.retain(|w| {
            if w.upto >= first_open {
                return true;
            }
            let _ = match w.nacked {
                false => w.resolve.call0(&JsValue::NULL),
                true => w.reject.call1(
                    &JsValue::NULL,
                    &to_js(AmqpError::new(
                        ReplyCode::ResourceError,
                        "a message published before waitForConfirms was nacked: its publish callback has the reason",
                    )),
                ),
            };
            false
        });
    }

    /// The channel is gone: every pending confirm fails with `error`.
    fn fail_all(&mut self, error: &JsValue) {
        for (_, cb) in self.callbacks.drain() {
            let _ = cb.call1(&JsValue::NULL, error);
        }
        self.outstanding.clear();
        for w in self.waiters.drain(..) {
            let _ = w.reject.call1(&JsValue::NULL, error);
        }
    }
}

type Routes = Rc<RefCell<FxMap<ChannelRef, Handlers>>>;

/// Calls a JS callback; an exception it throws is reported as uncaught, not swallowed,
/// and does not stop the broker.
fn call(f: &Function, arg: &JsValue) {
    if let Err(e) = f.call1(&JsValue::NULL, arg) {
        convert::report_uncaught(&e);
    }
}

fn delivered(d: &Delivery, message_count: Option<u32>) -> JsValue {
    let (delivery_tag, redelivered) = (d.delivery_tag, d.redelivered);
    let fields = match (message_count, d.consumer_tag.as_deref()) {
        (Some(message_count), _) => Fields::Get { delivery_tag, redelivered, message_count },
        (None, tag) => Fields::Consume { consumer_tag: tag.unwrap_or(""), delivery_tag, redelivered },
    };
    convert::message_to_js(&d.message, fields, d.delivery_count)
}

/// Routes the host's events to the channels' handlers.
fn route(routes: &Routes, event: Event) {
    let mut routes = routes.borrow_mut();
    match event {
        Event::Confirm { channel, seq, result } => {
            let Some(h) = routes.get_mut(&channel) else { return };
            h.outstanding.remove(&seq);
            let err = result.err().map(to_js);
            if err.is_some() {
                for w in h.waiters.iter_mut().filter(|w| w.upto >= seq) {
                    w.nacked = true;
                }
            }
            let cb = h.callbacks.remove(&seq);
            h.settle_waiters();
            drop(routes);
            if let Some(cb) = cb {
                call(&cb, &err.unwrap_or(JsValue::NULL));
            }
        }
        Event::Deliver(d) => {
            let tag = d.consumer_tag.clone().unwrap_or_else(|| "".into());
            let Some(f) = routes.get(&d.channel).and_then(|h| h.consumers.get(&tag)).cloned() else { return };
            drop(routes);
            call(&f, &delivered(&d, None));
        }
        Event::Return(r) => {
            let Some(emit) = routes.get(&r.channel).map(|h| h.emit.clone()) else { return };
            drop(routes);
            let fields = Fields::Return { reply_code: r.reply_code, reply_text: r.reply_text };
            let msg = convert::message_to_js(&r.message, fields, 0);
            let _ = emit.call2(&JsValue::NULL, &"return".into(), &msg);
        }
        Event::ConsumerCancelled { channel, consumer_tag } => {
            let Some(f) = routes.get_mut(&channel).and_then(|h| h.consumers.remove(&consumer_tag)) else { return };
            drop(routes);
            call(&f, &JsValue::NULL);
        }
        Event::ChannelClosed { channel, error } => {
            let Some(mut h) = routes.remove(&channel) else { return };
            drop(routes);
            let err = to_js(error);
            h.fail_all(&err);
            let _ = h.emit.call2(&JsValue::NULL, &"error".into(), &err);
            let _ = h.emit.call2(&JsValue::NULL, &"close".into(), &JsValue::UNDEFINED);
        }
    }
}

/// A broker hosted in this context, shared by every connection to its name.
#[wasm_bindgen]
pub struct RawBroker {
    host: Host,
    routes: Routes,
}

#[wasm_bindgen]
impl RawBroker {
    /// Opens broker `name`; `storage` as `connect()`'s option.
    pub async fn open(name: String, storage: JsValue) -> Result<RawBroker, JsValue> {
        crate::core::names::check("broker name", &name).map_err(to_js)?;
        let storage = Storage::from_js(&storage).map_err(to_js)?;
        let host = Host::open(&name, storage).await.map_err(to_js)?;
        let routes: Routes = Rc::default();
        let r = routes.clone();
        host.on_event(Box::new(move |event| route(&r, event)));
        Ok(RawBroker { host, routes })
    }

    /// A new connection (amqplib's `connect()` result).
    pub fn connect(&self) -> RawConnection {
        let conn = self.host.with(|core| core.connect());
        RawConnection { host: self.host.clone(), routes: self.routes.clone(), conn }
    }

    #[wasm_bindgen(getter)]
    pub fn storage(&self) -> String {
        self.host.storage().into()
    }

    /// Stored records that recovery skipped, each with why.
    #[wasm_bindgen(getter)]
    pub fn problems(&self) -> Array {
        self.host.problems().iter().map(|p| JsValue::from_str(p)).collect()
    }

    /// Resolves when every write made so far has committed.
    pub fn flush(&self) -> Promise {
        self.host.flush()
    }

    /// Waits for pending writes, then closes storage.
    pub async fn close(&self) {
        self.host.close().await;
    }

    /// The broker's state for the management view: `{queues: [{name, durable, exclusive,
    /// autoDelete, arguments, ready, readyBytes, pagedOut, unacked, consumers,
    /// published, delivered, redelivered, acked, deadLettered, discarded}], storage}`.
    pub fn stats(&self) -> JsValue {
        let out = Object::new();
        let queues: Array = self.host.read(|core| {
            core.queue_names()
                .iter()
                .filter_map(|n| core.queue_info(n))
                .map(|q| {
                    let o = Object::new();
                    set(&o, "name", &*q.name);
                    set(&o, "durable", q.durable);
                    set(&o, "exclusive", q.exclusive);
                    set(&o, "autoDelete", q.auto_delete);
                    set(&o, "arguments", convert::table_to_js(&q.arguments));
                    set(&o, "ready", q.ready as f64);
                    set(&o, "readyBytes", q.ready_bytes as f64);
                    set(&o, "pagedOut", q.paged as f64);
                    set(&o, "unacked", q.unacked as f64);
                    set(&o, "consumers", q.consumers as f64);
                    let c = q.counters;
                    set(&o, "published", c.enqueued as f64);
                    set(&o, "delivered", c.delivered as f64);
                    set(&o, "redelivered", c.redelivered as f64);
                    set(&o, "acked", (c.acked + c.auto_acked) as f64);
                    set(&o, "deadLettered", c.dead_lettered as f64);
                    set(&o, "discarded", (c.discarded + c.purged) as f64);
                    JsValue::from(o)
                })
                .collect()
        });
        set(&out, "queues", queues);
        set(&out, "storage", self.host.storage());
        out.into()
    }
}

/// One `connect()`: its channels and exclusive queues go when it closes.
#[wasm_bindgen]
pub struct RawConnection {
    host: Host,
    routes: Routes,
    conn: ConnId,
}

#[wasm_bindgen]
impl RawConnection {
    /// A new channel; `confirm` makes it a confirm channel. `emit(name, arg)` receives
    /// its `return`, `error` and `close` events.
    #[wasm_bindgen(js_name = createChannel)]
    pub fn create_channel(&self, confirm: bool, emit: Function) -> Result<RawChannel, JsValue> {
        let conn = self.conn;
        let ch = self
            .host
            .with(|core| {
                let ch = core.open_channel(conn)?;
                if confirm {
                    core.confirm_select(ch)?;
                }
                Ok(ch)
            })
            .map_err(to_js)?;
        let handlers = Handlers {
            consumers: FxMap::default(),
            callbacks: FxMap::default(),
            outstanding: BTreeSet::new(),
            waiters: Vec::new(),
            emit,
        };
        self.routes.borrow_mut().insert(ch, handlers);
        Ok(RawChannel { host: self.host.clone(), routes: self.routes.clone(), ch, confirm, next_seq: Cell::new(1) })
    }

    /// Closes every channel of the connection (their unacked messages go back to their
    /// queues) and deletes its exclusive queues.
    pub fn close(&self) {
        let conn = self.conn;
        self.host.with(|core| core.disconnect(conn, now()));
        let gone: Vec<ChannelRef> = self.routes.borrow().keys().filter(|c| c.conn == conn).copied().collect();
        for ch in gone {
            close_handlers(&self.routes, ch);
        }
    }
}

/// A channel closed by the app: its pending confirms fail, and it says `close`.
fn close_handlers(routes: &Routes, ch: ChannelRef) {
    let Some(mut h) = routes.borrow_mut().remove(&ch) else { return };
    h.fail_all(&to_js(AmqpError::new(ReplyCode::ChannelError, "channel closed before the broker confirmed")));
    let _ = h.emit.call2(&JsValue::NULL, &"close".into(), &JsValue::UNDEFINED);
}

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        set(&o, k, v.clone());
    }
    o.into()
}

fn delivery_tag(v: &JsValue) -> Result<u64, JsValue> {
    let tag = v.as_f64().or_else(|| get(&get(v, "fields"), "deliveryTag").as_f64());
    match tag {
        Some(n) if n >= 1.0 && n.fract() == 0.0 => Ok(n as u64),
        _ => Err(to_js(AmqpError::precondition(
            "expected a message this channel delivered (from consume or get), or its fields.deliveryTag",
        ))),
    }
}

/// One channel, amqplib's method names and argument order.
#[wasm_bindgen]
pub struct RawChannel {
    host: Host,
    routes: Routes,
    ch: ChannelRef,
    confirm: bool,
    /// The confirm sequence number of the next publish.
    next_seq: Cell<u64>,
}

type R<T> = Result<T, JsValue>;

#[wasm_bindgen]
impl RawChannel {
    fn run<T>(&self, f: impl FnOnce(&mut crate::core::Broker, ChannelRef, u64) -> crate::core::Result<T>) -> R<T> {
        let ch = self.ch;
        self.host.with(|core| f(core, ch, now())).map_err(to_js)
    }

    /// For the calls that answer nothing (publish, ack, nack, reject): on a closed channel
    /// they throw; a channel error they cause closes the channel and reaches the app as
    /// its `error` and `close` events (and failed confirms), as in amqplib.
    fn run_or_event(
        &self,
        f: impl FnOnce(&mut crate::core::Broker, ChannelRef, u64) -> crate::core::Result<()>,
    ) -> R<()> {
        if !self.host.read(|core| core.has_channel(self.ch)) {
            return Err(to_js(AmqpError::new(ReplyCode::ChannelError, "channel is closed: open a new one")));
        }
        let _ = self.run(f);
        Ok(())
    }

    #[wasm_bindgen(js_name = assertQueue)]
    pub fn assert_queue(&self, name: &str, options: JsValue) -> R<JsValue> {
        self.declare_queue(name, &options, false)
    }

    #[wasm_bindgen(js_name = checkQueue)]
    pub fn check_queue(&self, name: &str) -> R<JsValue> {
        self.declare_queue(name, &JsValue::UNDEFINED, true)
    }

    fn declare_queue(&self, name: &str, options: &JsValue, passive: bool) -> R<JsValue> {
        let d = convert::queue_declare(name, options, passive).map_err(to_js)?;
        let ok = self.run(|core, ch, now| core.declare_queue(ch, d, now))?;
        Ok(obj(&[
            ("queue", JsValue::from_str(&ok.queue)),
            ("messageCount", ok.message_count.into()),
            ("consumerCount", ok.consumer_count.into()),
        ]))
    }

    #[wasm_bindgen(js_name = deleteQueue)]
    pub fn delete_queue(&self, name: &str, options: JsValue) -> R<JsValue> {
        let if_unused = opt_bool(&options, "ifUnused").map_err(to_js)?;
        let if_empty = opt_bool(&options, "ifEmpty").map_err(to_js)?;
        let n = self.run(|core, ch, now| core.delete_queue(ch, name, if_unused, if_empty, now))?;
        Ok(obj(&[("messageCount", n.into())]))
    }

    #[wasm_bindgen(js_name = purgeQueue)]
    pub fn purge_queue(&self, name: &str) -> R<JsValue> {
        let n = self.run(|core, ch, now| core.purge_queue(ch, name, now))?;
        Ok(obj(&[("messageCount", n.into())]))
    }

    #[wasm_bindgen(js_name = bindQueue)]
    pub fn bind_queue(&self, queue: &str, source: &str, pattern: &str, args: JsValue) -> R<()> {
        let args = table(&args, "binding arguments").map_err(to_js)?;
        self.run(|core, ch, now| core.bind_queue(ch, queue, source, pattern, args, now))
    }

    #[wasm_bindgen(js_name = unbindQueue)]
    pub fn unbind_queue(&self, queue: &str, source: &str, pattern: &str, args: JsValue) -> R<()> {
        let args = table(&args, "binding arguments").map_err(to_js)?;
        self.run(|core, ch, now| core.unbind_queue(ch, queue, source, pattern, args, now))
    }

    #[wasm_bindgen(js_name = assertExchange)]
    pub fn assert_exchange(&self, name: &str, kind: &str, options: JsValue) -> R<JsValue> {
        let d = convert::exchange_declare(name, kind, &options, false).map_err(to_js)?;
        self.run(|core, ch, now| core.declare_exchange(ch, d, now))?;
        Ok(obj(&[("exchange", JsValue::from_str(name))]))
    }

    #[wasm_bindgen(js_name = checkExchange)]
    pub fn check_exchange(&self, name: &str) -> R<()> {
        let d = convert::exchange_declare(name, "", &JsValue::UNDEFINED, true).map_err(to_js)?;
        self.run(|core, ch, now| core.declare_exchange(ch, d, now))
    }

    #[wasm_bindgen(js_name = deleteExchange)]
    pub fn delete_exchange(&self, name: &str, options: JsValue) -> R<()> {
        let if_unused = opt_bool(&options, "ifUnused").map_err(to_js)?;
        self.run(|core, ch, now| core.delete_exchange(ch, name, if_unused, now))
    }

    #[wasm_bindgen(js_name = bindExchange)]
    pub fn bind_exchange(&self, destination: &str, source: &str, pattern: &str, args: JsValue) -> R<()> {
        let args = table(&args, "binding arguments").map_err(to_js)?;
        self.run(|core, ch, now| core.bind_exchange(ch, destination, source, pattern, args, now))
    }

    #[wasm_bindgen(js_name = unbindExchange)]
    pub fn unbind_exchange(&self, destination: &str, source: &str, pattern: &str, args: JsValue) -> R<()> {
        let args = table(&args, "binding arguments").map_err(to_js)?;
        self.run(|core, ch, now| core.unbind_exchange(ch, destination, source, pattern, args, now))
    }

    /// `publish(exchange, routingKey, content, options, callback)` → `true`. On a confirm
    /// channel `callback(err)` runs when the broker confirms (`err` null) or refuses the
    /// message. A bad argument throws; a channel error (e.g. no such exchange) closes the
    /// channel with an `error` event, as in amqplib.
    pub fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        content: JsValue,
        options: JsValue,
        callback: Option<Function>,
    ) -> R<bool> {
        let (message, mandatory) = convert::message(exchange, routing_key, &content, &options).map_err(to_js)?;
        let seq = self.next_seq.get();
        if self.confirm {
            if let Some(h) = self.routes.borrow_mut().get_mut(&self.ch) {
                h.outstanding.insert(seq);
                if let Some(cb) = callback {
                    h.callbacks.insert(seq, cb);
                }
            }
        }
        self.run_or_event(|core, ch, now| core.publish(ch, message, mandatory, now))?;
        self.next_seq.set(seq + self.confirm as u64);
        Ok(true)
    }

    /// Resolves once every message published so far is confirmed; rejects if one was
    /// refused. On a channel without confirms it resolves at once.
    #[wasm_bindgen(js_name = waitForConfirms)]
    pub fn wait_for_confirms(&self) -> Promise {
        let upto = self.next_seq.get() - 1;
        let routes = self.routes.clone();
        let ch = self.ch;
        Promise::new(&mut |resolve, reject| {
            let mut routes = routes.borrow_mut();
            match routes.get_mut(&ch) {
                Some(h) => {
                    h.waiters.push(ConfirmWaiter { upto, resolve, reject, nacked: false });
                    h.settle_waiters();
                }
                None => {
                    let _ = resolve.call0(&JsValue::NULL);
                }
            }
        })
    }

    /// `consume(queue, callback, options)` → the consumer tag. `callback(message)` runs
    /// for each delivery, and with `null` if the broker cancels the consumer.
    pub fn consume(&self, queue: &str, callback: Function, options: JsValue) -> R<String> {
        let mut c = convert::consume(queue, &options).map_err(to_js)?;
        if c.consumer_tag.is_empty() {
            // Named here, so that the callback is in place before the first delivery.
            c.consumer_tag = format!("amq.ctag-{:016x}", (js_sys::Math::random() * 1.8e19) as u64);
        }
        let tag: Rc<str> = c.consumer_tag.as_str().into();
        let previous = match self.routes.borrow_mut().get_mut(&self.ch) {
            Some(h) => h.consumers.insert(tag.clone(), callback),
            None => return Err(to_js(AmqpError::new(ReplyCode::ChannelError, "channel is closed: open a new one"))),
        };
        let started = self.run(|core, ch, now| core.consume(ch, c, now));
        if let Err(e) = started {
            if let (Some(h), Some(p)) = (self.routes.borrow_mut().get_mut(&self.ch), previous) {
                h.consumers.insert(tag, p); // a duplicate tag: the first consumer keeps it
            }
            return Err(e);
        }
        Ok(tag.to_string())
    }

    /// `cancel(consumerTag)`: no more deliveries; those not acked stay with the channel.
    pub fn cancel(&self, consumer_tag: &str) -> R<JsValue> {
        self.run(|core, ch, now| core.cancel(ch, consumer_tag, now))?;
        if let Some(h) = self.routes.borrow_mut().get_mut(&self.ch) {
            h.consumers.remove(consumer_tag);
        }
        Ok(obj(&[("consumerTag", JsValue::from_str(consumer_tag))]))
    }

    /// `get(queue, {noAck})` → a promise of a message or `false`.
    pub fn get(&self, queue: String, options: JsValue) -> Promise {
        let no_ack = match opt_bool(&options, "noAck") {
            Ok(b) => b,
            Err(e) => return Promise::reject(&to_js(e)),
        };
        let (host, ch) = (self.host.clone(), self.ch);
        if !host.read(|core| core.head_paged(&queue)) {
            return settled(get_now(&host, ch, &queue, no_ack));
        }
        wasm_bindgen_futures::future_to_promise(async move {
            // Deep in a long queue: wait for the store to give the head back.
            wasm_bindgen_futures::JsFuture::from(host.head_loaded(&queue)).await?;
            get_now(&host, ch, &queue, no_ack)
        })
    }

    /// `ack(message, allUpTo)`.
    pub fn ack(&self, message: JsValue, all_up_to: Option<bool>) -> R<()> {
        let tag = delivery_tag(&message)?;
        self.run_or_event(|core, ch, now| core.ack(ch, tag, all_up_to.unwrap_or(false), now))
    }

    /// `ackAll()`.
    #[wasm_bindgen(js_name = ackAll)]
    pub fn ack_all(&self) -> R<()> {
        self.run_or_event(|core, ch, now| core.ack(ch, 0, true, now))
    }

    /// `nack(message, allUpTo, requeue)`; `requeue` defaults to true, as in amqplib.
    pub fn nack(&self, message: JsValue, all_up_to: Option<bool>, requeue: Option<bool>) -> R<()> {
        let tag = delivery_tag(&message)?;
        let (multiple, requeue) = (all_up_to.unwrap_or(false), requeue.unwrap_or(true));
        self.run_or_event(|core, ch, now| core.nack(ch, tag, multiple, requeue, now))
    }

    /// `nackAll(requeue)`.
    #[wasm_bindgen(js_name = nackAll)]
    pub fn nack_all(&self, requeue: Option<bool>) -> R<()> {
        self.run_or_event(|core, ch, now| core.nack(ch, 0, true, requeue.unwrap_or(true), now))
    }

    /// `reject(message, requeue)`.
    pub fn reject(&self, message: JsValue, requeue: Option<bool>) -> R<()> {
        let tag = delivery_tag(&message)?;
        self.run_or_event(|core, ch, now| core.reject(ch, tag, requeue.unwrap_or(true), now))
    }

    /// `prefetch(count, global)`.
    pub fn prefetch(&self, count: f64, global: Option<bool>) -> R<()> {
        if !(0.0..=65535.0).contains(&count) || count.fract() != 0.0 {
            return Err(to_js(AmqpError::precondition("prefetch: expected a whole number from 0 to 65535")));
        }
        self.run(|core, ch, now| core.prefetch(ch, count as u32, global.unwrap_or(false), now))
    }

    /// `recover()`: every unacked message of the channel goes back to its queue.
    pub fn recover(&self) -> R<()> {
        self.run(|core, ch, now| core.recover(ch, now))
    }

    /// `close()`: unacked messages go back to their queues; pending confirms fail.
    pub fn close(&self) -> R<()> {
        let ch = self.ch;
        if self.host.read(|core| core.has_channel(ch)) {
            self.run(|core, ch, now| core.close_channel(ch, now))?;
        }
        close_handlers(&self.routes, ch);
        Ok(())
    }
}

fn get_now(host: &Host, ch: ChannelRef, queue: &str, no_ack: bool) -> R<JsValue> {
    let got = host.with(|core| core.get(ch, queue, no_ack, now())).map_err(to_js)?;
    Ok(got.map_or(JsValue::FALSE, |g| delivered(&g.delivery, Some(g.message_count))))
}

fn settled(r: R<JsValue>) -> Promise {
    match r {
        Ok(v) => Promise::resolve(&v),
        Err(e) => Promise::reject(&e),
    }
}
