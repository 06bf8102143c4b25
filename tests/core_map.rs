#![cfg(not(target_arch = "wasm32"))]
//! The crate's hash map and set (`tabbit::core::map`) against std's `HashMap` and
//! `HashSet` under random operations: same contents after every step, whatever the
//! sequence of inserts, removes, retains, entries and drains (removal shifts entries back in
//! the index and moves the last entry into the hole: both are exercised by keys that
//! collide on few buckets).

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use tabbit::core::map::{Entry, Map, Set};

#[derive(Clone, Debug)]
enum Op {
    Insert(u16, u32),
    Remove(u16),
    Get(u16),
    Retain(u16),
    EntryAdd(u16, u32),
    EntryRemove(u16),
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    // Keys from a small range, so that lookups hit and removals find something.
    let key = 0u16..64;
    prop_oneof![
        8 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        5 => key.clone().prop_map(Op::Remove),
        4 => key.clone().prop_map(Op::Get),
        1 => (1u16..8).prop_map(Op::Retain),
        3 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::EntryAdd(k, v)),
        2 => key.prop_map(Op::EntryRemove),
        1 => Just(Op::Drain),
    ]
}

fn same(m: &Map<u16, u32>, std: &HashMap<u16, u32>) {
    assert_eq!(m.len(), std.len());
    for (k, v) in std {
        assert_eq!(m.get(k), Some(v), "key {k}");
    }
    let mut seen: Vec<_> = m.iter().map(|(k, v)| (*k, *v)).collect();
    let mut want: Vec<_> = std.iter().map(|(k, v)| (*k, *v)).collect();
    seen.sort_unstable();
    want.sort_unstable();
    assert_eq!(seen, want);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn map_matches_std(ops in proptest::collection::vec(op(), 1..400)) {
        let mut m: Map<u16, u32> = Map::default();
        let mut std: HashMap<u16, u32> = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => assert_eq!(m.insert(k, v), std.insert(k, v)),
                Op::Remove(k) => assert_eq!(m.remove(&k), std.remove(&k)),
                Op::Get(k) => {
                    assert_eq!(m.get(&k), std.get(&k));
                    assert_eq!(m.contains_key(&k), std.contains_key(&k));
                    if let (Some(a), Some(b)) = (m.get_mut(&k), std.get_mut(&k)) {
                        *a += 1;
                        *b += 1;
                    }
                }
                Op::Retain(d) => {
                    m.retain(|k, _| k % d != 0);
                    std.retain(|k, _| k % d != 0);
                }
                Op::EntryAdd(k, v) => {
                    *m.entry(k).or_insert(v) += 1;
                    *std.entry(k).or_insert(v) += 1;
                }
                Op::EntryRemove(k) => {
                    let a = match m.entry(k) { Entry::Occupied(e) => Some(e.remove()), Entry::Vacant(_) => None };
                    assert_eq!(a, std.remove(&k));
                }
                Op::Drain => {
                    let mut a: Vec<_> = m.drain().collect();
                    let mut b: Vec<_> = std.drain().collect();
                    a.sort_unstable();
                    b.sort_unstable();
                    assert_eq!(a, b);
                }
            }
            same(&m, &std);
        }
    }

    #[test]
    fn set_matches_std(ops in proptest::collection::vec((any::<bool>(), 0u32..5000), 1..2000)) {
        // Many keys: the table grows several times and wraps around its end.
        let mut s: Set<u32> = Set::default();
        let mut std: HashSet<u32> = HashSet::new();
        for (add, k) in ops {
            if add {
                assert_eq!(s.insert(k), std.insert(k));
            } else {
                assert_eq!(s.remove(&k), std.remove(&k));
            }
            assert_eq!(s.len(), std.len());
            assert_eq!(s.contains(&k), std.contains(&k));
        }
        for k in &std {
            assert!(s.contains(k));
        }
    }
}

#[test]
fn string_keys_borrow_as_str() {
    let mut m: Map<String, usize> = Map::default();
    for i in 0..1000 {
        m.insert(format!("queue-{i}"), i);
    }
    assert_eq!(m.get("queue-500"), Some(&500));
    assert_eq!(m.remove("queue-0"), Some(0));
    assert_eq!(m.get("queue-0"), None);
    assert_eq!(m.len(), 999);
    // The entry that filled the hole is still found.
    assert_eq!(m.get("queue-999"), Some(&999));
}
