//! The JavaScript binding (wasm32 only): converts and delegates to the [`crate::host`].
//! `RawBroker`, `RawConnection` and `RawChannel` (in `channel`) are what the package's
//! main module, `index.js`, wraps into amqplib's promise-and-event API.

mod channel;
mod convert;
mod link;

pub use channel::{RawBroker, RawChannel, RawConnection};

use js_sys::Reflect;
use wasm_bindgen::prelude::*;

use crate::core::AmqpError;

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
