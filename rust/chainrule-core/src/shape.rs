//! Shapes: NumPy's broadcasting rule, and walking the samples of a batch through the offsets of
//! an array broadcast to it. Shapes here are padded to the batch's rank where noted.

pub(crate) fn shape_text(s: &[usize]) -> String {
    match s {
        [one] => format!("({one},)"),
        _ => format!("({})", s.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// NumPy's broadcasting rule over several shapes.
pub fn broadcast(shapes: &[&[usize]]) -> Option<Vec<usize>> {
    let ndim = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; ndim];
    for s in shapes {
        for (d, &n) in s.iter().enumerate() {
            let o = &mut out[ndim - s.len() + d];
            if *o == 1 {
                *o = n;
            } else if n != 1 && n != *o {
                return None;
            }
        }
    }
    Some(out)
}

pub(crate) fn padded(shape: &[usize], ndim: usize) -> Vec<usize> {
    let mut p = vec![1; ndim - shape.len()];
    p.extend_from_slice(shape);
    p
}

/// [`group_shape`] from the padded input shapes.
pub(crate) fn groups_of(inputs: &[Vec<usize>], over: &[usize], ndim: usize) -> Vec<usize> {
    let shapes: Vec<&[usize]> = over.iter().map(|k| inputs[*k].as_slice()).collect();
    broadcast(&shapes).map_or_else(|| vec![1; ndim], |s| padded(&s, ndim))
}

/// Element strides of a C-contiguous array of `shape` broadcast to `batch` (0 where broadcast).
pub(crate) fn strides_for(shape: &[usize], batch: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut step = 1;
    for d in (0..shape.len()).rev() {
        if shape[d] == batch[d] && batch[d] != 1 {
            strides[d] = step;
        }
        step *= shape[d];
    }
    strides
}

/// Calls `f(flat batch index, offset into the broadcast array)` for the samples in `range`,
/// in order.
pub(crate) fn for_each_offset(batch: &[usize], strides: &[usize], range: std::ops::Range<usize>, mut f: impl FnMut(usize, usize)) {
    let mut idx = vec![0usize; batch.len()];
    let mut rest = range.start;
    for d in (0..batch.len()).rev() {
        if batch[d] > 0 {
            idx[d] = rest % batch[d];
            rest /= batch[d];
        }
    }
    let mut off: usize = idx.iter().zip(strides).map(|(i, s)| i * s).sum();
    for i in range {
        f(i, off);
        for d in (0..batch.len()).rev() {
            idx[d] += 1;
            off += strides[d];
            if idx[d] < batch[d] {
                break;
            }
            off -= strides[d] * idx[d];
            idx[d] = 0;
        }
    }
}

/// Writes into `out` (of `shape`, padded) the samples in `range` (held in `block` from the
/// range's start) that sit at index 0 along every dimension `shape` does not have: one per
/// element of `out`, all equal within a group.
pub(crate) fn keep_group_samples(block: &[f64], batch: &[usize], shape: &[usize], range: std::ops::Range<usize>, out: &mut [f64]) {
    let start = range.start;
    let out_strides = strides_for(shape, batch);
    // Offsets along the dimensions summed over: zero exactly at a group's first sample.
    let mut summed = vec![0; batch.len()];
    let mut step = 1;
    for d in (0..batch.len()).rev() {
        if shape[d] != batch[d] {
            summed[d] = step;
        }
        step *= batch[d];
    }
    let mut kept = Vec::new();
    for_each_offset(batch, &summed, range.clone(), |i, off| {
        if off == 0 {
            kept.push(i);
        }
    });
    let mut next = kept.into_iter().peekable();
    for_each_offset(batch, &out_strides, range, |i, off| {
        if next.peek() == Some(&i) {
            next.next();
            out[off] = block[i - start];
        }
    });
}
