//! The IndexedDB backend (wasm32): one database per broker name, one object store per
//! [`Collection`], records as `Uint8Array`s. The JS glue (`indexeddb.js`) only wraps
//! requests and transactions in promises; what to write is decided by [`super::Log`].
//!
//! Writes go through our own glue rather than `indexed_db_futures`: its `commit()`
//! reports an aborted transaction without the `DOMException` that caused it, and the
//! broker must tell a full disk (`QuotaExceededError`) from other failures.

use js_sys::{Array, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use super::log::{Collection, Key, Record, Write};

#[wasm_bindgen(module = "/src/store/indexeddb.js")]
extern "C" {
    type Db;
    #[wasm_bindgen(static_method_of = Db, js_name = open, catch)]
    async fn open_db(name: &str, stores: Array) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch)]
    async fn load(this: &Db, stores: Array) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, js_name = loadRange, catch)]
    async fn load_range(this: &Db, store: &str, after: JsValue, limit: u32) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, js_name = getMany, catch)]
    async fn get_many(this: &Db, store: &str, keys: Array) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch)]
    async fn write(this: &Db, writes: Array, clear: bool) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, js_name = closeNow)]
    fn close_now(this: &Db);
    #[wasm_bindgen(method, getter, js_name = emptiedAtOpen)]
    fn emptied_at_open(this: &Db) -> bool;
}

/// Why a store operation failed: the `DOMException` name (`QuotaExceededError`,
/// `VersionError`, …) and its message.
#[derive(Clone, Debug)]
pub struct StoreError {
    pub name: String,
    pub message: String,
}

impl StoreError {
    pub(crate) fn from_js(e: JsValue) -> StoreError {
        let get = |k: &str| Reflect::get(&e, &k.into()).ok().and_then(|v| v.as_string());
        StoreError {
            name: get("name").unwrap_or_else(|| "Error".into()),
            message: get("message").or_else(|| e.as_string()).unwrap_or_default(),
        }
    }

    pub fn is_quota(&self) -> bool {
        self.name == "QuotaExceededError"
    }

    /// The database was deleted under the broker and opened again empty (`indexeddb.js`).
    pub fn is_emptied(&self) -> bool {
        self.name == "TabbitStoreEmptied"
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.message.as_str() {
            "" => f.write_str(&self.name),
            m => write!(f, "{}: {m}", self.name),
        }
    }
}

/// An open IndexedDB database of one broker.
pub struct IndexedDb {
    db: Db,
}

pub(crate) fn key_to_js(k: &Key) -> JsValue {
    match k {
        Key::Str(s) => JsValue::from_str(s),
        Key::Num(n) => JsValue::from_f64(*n as f64),
    }
}

/// A record key from JS: a string, or a whole number below 2^53.
pub(crate) fn key_from_js(k: &JsValue) -> Option<Key> {
    match (k.as_string(), k.as_f64()) {
        (Some(s), _) => Some(Key::Str(s.into())),
        (None, Some(n)) if n >= 0.0 && n.fract() == 0.0 && n < 9.0e15 => Some(Key::Num(n as u64)),
        _ => None,
    }
}

/// A loaded record's key and bytes, or `None` (reported) when it is not tabbit's.
fn record(collection: Collection, k: &JsValue, v: JsValue, problems: &mut Vec<String>) -> Option<(Key, Vec<u8>)> {
    let Some(key) = key_from_js(k) else {
        problems.push(format!("a record in '{}' with a foreign key was skipped", collection.name()));
        return None;
    };
    match v.dyn_into::<Uint8Array>() {
        Ok(bytes) => Some((key, bytes.to_vec())),
        Err(_) => {
            let key = match &key {
                Key::Str(s) => format!("'{s}'"),
                Key::Num(n) => n.to_string(),
            };
            problems
                .push(format!("record {key} in '{}' is not tabbit's (not bytes) and was skipped", collection.name()));
            None
        }
    }
}

impl IndexedDb {
    /// Opens (creating or upgrading) the database `name`.
    pub async fn open(name: &str) -> Result<IndexedDb, StoreError> {
        let stores: Array = Collection::ALL.iter().map(|c| JsValue::from_str(c.name())).collect();
        let db = Db::open_db(name, stores).await.map_err(StoreError::from_js)?;
        Ok(IndexedDb { db: db.unchecked_into() })
    }

    /// Every record but segments (see [`IndexedDb::segments_after`]). A record that is
    /// not a `Uint8Array` under a string or whole-number key (a foreign writer's) is
    /// skipped and reported.
    pub async fn load_meta(&self) -> Result<(Vec<Record>, Vec<String>), StoreError> {
        let names: Array = Collection::ALL
            .iter()
            .filter(|c| **c != Collection::Segments)
            .map(|c| JsValue::from_str(c.name()))
            .collect();
        let all: Array = self.db.load(names).await.map_err(StoreError::from_js)?.unchecked_into();
        let (mut records, mut problems) = (Vec::new(), Vec::new());
        for triple in all.iter() {
            let triple: Array = triple.unchecked_into();
            let Some(collection) = triple.get(0).as_string().and_then(|n| Collection::from_name(&n)) else { continue };
            let (keys, values): (Array, Array) = (triple.get(1).unchecked_into(), triple.get(2).unchecked_into());
            for (k, v) in keys.iter().zip(values.iter()) {
                if let Some((key, value)) = record(collection, &k, v, &mut problems) {
                    records.push(Record { collection, key, value });
                }
            }
        }
        Ok((records, problems))
    }

    /// Up to `limit` segments with ids above `after` (from the first with `None`), in
    /// id order, so that recovery holds a bounded part of the log at a time.
    pub async fn segments_after(
        &self,
        after: Option<u64>,
        limit: u32,
        problems: &mut Vec<String>,
    ) -> Result<(Vec<(u64, Vec<u8>)>, Option<u64>), StoreError> {
        let after_js = after.map_or(JsValue::UNDEFINED, |a| JsValue::from_f64(a as f64));
        let name = Collection::Segments.name();
        let pair: Array =
            self.db.load_range(name, after_js, limit).await.map_err(StoreError::from_js)?.unchecked_into();
        let (keys, values): (Array, Array) = (pair.get(0).unchecked_into(), pair.get(1).unchecked_into());
        let (mut last, mut numeric) = (None, true);
        let mut out = Vec::new();
        for (k, v) in keys.iter().zip(values.iter()) {
            numeric &= k.as_f64().is_some();
            last = k.as_f64().map(|n| n as u64).or(last);
            match record(Collection::Segments, &k, v, problems) {
                Some((Key::Num(id), value)) => out.push((id, value)),
                Some((Key::Str(s), _)) => {
                    problems.push(format!("a segment keyed '{s}' is not tabbit's and was skipped"))
                }
                None => {}
            }
        }
        // A string key sorts after every number: once one shows, the log is done.
        let more = keys.length() == limit && numeric && last.is_some();
        Ok((out, if more { last } else { None }))
    }

    /// The segments with these ids; missing ones are left out.
    pub async fn segments(&self, ids: &[u64]) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let keys: Array = ids.iter().map(|id| JsValue::from_f64(*id as f64)).collect();
        let name = Collection::Segments.name();
        let values: Array = self.db.get_many(name, keys).await.map_err(StoreError::from_js)?.unchecked_into();
        Ok(ids
            .iter()
            .zip(values.iter())
            .filter_map(|(id, v)| v.dyn_into::<Uint8Array>().ok().map(|b| (*id, b.to_vec())))
            .collect())
    }

    /// Writes a batch's writes in one transaction (after emptying every object store if
    /// `clear`); resolves after its `complete` event.
    pub async fn write(&self, writes: &[Write], clear: bool) -> Result<(), StoreError> {
        let array = Array::new();
        for w in writes {
            array.push(&JsValue::from_str(w.collection.name()));
            array.push(&key_to_js(&w.key));
            array.push(&w.value.as_deref().map_or(JsValue::UNDEFINED, |v| Uint8Array::from(v).into()));
        }
        self.db.write(array, clear).await.map(|_| ()).map_err(StoreError::from_js)
    }

    /// The database was created at this open though one had been created before (a mark
    /// kept outside IndexedDB says so, where there is one: `indexeddb.js`): it was
    /// deleted while no broker ran.
    pub fn found_emptied(&self) -> bool {
        self.db.emptied_at_open()
    }

    pub fn close(&self) {
        self.db.close_now();
    }
}
