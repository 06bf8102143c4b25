//! The STOMP codec and the property mapping of [`crate::bridge`] for `bridge.js`, which
//! drives the WebSocket to RabbitMQ from the hosting context.

use js_sys::{Array, Map, Uint8Array};
use wasm_bindgen::prelude::*;

use super::convert::{self, Fields};
use super::to_js;
use crate::bridge::{self, stomp};
use crate::core::{AmqpError, Message};

/// The STOMP codec of one connection: reads frames out of the bytes a WebSocket delivers,
/// and gathers the frames to send into the bytes of one WebSocket message.
#[wasm_bindgen]
pub struct StompCodec {
    decoder: stomp::Decoder,
    out: Vec<u8>,
}

#[wasm_bindgen]
impl StompCodec {
    /// A codec that refuses frames over `max_frame_bytes`.
    #[wasm_bindgen(constructor)]
    pub fn new(max_frame_bytes: u32) -> StompCodec {
        StompCodec { decoder: stomp::Decoder::new(max_frame_bytes as usize), out: Vec::new() }
    }

    /// The frames `bytes` complete: `{command, headers: Map (first copy of each), body}`,
    /// and for a MESSAGE also `message: {content, properties}` with the AMQP properties
    /// mapped back from its headers and `fields.routingKey` from its destination; a RECEIPT is only
    /// its `receipt-id`, a string (one comes for every message sent). Throws (code 502, a
    /// frame error) on a malformed frame; the codec then takes no more.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Array, JsValue> {
        let frames = self
            .decoder
            .push(bytes)
            .map_err(|e| to_js(AmqpError::new(crate::core::ReplyCode::FrameError, e.to_string())))?;
        Ok(frames.iter().map(frame_js).collect())
    }

    /// Adds the SEND frame for a message as a consumer got it (`content`, amqplib's
    /// `properties`) to the bytes `take()` answers, with `messageId` as its
    /// `amqp-message-id`; not its `x-delivery-count` header, the local broker's count of
    /// deliveries. Answers how many custom headers were left out (reserved names, values
    /// with no text form).
    pub fn send(
        &mut self,
        destination: &str,
        receipt: &str,
        message_id: &str,
        content: JsValue,
        properties: JsValue,
    ) -> Result<u32, JsValue> {
        let (mut m, _) = convert::message("", "", &content, &properties).map_err(to_js)?;
        m.properties.headers.remove("x-delivery-count");
        Ok(bridge::encode_send(&mut self.out, destination, receipt, message_id, &m.properties, &m.body))
    }

    /// Adds a frame without a body (CONNECT, SUBSCRIBE, ACK, NACK) to the bytes `take()`
    /// answers: `headers` is an array of `[name, value]` pairs.
    pub fn frame(&mut self, command: &str, headers: Array) {
        let mut f = stomp::Frame::new(command);
        for pair in headers.iter() {
            let pair: Array = pair.unchecked_into();
            f.headers.push((pair.get(0).as_string().unwrap_or_default(), pair.get(1).as_string().unwrap_or_default()));
        }
        f.encode_into(&mut self.out, &[]);
    }

    /// The frames added since the last call, as the bytes of one WebSocket message.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

fn frame_js(f: &stomp::Frame) -> JsValue {
    if f.command == "RECEIPT" {
        return f.get("receipt-id").unwrap_or_default().into();
    }
    let out = js_sys::Object::new();
    let headers = Map::new();
    for (k, v) in &f.headers {
        let key = JsValue::from_str(k);
        if !headers.has(&key) {
            headers.set(&key, &JsValue::from_str(v));
        }
    }
    convert::set(&out, "command", f.command.as_str());
    convert::set(&out, "headers", headers);
    if f.command == "MESSAGE" {
        let routing_key = bridge::routing_key(f.get("destination").unwrap_or(""));
        let m = Message {
            exchange: String::new(),
            routing_key: routing_key.to_owned(),
            properties: bridge::properties(f),
            body: f.body.clone(),
        };
        convert::set(&out, "message", convert::message_to_js(&m, Fields::Peek, 0));
    } else {
        convert::set(&out, "body", Uint8Array::from(&f.body[..]));
    }
    out.into()
}

/// Checks a STOMP destination: `null` if RabbitMQ takes it, else what to write instead.
#[wasm_bindgen(js_name = stompDestinationError)]
pub fn stomp_destination_error(destination: &str, subscribe: bool) -> Option<String> {
    bridge::check_destination(destination, subscribe).err()
}
