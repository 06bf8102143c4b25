//! The crate's hash map and set: an index table of entry positions, shared by every key
//! and value type, over a dense `Vec` of entries.
//!
//! Why not std's `HashMap`: each of its instantiations carries its own copy of the probing,
//! insertion, rehashing and removal code, and the crate has about forty key/value pairs:
//! 66 KB of the 508 KB wasm (13%) was hashbrown. Here the table ([`RawIndex`]) is compiled
//! once; what is per type is the hash of a key, a comparison of two keys, and a `Vec` of
//! entries. Lookups compare a 32-bit tag of the hash before they call the comparison, so a
//! hit costs one comparison of keys, as hashbrown's does.
//!
//! The table probes linearly, at most half full (a miss, as topic routing makes for every
//! `*` and `#` it looks for, probes 2.5 slots on average, against 8.5 at 3/4), and removes with a backward shift (no
//! tombstones). Entries stay dense: a removal moves the last entry into the hole. Iteration
//! follows the entries: insertion order until a removal, deterministic always (the native
//! simulation replays a seed exactly).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};

use super::fxhash::FxHasher;

/// Slot value: 0 is empty, else `tag << 32 | (entry + 1)`.
type Slot = u64;

/// The index of a [`Map`]: positions of entries by hash. Not generic.
#[derive(Clone, Default)]
pub struct RawIndex {
    slots: Vec<Slot>,
}

#[inline]
fn tag(hash: u64) -> u32 {
    (hash >> 32) as u32
}

impl RawIndex {
    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot holding an entry for which `eq` holds, among those tagged like `hash`.
    ///
    /// Generic in `eq` and inlined, so that a lookup is one loop with the comparison of
    /// keys in it: through a `dyn` call, and three calls deep, the maps cost (b) and (c)
    /// 20–50% more CPU per message in the browser (bench/ab.mjs).
    #[inline(always)]
    fn find(&self, hash: u64, mut eq: impl FnMut(usize) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let (mask, t) = (self.mask(), tag(hash));
        let mut i = t as usize & mask;
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if (s >> 32) as u32 == t && eq((s as u32 - 1) as usize) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    fn entry_at(&self, slot: usize) -> usize {
        (self.slots[slot] as u32 - 1) as usize
    }

    /// Makes room for `len + 1` entries, rebuilding the table when it would be over half full.
    fn reserve_one(&mut self, len: usize) {
        if (len + 1) * 2 <= self.slots.len() {
            return;
        }
        let size = (self.slots.len() * 2).max(8);
        let old = std::mem::replace(&mut self.slots, vec![0; size]);
        for s in old.into_iter().filter(|&s| s != 0) {
            self.put(s);
        }
    }

    fn put(&mut self, s: Slot) {
        let mask = self.mask();
        let mut i = (s >> 32) as usize & mask;
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = s;
    }

    /// Records entry `entry` (a new one, after [`RawIndex::reserve_one`]) under `hash`.
    fn insert(&mut self, hash: u64, entry: usize) {
        self.put((tag(hash) as u64) << 32 | (entry as u64 + 1));
    }

    /// Empties `slot`, shifting back the entries after it that probed past it.
    fn erase(&mut self, mut hole: usize) {
        let mask = self.mask();
        self.slots[hole] = 0;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s == 0 {
                return;
            }
            let home = (s >> 32) as usize & mask;
            // The entry at j may move to the hole if its home is not in (hole, j], cyclically.
            let stays = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !stays {
                self.slots[hole] = s;
                self.slots[j] = 0;
                hole = j;
            }
        }
    }

    /// Entry `from` (hashed as `hash`) moved to position `to`.
    fn relocate(&mut self, hash: u64, from: usize, to: usize) {
        let slot = self.slot_of_entry(hash, from);
        self.slots[slot] = (tag(hash) as u64) << 32 | (to as u64 + 1);
    }

    /// The slot of entry `entry`, hashed as `hash`.
    fn slot_of_entry(&self, hash: u64, entry: usize) -> usize {
        self.find(hash, |e| e == entry).expect("an entry is indexed")
    }

    fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = 0);
    }
}

#[inline]
fn hash_of<Q: Hash + ?Sized>(q: &Q) -> u64 {
    let mut h = FxHasher::default();
    q.hash(&mut h);
    h.finish()
}

/// A hash map (the crate's `FxMap`): std's `HashMap` API, the part the crate uses.
#[derive(Clone)]
pub struct Map<K, V> {
    index: RawIndex,
    entries: Vec<(K, V)>,
}

impl<K, V> Default for Map<K, V> {
    fn default() -> Self {
        Map { index: RawIndex::default(), entries: Vec::new() }
    }
}

impl<K, V> Map<K, V> {
    pub fn new() -> Self {
        Self::default()
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(k, v)| (k, v))
    }
    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&K, &mut V)> + ExactSizeIterator {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(k, _)| k)
    }
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(_, v)| v)
    }
    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.entries.iter_mut().map(|(_, v)| v)
    }
    pub fn into_values(self) -> impl DoubleEndedIterator<Item = V> + ExactSizeIterator {
        self.entries.into_iter().map(|(_, v)| v)
    }
    pub fn into_keys(self) -> impl DoubleEndedIterator<Item = K> + ExactSizeIterator {
        self.entries.into_iter().map(|(k, _)| k)
    }
    /// Every entry, taken out (in the map's order).
    pub fn drain(&mut self) -> std::vec::IntoIter<(K, V)> {
        self.index.clear();
        std::mem::take(&mut self.entries).into_iter()
    }
    pub fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
    }
}

impl<K: Hash + Eq, V> Map<K, V> {
    pub fn with_capacity(n: usize) -> Self {
        let mut m = Self::default();
        m.reserve(n);
        m
    }

    pub fn reserve(&mut self, additional: usize) {
        let want = self.entries.len() + additional;
        self.entries.reserve(additional);
        while want * 2 > self.index.slots.len() {
            self.index.reserve_one(self.index.slots.len() / 2);
        }
    }

    #[inline(always)]
    fn slot_of<Q>(&self, hash: u64, k: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let entries = &self.entries;
        self.index.find(hash, |e| entries[e].0.borrow() == k)
    }

    #[inline(always)]
    fn position<Q>(&self, k: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.entries.is_empty() {
            return None;
        }
        self.slot_of(hash_of(k), k).map(|s| self.index.entry_at(s))
    }

    #[inline]
    pub fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.position(k).map(|i| &self.entries[i].1)
    }

    #[inline]
    pub fn get_key_value<Q>(&self, k: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.position(k).map(|i| (&self.entries[i].0, &self.entries[i].1))
    }

    #[inline]
    pub fn get_mut<Q>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.position(k).map(|i| &mut self.entries[i].1)
    }

    #[inline]
    pub fn contains_key<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.position(k).is_some()
    }

    /// Adds a key known to be absent (its hash given); returns its position.
    fn push(&mut self, hash: u64, k: K, v: V) -> usize {
        self.index.reserve_one(self.entries.len());
        let at = self.entries.len();
        self.index.insert(hash, at);
        self.entries.push((k, v));
        at
    }

    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        let hash = hash_of(&k);
        match self.slot_of(hash, &k) {
            Some(s) => {
                let i = self.index.entry_at(s);
                Some(std::mem::replace(&mut self.entries[i].1, v))
            }
            None => {
                self.push(hash, k, v);
                None
            }
        }
    }

    /// Takes out the entry whose index slot is `slot`.
    fn take(&mut self, slot: usize) -> (K, V) {
        let i = self.index.entry_at(slot);
        self.index.erase(slot);
        let last = self.entries.len() - 1;
        if i != last {
            let h = hash_of(&self.entries[last].0);
            self.index.relocate(h, last, i);
        }
        self.entries.swap_remove(i)
    }

    pub fn remove<Q>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_entry(k).map(|(_, v)| v)
    }

    pub fn remove_entry<Q>(&mut self, k: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.entries.is_empty() {
            return None;
        }
        let slot = self.slot_of(hash_of(k), k)?;
        Some(self.take(slot))
    }

    /// Keeps the entries for which `f` holds.
    pub fn retain(&mut self, mut f: impl FnMut(&K, &mut V) -> bool) {
        let mut i = 0;
        while i < self.entries.len() {
            let (k, v) = &mut self.entries[i];
            if f(k, v) {
                i += 1;
            } else {
                let h = hash_of(&self.entries[i].0);
                let slot = self.index.slot_of_entry(h, i);
                self.take(slot);
            }
        }
    }

    pub fn entry(&mut self, k: K) -> Entry<'_, K, V> {
        let hash = hash_of(&k);
        match self.slot_of(hash, &k) {
            Some(s) => Entry::Occupied(OccupiedEntry { at: self.index.entry_at(s), map: self }),
            None => Entry::Vacant(VacantEntry { hash, key: k, map: self }),
        }
    }
}

/// A view into one entry of a [`Map`], as std's `hash_map::Entry`.
pub enum Entry<'a, K, V> {
    Occupied(OccupiedEntry<'a, K, V>),
    Vacant(VacantEntry<'a, K, V>),
}

pub struct OccupiedEntry<'a, K, V> {
    map: &'a mut Map<K, V>,
    at: usize,
}

pub struct VacantEntry<'a, K, V> {
    map: &'a mut Map<K, V>,
    hash: u64,
    key: K,
}

impl<'a, K: Hash + Eq, V> Entry<'a, K, V> {
    pub fn or_insert(self, v: V) -> &'a mut V {
        self.or_insert_with(|| v)
    }
    pub fn or_insert_with(self, f: impl FnOnce() -> V) -> &'a mut V {
        match self {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(f()),
        }
    }
    pub fn or_default(self) -> &'a mut V
    where
        V: Default,
    {
        self.or_insert_with(V::default)
    }
    pub fn and_modify(self, f: impl FnOnce(&mut V)) -> Self {
        match self {
            Entry::Occupied(mut e) => {
                f(e.get_mut());
                Entry::Occupied(e)
            }
            v => v,
        }
    }
}

impl<'a, K: Hash + Eq, V> OccupiedEntry<'a, K, V> {
    pub fn get(&self) -> &V {
        &self.map.entries[self.at].1
    }
    pub fn get_mut(&mut self) -> &mut V {
        &mut self.map.entries[self.at].1
    }
    pub fn into_mut(self) -> &'a mut V {
        &mut self.map.entries[self.at].1
    }
    pub fn key(&self) -> &K {
        &self.map.entries[self.at].0
    }
    pub fn insert(&mut self, v: V) -> V {
        std::mem::replace(self.get_mut(), v)
    }
    pub fn remove(self) -> V {
        self.remove_entry().1
    }
    pub fn remove_entry(self) -> (K, V) {
        let at = self.at;
        let h = hash_of(&self.map.entries[at].0);
        let slot = self.map.index.slot_of_entry(h, at);
        self.map.take(slot)
    }
}

impl<'a, K: Hash + Eq, V> VacantEntry<'a, K, V> {
    pub fn key(&self) -> &K {
        &self.key
    }
    pub fn insert(self, v: V) -> &'a mut V {
        let at = self.map.push(self.hash, self.key, v);
        &mut self.map.entries[at].1
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for Map<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Hash + Eq, V: PartialEq> PartialEq for Map<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl<K: Hash + Eq, V: Eq> Eq for Map<K, V> {}

impl<K: Hash + Eq, V> FromIterator<(K, V)> for Map<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = Map::default();
        m.extend(iter);
        m
    }
}

impl<K: Hash + Eq, V> Extend<(K, V)> for Map<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K, V> IntoIterator for Map<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a, K, V> IntoIterator for &'a Map<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl<'a, K, V> IntoIterator for &'a mut Map<K, V> {
    type Item = (&'a K, &'a mut V);
    type IntoIter = std::iter::Map<std::slice::IterMut<'a, (K, V)>, fn(&'a mut (K, V)) -> (&'a K, &'a mut V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }
}

impl<K: Hash + Eq + Borrow<Q>, Q: Hash + Eq + ?Sized, V> std::ops::Index<&Q> for Map<K, V> {
    type Output = V;
    fn index(&self, k: &Q) -> &V {
        self.get(k).expect("no entry for the key")
    }
}

/// A hash set (the crate's `FxSet`) over [`Map`].
#[derive(Clone)]
pub struct Set<K> {
    map: Map<K, ()>,
}

impl<K> Default for Set<K> {
    fn default() -> Self {
        Set { map: Map::default() }
    }
}

impl<K> Set<K> {
    pub fn new() -> Self {
        Self::default()
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.map.len()
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator + Clone {
        self.map.keys()
    }
    pub fn drain(&mut self) -> impl Iterator<Item = K> {
        self.map.drain().map(|(k, _)| k)
    }
    pub fn clear(&mut self) {
        self.map.clear()
    }
}

impl<K: Hash + Eq> Set<K> {
    pub fn with_capacity(n: usize) -> Self {
        Set { map: Map::with_capacity(n) }
    }
    /// Adds `k`; false if it was there already.
    pub fn insert(&mut self, k: K) -> bool {
        let hash = hash_of(&k);
        if self.map.slot_of(hash, &k).is_some() {
            return false;
        }
        self.map.push(hash, k, ());
        true
    }
    #[inline]
    pub fn contains<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(k)
    }
    pub fn get<Q>(&self, k: &Q) -> Option<&K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_key_value(k).map(|(k, _)| k)
    }
    pub fn remove<Q>(&mut self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(k).is_some()
    }
    pub fn take<Q>(&mut self, k: &Q) -> Option<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove_entry(k).map(|(k, _)| k)
    }
    pub fn retain(&mut self, mut f: impl FnMut(&K) -> bool) {
        self.map.retain(|k, _| f(k))
    }
    pub fn extend<I: IntoIterator<Item = K>>(&mut self, iter: I) {
        for k in iter {
            self.insert(k);
        }
    }
}

impl<K: fmt::Debug> fmt::Debug for Set<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<K: Hash + Eq> PartialEq for Set<K> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|k| other.contains(k))
    }
}

impl<K: Hash + Eq> Eq for Set<K> {}

impl<K: Hash + Eq> FromIterator<K> for Set<K> {
    fn from_iter<I: IntoIterator<Item = K>>(iter: I) -> Self {
        let mut s = Set::default();
        s.extend(iter);
        s
    }
}

impl<K: Hash + Eq> Extend<K> for Set<K> {
    fn extend<I: IntoIterator<Item = K>>(&mut self, iter: I) {
        Set::extend(self, iter)
    }
}

impl<K> IntoIterator for Set<K> {
    type Item = K;
    type IntoIter = std::iter::Map<std::vec::IntoIter<(K, ())>, fn((K, ())) -> K>;
    fn into_iter(self) -> Self::IntoIter {
        self.map.entries.into_iter().map(|(k, _)| k)
    }
}

impl<'a, K> IntoIterator for &'a Set<K> {
    type Item = &'a K;
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, ())>, fn(&'a (K, ())) -> &'a K>;
    fn into_iter(self) -> Self::IntoIter {
        self.map.entries.iter().map(|(k, _)| k)
    }
}
