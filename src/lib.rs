//! tabbit: a message broker with RabbitMQ's semantics that runs inside the browser.
//!
//! - [`core`]: the sans-IO broker state machine (commands in, effects out; time is an argument).
//! - `api` (wasm32 only): the JavaScript binding.

pub mod core;

#[cfg(target_arch = "wasm32")]
pub mod api;
