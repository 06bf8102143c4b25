//! The JavaScript binding (wasm32 only): converts and delegates to the core.
//!
//! For now a single-context `Broker` class with a few channel methods, enough for the
//! demo page and the browser tests; the amqplib-compatible `connect()` API is built on
//! the same core.

use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::core::{self, AmqpError, ChannelRef, Effect, Message, QueueDeclare};

/// The package version, as built.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// A JS `Error` carrying the AMQP reply `code`.
fn to_js(e: AmqpError) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    let _ = Reflect::set(&err, &"code".into(), &JsValue::from(e.code.code()));
    err.into()
}

fn now() -> u64 {
    js_sys::Date::now() as u64
}

fn set(obj: &Object, key: &str, value: JsValue) {
    Reflect::set(obj, &key.into(), &value).expect("setting a property of a plain object");
}

/// A broker in this JS context with one channel: declare, publish, get, ack.
#[wasm_bindgen]
pub struct Broker {
    core: core::Broker,
    channel: ChannelRef,
}

#[wasm_bindgen]
impl Broker {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Result<Broker, JsValue> {
        let seed = (js_sys::Math::random() * 9.0e15) as u64;
        let mut core = core::Broker::new(core::BrokerConfig { seed, ..Default::default() });
        let conn = core.connect();
        let channel = core.open_channel(conn).map_err(to_js)?;
        Ok(Broker { core, channel })
    }

    /// Declares a queue; answers `{queue, messageCount, consumerCount}`.
    #[wasm_bindgen(js_name = assertQueue)]
    pub fn assert_queue(&mut self, name: &str) -> Result<JsValue, JsValue> {
        let d = QueueDeclare { name: name.to_owned(), ..Default::default() };
        let ok = self.core.declare_queue(self.channel, d, now()).map_err(to_js)?;
        let out = Object::new();
        set(&out, "queue", JsValue::from_str(&ok.queue));
        set(&out, "messageCount", ok.message_count.into());
        set(&out, "consumerCount", ok.consumer_count.into());
        Ok(out.into())
    }

    /// Publishes `content` to `queue` through the default exchange.
    #[wasm_bindgen(js_name = sendToQueue)]
    pub fn send_to_queue(&mut self, queue: &str, content: &[u8]) -> Result<bool, JsValue> {
        let m = Message::new("", queue, content.to_vec());
        self.core.publish(self.channel, m, false, now()).map_err(to_js)?;
        self.discard_effects();
        Ok(true)
    }

    /// Takes one message: `{content, deliveryTag, redelivered}`, or `null` when empty.
    pub fn get(&mut self, queue: &str) -> Result<JsValue, JsValue> {
        let got = self.core.get(self.channel, queue, false, now()).map_err(to_js)?;
        let Some(g) = got else { return Ok(JsValue::NULL) };
        let out = Object::new();
        set(&out, "content", Uint8Array::from(&g.delivery.message.body[..]).into());
        set(&out, "deliveryTag", JsValue::from(g.delivery.delivery_tag as f64));
        set(&out, "redelivered", g.delivery.redelivered.into());
        Ok(out.into())
    }

    /// Acknowledges one delivery.
    pub fn ack(&mut self, delivery_tag: f64) -> Result<(), JsValue> {
        self.core.ack(self.channel, delivery_tag as u64, false, now()).map_err(to_js)?;
        self.discard_effects();
        Ok(())
    }

    /// Ready messages in a queue.
    #[wasm_bindgen(js_name = messageCount)]
    pub fn message_count(&self, queue: &str) -> Option<u32> {
        self.core.queue_info(queue).map(|q| q.ready as u32)
    }

    /// This class has no consumers, so no effect needs a driver yet.
    fn discard_effects(&mut self) {
        for e in self.core.drain_effects() {
            debug_assert!(!matches!(e, Effect::Deliver(_)));
        }
    }
}
