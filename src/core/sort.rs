//! One sort for the whole crate. `slice::sort_by` is instantiated anew for every element type
//! and comparison, and each copy of std's sort is kilobytes of wasm. Here the sort itself
//! ([`sort_raw`]) is compiled once: it sees the elements only through a comparison of two
//! positions (behind `dyn`) and swaps them as bytes; what is per type is a closure that
//! compares two elements. Short slices take an insertion sort in place; longer ones a merge
//! sort of `u32` positions, whose result is then applied to the elements one cycle of the
//! permutation at a time. Stable, like `slice::sort_by`.

use std::cmp::Ordering;

/// Up to this length an insertion sort, in place; also the length of the runs the merge
/// sort starts from.
const SMALL: usize = 16;

/// Sorts `v` by `cmp`, stably.
pub fn sort_by<T>(v: &mut [T], mut cmp: impl FnMut(&T, &T) -> Ordering) {
    if v.len() <= SMALL {
        // Short slices (a message's destinations, say) sort in place, without allocating,
        // with the comparison inlined: through `sort_raw`'s `dyn` call, sorting 2 to 16
        // destinations took 20-90% longer.
        for i in 1..v.len() {
            let mut j = i;
            while j > 0 && cmp(&v[j - 1], &v[j]) == Ordering::Greater {
                v.swap(j - 1, j);
                j -= 1;
            }
        }
        return;
    }
    let base = v.as_mut_ptr();
    // SAFETY: `sort_raw` passes positions below `v.len()`, and holds no reference to an
    // element across a swap; `base` is the only pointer used while it runs.
    sort_raw(v.len(), std::mem::size_of::<T>(), base.cast(), &mut |a, b| unsafe { cmp(&*base.add(a), &*base.add(b)) });
}

/// Sorts `v` by `key`, stably.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], mut key: impl FnMut(&T) -> K) {
    sort_by(v, |a, b| key(a).cmp(&key(b)));
}

/// Sorts `v` in ascending order, stably.
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, T::cmp);
}

/// Sorts the `len` elements of `size` bytes at `base` by `cmp` (of two positions), stably.
#[inline(never)]
fn sort_raw(len: usize, size: usize, base: *mut u8, cmp: &mut dyn FnMut(usize, usize) -> Ordering) {
    // SAFETY: positions below `len`, distinct (the caller's contract).
    let swap =
        |i: usize, j: usize| unsafe { std::ptr::swap_nonoverlapping(base.add(i * size), base.add(j * size), size) };
    let mut order: Vec<u32> = (0..len as u32).collect();
    merge_sort(&mut order, &mut |a, b| cmp(a as usize, b as usize));
    // Puts the element at `order[i]` at `i` for every `i`, one cycle of the permutation at a
    // time (`order` ends as the identity).
    for start in 0..len {
        let mut i = start;
        while order[i] as usize != start {
            let j = order[i] as usize;
            swap(i, j);
            order[i] = i as u32;
            i = j;
        }
        order[i] = i as u32;
    }
}

/// Sorts `v` by `cmp`, stably: insertion sorts of runs of [`SMALL`], then merges of
/// neighbouring runs, back and forth between `v` and a buffer. Two runs already in order
/// are copied without comparing further (sorted input costs one comparison per run).
fn merge_sort(v: &mut [u32], cmp: &mut dyn FnMut(u32, u32) -> Ordering) {
    let n = v.len();
    for run in v.chunks_mut(SMALL) {
        for i in 1..run.len() {
            let mut j = i;
            while j > 0 && cmp(run[j - 1], run[j]) == Ordering::Greater {
                run.swap(j - 1, j);
                j -= 1;
            }
        }
    }
    let mut buf = vec![0u32; n];
    let (mut src, mut dst): (&mut [u32], &mut [u32]) = (v, &mut buf);
    let mut in_buf = false;
    let mut width = SMALL;
    while width < n {
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            if mid == end || cmp(src[mid - 1], src[mid]) != Ordering::Greater {
                dst[start..end].copy_from_slice(&src[start..end]);
            } else {
                let (mut i, mut j, mut k) = (start, mid, start);
                while i < mid && j < end {
                    // Ties take the left run's element: stable.
                    if cmp(src[i], src[j]) == Ordering::Greater {
                        dst[k] = src[j];
                        j += 1;
                    } else {
                        dst[k] = src[i];
                        i += 1;
                    }
                    k += 1;
                }
                dst[k..k + mid - i].copy_from_slice(&src[i..mid]);
                k += mid - i;
                dst[k..end].copy_from_slice(&src[j..end]);
            }
            start = end;
        }
        std::mem::swap(&mut src, &mut dst);
        in_buf = !in_buf;
        width *= 2;
    }
    if in_buf {
        dst.copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_stably_like_std() {
        let mut seed = 7u64;
        for len in [0, 1, 2, 3, 10, 16, 17, 31, 32, 33, 100, 257, 1000, 4099] {
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
        // Sorted, reversed and sawtooth input, and elements that own memory (moved as bytes).
        for len in [17, 100, 1000] {
            let shapes: [Vec<u32>; 3] =
                [(0..len).collect(), (0..len).rev().collect(), (0..len).map(|i| i % 7).collect()];
            for keys in shapes {
                let v: Vec<(u32, String)> = keys.iter().enumerate().map(|(i, &k)| (k, i.to_string())).collect();
                let (mut ours, mut std) = (v.clone(), v);
                sort_by(&mut ours, |a, b| a.0.cmp(&b.0));
                std.sort_by_key(|a| a.0);
                assert_eq!(ours, std, "len {len}");
            }
        }
        let mut units = vec![(); 40];
        sort(&mut units);
        assert_eq!(units.len(), 40);
        let mut names = vec!["b", "c", "a", "b"];
        sort(&mut names);
        assert_eq!(names, ["a", "b", "b", "c"]);
    }
}
