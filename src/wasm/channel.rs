//! The amqplib-shaped classes under the package's `connect()` (`index.js` wraps them in
//! promises and events): `RawBroker` (one per broker name in a context), `RawConnection`,
//! `RawChannel`. Each method converts and checks its arguments (a bad one throws an `Error`
//! with the AMQP `code`), then goes through the [`Link`] as a frame to whoever hosts, this
//! context included: a method that answers returns a promise of the answer.

use std::rc::Rc;

use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;

use super::convert::{self, opt_bool, table};
use super::link::Link;
use super::to_js;
use crate::core::AmqpError;
use crate::mesh::frame::Command;
use crate::mesh::resource_prefix;

type R<T> = Result<T, JsValue>;

/// The prefix of broker `name`'s origin-wide resources in app `app` (see
/// [`resource_prefix`]): `connect()` keys the brokers open in a context by it. Throws a 406
/// for a name or app that could collide.
#[wasm_bindgen(js_name = resourcePrefix)]
pub fn resource_prefix_js(name: &str, app: Option<String>) -> R<String> {
    resource_prefix(name, app.as_deref()).map_err(to_js)
}

/// A broker name joined in this context, shared by every connection to it.
#[wasm_bindgen]
pub struct RawBroker {
    link: Rc<Link>,
}

#[wasm_bindgen]
impl RawBroker {
    /// Opens broker `name` of app `app` (see [`resource_prefix`]); `storage` as `connect()`'s
    /// option. With `mesh` (the default where Web Locks and BroadcastChannel exist) every
    /// context of the origin that opens the name in the app joins one broker, hosted by one of them.
    pub async fn open(
        name: String,
        storage: JsValue,
        mesh: Option<bool>,
        label: Option<String>,
        limits: JsValue,
        app: Option<String>,
    ) -> Result<RawBroker, JsValue> {
        let prefix = resource_prefix(&name, app.as_deref()).map_err(to_js)?;
        let limits = convert::limits(&limits).map_err(to_js)?;
        let link = Link::open(&prefix, storage, mesh.unwrap_or(true), label, limits).await?;
        Ok(RawBroker { link })
    }

    /// A new connection (amqplib's `connect()` result).
    pub fn connect(&self) -> RawConnection {
        RawConnection { link: self.link.clone(), conn: self.link.next_id() }
    }

    #[wasm_bindgen(getter)]
    pub fn storage(&self) -> String {
        self.link.storage_name().into()
    }

    /// Whether this context hosts the broker now.
    #[wasm_bindgen(getter)]
    pub fn hosting(&self) -> bool {
        self.link.hosting()
    }

    /// This context's id in the mesh.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.link.me().to_string()
    }

    /// `fn({hosting, cancelled})` runs after another context took over hosting and this
    /// context's channels were rebuilt; `cancelled` lists the consumer tags that could not
    /// be (their queue is gone), whose callbacks got `null`.
    #[wasm_bindgen(js_name = onFailover)]
    pub fn on_failover(&self, f: Option<Function>) {
        self.link.set_on_failover(f);
    }

    /// Stored records that recovery skipped, each with why.
    #[wasm_bindgen(getter)]
    pub fn problems(&self) -> Array {
        self.link.problems().iter().map(|p| JsValue::from_str(p)).collect()
    }

    /// When this context's engine next has something due (a message's TTL, a delayed
    /// message, an `x-expires` lease, a retry after a failed write): ms since the epoch, or
    /// `None` (null) if nothing is, or if another context hosts. For hosts that must wake
    /// the broker themselves, such as a Durable Object's alarm.
    #[wasm_bindgen(js_name = nextWakeup)]
    pub fn next_wakeup(&self) -> Option<f64> {
        self.link.host()?.engine(|e| e.next_wakeup()).map(|at| at as f64)
    }

    /// Resolves when every write made so far has committed.
    pub fn flush(&self) -> Promise {
        self.link.flush()
    }

    /// Waits for pending writes, then closes storage and leaves the mesh.
    pub async fn close(&self) {
        self.link.close().await;
    }

    /// A promise of the broker's state for the management view: see `BrokerStats` in
    /// index.d.ts.
    pub fn stats(&self) -> JsValue {
        self.link.stats()
    }

    /// A promise of up to `count` messages at the head of `queue`, not consumed; `[]` for a
    /// queue that does not exist.
    pub fn peek(&self, queue: String, count: Option<u32>) -> JsValue {
        self.link.peek(queue, count.unwrap_or(10).min(1000))
    }

    /// A promise of queue `queue`'s arguments, or `null` if there is no such queue.
    #[wasm_bindgen(js_name = queueArguments)]
    pub fn queue_arguments(&self, queue: String) -> Promise {
        self.link.queue_arguments(queue)
    }

    /// `fn(name, config)` starts bridge `name`'s Runner in this context (while it hosts),
    /// `fn(name, null)` stops it.
    #[wasm_bindgen(js_name = onBridge)]
    pub fn on_bridge(&self, f: Option<Function>) {
        self.link.set_on_bridge(f);
    }

    /// Declares bridge `name` with `config` (bridgeConfig's) for this context: resolves once
    /// the host runs it; a 406 if it runs with other options.
    #[wasm_bindgen(js_name = declareBridge)]
    pub fn declare_bridge(&self, name: &str, config: JsValue) -> Result<Promise, JsValue> {
        self.link.declare_bridge(name, &config)
    }

    /// One `bridge()` handle of this context let bridge `name` go.
    #[wasm_bindgen(js_name = undeclareBridge)]
    pub fn undeclare_bridge(&self, name: &str) {
        self.link.undeclare_bridge(name);
    }

    /// A Web-STOMP endpoint of this broker (`{authenticate, allowAnonymous, limits}`): only
    /// the context hosting it can serve.
    #[wasm_bindgen(js_name = stompEndpoint)]
    pub fn stomp_endpoint(&self, options: JsValue) -> R<super::endpoint::RawStompEndpoint> {
        super::endpoint::RawStompEndpoint::new(self.link.clone(), &options)
    }

    /// Every bridge's status, as the hosting context last told it (`BridgeStatus[]`).
    pub fn bridges(&self) -> Array {
        self.link.bridges()
    }

    /// The Runner of bridge `name` tells its status (in the hosting context): its state,
    /// error, since, retryAt, and `counts` (connects; sent, confirmed, pending,
    /// skippedHeaders; received, acked, refused).
    #[wasm_bindgen(js_name = bridgeStatus)]
    pub fn bridge_status(
        &self,
        name: &str,
        state: &str,
        error: Option<String>,
        since: f64,
        retry_at: Option<f64>,
        counts: &[f64],
    ) -> Result<(), JsValue> {
        let status = super::bridges::status_from_js(state, error, since, retry_at, counts).map_err(to_js)?;
        self.link.bridge_status(name, status);
        Ok(())
    }
}

/// One `connect()`: its channels and exclusive queues go when it closes.
#[wasm_bindgen]
pub struct RawConnection {
    link: Rc<Link>,
    conn: u32,
}

#[wasm_bindgen]
impl RawConnection {
    /// A new channel; `confirm` makes it a confirm channel. `emit(name, arg)` receives
    /// its `return`, `error` and `close` events.
    #[wasm_bindgen(js_name = createChannel)]
    pub fn create_channel(&self, confirm: bool, emit: Function) -> Result<RawChannel, JsValue> {
        let chan = self.link.add_chan(self.conn, confirm, emit)?;
        Ok(RawChannel { link: self.link.clone(), chan, confirm })
    }

    /// Closes every channel of the connection (their unacked messages go back to their
    /// queues) and deletes its exclusive queues.
    pub fn close(&self) {
        self.link.close_conn(self.conn);
    }
}

fn delivery_tag(v: &JsValue) -> Result<u64, JsValue> {
    let tag = v.as_f64().or_else(|| convert::get(&convert::get(v, "fields"), "deliveryTag").as_f64());
    match tag {
        Some(n) if n >= 1.0 && n.fract() == 0.0 => Ok(n as u64),
        _ => Err(to_js(AmqpError::precondition(
            "expected a message this channel delivered (from consume or get), or its fields.deliveryTag",
        ))),
    }
}

fn binding(args: &JsValue) -> R<crate::core::Table> {
    table(args, "binding arguments").map_err(to_js)
}

/// One channel, amqplib's method names and argument order. Methods that answer return
/// a promise of the answer.
#[wasm_bindgen]
pub struct RawChannel {
    link: Rc<Link>,
    chan: u32,
    confirm: bool,
}

#[wasm_bindgen]
impl RawChannel {
    fn call(&self, cmd: Command) -> R<JsValue> {
        self.link.call(self.chan, cmd)
    }

    #[wasm_bindgen(js_name = assertQueue)]
    pub fn assert_queue(&self, name: &str, options: JsValue) -> R<JsValue> {
        let d = convert::queue_declare(name, &options, false).map_err(to_js)?;
        self.call(Command::DeclareQueue(d))
    }

    #[wasm_bindgen(js_name = checkQueue)]
    pub fn check_queue(&self, name: &str) -> R<JsValue> {
        let d = convert::queue_declare(name, &JsValue::UNDEFINED, true).map_err(to_js)?;
        self.call(Command::DeclareQueue(d))
    }

    #[wasm_bindgen(js_name = deleteQueue)]
    pub fn delete_queue(&self, name: &str, options: JsValue) -> R<JsValue> {
        let if_unused = opt_bool(&options, "ifUnused").map_err(to_js)?;
        let if_empty = opt_bool(&options, "ifEmpty").map_err(to_js)?;
        self.call(Command::DeleteQueue { name: name.into(), if_unused, if_empty })
    }

    #[wasm_bindgen(js_name = purgeQueue)]
    pub fn purge_queue(&self, name: &str) -> R<JsValue> {
        self.call(Command::PurgeQueue(name.into()))
    }

    #[wasm_bindgen(js_name = bindQueue)]
    pub fn bind_queue(&self, queue: &str, source: &str, pattern: &str, args: JsValue) -> R<JsValue> {
        let (queue, source, pattern, args) = (queue.into(), source.into(), pattern.into(), binding(&args)?);
        self.call(Command::BindQueue { queue, source, pattern, args })
    }

    #[wasm_bindgen(js_name = unbindQueue)]
    pub fn unbind_queue(&self, queue: &str, source: &str, pattern: &str, args: JsValue) -> R<JsValue> {
        let (queue, source, pattern, args) = (queue.into(), source.into(), pattern.into(), binding(&args)?);
        self.call(Command::UnbindQueue { queue, source, pattern, args })
    }

    #[wasm_bindgen(js_name = assertExchange)]
    pub fn assert_exchange(&self, name: &str, kind: &str, options: JsValue) -> R<JsValue> {
        let d = convert::exchange_declare(name, kind, &options, false).map_err(to_js)?;
        self.call(Command::DeclareExchange(d))
    }

    #[wasm_bindgen(js_name = checkExchange)]
    pub fn check_exchange(&self, name: &str) -> R<JsValue> {
        let d = convert::exchange_declare(name, "", &JsValue::UNDEFINED, true).map_err(to_js)?;
        self.call(Command::DeclareExchange(d))
    }

    #[wasm_bindgen(js_name = deleteExchange)]
    pub fn delete_exchange(&self, name: &str, options: JsValue) -> R<JsValue> {
        let if_unused = opt_bool(&options, "ifUnused").map_err(to_js)?;
        self.call(Command::DeleteExchange { name: name.into(), if_unused })
    }

    #[wasm_bindgen(js_name = bindExchange)]
    pub fn bind_exchange(&self, destination: &str, source: &str, pattern: &str, args: JsValue) -> R<JsValue> {
        let (destination, source, pattern, args) = (destination.into(), source.into(), pattern.into(), binding(&args)?);
        self.call(Command::BindExchange { destination, source, pattern, args })
    }

    #[wasm_bindgen(js_name = unbindExchange)]
    pub fn unbind_exchange(&self, destination: &str, source: &str, pattern: &str, args: JsValue) -> R<JsValue> {
        let (destination, source, pattern, args) = (destination.into(), source.into(), pattern.into(), binding(&args)?);
        self.call(Command::UnbindExchange { destination, source, pattern, args })
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
        let publish = Command::Publish { message: Box::new(message), mandatory };
        self.link.publish(self.chan, publish, callback.filter(|_| self.confirm)).map(|_| true)
    }

    /// Resolves once every message published so far is confirmed; rejects if one was
    /// refused. On a channel without confirms it resolves at once. While `close()` completes
    /// (within the task that called it) it rejects if confirms were outstanding; once closed,
    /// their callbacks have had the error and it resolves, as amqplib's does.
    /// The app listens to this confirm channel's `ack` or `nack` events: `emit` gets them
    /// from now on (before, a confirm makes no call for them).
    #[wasm_bindgen(js_name = wantConfirmEvents)]
    pub fn want_confirm_events(&self) {
        self.link.want_confirm_events(self.chan);
    }

    #[wasm_bindgen(js_name = waitForConfirms)]
    pub fn wait_for_confirms(&self) -> Promise {
        self.link.wait_for_confirms(self.chan)
    }

    /// `consume(queue, callback, options)` → a promise of `{consumerTag}`.
    /// `callback(message)` runs for each delivery, and with `null` if the broker cancels
    /// the consumer.
    pub fn consume(&self, queue: &str, callback: Function, options: JsValue) -> R<JsValue> {
        let mut c = convert::consume(queue, &options).map_err(to_js)?;
        if c.consumer_tag.is_empty() {
            // Named here, so that the callback is in place before the first delivery.
            c.consumer_tag = format!("amq.ctag-{:016x}", (js_sys::Math::random() * 1.8e19) as u64);
        }
        self.link.consume(self.chan, c, callback)
    }

    /// `cancel(consumerTag)`: no more deliveries; those not acked stay with the channel.
    pub fn cancel(&self, consumer_tag: &str) -> R<JsValue> {
        self.link.cancel(self.chan, consumer_tag)
    }

    /// `get(queue, {noAck})` → a promise of a message or `false`.
    pub fn get(&self, queue: String, options: JsValue) -> Promise {
        let no_ack = match opt_bool(&options, "noAck") {
            Ok(b) => b,
            Err(e) => return Promise::reject(&to_js(e)),
        };
        // Deep in a long queue, the host reads the head back from the store first; a
        // first delivery beyond the queue's stored delivery horizon waits for a higher one.
        settled(self.link.get(self.chan, queue, no_ack))
    }

    /// `ack(message, allUpTo)`.
    pub fn ack(&self, message: JsValue, all_up_to: Option<bool>) -> R<()> {
        let tag = delivery_tag(&message)?;
        self.link.cast(self.chan, Command::Ack { tag, multiple: all_up_to.unwrap_or(false) })
    }

    /// `ackAll()`.
    #[wasm_bindgen(js_name = ackAll)]
    pub fn ack_all(&self) -> R<()> {
        self.link.cast(self.chan, Command::Ack { tag: 0, multiple: true })
    }

    /// `nack(message, allUpTo, requeue)`; `requeue` defaults to true, as in amqplib.
    pub fn nack(&self, message: JsValue, all_up_to: Option<bool>, requeue: Option<bool>) -> R<()> {
        let tag = delivery_tag(&message)?;
        let (multiple, requeue) = (all_up_to.unwrap_or(false), requeue.unwrap_or(true));
        self.link.cast(self.chan, Command::Nack { tag, multiple, requeue })
    }

    /// `nackAll(requeue)`.
    #[wasm_bindgen(js_name = nackAll)]
    pub fn nack_all(&self, requeue: Option<bool>) -> R<()> {
        self.link.cast(self.chan, Command::Nack { tag: 0, multiple: true, requeue: requeue.unwrap_or(true) })
    }

    /// `reject(message, requeue)`.
    pub fn reject(&self, message: JsValue, requeue: Option<bool>) -> R<()> {
        let tag = delivery_tag(&message)?;
        self.link.cast(self.chan, Command::Reject { tag, requeue: requeue.unwrap_or(true) })
    }

    /// `prefetch(count, global)`.
    pub fn prefetch(&self, count: f64, global: Option<bool>) -> R<JsValue> {
        if !(0.0..=65535.0).contains(&count) || count.fract() != 0.0 {
            return Err(to_js(AmqpError::precondition("prefetch: expected a whole number from 0 to 65535")));
        }
        self.link.prefetch(self.chan, count as u32, global.unwrap_or(false))
    }

    /// `recover()`: every unacked message of the channel goes back to its queue.
    pub fn recover(&self) -> R<JsValue> {
        self.link.recover(self.chan)
    }

    /// `close()`: unacked messages go back to their queues; pending confirms fail.
    pub fn close(&self) {
        self.link.close_chan(self.chan);
    }
}

fn settled(r: R<JsValue>) -> Promise {
    match r {
        Ok(v) => Promise::resolve(&v),
        Err(e) => Promise::reject(&e),
    }
}
