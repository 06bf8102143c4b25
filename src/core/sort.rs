//! One sort for the whole crate. `slice::sort_by` is instantiated anew for every element type
//! and comparison, and each copy of std's sort is kilobytes of wasm; these sort a permutation
//! of `u32` indices with one comparison behind `dyn` (a single copy of std's sort in the
//! package) and then move the elements into place; short slices take an insertion sort in place.
//! Stable, like `slice::sort_by`.

use std::cmp::Ordering;

/// Up to this length an insertion sort, in place.
const SMALL: usize = 16;

/// Sorts `v` by `cmp`, stably.
pub fn sort_by<T>(v: &mut [T], mut cmp: impl FnMut(&T, &T) -> Ordering) {
    if v.len() <= SMALL {
        // Short slices (a message's destinations, say) sort in place, without allocating.
        for i in 1..v.len() {
            let mut j = i;
            while j > 0 && cmp(&v[j - 1], &v[j]) == Ordering::Greater {
                v.swap(j - 1, j);
                j -= 1;
            }
        }
        return;
    }
    let mut order: Vec<u32> = (0..v.len() as u32).collect();
    sort_indices(&mut order, &mut |a, b| cmp(&v[a as usize], &v[b as usize]));
    permute(v, &mut order);
}

/// Sorts `v` by `key`, stably.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], mut key: impl FnMut(&T) -> K) {
    sort_by(v, |a, b| key(a).cmp(&key(b)));
}

/// Sorts `v` in ascending order, stably.
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, T::cmp);
}

#[inline(never)]
fn sort_indices(order: &mut [u32], cmp: &mut dyn FnMut(u32, u32) -> Ordering) {
    order.sort_by(|&a, &b| cmp(a, b));
}

/// Puts `v[order[i]]` at `i` for every `i`, one cycle of the permutation at a time (`order`
/// ends as the identity).
fn permute<T>(v: &mut [T], order: &mut [u32]) {
    for start in 0..v.len() {
        let mut i = start;
        while order[i] as usize != start {
            let j = order[i] as usize;
            v.swap(i, j);
            order[i] = i as u32;
            i = j;
        }
        order[i] = i as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_stably_like_std() {
        let mut seed = 7u64;
        for len in [0, 1, 2, 3, 10, 16, 17, 100, 1000] {
            let v: Vec<(u8, u32)> = (0..len)
                .map(|i| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((seed >> 59) as u8, i)
                })
                .collect();
            let (mut ours, mut std) = (v.clone(), v);
            sort_by_key(&mut ours, |x| x.0);
            std.sort_by_key(|x| x.0);
            assert_eq!(ours, std, "len {len}");
        }
        let mut names = vec!["b", "c", "a", "b"];
        sort(&mut names);
        assert_eq!(names, ["a", "b", "b", "c"]);
    }
}
