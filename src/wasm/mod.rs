//! The JavaScript binding (wasm32 only): converts and delegates to the [`crate::host`].
//! `RawBroker`, `RawConnection` and `RawChannel` (in `channel`) are what the package's
//! main module, `index.js`, wraps into amqplib's promise-and-event API.

mod bridges;
mod channel;
mod convert;
mod endpoint;
mod link;
mod stomp;

pub use channel::{RawBroker, RawChannel, RawConnection};

use js_sys::Reflect;
use wasm_bindgen::prelude::*;

use crate::core::AmqpError;

thread_local! {
    /// What `onPanic` registered: told of a panic before the wasm instance traps.
    static ON_PANIC: std::cell::RefCell<Option<js_sys::Function>> = const { std::cell::RefCell::new(None) };
}

#[wasm_bindgen(module = "/js/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = closeAllPorts)]
    fn close_all_ports();
}

/// `fn(message)` runs if tabbit ever panics (a bug): before the instance stops for good,
/// every mesh port of this instance leaves (releasing its locks, so that another context
/// hosts), and `fn` is told why, so that the package can fail what is pending with a clear
/// error and load a fresh instance.
#[wasm_bindgen(js_name = onPanic)]
pub fn on_panic(f: js_sys::Function) {
    ON_PANIC.with(|h| *h.borrow_mut() = Some(f));
    std::panic::set_hook(Box::new(|info| {
        close_all_ports();
        let message = info.to_string();
        ON_PANIC.with(|h| {
            if let Ok(h) = h.try_borrow() {
                if let Some(f) = h.as_ref() {
                    let _ = f.call1(&JsValue::NULL, &JsValue::from_str(&message));
                }
            }
        });
    }));
}

/// For the tests of what a panic does (see `onPanic`): panics.
#[doc(hidden)]
#[wasm_bindgen(js_name = __testPanic)]
pub fn test_panic() {
    panic!("a panic asked for by a test");
}

/// The package version, as built.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// A JS `Error` carrying the AMQP reply `code`; for an error of an AMQP method (a call
/// the broker refused), worded as amqplib words a rejected operation, with its `classId`
/// and `methodId`: `Operation failed: QueueDeclare; 404 (NOT-FOUND) with message
/// "NOT_FOUND - …"`.
pub(crate) fn to_js(e: AmqpError) -> JsValue {
    error_js(e, true)
}

/// The error of a channel's 'error' event: as [`to_js`], worded as amqplib words a
/// channel the broker closed: `Channel closed by server: 404 (NOT-FOUND) with message "…"`.
pub(crate) fn closed_js(e: AmqpError) -> JsValue {
    error_js(e, false)
}

/// `call`: the error rejects a call (else it closed a channel). An error of no AMQP
/// method (a call on a closed channel, the host gone) keeps tabbit's wording.
fn error_js(e: AmqpError, call: bool) -> JsValue {
    let (class_id, method_id) = e.method;
    let text = if class_id == 0 {
        e.to_string()
    } else {
        let (head, name, sep) = match (call, method_name(e.method)) {
            (true, Some(name)) => ("Operation failed: ", name, "; "),
            (true, None) => ("Operation failed: ", "", ""),
            (false, _) => ("Channel closed by server: ", "", ""),
        };
        let code: String = e.code.name().chars().map(|c| if c == '_' { '-' } else { c }).collect();
        format!("{head}{name}{sep}{} ({code}) with message \"{e}\"", e.code.code())
    };
    let err = js_sys::Error::new(&text);
    let _ = Reflect::set(&err, &"code".into(), &JsValue::from(e.code.code()));
    if class_id != 0 {
        let _ = Reflect::set(&err, &"classId".into(), &JsValue::from(class_id));
        let _ = Reflect::set(&err, &"methodId".into(), &JsValue::from(method_id));
    }
    err.into()
}

/// amqplib's name of an AMQP method.
fn method_name(method: (u16, u16)) -> Option<&'static str> {
    Some(match method {
        (20, 10) => "ChannelOpen",
        (20, 40) => "ChannelClose",
        (40, 10) => "ExchangeDeclare",
        (40, 20) => "ExchangeDelete",
        (40, 30) => "ExchangeBind",
        (40, 40) => "ExchangeUnbind",
        (50, 10) => "QueueDeclare",
        (50, 20) => "QueueBind",
        (50, 30) => "QueuePurge",
        (50, 40) => "QueueDelete",
        (50, 50) => "QueueUnbind",
        (60, 10) => "BasicQos",
        (60, 20) => "BasicConsume",
        (60, 30) => "BasicCancel",
        (60, 40) => "BasicPublish",
        (60, 70) => "BasicGet",
        (60, 80) => "BasicAck",
        (60, 90) => "BasicReject",
        (60, 110) => "BasicRecover",
        (60, 120) => "BasicNack",
        _ => return None,
    })
}
