//! A storage adapter handed in by the app (wasm32): for runtimes without IndexedDB
//! (Cloudflare's workerd, Deno, Node), any object with two async methods:
//!
//! - `load()`: every record written so far (after all completed `write`s), as an
//!   iterable of `[store, key, value]`: `store` a string, `key` a string or a
//!   non-negative whole number, `value` a `Uint8Array`.
//! - `write(writes)`: apply one batch atomically and resolve only once it is durable;
//!   `writes` is an array of `{store, key, value}`, where `value === undefined` deletes.
//!   Reject to fail the batch: the publishes it held are nacked (their promises reject),
//!   and nothing of it may have been applied.
//!
//! The broker never awaits two writes at once. Records are opaque bytes; keep them as
//! they are. Queues do not page out to an adapter: every message stays in memory too.

use js_sys::{Array, Function, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::indexeddb::{key_from_js, key_to_js, StoreError};
use super::log::{Collection, Record, Write};

pub struct JsAdapter {
    obj: JsValue,
    load: Function,
    write: Function,
}

fn err(message: impl Into<String>) -> StoreError {
    StoreError { name: "AdapterError".into(), message: message.into() }
}

impl JsAdapter {
    /// Checks that `obj` has `load` and `write` methods.
    pub fn new(obj: JsValue) -> Result<JsAdapter, StoreError> {
        let method = |name: &str| {
            Reflect::get(&obj, &name.into()).ok().and_then(|f| f.dyn_into::<Function>().ok()).ok_or_else(|| {
                err(format!("a storage adapter needs a '{name}' method: pass {{ load(), write(writes) }} or 'memory'"))
            })
        };
        Ok(JsAdapter { load: method("load")?, write: method("write")?, obj })
    }

    async fn call(&self, f: &Function, arg: Option<&JsValue>) -> Result<JsValue, StoreError> {
        let out = match arg {
            Some(a) => f.call1(&self.obj, a),
            None => f.call0(&self.obj),
        }
        .map_err(StoreError::from_js)?;
        JsFuture::from(js_sys::Promise::resolve(&out)).await.map_err(StoreError::from_js)
    }

    /// Every record; entries that are not `[store, key, Uint8Array]` are skipped and reported.
    pub async fn load(&self) -> Result<(Vec<Record>, Vec<String>), StoreError> {
        let all = self.call(&self.load, None).await?;
        let all = Array::from(&all);
        let (mut records, mut problems) = (Vec::new(), Vec::new());
        for entry in all.iter() {
            let entry = Array::from(&entry);
            let collection = entry.get(0).as_string().and_then(|s| Collection::from_name(&s));
            let key = key_from_js(&entry.get(1));
            match (collection, key, entry.get(2).dyn_into::<Uint8Array>()) {
                (Some(collection), Some(key), Ok(v)) => records.push(Record { collection, key, value: v.to_vec() }),
                _ => problems
                    .push("a record from the storage adapter is not [store, key, Uint8Array] and was skipped".into()),
            }
        }
        Ok((records, problems))
    }

    /// Applies a batch's writes, atomically as the adapter promises.
    pub async fn write(&self, writes: &[Write]) -> Result<(), StoreError> {
        let writes: Array = writes
            .iter()
            .map(|w| {
                let o = Object::new();
                let _ = Reflect::set(&o, &"store".into(), &w.collection.name().into());
                let _ = Reflect::set(&o, &"key".into(), &key_to_js(&w.key));
                let value = w.value.as_deref().map_or(JsValue::UNDEFINED, |v| Uint8Array::from(v).into());
                let _ = Reflect::set(&o, &"value".into(), &value);
                JsValue::from(o)
            })
            .collect();
        self.call(&self.write, Some(&writes)).await.map(|_| ())
    }
}
