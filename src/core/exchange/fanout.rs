//! Fanout exchange: a message goes to every binding, whatever its routing key.

use super::Routing;
use crate::core::error::Result;
use crate::core::ids::Destination;
use crate::core::value::Table;

#[derive(Debug, Default)]
pub struct FanoutRouter {
    /// One entry per binding; a destination bound twice (with different keys) appears twice
    /// and the broker removes the duplicate when routing.
    dests: Vec<Destination>,
}

impl Routing for FanoutRouter {
    fn validate_binding(&self, _key: &str, _args: &Table) -> Result<()> {
        Ok(())
    }
    fn add_binding(&mut self, dest: Destination, _key: &str, _args: &Table) {
        self.dests.push(dest);
    }
    fn remove_binding(&mut self, dest: Destination, _key: &str, _args: &Table) {
        if let Some(i) = self.dests.iter().position(|d| *d == dest) {
            self.dests.swap_remove(i);
        }
    }
    fn route(&self, _routing_key: &str, _headers: &Table, out: &mut Vec<Destination>) {
        out.extend_from_slice(&self.dests);
    }
}
