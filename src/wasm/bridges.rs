//! Bridge declarations and statuses between JS and the mesh's structures
//! (`crate::mesh::bridge`): the configuration bridgeConfig (js/bridge.js) made, the
//! Runner's status, and `stats().bridges` (`BridgeStatus` in index.d.ts, whose `rules` are
//! the configuration without its passcode).

use js_sys::{Array, Object};
use wasm_bindgen::prelude::*;

use super::convert::{set, table, table_to_js, Result};
use crate::core::{AmqpError, FieldValue, Table};
use crate::mesh::bridge::{BridgeConfig, BridgeState, BridgeStatus};

/// A declaration of bridge `name`: the configuration bridgeConfig made, as a field table.
pub fn config_from_js(name: &str, v: &JsValue) -> Result<BridgeConfig> {
    Ok(BridgeConfig { name: name.into(), table: table(v, "bridge()")? })
}

/// A string of the configuration (`url`, `vhost`, `login`), `''` if it has none.
fn text(t: &Table, key: &str) -> JsValue {
    match t.get(key) {
        Some(FieldValue::Str(s)) => s.into(),
        _ => "".into(),
    }
}

const OUTBOUND: [&str; 4] = ["sent", "confirmed", "pending", "skippedHeaders"];
const INBOUND: [&str; 3] = ["received", "acked", "refused"];

/// What the Runner tells: its state's name, error, since and retryAt, and its counts
/// (connects, then `OUTBOUND`'s, then `INBOUND`'s).
pub fn status_from_js(
    state: &str,
    error: Option<String>,
    since: f64,
    retry_at: Option<f64>,
    counts: &[f64],
) -> Result<BridgeStatus> {
    let whole = |n: f64| (0.0..=9.0e15).contains(&n).then_some(n as u64);
    let read = || {
        let mut s = BridgeStatus {
            state: BridgeState::from_name(state)?,
            error,
            since: whole(since)?,
            retry_at: match retry_at {
                Some(t) => Some(whole(t)?),
                None => None,
            },
            ..Default::default()
        };
        let [connects, rest @ ..] = counts else { return None };
        s.connects = whole(*connects)?;
        if rest.len() != s.outbound.len() + s.inbound.len() {
            return None;
        }
        for (n, v) in s.outbound.iter_mut().chain(&mut s.inbound).zip(rest) {
            *n = whole(*v)?;
        }
        Some(s)
    };
    read().ok_or_else(|| {
        AmqpError::precondition(
            "bridgeStatus(): give a state (connecting, connected, waiting, stopped), an error or null, since, \
             retryAt or null, and 8 counts from 0",
        )
    })
}

fn counts(names: &[&str], v: &[u64]) -> Object {
    let o = Object::new();
    for (k, n) in names.iter().zip(v) {
        set(&o, k, *n as f64);
    }
    o
}

/// One entry of `stats().bridges`: the status the host told, run by context `host`.
pub fn status_to_js(c: &BridgeConfig, s: &BridgeStatus, host: u64) -> JsValue {
    let o = Object::new();
    set(&o, "name", c.name.as_str());
    let t = &c.table;
    set(&o, "url", text(t, "url"));
    set(&o, "vhost", text(t, "vhost"));
    set(&o, "login", text(t, "login"));
    set(&o, "host", host.to_string());
    set(&o, "state", s.state.name());
    set(&o, "error", s.error.as_deref().map_or(JsValue::NULL, JsValue::from_str));
    set(&o, "since", s.since as f64);
    set(&o, "retryAt", s.retry_at.map_or(JsValue::NULL, |t| JsValue::from(t as f64)));
    set(&o, "connects", s.connects as f64);
    set(&o, "outbound", counts(&OUTBOUND, &s.outbound));
    set(&o, "inbound", counts(&INBOUND, &s.inbound));
    let outboxes = Array::new();
    if let Some(FieldValue::Array(rules)) = t.get("outbound") {
        for r in rules {
            if let FieldValue::Table(r) = r {
                outboxes.push(&text(r, "queue"));
            }
        }
    }
    set(&o, "outboxes", outboxes);
    set(&o, "rules", table_to_js(t));
    o.into()
}
