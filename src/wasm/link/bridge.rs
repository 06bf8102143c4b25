//! A [`Link`]'s bridges (`conn.bridge()`): declarations and statuses go through the
//! mesh's machines (`crate::mesh::bridge`); in the hosting context, the JS Runners start
//! and stop as the host state says, and tell it their status.

use super::*;
use crate::mesh::bridge::BridgeStatus;
use crate::wasm::bridges::{config_from_js, status_to_js};

impl Link {
    pub(crate) fn set_on_bridge(&self, f: Option<Function>) {
        *self.on_bridge.borrow_mut() = f;
    }

    /// Tells the JS side to start (`config`) or stop (`null`) bridge `name`'s Runner.
    pub(super) fn run_bridge(&self, name: &str, config: &JsValue) {
        let f = self.on_bridge.borrow().clone();
        if let Some(f) = f {
            if let Err(e) = f.call2(&JsValue::NULL, &JsValue::from_str(name), config) {
                convert::report_uncaught(&e);
            }
        }
    }

    /// This context stops hosting (it closes or left): the bridges it ran stop with it;
    /// the next host runs them again, declared anew by the live contexts.
    pub(super) fn stop_bridges(&self) {
        let names = self.server.borrow().as_ref().map(|s| s.state.bridge_names()).unwrap_or_default();
        for name in names {
            self.run_bridge(&name, &JsValue::NULL);
        }
    }

    /// `bridge()`: resolves once the host runs it (at once if this context declared it
    /// already, alike); a 406 if it runs with other options.
    pub(crate) fn declare_bridge(self: &Rc<Self>, name: &str, config: &JsValue) -> Result<Promise, JsValue> {
        let config = config_from_js(name, config).map_err(to_js)?;
        let id = self.client.borrow_mut().declare_bridge(config).map_err(to_js)?;
        match id {
            Some(id) => Ok(self.promise(id)),
            None => Ok(Promise::resolve(&JsValue::UNDEFINED)),
        }
    }

    pub(crate) fn undeclare_bridge(self: &Rc<Self>, name: &str) {
        self.client.borrow_mut().undeclare_bridge(name);
        self.pump();
    }

    /// Every bridge's status as the host last told it.
    pub(crate) fn bridges(&self) -> Array {
        let client = self.client.borrow();
        let host = client.host().unwrap_or(0);
        let out = Array::new();
        for (c, s) in client.bridges() {
            out.push(&status_to_js(c, s, host));
        }
        out
    }

    /// A Runner's status, for the host state to tell every context (ignored once this
    /// context no longer hosts).
    pub(crate) fn bridge_status(self: &Rc<Self>, name: &str, status: BridgeStatus) {
        self.hosted(|s, _, _| s.bridge_status(name, status));
    }

    /// One queue's arguments (`null` if there is no such queue).
    pub(crate) fn queue_arguments(self: &Rc<Self>, queue: String) -> Promise {
        let id = self.client.borrow_mut().ask(|id| Frame::QueueArguments { id, queue });
        self.promise(id)
    }
}
