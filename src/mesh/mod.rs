//! The mesh: one logical broker per name across the contexts (tabs, workers) of an
//! origin. One context hosts the core; the others send it commands and receive their
//! events over `BroadcastChannel('tabbit:<name>')`. This module holds what is testable
//! natively: the wire format ([`frame`]). The JS side (locks, the channel) is in
//! `src/api/mesh.js`, the hosting and client logic in `src/api/link.rs`.

pub mod frame;
