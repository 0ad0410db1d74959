//! Least-significant-digit radix sort on the key, one byte per pass: four stable passes.

/// Sorts `keys` ascending and moves `vals` with them; equal keys keep their order.
pub fn sort(keys: &mut [u32], vals: &mut [u32]) {
    let n = keys.len();
    let mut tmp_keys = vec![0u32; n];
    let mut tmp_vals = vec![0u32; n];
    for pass in 0..4 {
        let shift = 8 * pass;
        // even passes read the caller's arrays, odd ones the scratch: after four, the result is back
        if pass % 2 == 0 {
            scatter(keys, vals, &mut tmp_keys, &mut tmp_vals, shift);
        } else {
            scatter(&tmp_keys, &tmp_vals, keys, vals, shift);
        }
    }
}

/// One stable counting pass on the byte at `shift`: from (src_keys, src_vals) to (dst_keys, dst_vals).
fn scatter(src_keys: &[u32], src_vals: &[u32], dst_keys: &mut [u32], dst_vals: &mut [u32], shift: u32) {
    let mut count = [0usize; 256];
    for &k in src_keys {
        count[((k >> shift) & 0xff) as usize] += 1;
    }
    let mut next = [0usize; 256];
    let mut total = 0;
    for d in 0..256 {
        next[d] = total;
        total += count[d];
    }
    for i in 0..src_keys.len() {
        let k = src_keys[i];
        let d = ((k >> shift) & 0xff) as usize;
        dst_keys[next[d]] = k;
        dst_vals[next[d]] = src_vals[i];
        next[d] += 1;
    }
}
