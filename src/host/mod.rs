//! The context that hosts a broker. [`engine`] decides (all targets, sans-IO: the core,
//! the store's log, group commit, held confirms, retries, the fence, paging, timers); the
//! driver (wasm32) does what it says in a browser or worker: it writes each transaction
//! to IndexedDB or a storage adapter and reports how it ended, reads segments back for
//! page-ins, runs one timer, and hands events to the binding.

pub mod engine;

pub use engine::{ConfirmResult, Engine, Event};

#[cfg(target_arch = "wasm32")]
mod driver;
#[cfg(target_arch = "wasm32")]
pub use driver::{now, EventSink, Host, Notice, Storage};
