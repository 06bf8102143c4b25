//! `conn.stompEndpoint()`: the hosting context serves Web-STOMP ([`crate::bridge::server`])
//! on sockets the app hands over. `RawStompEndpoint` checks the options once, then takes
//! each socket's side by its number: what it receives, and when it closed. The sessions are
//! driven in `link/endpoint.rs`.

use std::cell::Cell;
use std::rc::Rc;

use js_sys::Function;
use wasm_bindgen::prelude::*;

use super::convert::get;
use super::link::endpoint::{not_hosting, EndpointConfig, SESSION_BIT};
use super::link::Link;
use super::to_js;
use crate::bridge::server::Config;
use crate::core::AmqpError;

/// The options' limits: name, default, largest.
const LIMITS: [(&str, u64, u64); 4] = [
    // RabbitMQ's default frame limit (RabbitMQ's docs, STOMP, Frame Size Limit: 4 MiB); at
    // most what a message may be (`connect()`'s maxMessageBytes) and its headers.
    ("maxFrameBytes", 4 << 20, 64 << 20),
    ("maxConnections", 1000, 1 << 20),
    ("maxSubscriptions", 128, 1 << 20),
    ("connectTimeoutMs", 10_000, 3_600_000),
];

/// The most state a hibernatable endpoint's session keeps beside its socket, in UTF-8 bytes:
/// half of what workerd lets a WebSocket's attachment weigh ("A WebSocket 'attachment' cannot
/// be larger than" `MAX_ATTACHMENT_SIZE`, 16 KiB, serialized: workerd's api/web-socket.h), as
/// V8 serializes a string with non-Latin-1 characters in two bytes each.
const HIBERNATABLE_STATE_BYTES: usize = 8 * 1024;

fn refused(what: String) -> JsValue {
    to_js(AmqpError::precondition(format!("stompEndpoint(): {what}")))
}

/// A Web-STOMP endpoint of the broker this context hosts.
#[wasm_bindgen]
pub struct RawStompEndpoint {
    link: Rc<Link>,
    cfg: Rc<EndpointConfig>,
}

impl RawStompEndpoint {
    /// `{authenticate, allowAnonymous, limits}` checked (a 406 says what to change).
    pub(crate) fn new(link: Rc<Link>, options: &JsValue) -> Result<RawStompEndpoint, JsValue> {
        if !link.hosting() {
            return Err(to_js(not_hosting()));
        }
        let options = if options.is_undefined() || options.is_null() {
            JsValue::from(js_sys::Object::new())
        } else {
            options.clone()
        };
        if !options.is_object() {
            return Err(refused("takes options { authenticate, allowAnonymous, limits }".into()));
        }
        let authenticate = match get(&options, "authenticate") {
            v if v.is_undefined() || v.is_null() => None,
            v => Some(v.dyn_into::<Function>().map_err(|_| {
                refused(
                    "'authenticate' must be a function (login, passcode, host, request) => boolean or a promise of one"
                        .into(),
                )
            })?),
        };
        let allow_anonymous = match get(&options, "allowAnonymous") {
            v if v.is_undefined() => false,
            v => v.as_bool().ok_or_else(|| refused("'allowAnonymous' must be true or false".into()))?,
        };
        let hibernatable = match get(&options, "hibernatable") {
            v if v.is_undefined() => false,
            v => v.as_bool().ok_or_else(|| refused("'hibernatable' must be true or false".into()))?,
        };
        if authenticate.is_none() && !allow_anonymous {
            return Err(refused(
                "give 'authenticate', a function (login, passcode, host, request) that says whether the credentials \
                 are good, or allowAnonymous: true to let anyone in"
                    .into(),
            ));
        }
        let mut values = LIMITS.map(|(_, default, _)| default);
        let limits = get(&options, "limits");
        if !limits.is_undefined() && !limits.is_null() {
            if !limits.is_object() {
                return Err(refused("'limits' must be an object such as { maxConnections: 100 }".into()));
            }
            for key in js_sys::Object::keys(limits.unchecked_ref::<js_sys::Object>()).iter() {
                let key = key.as_string().unwrap_or_default();
                let Some(i) = LIMITS.iter().position(|(name, ..)| *name == key) else {
                    let names = "maxFrameBytes, maxConnections, maxSubscriptions or connectTimeoutMs";
                    return Err(refused(format!("unknown limit '{key}': use {names}")));
                };
                let max = LIMITS[i].2;
                values[i] = match get(&limits, &key).as_f64() {
                    Some(n) if n >= 1.0 && n <= max as f64 && n.fract() == 0.0 => n as u64,
                    _ => return Err(refused(format!("'limits.{key}' must be a whole number from 1 to {max}"))),
                };
            }
        }
        let [max_frame, max_connections, max_subscriptions, connect_timeout] = values;
        let session = Config {
            max_frame_bytes: max_frame as usize,
            max_subscriptions: max_subscriptions as usize,
            connect_timeout_ms: connect_timeout,
            saved_state_bytes: if hibernatable { HIBERNATABLE_STATE_BYTES } else { 0 },
            ..Config::default()
        };
        let cfg = EndpointConfig {
            authenticate,
            allow_anonymous,
            session,
            max_connections: max_connections as usize,
            open: Cell::new(0),
        };
        Ok(RawStompEndpoint { link, cfg: Rc::new(cfg) })
    }
}

#[wasm_bindgen]
impl RawStompEndpoint {
    /// Serves a new socket: tabbit calls `send(Uint8Array)` with each STOMP frame (or
    /// heart-beat) to send and `close()` to close it; `request` goes to `authenticate`. On a
    /// hibernatable endpoint, `save(state)` gets the session's state as it changes, and
    /// `state` (one that `save` got) makes a session again on a socket that stayed open.
    /// Returns the socket's number, for `receive` and `closed`.
    pub fn open(
        &self,
        send: Function,
        close: Function,
        request: JsValue,
        save: Option<Function>,
        state: Option<String>,
    ) -> Result<u32, JsValue> {
        let ctx = self.link.open_session(&self.cfg, (send, close, save), request, state)?;
        Ok((ctx & !SESSION_BIT) as u32)
    }

    /// What socket `n` received: a `Uint8Array`, an `ArrayBuffer` or a string (text frames).
    pub fn receive(&self, n: u32, data: JsValue) -> Result<(), JsValue> {
        self.link.session_input(SESSION_BIT | n as u64, &data).map_err(to_js)
    }

    /// Socket `n` closed: its session ends (its unacked messages go back to their queues).
    pub fn closed(&self, n: u32) {
        self.link.session_closed(SESSION_BIT | n as u64);
    }

    /// Sockets served now.
    #[wasm_bindgen(getter)]
    pub fn connections(&self) -> u32 {
        self.cfg.open.get() as u32
    }
}
