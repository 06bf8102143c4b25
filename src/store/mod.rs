//! Durable state: the stored layout, its records and its bookkeeping ([`log`], sans-IO,
//! tested natively, the records built from [`crate::codec`]), and the backends: memory here, IndexedDB in browsers
//! and workers (`indexeddb`, wasm32 only), and a storage object the app hands in
//! (`adapter`, wasm32 only).

pub mod log;
pub mod memory;
pub mod range_set;

pub use log::{
    end_write, finish_restore, restore, restore_message, restore_topology, start_write, Batch, Collection, Key, Log,
    Record, Recovered, Recovery, Write,
};
pub use memory::MemoryStore;

#[cfg(target_arch = "wasm32")]
pub mod adapter;
#[cfg(target_arch = "wasm32")]
pub mod indexeddb;
