//! Stable sort of (key, value) pairs by key: the function the harness calls.

mod sort;

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
    let mut pairs: Vec<(u32, u32)> = keys.iter().copied().zip(vals.iter().copied()).collect();
    sort::merge_sort(&mut pairs);
    for (i, &(k, v)) in pairs.iter().enumerate() {
        keys[i] = k;
        vals[i] = v;
    }
}
