//! The JavaScript binding (wasm32 only): converts and delegates to the [`crate::host`].
//!
//! For now a `Broker` class with one confirm channel and amqplib's method names and
//! option names; the amqplib-compatible `connect()` API is built on the same host.

mod channel;
mod convert;

pub use channel::{RawBroker, RawChannel, RawConnection};

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;

use crate::core::fxhash::FxMap;
use crate::core::{AmqpError, ChannelRef, ExchangeDeclare, FieldValue, QueueDeclare};
use crate::host::{now, Event, Host, Storage};
use convert::{get, opt_bool, opt_string, opt_uint, set, table};

/// The package version, as built.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// A JS `Error` carrying the AMQP reply `code`.
pub(crate) fn to_js(e: AmqpError) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    let _ = Reflect::set(&err, &"code".into(), &JsValue::from(e.code.code()));
    err.into()
}

type Resolvers = Rc<RefCell<FxMap<(ChannelRef, u64), (Function, Function)>>>;

/// A broker in this context, with one confirm channel.
#[wasm_bindgen]
pub struct Broker {
    host: Host,
    channel: ChannelRef,
    /// The confirm sequence number the next publish gets on `channel`.
    next_seq: u64,
    confirms: Resolvers,
}

fn delivery_tag(v: &JsValue) -> Result<u64, JsValue> {
    let tag = match v.as_f64() {
        Some(n) => Some(n),
        None => get(&get(v, "fields"), "deliveryTag").as_f64(),
    };
    match tag {
        Some(n) if n >= 1.0 && n.fract() == 0.0 => Ok(n as u64),
        _ => Err(to_js(AmqpError::precondition("expected a message from get() or its fields.deliveryTag"))),
    }
}

fn get_now(host: &Host, ch: ChannelRef, queue: &str) -> Result<JsValue, JsValue> {
    let got = host.with(|core| core.get(ch, queue, false, now())).map_err(to_js)?;
    let Some(g) = got else { return Ok(JsValue::FALSE) };
    let d = &g.delivery;
    let fields = convert::Fields::Get {
        delivery_tag: d.delivery_tag,
        redelivered: d.redelivered,
        message_count: g.message_count,
    };
    Ok(convert::message_to_js(&d.message, fields, d.delivery_count))
}

#[wasm_bindgen]
impl Broker {
    /// Opens broker `name` (default `'default'`) in this context. `storage` is
    /// `'indexeddb'` (the default where IndexedDB exists), `'memory'` (the default
    /// elsewhere: nothing survives the context), or a storage adapter object
    /// `{ load(), write(writes) }` (see the README). With stored state, what the broker
    /// stored before (durable exchanges, queues, bindings, persistent messages not
    /// acked) is back.
    pub async fn open(name: Option<String>, storage: JsValue) -> Result<Broker, JsValue> {
        let name = name.unwrap_or_else(|| "default".into());
        crate::core::names::check("broker name", &name).map_err(to_js)?;
        let has_idb = Reflect::get(&js_sys::global(), &"indexedDB".into()).is_ok_and(|v| v.is_object());
        let storage = match storage.as_string().as_deref() {
            _ if storage.is_undefined() || storage.is_null() => {
                if has_idb {
                    Storage::IndexedDb
                } else {
                    Storage::Memory
                }
            }
            Some("memory") => Storage::Memory,
            Some("indexeddb") => Storage::IndexedDb,
            None if storage.is_object() => Storage::Adapter(storage),
            _ => {
                return Err(to_js(AmqpError::precondition(
                    "unknown storage: use 'indexeddb', 'memory', or an adapter object { load(), write(writes) }",
                )))
            }
        };
        let host = Host::open(&name, storage).await.map_err(to_js)?;
        let confirms: Resolvers = Rc::default();
        let sink = confirms.clone();
        host.on_event(Box::new(move |event| {
            let Event::Confirm { channel, seq, result } = event else { return };
            let Some((resolve, reject)) = sink.borrow_mut().remove(&(channel, seq)) else { return };
            let _ = match result {
                Ok(()) => resolve.call0(&JsValue::NULL),
                Err(e) => reject.call1(&JsValue::NULL, &to_js(e)),
            };
        }));
        let mut b =
            Broker { host, channel: ChannelRef { conn: crate::core::ConnId(0), channel: 0 }, next_seq: 1, confirms };
        b.open_channel()?;
        Ok(b)
    }

    fn open_channel(&mut self) -> Result<ChannelRef, JsValue> {
        let ch = self.host.with(|core| {
            let conn = core.connect();
            let ch = core.open_channel(conn)?;
            core.confirm_select(ch)?;
            Ok(ch)
        });
        self.channel = ch.map_err(to_js)?;
        self.next_seq = 1;
        Ok(self.channel)
    }

    /// The channel, opened again if an error closed it (as a channel error does in AMQP).
    fn channel(&mut self) -> Result<ChannelRef, JsValue> {
        if self.host.read(|core| core.has_channel(self.channel)) {
            Ok(self.channel)
        } else {
            self.open_channel()
        }
    }

    /// `'indexeddb'`, `'memory'` or `'adapter'`.
    #[wasm_bindgen(getter)]
    pub fn storage(&self) -> String {
        self.host.storage().into()
    }

    /// Stored records that recovery skipped (corrupt or foreign), each with why.
    #[wasm_bindgen(getter)]
    pub fn problems(&self) -> Array {
        self.host.problems().iter().map(|p| JsValue::from_str(p)).collect()
    }

    /// `assertQueue(name, options)` → `{queue, messageCount, consumerCount}`. Options as
    /// amqplib's: `durable` (default true), `exclusive`, `autoDelete`, `arguments`,
    /// `messageTtl`, `expires`, `deadLetterExchange`, `deadLetterRoutingKey`,
    /// `maxLength`, `maxPriority`.
    #[wasm_bindgen(js_name = assertQueue)]
    pub fn assert_queue(&mut self, name: &str, options: JsValue) -> Result<JsValue, JsValue> {
        let ch = self.channel()?;
        let mut arguments = table(&get(&options, "arguments"), "option 'arguments'").map_err(to_js)?;
        for (key, arg) in [
            ("messageTtl", "x-message-ttl"),
            ("expires", "x-expires"),
            ("maxLength", "x-max-length"),
            ("maxPriority", "x-max-priority"),
        ] {
            if let Some(n) = opt_uint(&options, key, 9.0e15).map_err(to_js)? {
                arguments.insert(arg.into(), FieldValue::Int(n as i64));
            }
        }
        for (key, arg) in
            [("deadLetterExchange", "x-dead-letter-exchange"), ("deadLetterRoutingKey", "x-dead-letter-routing-key")]
        {
            if let Some(s) = opt_string(&options, key).map_err(to_js)? {
                arguments.insert(arg.into(), FieldValue::Str(s));
            }
        }
        let durable = get(&options, "durable").as_bool().unwrap_or(true);
        let d = QueueDeclare {
            name: name.to_owned(),
            durable,
            exclusive: opt_bool(&options, "exclusive").map_err(to_js)?,
            auto_delete: opt_bool(&options, "autoDelete").map_err(to_js)?,
            arguments,
            passive: false,
        };
        let ok = self.host.with(|core| core.declare_queue(ch, d, now())).map_err(to_js)?;
        let out = Object::new();
        set(&out, "queue", &*ok.queue);
        set(&out, "messageCount", ok.message_count);
        set(&out, "consumerCount", ok.consumer_count);
        Ok(out.into())
    }

    /// `assertExchange(name, type, options)`: `durable` (default true), `internal`,
    /// `autoDelete`, `alternateExchange`, `arguments`.
    #[wasm_bindgen(js_name = assertExchange)]
    pub fn assert_exchange(&mut self, name: &str, kind: &str, options: JsValue) -> Result<JsValue, JsValue> {
        let ch = self.channel()?;
        let mut arguments = table(&get(&options, "arguments"), "option 'arguments'").map_err(to_js)?;
        if let Some(ae) = opt_string(&options, "alternateExchange").map_err(to_js)? {
            arguments.insert("alternate-exchange".into(), FieldValue::Str(ae));
        }
        let d = ExchangeDeclare {
            name: name.to_owned(),
            kind: kind.to_owned(),
            durable: get(&options, "durable").as_bool().unwrap_or(true),
            auto_delete: opt_bool(&options, "autoDelete").map_err(to_js)?,
            internal: opt_bool(&options, "internal").map_err(to_js)?,
            arguments,
            passive: false,
        };
        self.host.with(|core| core.declare_exchange(ch, d, now())).map_err(to_js)?;
        let out = Object::new();
        set(&out, "exchange", name);
        Ok(out.into())
    }

    /// `bindQueue(queue, source, pattern, args)`.
    #[wasm_bindgen(js_name = bindQueue)]
    pub fn bind_queue(&mut self, queue: &str, source: &str, pattern: &str, args: JsValue) -> Result<(), JsValue> {
        let ch = self.channel()?;
        let args = table(&args, "binding arguments").map_err(to_js)?;
        self.host.with(|core| core.bind_queue(ch, queue, source, pattern, args, now())).map_err(to_js)
    }

    /// `publish(exchange, routingKey, content, options)` → a promise that resolves when
    /// the broker confirms the message: for a persistent message in a durable queue,
    /// after the IndexedDB transaction holding it completed. It rejects with an
    /// `Error` (`code` 506) when the message could not be stored or a queue refused it.
    pub fn publish(&mut self, exchange: &str, routing_key: &str, content: JsValue, options: JsValue) -> Promise {
        match self.publish_inner(exchange, routing_key, &content, &options) {
            Ok(p) => p,
            Err(e) => Promise::reject(&e),
        }
    }

    fn publish_inner(
        &mut self,
        exchange: &str,
        key: &str,
        content: &JsValue,
        opts: &JsValue,
    ) -> Result<Promise, JsValue> {
        let ch = self.channel()?;
        let (message, mandatory) = convert::message(exchange, key, content, opts).map_err(to_js)?;
        let seq = self.next_seq;
        let confirms = self.confirms.clone();
        let promise = Promise::new(&mut |resolve, reject| {
            confirms.borrow_mut().insert((ch, seq), (resolve, reject));
        });
        match self.host.with(|core| core.publish(ch, message, mandatory, now())) {
            Ok(()) => {
                self.next_seq += 1;
                Ok(promise)
            }
            Err(e) => {
                self.confirms.borrow_mut().remove(&(ch, seq));
                Err(to_js(e))
            }
        }
    }

    /// `sendToQueue(queue, content, options)`: `publish` through the default exchange.
    #[wasm_bindgen(js_name = sendToQueue)]
    pub fn send_to_queue(&mut self, queue: &str, content: JsValue, options: JsValue) -> Promise {
        self.publish("", queue, content, options)
    }

    /// `get(queue)` → a promise of `{content, fields, properties}`, or `false` when the
    /// queue has no ready message (as amqplib). The message waits for `ack` or `nack`.
    pub fn get(&mut self, queue: String) -> Promise {
        let ch = match self.channel() {
            Ok(ch) => ch,
            Err(e) => return Promise::reject(&e),
        };
        let host = self.host.clone();
        if !host.read(|core| core.head_paged(&queue)) {
            return match get_now(&host, ch, &queue) {
                Ok(v) => Promise::resolve(&v),
                Err(e) => Promise::reject(&e),
            };
        }
        wasm_bindgen_futures::future_to_promise(async move {
            // Deep in a long queue: wait for the store to give the head back.
            wasm_bindgen_futures::JsFuture::from(host.head_loaded(&queue)).await?;
            get_now(&host, ch, &queue)
        })
    }

    /// `ack(message, allUpTo)`; the message from `get`, or its delivery tag.
    pub fn ack(&mut self, message: JsValue, all_up_to: Option<bool>) -> Result<(), JsValue> {
        let (ch, tag) = (self.channel()?, delivery_tag(&message)?);
        self.host.with(|core| core.ack(ch, tag, all_up_to.unwrap_or(false), now())).map_err(to_js)
    }

    /// `nack(message, allUpTo, requeue)`; `requeue` defaults to true, as in amqplib.
    pub fn nack(&mut self, message: JsValue, all_up_to: Option<bool>, requeue: Option<bool>) -> Result<(), JsValue> {
        let (ch, tag) = (self.channel()?, delivery_tag(&message)?);
        let (multiple, requeue) = (all_up_to.unwrap_or(false), requeue.unwrap_or(true));
        self.host.with(|core| core.nack(ch, tag, multiple, requeue, now())).map_err(to_js)
    }

    /// `purgeQueue(queue)` → `{messageCount}`.
    #[wasm_bindgen(js_name = purgeQueue)]
    pub fn purge_queue(&mut self, queue: &str) -> Result<JsValue, JsValue> {
        let ch = self.channel()?;
        let n = self.host.with(|core| core.purge_queue(ch, queue, now())).map_err(to_js)?;
        let out = Object::new();
        set(&out, "messageCount", n);
        Ok(out.into())
    }

    /// `deleteQueue(queue, {ifUnused, ifEmpty})` → `{messageCount}`.
    #[wasm_bindgen(js_name = deleteQueue)]
    pub fn delete_queue(&mut self, queue: &str, options: JsValue) -> Result<JsValue, JsValue> {
        let ch = self.channel()?;
        let if_unused = opt_bool(&options, "ifUnused").map_err(to_js)?;
        let if_empty = opt_bool(&options, "ifEmpty").map_err(to_js)?;
        let n = self.host.with(|core| core.delete_queue(ch, queue, if_unused, if_empty, now())).map_err(to_js)?;
        let out = Object::new();
        set(&out, "messageCount", n);
        Ok(out.into())
    }

    /// Ready messages in a queue, or `undefined` when there is no such queue.
    #[wasm_bindgen(js_name = messageCount)]
    pub fn message_count(&self, queue: &str) -> Option<u32> {
        self.host.read(|core| core.queue_info(queue).map(|q| q.ready as u32))
    }

    /// A queue's state: `{ready, readyBytes, pagedOut, unacked, consumers, durable}`, or
    /// `undefined` when there is no such queue.
    #[wasm_bindgen(js_name = queueInfo)]
    pub fn queue_info(&self, queue: &str) -> JsValue {
        let Some(q) = self.host.read(|core| core.queue_info(queue)) else { return JsValue::UNDEFINED };
        let out = Object::new();
        set(&out, "ready", q.ready as f64);
        set(&out, "readyBytes", q.ready_bytes as f64);
        set(&out, "pagedOut", q.paged as f64);
        set(&out, "unacked", q.unacked as f64);
        set(&out, "consumers", q.consumers as f64);
        set(&out, "durable", q.durable);
        out.into()
    }

    /// Resolves when every write made so far has committed to storage.
    pub fn flush(&self) -> Promise {
        self.host.flush()
    }

    /// Waits for pending writes, then closes the database. Unacked messages stay stored.
    pub async fn close(&self) {
        self.host.close().await;
    }
}
