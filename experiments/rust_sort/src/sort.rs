//! Stable merge sort of (key, value) pairs by key: top-down, insertion sort for short runs.

/// Runs this short are sorted by insertion.
const RUN: usize = 16;

/// Sorts `a` by key (the pair's first field), stably.
pub fn merge_sort(a: &mut [(u32, u32)]) {
    let mut scratch = a.to_vec();
    sort_with(a, &mut scratch);
}

/// Sorts `a`, with `tmp` (as long as `a`) as scratch space.
fn sort_with(a: &mut [(u32, u32)], tmp: &mut [(u32, u32)]) {
    let n = a.len();
    if n <= RUN {
        insertion_sort(a);
        return;
    }
    let mid = n / 2;
    {
        let (lo, hi) = a.split_at_mut(mid);
        let (tmp_lo, tmp_hi) = tmp.split_at_mut(mid);
        sort_with(lo, tmp_lo);
        sort_with(hi, tmp_hi);
    }
    tmp.copy_from_slice(a);
    merge(&tmp[..mid], &tmp[mid..], a);
}

/// Merges two sorted runs into `out`; on equal keys the left run goes first (stability).
fn merge(left: &[(u32, u32)], right: &[(u32, u32)], out: &mut [(u32, u32)]) {
    let (mut i, mut j) = (0, 0);
    for slot in out.iter_mut() {
        if j >= right.len() || (i < left.len() && left[i].0 <= right[j].0) {
            *slot = left[i];
            i += 1;
        } else {
            *slot = right[j];
            j += 1;
        }
    }
}

/// Stable: a pair moves left only past strictly greater keys.
fn insertion_sort(a: &mut [(u32, u32)]) {
    for i in 1..a.len() {
        let x = a[i];
        let mut j = i;
        while j > 0 && a[j - 1].0 > x.0 {
            a[j] = a[j - 1];
            j -= 1;
        }
        a[j] = x;
    }
}
