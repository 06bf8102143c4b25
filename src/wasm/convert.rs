//! Conversions between JS values and the core's types, with errors that say what to change.

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::codec::MAX_DEPTH;
use crate::core::map::Map;
use crate::core::{AmqpError, Consume, ExchangeDeclare, FieldValue, Message, Properties, QueueDeclare, Table};

pub type Result<T> = std::result::Result<T, AmqpError>;

fn bad(what: &str, expected: &str) -> AmqpError {
    AmqpError::precondition(format!("{what}: expected {expected}"))
}

thread_local! {
    /// Property names already made JS strings, by name.
    static NAMES: std::cell::RefCell<Map<Box<str>, JsValue>> = Default::default();
}

/// A property name as a JS string, converted once per name: property names cross into JS
/// once, not on every get and publish (decoding them was ~20% of publish and get time,
/// scripts/bench). The keys are the binding's own names (and `limits` names, checked against
/// a fixed list first), so the cache stays small. It is ours rather than wasm-bindgen's
/// `enable-interning`, whose std `HashMap` brings hashbrown, SipHash and a random seed
/// (~3 KB of wasm) and makes every other string sent to JS look itself up first.
fn name(key: &str) -> JsValue {
    NAMES.with(|names| {
        if let Some(v) = names.borrow().get(key) {
            return v.clone();
        }
        let v = JsValue::from_str(key);
        names.borrow_mut().insert(key.into(), v.clone());
        v
    })
}

pub fn get(obj: &JsValue, key: &str) -> JsValue {
    if obj.is_object() {
        Reflect::get(obj, &name(key)).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

pub fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    // Cannot fail on a plain object of ours. (An `expect` here would ship `JsValue`'s `Debug`
    // and wasm-bindgen's debugString for its message.)
    let _ = Reflect::set(obj, &name(key), &value.into());
}

/// An optional option: `undefined` and `null` are absent.
fn present(v: JsValue) -> Option<JsValue> {
    (!v.is_undefined() && !v.is_null()).then_some(v)
}

pub fn opt_bool(opts: &JsValue, key: &str) -> Result<bool> {
    present(get(opts, key)).map_or(Ok(false), |v| bool_value(&v, key))
}

pub fn opt_string(opts: &JsValue, key: &str) -> Result<Option<String>> {
    present(get(opts, key)).map(|v| string_value(&v, key)).transpose()
}

pub fn opt_uint(opts: &JsValue, key: &str, max: f64) -> Result<Option<u64>> {
    present(get(opts, key)).map(|v| uint_value(&v, key, max)).transpose()
}

fn bool_value(v: &JsValue, key: &str) -> Result<bool> {
    v.as_bool().ok_or_else(|| bad(&format!("option '{key}'"), "true or false"))
}

fn string_value(v: &JsValue, key: &str) -> Result<String> {
    v.as_string().ok_or_else(|| bad(&format!("option '{key}'"), "a string"))
}

fn uint_value(v: &JsValue, key: &str, max: f64) -> Result<u64> {
    match v.as_f64() {
        Some(n) if n >= 0.0 && n <= max && n.fract() == 0.0 => Ok(n as u64),
        _ => Err(bad(&format!("option '{key}'"), &format!("a whole number from 0 to {}", max as u64))),
    }
}

/// The largest `limits.maxMessageBytes`: other contexts drop posts over 64 MiB.
const MAX_MESSAGE_BYTES: u64 = 48 << 20;

/// `connect()`'s `limits`: any of `maxMessageBytes`, `maxQueues`, `maxExchanges`,
/// `maxBindings`, `maxConsumers`, `maxChannels` (whole numbers from 1) and `maxQueueLength`
/// (a whole number from 1, or `Infinity` for no default); the rest default.
pub fn limits(v: &JsValue) -> Result<crate::core::Limits> {
    let mut limits = crate::core::Limits::default();
    if v.is_undefined() || v.is_null() {
        return Ok(limits);
    }
    if !v.is_object() {
        return Err(bad("option 'limits'", "an object such as { maxMessageBytes: 1048576 }"));
    }
    let obj: &js_sys::Object = v.unchecked_ref();
    for key in js_sys::Object::keys(obj).iter() {
        let key = key.as_string().unwrap_or_default();
        let name = format!("limits.{key}");
        if key == "maxQueueLength" {
            limits.max_queue_length = match get(v, &key).as_f64() {
                Some(n) if n == f64::INFINITY => None,
                Some(n) if (1.0..=9_007_199_254_740_991.0).contains(&n) && n.fract() == 0.0 => Some(n as u64),
                _ => {
                    return Err(bad(
                        &format!("option '{name}'"),
                        "a whole number from 1, or Infinity for no default maximum",
                    ))
                }
            };
            continue;
        }
        let slot = match key.as_str() {
            "maxMessageBytes" => &mut limits.max_message_bytes,
            "maxQueues" => &mut limits.max_queues,
            "maxExchanges" => &mut limits.max_exchanges,
            "maxBindings" => &mut limits.max_bindings,
            "maxConsumers" => &mut limits.max_consumers,
            "maxChannels" => &mut limits.max_channels,
            other => {
                return Err(AmqpError::precondition(format!(
                    "unknown limit '{other}': use maxMessageBytes, maxQueues, maxExchanges, maxBindings, maxConsumers, maxChannels or maxQueueLength"
                )))
            }
        };
        match uint_value(&get(v, &key), &name, 9_007_199_254_740_991.0)? {
            0 => return Err(bad(&format!("option '{name}'"), "a whole number from 1")),
            n if key == "maxMessageBytes" && n > MAX_MESSAGE_BYTES => {
                return Err(AmqpError::precondition(format!(
                    "limits.maxMessageBytes can be at most {MAX_MESSAGE_BYTES} (48 MiB): a message must fit in one post between tabs"
                )))
            }
            n => *slot = n as usize,
        }
    }
    Ok(limits)
}

/// `assertQueue`'s options, as amqplib's: `durable` (default true), `exclusive`,
/// `autoDelete`, `arguments`, and the shorthands `messageTtl`, `expires`,
/// `deadLetterExchange`, `deadLetterRoutingKey`, `maxLength`, `maxPriority`.
pub fn queue_declare(name: &str, options: &JsValue, passive: bool) -> Result<QueueDeclare> {
    let mut arguments = table(&get(options, "arguments"), "option 'arguments'")?;
    for (key, arg) in [
        ("messageTtl", "x-message-ttl"),
        ("expires", "x-expires"),
        ("maxLength", "x-max-length"),
        ("maxPriority", "x-max-priority"),
    ] {
        if let Some(n) = opt_uint(options, key, 9.0e15)? {
            arguments.insert(arg.into(), FieldValue::Int(n as i64));
        }
    }
    for (key, arg) in
        [("deadLetterExchange", "x-dead-letter-exchange"), ("deadLetterRoutingKey", "x-dead-letter-routing-key")]
    {
        if let Some(s) = opt_string(options, key)? {
            arguments.insert(arg.into(), FieldValue::Str(s));
        }
    }
    Ok(QueueDeclare {
        name: name.to_owned(),
        passive,
        durable: present(get(options, "durable")).map_or(Ok(true), |v| bool_value(&v, "durable"))?,
        exclusive: opt_bool(options, "exclusive")?,
        auto_delete: opt_bool(options, "autoDelete")?,
        arguments,
    })
}

/// `assertExchange`'s options: `durable` (default true), `internal`, `autoDelete`,
/// `alternateExchange`, `arguments`.
pub fn exchange_declare(name: &str, kind: &str, options: &JsValue, passive: bool) -> Result<ExchangeDeclare> {
    let mut arguments = table(&get(options, "arguments"), "option 'arguments'")?;
    if let Some(ae) = opt_string(options, "alternateExchange")? {
        arguments.insert("alternate-exchange".into(), FieldValue::Str(ae));
    }
    Ok(ExchangeDeclare {
        name: name.to_owned(),
        kind: kind.to_owned(),
        passive,
        durable: present(get(options, "durable")).map_or(Ok(true), |v| bool_value(&v, "durable"))?,
        auto_delete: opt_bool(options, "autoDelete")?,
        internal: opt_bool(options, "internal")?,
        arguments,
    })
}

/// `consume`'s options: `consumerTag`, `noAck`, `exclusive`, `priority`, `arguments`
/// (`noLocal` is accepted and means nothing: a connection never sees its own
/// publishes as "local" in RabbitMQ either).
pub fn consume(queue: &str, options: &JsValue) -> Result<Consume> {
    let mut arguments = table(&get(options, "arguments"), "option 'arguments'")?;
    if let Some(v) = present(get(options, "priority")) {
        match v.as_f64() {
            Some(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
                arguments.insert("x-priority".into(), FieldValue::Int(n as i64));
            }
            _ => return Err(bad("option 'priority'", "a whole number")),
        }
    }
    Ok(Consume {
        queue: queue.to_owned(),
        consumer_tag: opt_string(options, "consumerTag")?.unwrap_or_default(),
        no_ack: opt_bool(options, "noAck")?,
        exclusive: opt_bool(options, "exclusive")?,
        arguments,
    })
}

/// A field table from a plain object (`arguments`, `headers`).
pub fn table(v: &JsValue, what: &str) -> Result<Table> {
    table_at(v, what, 1)
}

fn table_at(v: &JsValue, what: &str, depth: u32) -> Result<Table> {
    let Some(v) = present(v.clone()) else { return Ok(Table::new()) };
    if !v.is_object() || Array::is_array(&v) {
        return Err(bad(what, "a plain object"));
    }
    let mut entries = Vec::new();
    for entry in Object::entries(v.unchecked_ref()).iter() {
        let pair: Array = entry.unchecked_into();
        let key = pair.get(0).as_string().unwrap_or_default();
        let value = field_value(&pair.get(1), &format!("{what}.{key}"), depth)?;
        entries.push((key, value));
    }
    // Sorted once (a table is a sorted `Vec`: inserting an object's keys one by one in
    // their own order would move entries for each).
    Ok(entries.into_iter().collect())
}

fn field_value(v: &JsValue, what: &str, depth: u32) -> Result<FieldValue> {
    if v.is_undefined() || v.is_null() {
        return Ok(FieldValue::Void);
    }
    if let Some(b) = v.as_bool() {
        return Ok(FieldValue::Bool(b));
    }
    if let Some(n) = v.as_f64() {
        let int = n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_991.0;
        return Ok(if int { FieldValue::Int(n as i64) } else { FieldValue::Float(n) });
    }
    if let Some(s) = v.as_string() {
        return Ok(FieldValue::Str(s));
    }
    if let Some(bytes) = v.dyn_ref::<Uint8Array>() {
        return Ok(FieldValue::Bytes(bytes.to_vec()));
    }
    if let Some(d) = v.dyn_ref::<js_sys::Date>() {
        return Ok(FieldValue::Timestamp((d.get_time() / 1000.0).max(0.0) as u64));
    }
    if depth >= MAX_DEPTH {
        return Err(bad(what, &format!("at most {MAX_DEPTH} levels of nested objects and arrays")));
    }
    if Array::is_array(v) {
        let a: &Array = v.unchecked_ref();
        return a.iter().map(|x| field_value(&x, what, depth + 1)).collect::<Result<_>>().map(FieldValue::Array);
    }
    if v.is_object() {
        return table_at(v, what, depth + 1).map(FieldValue::Table);
    }
    Err(bad(what, "null, a boolean, a number, a string, a Uint8Array, a Date, an array or a plain object"))
}

pub fn field_to_js(v: &FieldValue) -> JsValue {
    match v {
        FieldValue::Void => JsValue::NULL,
        FieldValue::Bool(b) => (*b).into(),
        FieldValue::Int(i) => (*i as f64).into(),
        FieldValue::Float(f) => (*f).into(),
        FieldValue::Str(s) => s.into(),
        FieldValue::Bytes(b) => Uint8Array::from(&b[..]).into(),
        FieldValue::Timestamp(t) => (*t as f64).into(),
        FieldValue::Array(a) => a.iter().map(field_to_js).collect::<Array>().into(),
        FieldValue::Table(t) => table_to_js(t).into(),
    }
}

pub fn table_to_js(t: &Table) -> Object {
    let o = Object::new();
    for (k, v) in t {
        // Not interned: header names are the app's data, any number of them.
        let _ = Reflect::set(&o, &JsValue::from_str(k), &field_to_js(v));
    }
    o
}

/// Message content: a `Uint8Array` (amqplib's `Buffer` is one) or a string (UTF-8).
pub fn content(v: &JsValue) -> Result<Vec<u8>> {
    if let Some(bytes) = v.dyn_ref::<Uint8Array>() {
        Ok(bytes.to_vec())
    } else if let Some(s) = v.as_string() {
        Ok(s.into_bytes())
    } else {
        Err(bad("content", "a Uint8Array or a string"))
    }
}

/// A message from `publish`'s arguments and amqplib's publish options, and whether it
/// is `mandatory`. Only the options given are read (one pass over the object's own
/// keys); an unknown or unsupported one is an error that names it.
pub fn message(exchange: &str, routing_key: &str, content_value: &JsValue, opts: &JsValue) -> Result<(Message, bool)> {
    let mut p = Properties::default();
    let mut mandatory = false;
    if opts.is_object() {
        for entry in Object::entries(opts.unchecked_ref()).iter() {
            let pair: Array = entry.unchecked_into();
            let (key, v) = (pair.get(0).as_string().unwrap_or_default(), pair.get(1));
            if v.is_undefined() || v.is_null() {
                continue;
            }
            let k = key.as_str();
            match k {
                "persistent" => p.persistent |= bool_value(&v, k)?,
                "deliveryMode" => p.persistent |= uint_value(&v, k, 2.0)? == 2,
                "mandatory" => mandatory = bool_value(&v, k)?,
                "contentType" => p.content_type = Some(string_value(&v, k)?),
                "contentEncoding" => p.content_encoding = Some(string_value(&v, k)?),
                "headers" => p.headers = table(&v, "option 'headers'")?,
                "priority" => p.priority = Some(uint_value(&v, k, 255.0)? as u8),
                "correlationId" => p.correlation_id = Some(string_value(&v, k)?),
                "replyTo" => p.reply_to = Some(string_value(&v, k)?),
                "messageId" => p.message_id = Some(string_value(&v, k)?),
                "timestamp" => p.timestamp = Some(uint_value(&v, k, 9.0e15)?),
                "type" => p.kind = Some(string_value(&v, k)?),
                "userId" => p.user_id = Some(string_value(&v, k)?),
                "appId" => p.app_id = Some(string_value(&v, k)?),
                "expiration" => {
                    p.expiration = Some(match (v.as_string(), v.as_f64()) {
                        (Some(s), _) => s,
                        (None, Some(n)) if n >= 0.0 && n.fract() == 0.0 => (n as u64).to_string(),
                        _ => return Err(bad("option 'expiration'", "milliseconds as a string or a whole number")),
                    })
                }
                "CC" | "BCC" | "immediate" => {
                    return Err(AmqpError::precondition(format!(
                        "publish option '{k}' is not supported by tabbit: bind the queues to the exchange instead"
                    )))
                }
                _ => {
                    return Err(AmqpError::precondition(format!(
                        "unknown publish option '{k}': use persistent, mandatory, expiration, priority, headers, \
                         messageId, correlationId, replyTo, contentType, contentEncoding, timestamp, type, userId, \
                         appId or deliveryMode"
                    )))
                }
            }
        }
    }
    let message = Message {
        exchange: exchange.to_owned(),
        routing_key: routing_key.to_owned(),
        properties: p,
        body: content(content_value)?,
    };
    Ok((message, mandatory))
}

#[wasm_bindgen(module = "/js/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = peekFields)]
    fn peek_fields(exchange: &str, routing_key: &str) -> JsValue;
    #[wasm_bindgen(js_name = reportUncaught)]
    pub fn report_uncaught(e: &JsValue);
    #[wasm_bindgen(js_name = consumeFields)]
    fn consume_fields(
        consumer_tag: &JsValue,
        delivery_tag: f64,
        redelivered: bool,
        exchange: &JsValue,
        routing_key: &JsValue,
        sequence: f64,
    ) -> JsValue;
    #[wasm_bindgen(js_name = getFields)]
    fn get_fields(
        delivery_tag: f64,
        redelivered: bool,
        exchange: &JsValue,
        routing_key: &JsValue,
        message_count: u32,
        sequence: f64,
    ) -> JsValue;
    #[wasm_bindgen(js_name = returnFields)]
    fn return_fields(reply_code: u16, reply_text: &str, exchange: &str, routing_key: &str) -> JsValue;
    /// An empty message content of `length` bytes: a Buffer where there is one, else a
    /// Uint8Array that reads as text as Buffer does (glue.js).
    #[wasm_bindgen(js_name = newContent)]
    fn new_content(length: u32) -> Uint8Array;
    #[wasm_bindgen(js_name = makeMessage)]
    #[allow(clippy::too_many_arguments)]
    fn make_message(
        content: Uint8Array,
        fields: JsValue,
        content_type: &JsValue,
        content_encoding: Option<&str>,
        headers: Object,
        delivery_mode: u8,
        priority: Option<u8>,
        correlation_id: Option<&str>,
        reply_to: Option<&str>,
        expiration: Option<&str>,
        message_id: Option<&str>,
        timestamp: Option<f64>,
        kind: Option<&str>,
        user_id: Option<&str>,
        app_id: Option<&str>,
    ) -> JsValue;
}

thread_local! {
    /// The last consumer tag, exchange, routing key and content type handed to JS, with
    /// their JS strings: a consumer's messages mostly repeat them, and decoding a string
    /// into JS was a tenth of a consumer tab's time (scripts/bench --profile, row (h)).
    static RECENT: std::cell::RefCell<[(String, JsValue); 4]> = std::cell::RefCell::new(Default::default());
}

/// `s` as a JS string, reusing the last one made for `slot` if it is the same.
fn recent(slot: usize, s: &str) -> JsValue {
    RECENT.with(|r| {
        let mut r = r.borrow_mut();
        let (last, js) = &mut r[slot];
        if last != s || js.is_undefined() {
            *last = s.to_owned();
            *js = JsValue::from_str(s);
        }
        js.clone()
    })
}

/// How a message reached the app, for its `fields` (amqplib's shapes).
pub enum Fields<'a> {
    /// `seq`: the message's position in its queue (`fields.sequence`).
    Consume {
        consumer_tag: &'a str,
        delivery_tag: u64,
        redelivered: bool,
        seq: u64,
    },
    Get {
        delivery_tag: u64,
        redelivered: bool,
        message_count: u32,
        seq: u64,
    },
    Return {
        reply_code: u16,
        reply_text: &'a str,
    },
    /// Peeked at, not delivered: `{exchange, routingKey}`.
    Peek,
}

/// A message as amqplib hands it over: `{content, fields, properties}`. A message that
/// came back before (`delivery_count` > 0) carries `x-delivery-count` in its headers.
pub fn message_to_js(m: &Message, fields: Fields, delivery_count: u32) -> JsValue {
    let (ex, rk) = (m.exchange.as_str(), m.routing_key.as_str());
    let fields = match fields {
        Fields::Consume { consumer_tag, delivery_tag, redelivered, seq } => consume_fields(
            &recent(0, consumer_tag),
            delivery_tag as f64,
            redelivered,
            &recent(1, ex),
            &recent(2, rk),
            seq as f64,
        ),
        Fields::Get { delivery_tag, redelivered, message_count, seq } => {
            get_fields(delivery_tag as f64, redelivered, &recent(1, ex), &recent(2, rk), message_count, seq as f64)
        }
        Fields::Return { reply_code, reply_text } => return_fields(reply_code, reply_text, ex, rk),
        Fields::Peek => peek_fields(ex, rk),
    };
    let p = &m.properties;
    let headers = table_to_js(&p.headers);
    if delivery_count > 0 {
        set(&headers, "x-delivery-count", delivery_count as f64);
    }
    let content = new_content(m.body.len() as u32);
    content.copy_from(&m.body);
    make_message(
        content,
        fields,
        &p.content_type.as_deref().map_or(JsValue::UNDEFINED, |t| recent(3, t)),
        p.content_encoding.as_deref(),
        headers,
        if p.persistent { 2 } else { 1 },
        p.priority,
        p.correlation_id.as_deref(),
        p.reply_to.as_deref(),
        p.expiration.as_deref(),
        p.message_id.as_deref(),
        p.timestamp.map(|t| t as f64),
        p.kind.as_deref(),
        p.user_id.as_deref(),
        p.app_id.as_deref(),
    )
}
