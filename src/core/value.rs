//! AMQP field values: the type of message headers and of declare arguments.

/// A field table: message headers, queue and exchange arguments, binding arguments.
/// Ordered by key so that equality, hashing of declarations and encodings are deterministic.
///
/// A sorted `Vec` of entries, not a `BTreeMap`: tables are small (a few headers or
/// arguments), a binary search over one slice finds a key as fast, and the B-tree's
/// insertion, removal and rebalancing code for this one type cost ~4 KB of gzipped wasm.
/// A table built from many entries at once ([`FromIterator`]) sorts them once.
#[derive(Debug, Default, PartialEq)]
pub struct Table {
    /// Sorted by key, keys distinct.
    entries: Vec<(String, FieldValue)>,
}

impl Clone for Table {
    fn clone(&self) -> Self {
        // Most messages have no headers: no call into `Vec`'s clone for them (it took ~10 ns).
        if self.entries.is_empty() {
            return Table::new();
        }
        Table { entries: self.entries.clone() }
    }
}

impl Table {
    pub const fn new() -> Self {
        Table { entries: Vec::new() }
    }
    /// An empty table with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        Table { entries: Vec::with_capacity(n) }
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Where `k` is, or where it would go.
    #[inline]
    fn find(&self, k: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(e, _)| e.as_str().cmp(k))
    }
    pub fn get(&self, k: &str) -> Option<&FieldValue> {
        if self.entries.len() <= 16 {
            // A few headers: comparing lengths first rules out most keys without reading
            // their bytes. Native, 3 entries: ~4 ns a lookup, against ~10 for the BTreeMap
            // this replaces and ~15 for a binary search (which compares bytes every step).
            return self.entries.iter().find(|(e, _)| e == k).map(|(_, v)| v);
        }
        self.find(k).ok().map(|i| &self.entries[i].1)
    }
    pub fn get_mut(&mut self, k: &str) -> Option<&mut FieldValue> {
        self.find(k).ok().map(|i| &mut self.entries[i].1)
    }
    pub fn contains_key(&self, k: &str) -> bool {
        self.find(k).is_ok()
    }
    /// Sets `k` to `v`; the value it had, if any.
    pub fn insert(&mut self, k: String, v: FieldValue) -> Option<FieldValue> {
        // Keys given in order (a decoded table's) go at the end, without a search.
        if self.entries.last().is_none_or(|(l, _)| *l < k) {
            self.entries.push((k, v));
            return None;
        }
        match self.find(&k) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, v)),
            Err(i) => {
                self.entries.insert(i, (k, v));
                None
            }
        }
    }
    pub fn remove(&mut self, k: &str) -> Option<FieldValue> {
        self.find(k).ok().map(|i| self.entries.remove(i).1)
    }
    pub fn clear(&mut self) {
        self.entries.clear()
    }
    /// The entry for `k`, inserted by `f` if missing.
    pub fn get_or_insert_with(&mut self, k: String, f: impl FnOnce() -> FieldValue) -> &mut FieldValue {
        let i = match self.find(&k) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (k, f()));
                i
            }
        };
        &mut self.entries[i].1
    }
    /// The entries in key order.
    pub fn iter(&self) -> TableIter<'_> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(k, _)| k)
    }
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &FieldValue> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(_, v)| v)
    }
}

/// A table's entries in key order, by reference.
pub type TableIter<'a> = std::iter::Map<
    std::slice::Iter<'a, (String, FieldValue)>,
    fn(&'a (String, FieldValue)) -> (&'a String, &'a FieldValue),
>;

impl<'a> IntoIterator for &'a Table {
    type Item = (&'a String, &'a FieldValue);
    type IntoIter = TableIter<'a>;
    fn into_iter(self) -> TableIter<'a> {
        self.iter()
    }
}

impl IntoIterator for Table {
    type Item = (String, FieldValue);
    type IntoIter = std::vec::IntoIter<(String, FieldValue)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl FromIterator<(String, FieldValue)> for Table {
    /// As a `BTreeMap` collects: of entries with the same key, the last one stays.
    fn from_iter<I: IntoIterator<Item = (String, FieldValue)>>(iter: I) -> Self {
        let mut entries: Vec<(String, FieldValue)> = iter.into_iter().collect();
        crate::core::sort::sort_by(&mut entries, |a, b| a.0.cmp(&b.0));
        if entries.windows(2).all(|w| w[0].0 != w[1].0) {
            return Table { entries };
        }
        // Stable: equal keys keep their order, so keeping the last of each run keeps the
        // last one given.
        let mut out: Vec<(String, FieldValue)> = Vec::with_capacity(entries.len());
        for e in entries {
            match out.last_mut() {
                Some(last) if last.0 == e.0 => *last = e,
                _ => out.push(e),
            }
        }
        Table { entries: out }
    }
}

impl Extend<(String, FieldValue)> for Table {
    fn extend<I: IntoIterator<Item = (String, FieldValue)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl std::ops::Index<&str> for Table {
    type Output = FieldValue;
    fn index(&self, k: &str) -> &FieldValue {
        self.get(k).expect("no entry for the key")
    }
}

impl<const N: usize> From<[(String, FieldValue); N]> for Table {
    fn from(entries: [(String, FieldValue); N]) -> Self {
        entries.into_iter().collect()
    }
}

/// One value of a field table, as AMQP 0-9-1 (RabbitMQ's dialect) carries it.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    Void,
    Bool(bool),
    /// Every integer width (AMQP `b`, `s`, `I`, `l`) folds into one signed 64-bit value.
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    /// Seconds since the Unix epoch, as AMQP timestamps (and RabbitMQ's `x-death.time`) are.
    Timestamp(u64),
    Array(Vec<FieldValue>),
    Table(Table),
}

impl FieldValue {
    /// The name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldValue::Void => "void",
            FieldValue::Bool(_) => "boolean",
            FieldValue::Int(_) => "integer",
            FieldValue::Float(_) => "float",
            FieldValue::Str(_) => "string",
            FieldValue::Bytes(_) => "bytes",
            FieldValue::Timestamp(_) => "timestamp",
            FieldValue::Array(_) => "array",
            FieldValue::Table(_) => "table",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An integer, also from a float with no fractional part (JS numbers arrive as floats).
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            FieldValue::Int(i) => Some(i),
            FieldValue::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
            _ => None,
        }
    }

    /// The approximate number of bytes this value takes, for byte limits and stats.
    pub fn approx_size(&self) -> usize {
        match self {
            FieldValue::Void | FieldValue::Bool(_) => 1,
            FieldValue::Int(_) | FieldValue::Float(_) | FieldValue::Timestamp(_) => 8,
            FieldValue::Str(s) => s.len(),
            FieldValue::Bytes(b) => b.len(),
            FieldValue::Array(a) => a.iter().map(FieldValue::approx_size).sum(),
            FieldValue::Table(t) => table_size(t),
        }
    }

    /// Structural equality with floats compared bit for bit (`==` has NaN ≠ NaN).
    pub fn same(&self, other: &FieldValue) -> bool {
        match (self, other) {
            (FieldValue::Float(a), FieldValue::Float(b)) => a.to_bits() == b.to_bits(),
            (FieldValue::Array(a), FieldValue::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(y))
            }
            (FieldValue::Table(a), FieldValue::Table(b)) => same_table(a, b),
            _ => self == other,
        }
    }
}

/// Whether two tables are the same binding arguments: structural equality where floats
/// compare bit for bit, so that a NaN argument still names its own binding.
pub fn same_table(a: &Table, b: &Table) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|((ka, va), (kb, vb))| ka == kb && va.same(vb))
}

/// The approximate number of bytes a table takes.
pub fn table_size(t: &Table) -> usize {
    t.iter().map(|(k, v)| k.len() + v.approx_size()).sum()
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        FieldValue::Str(s.to_owned())
    }
}
impl From<String> for FieldValue {
    fn from(s: String) -> Self {
        FieldValue::Str(s)
    }
}
impl From<i64> for FieldValue {
    fn from(i: i64) -> Self {
        FieldValue::Int(i)
    }
}
impl From<bool> for FieldValue {
    fn from(b: bool) -> Self {
        FieldValue::Bool(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_keeps_its_keys_sorted_and_distinct() {
        let mut t = Table::new();
        for (k, v) in [("b", 1), ("a", 2), ("c", 3), ("a", 4)] {
            t.insert(k.into(), FieldValue::Int(v));
        }
        assert_eq!(t.keys().map(String::as_str).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(t.get("a"), Some(&FieldValue::Int(4)));
        assert_eq!(t.remove("b"), Some(FieldValue::Int(1)));
        assert_eq!(t.remove("b"), None);
        assert!(!t.contains_key("b") && t.contains_key("c"));
        *t.get_or_insert_with("d".into(), || FieldValue::Int(5)) = FieldValue::Int(6);
        assert_eq!(t.get_or_insert_with("d".into(), || FieldValue::Int(7)), &FieldValue::Int(6));
        // Past 16 entries lookups take a binary search; keys in and out of order.
        let present = [7, 3, 30, 1, 12, 25, 0, 19, 4, 28, 11, 2, 16, 22, 9, 5, 27, 14, 8, 21, 6, 18];
        let mut big = Table::new();
        for i in present {
            big.insert(format!("k{i:02}"), FieldValue::Int(i));
        }
        assert!(big.keys().zip(big.keys().skip(1)).all(|(a, b)| a < b));
        for i in 0..32 {
            let want = present.contains(&i).then_some(i);
            assert_eq!(big.get(&format!("k{i:02}")).and_then(FieldValue::as_int), want, "k{i:02}");
        }
        assert_eq!(big.clone(), big);
        assert_eq!(Table::new().clone(), Table::new());
        // Collected as a BTreeMap collects: sorted, and the last of equal keys stays.
        let c: Table = [("z", 1), ("y", 2), ("z", 3), ("x", 4), ("y", 5)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), FieldValue::Int(v)))
            .collect();
        let want: Vec<(&str, i64)> = vec![("x", 4), ("y", 5), ("z", 3)];
        assert_eq!(c.iter().map(|(k, v)| (k.as_str(), v.as_int().unwrap())).collect::<Vec<_>>(), want);
    }
}
