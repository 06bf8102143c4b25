//! Modules: [`core`], the sans-IO broker state machine (commands in, effects out; time is
//! an argument); [`host`], what a context that hosts a broker decides (the sans-IO
//! [`host::Engine`]) and its driver in browsers (wasm32 only); `wasm` (wasm32 only), the
//! JavaScript binding.
#![doc = include_str!("../README.md")]

pub mod bridge;
pub mod core;
pub mod host;
pub mod mesh;
pub mod store;

#[cfg(target_arch = "wasm32")]
pub mod wasm;
