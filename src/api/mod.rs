//! The JavaScript binding (wasm32 only): converts and delegates to the [`crate::host`].
//! `RawBroker`, `RawConnection` and `RawChannel` (in `channel`) are what the package's
//! main module, `index.js`, wraps into amqplib's promise-and-event API.

mod bridges;
mod channel;
mod convert;
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

#[wasm_bindgen(module = "/src/api/glue.js")]
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

/// A JS `Error` carrying the AMQP reply `code`.
pub(crate) fn to_js(e: AmqpError) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    let _ = Reflect::set(&err, &"code".into(), &JsValue::from(e.code.code()));
    err.into()
}
