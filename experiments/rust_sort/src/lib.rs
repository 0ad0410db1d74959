//! Stable sort of (key, value) pairs by key: the function the harness calls, and small inputs.

mod radix;

/// Below this many pairs, insertion sort; from here on, the radix sort in radix.rs.
const SMALL: usize = 32;

/// Sorts the `n` pairs `(keys[i], vals[i])` by key, ascending, in place. Pairs with equal keys
/// keep their input order (the sort is stable).
///
/// # Safety
/// `keys` and `vals` each point to `n` valid, writable `u32`s that do not overlap.
#[no_mangle]
pub unsafe extern "C" fn sort_pairs(keys: *mut u32, vals: *mut u32, n: usize) {
    if n < 2 {
        return;
    }
    let keys = std::slice::from_raw_parts_mut(keys, n);
    let vals = std::slice::from_raw_parts_mut(vals, n);
    if n < SMALL {
        insertion_sort(keys, vals);
    } else {
        radix::sort(keys, vals);
    }
}

/// Stable: a pair moves left only past strictly greater keys.
fn insertion_sort(keys: &mut [u32], vals: &mut [u32]) {
    for i in 1..keys.len() {
        let (k, v) = (keys[i], vals[i]);
        let mut j = i;
        while j > 0 && keys[j - 1] > k {
            keys[j] = keys[j - 1];
            vals[j] = vals[j - 1];
            j -= 1;
        }
        keys[j] = k;
        vals[j] = v;
    }
}
