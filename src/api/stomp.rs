//! The STOMP codec and the property mapping of [`crate::bridge`] for `bridge.js`, which
//! drives the WebSocket to RabbitMQ from the hosting context.

use js_sys::{Array, Map, Uint8Array};
use wasm_bindgen::prelude::*;

use super::convert::{self, Fields};
use super::to_js;
use crate::bridge::{self, stomp};
use crate::core::{AmqpError, Message};

/// Reads STOMP frames out of the bytes a WebSocket delivers.
#[wasm_bindgen]
pub struct StompDecoder(stomp::Decoder);

#[wasm_bindgen]
impl StompDecoder {
    /// A decoder that refuses frames over `max_frame_bytes`.
    #[wasm_bindgen(constructor)]
    pub fn new(max_frame_bytes: u32) -> StompDecoder {
        StompDecoder(stomp::Decoder::new(max_frame_bytes as usize))
    }

    /// The frames `bytes` complete: `{command, headers: Map (first copy of each), body}`,
    /// and for a MESSAGE also `message: {content, properties}` with the AMQP properties
    /// mapped back from its headers and `routingKey` from its destination. Throws (code 502,
    /// a frame error) on a malformed frame; the decoder then takes no more.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Array, JsValue> {
        let frames =
            self.0.push(bytes).map_err(|e| to_js(AmqpError::new(crate::core::ReplyCode::FrameError, e.to_string())))?;
        Ok(frames.iter().map(frame_js).collect())
    }
}

fn frame_js(f: &stomp::Frame) -> JsValue {
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
        let js = convert::message_to_js(&m, Fields::Peek, 0);
        convert::set(&out, "routingKey", routing_key);
        convert::set(&out, "message", js);
    } else {
        convert::set(&out, "body", Uint8Array::from(&f.body[..]));
    }
    out.into()
}

/// A frame's bytes: `headers` is an array of `[name, value]` pairs.
#[wasm_bindgen(js_name = stompFrame)]
pub fn stomp_frame(command: &str, headers: Array, body: Option<Vec<u8>>) -> Vec<u8> {
    let mut f = stomp::Frame::new(command);
    for pair in headers.iter() {
        let pair: Array = pair.unchecked_into();
        f.headers.push((pair.get(0).as_string().unwrap_or_default(), pair.get(1).as_string().unwrap_or_default()));
    }
    if let Some(body) = body {
        f.body = body;
    }
    f.encode()
}

/// The SEND frame for a message as a consumer got it (`content`, amqplib's `properties`),
/// with `messageId` as its `amqp-message-id`. Returns `{frame, skipped}`: the frame's bytes
/// and the names of the custom headers left out (reserved names, values with no text form).
#[wasm_bindgen(js_name = stompSend)]
pub fn stomp_send(
    destination: &str,
    receipt: &str,
    message_id: &str,
    content: JsValue,
    properties: JsValue,
) -> Result<JsValue, JsValue> {
    let (m, _) = convert::message("", "", &content, &properties).map_err(to_js)?;
    let (frame, skipped) = bridge::send_frame(destination, receipt, message_id, &m.properties, &m.body);
    let out = js_sys::Object::new();
    convert::set(&out, "frame", Uint8Array::from(&frame.encode()[..]));
    let names: Array = skipped
        .iter()
        .map(|s| match s {
            bridge::Skipped::Reserved(k) | bridge::Skipped::NotText(k) => JsValue::from_str(k),
        })
        .collect();
    convert::set(&out, "skipped", names);
    Ok(out.into())
}

/// Checks a STOMP destination: `null` if RabbitMQ takes it, else what to write instead.
#[wasm_bindgen(js_name = stompDestinationError)]
pub fn stomp_destination_error(destination: &str, subscribe: bool) -> Option<String> {
    bridge::check_destination(destination, subscribe).err()
}
