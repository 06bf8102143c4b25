//! Modules: [`core`], the sans-IO broker state machine (commands in, effects out; time is
//! an argument); `api` (wasm32 only), the JavaScript binding.
#![doc = include_str!("../README.md")]

pub mod bridge;
pub mod core;
pub mod mesh;
pub mod store;

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod host;
