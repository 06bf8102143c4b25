//! Modules: [`core`], the sans-IO broker state machine (commands in, effects out; time is
//! an argument); [`store`], the stored layout and its backends; [`codec`], the binary
//! primitives that the store's records and the mesh's posts are built from; [`mesh`], one
//! broker shared by the contexts of an origin (the wire format, the client and host state
//! machines); [`bridge`], the bridge to a RabbitMQ server over Web-STOMP; [`host`], what a
//! context that hosts a broker decides (the sans-IO [`host::Engine`]) and its driver in
//! browsers (wasm32 only); `wasm` (wasm32 only), the JavaScript binding.
#![doc = include_str!("../README.md")]

pub mod bridge;
pub mod codec;
pub mod core;
pub mod host;
pub mod mesh;
pub mod store;

#[cfg(target_arch = "wasm32")]
pub mod wasm;
