//! Direct exchange: a message goes to the bindings whose key equals its routing key.

use crate::core::fxhash::FxMap;

use super::Routing;
use crate::core::error::Result;
use crate::core::ids::Destination;
use crate::core::value::Table;

#[derive(Debug, Default)]
pub struct DirectRouter {
    by_key: FxMap<String, Vec<Destination>>,
}

impl Routing for DirectRouter {
    fn validate_binding(&self, _key: &str, _args: &Table) -> Result<()> {
        Ok(())
    }
    fn add_binding(&mut self, dest: Destination, key: &str, _args: &Table) {
        // Bindings that differ only in arguments share (key, dest): keep one entry per binding
        // so removing one of them leaves the other routing.
        self.by_key.entry(key.to_owned()).or_default().push(dest);
    }
    fn remove_binding(&mut self, dest: Destination, key: &str, _args: &Table) {
        if let Some(dests) = self.by_key.get_mut(key) {
            if let Some(i) = dests.iter().position(|d| *d == dest) {
                dests.swap_remove(i);
            }
            if dests.is_empty() {
                self.by_key.remove(key);
            }
        }
    }
    fn route(&self, routing_key: &str, _headers: &Table, out: &mut Vec<Destination>) {
        if let Some(dests) = self.by_key.get(routing_key) {
            out.extend_from_slice(dests);
        }
    }
}
