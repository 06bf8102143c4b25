//! Records in memory: what a store holds, for native tests of recovery and for runtimes
//! whose storage adapter keeps a copy of its own.

use std::collections::BTreeMap;

use super::log::{Batch, Collection, Key, Record, Write};

/// A store that keeps its records in a map: applying a batch is atomic, as a transaction.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    records: BTreeMap<(Collection, Key), Vec<u8>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }

    pub fn apply(&mut self, batch: &Batch) {
        self.write(&batch.writes);
    }

    /// Applies a transaction's writes (`host::engine::Transaction`), as one.
    pub fn write(&mut self, writes: &[Write]) {
        for w in writes {
            let k = (w.collection, w.key.clone());
            match &w.value {
                Some(v) => self.records.insert(k, v.clone()),
                None => self.records.remove(&k),
            };
        }
    }

    pub fn records(&self) -> Vec<Record> {
        self.records
            .iter()
            .map(|((collection, key), value)| Record {
                collection: *collection,
                key: key.clone(),
                value: value.clone(),
            })
            .collect()
    }

    /// The segment records with these ids, as `(id, bytes)`: what a page-in reads back.
    pub fn segments(&self, ids: &[u64]) -> Vec<(u64, Vec<u8>)> {
        ids.iter()
            .filter_map(|&id| self.records.get(&(Collection::Segments, Key::Num(id))).map(|v| (id, v.clone())))
            .collect()
    }

    /// Records in one collection.
    pub fn count(&self, collection: Collection) -> usize {
        self.records.keys().filter(|(c, _)| *c == collection).count()
    }

    /// Replaces a record's bytes, as a corrupt disk or a foreign writer would.
    pub fn overwrite(&mut self, collection: Collection, key: Key, value: Vec<u8>) {
        self.records.insert((collection, key), value);
    }
}
