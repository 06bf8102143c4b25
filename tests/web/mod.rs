//! Tests shared by every browser context (a page, a dedicated worker): the core compiled
//! to wasm, and the JS binding, exercised through wasm-bindgen.

use js_sys::{Function, Promise, Reflect};
use tabbit::core::*;
use tabbit::wasm::{RawBroker, RawChannel, RawConnection};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

mod channel;
mod mesh;
mod storage;

/// A broker, a connection and a confirm channel through the package's binding, with
/// the few calls the storage tests need as promises.
pub struct JsBroker {
    pub broker: RawBroker,
    pub conn: RawConnection,
    pub ch: RawChannel,
}

impl JsBroker {
    pub async fn open(name: Option<String>, storage: JsValue) -> Result<JsBroker, JsValue> {
        let broker = RawBroker::open(
            name.unwrap_or_else(|| "default".into()),
            storage,
            Some(false),
            None,
            JsValue::UNDEFINED,
            None,
        )
        .await?;
        let conn = broker.connect();
        let ch = conn.create_channel(true, Function::new_no_args(""))?;
        Ok(JsBroker { broker, conn, ch })
    }

    pub fn storage(&self) -> String {
        self.broker.storage()
    }

    pub fn problems(&self) -> js_sys::Array {
        self.broker.problems()
    }

    pub async fn assert_queue(&self, name: &str, options: JsValue) -> Result<JsValue, JsValue> {
        resolved(self.ch.assert_queue(name, options)).await
    }

    pub async fn assert_exchange(&self, name: &str, kind: &str, options: JsValue) -> Result<JsValue, JsValue> {
        resolved(self.ch.assert_exchange(name, kind, options)).await
    }

    pub async fn bind_queue(&self, queue: &str, source: &str, pattern: &str, args: JsValue) -> Result<(), JsValue> {
        resolved(self.ch.bind_queue(queue, source, pattern, args)).await.map(|_| ())
    }

    /// Publishes on the confirm channel: a promise of the confirm (an error for a nack or
    /// a bad argument).
    pub fn send_to_queue(&self, queue: &str, content: JsValue, options: JsValue) -> Promise {
        let ch = &self.ch;
        Promise::new(&mut |resolve, reject| {
            let cb = Function::new_with_args("resolve, reject, err", "err ? reject(err) : resolve()");
            let cb: Function = cb.bind2(&JsValue::NULL, &resolve, &reject).unchecked_into();
            if let Err(e) = ch.publish("", queue, content.clone(), options.clone(), Some(cb)) {
                let _ = reject.call1(&JsValue::NULL, &e);
            }
        })
    }

    pub fn get(&self, queue: String) -> Promise {
        self.ch.get(queue, JsValue::UNDEFINED)
    }

    pub fn ack(&self, message: JsValue, all_up_to: Option<bool>) -> Result<(), JsValue> {
        self.ch.ack(message, all_up_to)
    }

    pub fn nack(&self, message: JsValue, all_up_to: Option<bool>, requeue: Option<bool>) -> Result<(), JsValue> {
        self.ch.nack(message, all_up_to, requeue)
    }

    /// The queue's entry in `stats()`, or `undefined`.
    pub async fn queue_info(&self, queue: &str) -> JsValue {
        let stats = resolved(Ok(self.broker.stats())).await.unwrap();
        let queues = js_sys::Array::from(&prop(&stats, "queues"));
        queues.iter().find(|q| prop(q, "name").as_string().as_deref() == Some(queue)).unwrap_or(JsValue::UNDEFINED)
    }

    /// Ready messages, or `None` without such a queue.
    pub async fn message_count(&self, queue: &str) -> Option<u32> {
        let q = self.queue_info(queue).await;
        (!q.is_undefined()).then(|| prop(&q, "ready").as_f64().unwrap() as u32)
    }

    pub fn flush(&self) -> Promise {
        self.broker.flush()
    }

    pub async fn close(&self) {
        self.conn.close();
        self.broker.close().await;
    }
}

/// A call's answer: every call answers a promise, in the hosting context too (its
/// frames go to its own host, and what comes back comes after the current task).
pub async fn resolved(v: Result<JsValue, JsValue>) -> Result<JsValue, JsValue> {
    let v = v?;
    match v.dyn_ref::<Promise>() {
        Some(p) => wasm_bindgen_futures::JsFuture::from(p.clone()).await,
        None => Ok(v),
    }
}

/// A broker name no other test (or earlier run in this browser profile) has used.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", js_sys::Date::now(), (js_sys::Math::random() * 1e9) as u64)
}

/// Awaits a publish's confirm promise.
pub async fn confirmed(p: js_sys::Promise) -> Result<JsValue, JsValue> {
    wasm_bindgen_futures::JsFuture::from(p).await
}

/// Awaits `get`: the message or `false`.
pub async fn got(p: js_sys::Promise) -> JsValue {
    wasm_bindgen_futures::JsFuture::from(p).await.unwrap()
}

/// A message's content as text.
pub fn content(msg: &JsValue) -> String {
    String::from_utf8(js_sys::Uint8Array::new(&prop(msg, "content")).to_vec()).unwrap()
}

pub fn prop(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap()
}

#[wasm_bindgen_test]
fn version_matches_the_crate_version() {
    assert_eq!(tabbit::wasm::version(), env!("CARGO_PKG_VERSION"));
}

#[wasm_bindgen_test]
async fn js_broker_declares_publishes_gets_and_acks() {
    let b = JsBroker::open(Some(unique("basic")), JsValue::from("memory")).await.unwrap();
    assert_eq!(b.storage(), "memory");
    let ok = b.assert_queue("jobs", JsValue::UNDEFINED).await.unwrap();
    assert_eq!(prop(&ok, "queue").as_string().as_deref(), Some("jobs"));
    confirmed(b.send_to_queue("jobs", js_sys::Uint8Array::from(&b"first"[..]).into(), JsValue::UNDEFINED))
        .await
        .unwrap();
    confirmed(b.send_to_queue("jobs", "second".into(), JsValue::UNDEFINED)).await.unwrap();
    assert_eq!(b.message_count("jobs").await, Some(2));
    let msg = got(b.get("jobs".into())).await;
    assert_eq!(content(&msg), "first");
    assert_eq!(prop(&prop(&msg, "fields"), "redelivered").as_bool(), Some(false));
    b.ack(msg, None).unwrap();
    assert_eq!(b.message_count("jobs").await, Some(1));
    got(b.get("jobs".into())).await;
    assert_eq!(got(b.get("jobs".into())).await, JsValue::FALSE, "an empty queue answers false, as amqplib");
}

#[wasm_bindgen_test]
async fn js_errors_are_errors_with_the_amqp_code() {
    let mut b = JsBroker::open(Some(unique("errors")), JsValue::from("memory")).await.unwrap();
    let err = confirmed(b.get("missing".into())).await.unwrap_err();
    assert!(err.is_instance_of::<js_sys::Error>());
    assert_eq!(prop(&err, "code").as_f64(), Some(404.0));
    let message = prop(&err, "message").as_string().unwrap();
    assert!(message.contains("no queue 'missing'"), "{message}");
    // The error closed the channel, as in AMQP; a new one goes on.
    let err = b.assert_queue("q", JsValue::UNDEFINED).await.unwrap_err();
    assert_eq!(prop(&err, "code").as_f64(), Some(504.0));
    b.ch = b.conn.create_channel(true, Function::new_no_args("")).unwrap();
    b.assert_queue("q", JsValue::UNDEFINED).await.unwrap();
    let err = confirmed(b.send_to_queue("q", JsValue::from_f64(5.0), JsValue::UNDEFINED)).await.unwrap_err();
    assert_eq!(prop(&err, "code").as_f64(), Some(406.0));
    assert!(prop(&err, "message").as_string().unwrap().contains("Uint8Array or a string"));
    let opts = js_sys::JSON::parse(r#"{"priority": 300}"#).unwrap();
    let err = confirmed(b.send_to_queue("q", "x".into(), opts)).await.unwrap_err();
    assert!(prop(&err, "message").as_string().unwrap().contains("'priority'"));
    let opts = js_sys::JSON::parse(r#"{"persistant": true}"#).unwrap();
    let err = confirmed(b.send_to_queue("q", "x".into(), opts)).await.unwrap_err();
    assert!(prop(&err, "message").as_string().unwrap().contains("unknown publish option 'persistant'"));
    // Bad arguments throw without closing the channel.
    b.assert_queue("q", JsValue::UNDEFINED).await.unwrap();
    let err = JsBroker::open(None, JsValue::from("disk")).await.err().unwrap();
    assert!(prop(&err, "message").as_string().unwrap().contains("use 'indexeddb', 'memory', or an adapter"));
}

/// The same core that the native tests drive, here compiled to wasm: topic routing,
/// prefetch, reject to a dead-letter exchange with `x-death`, TTL with `tick`.
#[wasm_bindgen_test]
fn core_routes_dead_letters_and_expires_in_wasm() {
    let mut b = Broker::new(BrokerConfig { seed: 42, ..Default::default() });
    let conn = b.connect();
    let ch = b.open_channel(conn).unwrap();
    let t0 = js_sys::Date::now() as u64;
    let ex = |name: &str, kind: &str| ExchangeDeclare { name: name.into(), kind: kind.into(), ..Default::default() };
    b.declare_exchange(ch, ex("logs", "topic"), t0).unwrap();
    b.declare_exchange(ch, ex("dlx", "fanout"), t0).unwrap();
    let mut args = Table::new();
    args.insert("x-dead-letter-exchange".into(), "dlx".into());
    args.insert("x-message-ttl".into(), FieldValue::Int(50));
    b.declare_queue(ch, QueueDeclare { name: "errors".into(), arguments: args, ..Default::default() }, t0).unwrap();
    b.declare_queue(ch, QueueDeclare { name: "dead".into(), ..Default::default() }, t0).unwrap();
    b.bind_queue(ch, "errors", "logs", "*.error", Table::new(), t0).unwrap();
    b.bind_queue(ch, "dead", "dlx", "", Table::new(), t0).unwrap();

    b.prefetch(ch, 1, false, t0).unwrap();
    b.consume(ch, Consume { queue: "errors".into(), ..Default::default() }, t0).unwrap();
    for key in ["auth.error", "auth.info", "db.error"] {
        b.publish(ch, Message::new("logs", key, key.as_bytes().to_vec()), false, t0).unwrap();
    }
    let delivered: Vec<Delivery> = b
        .drain_effects()
        .filter_map(|e| match e {
            Effect::Deliver(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(delivered.len(), 1, "prefetch 1");
    assert_eq!(delivered[0].message.body, b"auth.error");
    b.reject(ch, delivered[0].delivery_tag, false, t0).unwrap();
    let next: Vec<Effect> = b.drain_effects().collect();
    assert!(matches!(&next[..], [Effect::Deliver(d)] if d.message.body == b"db.error"));

    let dead = b.get(ch, "dead", true, t0).unwrap().expect("the rejected message was dead-lettered");
    let Some(FieldValue::Array(deaths)) = dead.delivery.message.properties.headers.get("x-death") else {
        panic!("no x-death header");
    };
    let FieldValue::Table(first) = &deaths[0] else { panic!("x-death entry is not a table") };
    assert_eq!(first.get("reason"), Some(&"rejected".into()));

    // db.error is unacked, so it does not expire; once back in the queue, its TTL applies.
    b.cancel(ch, &next_tag(&next), t0).unwrap();
    b.recover(ch, t0).unwrap();
    assert_eq!(b.tick(t0 + 100), None, "nothing left to wait for");
    assert_eq!(b.queue_info("errors").unwrap().ready, 0);
    assert_eq!(b.queue_info("dead").unwrap().ready, 1, "expired into the dead-letter queue");
    b.check_invariants().unwrap();
}

fn next_tag(effects: &[Effect]) -> String {
    match &effects[0] {
        Effect::Deliver(d) => d.consumer_tag.as_deref().unwrap().to_owned(),
        _ => unreachable!(),
    }
}
