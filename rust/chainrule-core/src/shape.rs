//! Shapes: NumPy's broadcasting rule, walking the samples of a batch through the offsets of an
//! array broadcast to it, and the strided views the evaluator reads inputs through. Shapes here
//! are padded to the batch's rank where noted.
//!
//! Invariant of [`InputView`]: every element its shape and strides reach lies inside its data
//! (checked when it is made), so gathering from it never reads out of bounds.

use crate::error::{Error, Result};

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

/// An argument's elements where they are: element `i` (an index of `shape`) is
/// `data[origin + sum(i[d] * strides[d])]`. Strides count elements and may be zero (a broadcast
/// or stride-0 view) or negative (a reversed view), so columns of a matrix, every other
/// element, transposes and `np.broadcast_to` views are read in place: a copy of a broadcast
/// view costs its full size (22 GiB for 3e9 samples) where reading it costs one element.
#[derive(Clone, Debug)]
pub struct InputView<'a> {
    data: &'a [f64],
    origin: usize,
    shape: Dims<usize>,
    strides: Dims<isize>,
}

/// A view's shape or strides, held inline up to four dimensions: a call with thousands of
/// arguments (one per weight of a dense layer, an epoch's every step) makes a view per
/// argument, and two allocations each were most of such a call's fixed cost.
#[derive(Clone, Debug)]
enum Dims<T> {
    Inline(u8, [T; 4]),
    Heap(Vec<T>),
}

impl<T: Copy + Default> Dims<T> {
    fn of(values: &[T]) -> Dims<T> {
        if values.len() <= 4 {
            let mut inline = [T::default(); 4];
            inline[..values.len()].copy_from_slice(values);
            Dims::Inline(values.len() as u8, inline)
        } else {
            Dims::Heap(values.to_vec())
        }
    }
}

impl<T> std::ops::Deref for Dims<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Dims::Inline(n, values) => &values[..*n as usize],
            Dims::Heap(values) => values,
        }
    }
}

impl<'a> InputView<'a> {
    /// A C-contiguous array of `shape` (a single value for the shape `[]`).
    pub fn contiguous(data: &'a [f64], shape: &[usize]) -> Result<InputView<'a>> {
        let mut all = [0isize; 4];
        let mut heap = Vec::new();
        let strides: &mut [isize] = if shape.len() <= 4 {
            &mut all[..shape.len()]
        } else {
            heap.resize(shape.len(), 0);
            &mut heap
        };
        let mut step = 1isize;
        for d in (0..shape.len()).rev() {
            strides[d] = step;
            step = step.saturating_mul(isize::try_from(shape[d]).unwrap_or(isize::MAX));
        }
        InputView::strided(data, 0, shape, strides)
    }

    /// All of `data` as one axis (shape `[len]`, stride 1): always valid, so unchecked; an
    /// epoch makes one per data column per step.
    pub fn column(data: &'a [f64]) -> InputView<'a> {
        InputView { data, origin: 0, shape: Dims::Inline(1, [data.len(), 0, 0, 0]), strides: Dims::Inline(1, [1, 0, 0, 0]) }
    }

    /// The single value `data[at]` (a view of shape `()`); None where `at` is outside `data`.
    /// The cheap form for arguments of one value each: a dense layer's weights passed as one
    /// array without a batch are thousands of them.
    pub fn single(data: &'a [f64], at: usize) -> Option<InputView<'a>> {
        (at < data.len()).then_some(InputView { data, origin: at, shape: Dims::Inline(0, [0; 4]), strides: Dims::Inline(0, [0; 4]) })
    }

    /// A view of `shape` with element `strides` whose first element is `data[origin]`. Fails
    /// unless every element it reaches lies inside `data`.
    pub fn strided(data: &'a [f64], origin: usize, shape: &[usize], strides: &[isize]) -> Result<InputView<'a>> {
        let view = InputView { data, origin, shape: Dims::of(shape), strides: Dims::of(strides) };
        let fits = strides.len() == shape.len()
            && (shape.contains(&0) || view.extent().is_some_and(|(low, high)| low >= 0 && high < data.len() as i128));
        if !fits {
            return Err(Error::Internal(format!(
                "an argument view of shape {shape:?}, strides {strides:?} from element {origin} reaches past its {} elements",
                data.len()
            )));
        }
        Ok(view)
    }

    /// The lowest and highest element index a view with elements reaches.
    fn extent(&self) -> Option<(i128, i128)> {
        let (mut low, mut high) = (self.origin as i128, self.origin as i128);
        for (&n, &s) in self.shape.iter().zip(self.strides.iter()) {
            let reach = (n as i128 - 1).checked_mul(s as i128)?;
            if reach < 0 {
                low += reach;
            } else {
                high += reach;
            }
        }
        Some((low, high))
    }

    /// The view's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The first element (the value of an argument with one element).
    pub(crate) fn first(&self) -> f64 {
        self.data[self.origin]
    }

    /// Where the view's first element is.
    pub(crate) fn first_ptr(&self) -> *const f64 {
        self.data[self.origin..].as_ptr()
    }

    /// Appends what says where this view's elements are (its memory, origin, shape and
    /// strides) to `key`: two views with the same key are the same elements.
    pub(crate) fn place(&self, key: &mut Vec<usize>) {
        key.extend([self.data.as_ptr() as usize, self.data.len(), self.origin, self.shape.len()]);
        key.extend(self.shape.iter().copied());
        key.extend(self.strides.iter().map(|&s| s as usize));
    }

    /// How the evaluator reads this view as an argument broadcast to `batch` (the view's
    /// shape padded to the batch's rank broadcasts to it).
    pub(crate) fn layout(&self, batch: &[usize]) -> Layout<'a> {
        let lead = batch.len() - self.shape.len();
        let mut strides = vec![0isize; batch.len()];
        for (d, (&n, &s)) in self.shape.iter().zip(self.strides.iter()).enumerate() {
            if n != 1 {
                strides[lead + d] = s;
            }
        }
        Layout { data: self.data, origin: self.origin, strides }
    }
}

/// A source broadcast to the batch: sample `i` (an index of the batch) is
/// `data[origin + sum(i[d] * strides[d])]`, with stride 0 along every broadcast dimension.
#[derive(Clone, Debug)]
pub(crate) struct Layout<'a> {
    pub(crate) data: &'a [f64],
    pub(crate) origin: usize,
    pub(crate) strides: Vec<isize>,
}

impl<'a> Layout<'a> {
    /// A C-contiguous array of `shape` (padded) broadcast to `batch`.
    pub(crate) fn contiguous(data: &'a [f64], shape: &[usize], batch: &[usize]) -> Layout<'a> {
        Layout { data, origin: 0, strides: strides_for(shape, batch).into_iter().map(|s| s as isize).collect() }
    }

    /// The samples laid out as the batch is, one after another from `data[origin]`: then a
    /// chunk is read where it is, with no copy at all.
    pub(crate) fn is_batch_order(&self, batch: &[usize]) -> bool {
        let mut step = 1isize;
        for d in (0..batch.len()).rev() {
            if batch[d] != 1 && self.strides[d] != step {
                return false;
            }
            step = step.saturating_mul(batch[d] as isize);
        }
        true
    }

    /// Copies samples `start..start + out.len()` (flat batch indices) into `out`, a run along
    /// the innermost dimension at a time: a copy where that stride is 1, a fill where it is 0
    /// (a broadcast axis is never expanded beyond the chunk), a strided gather otherwise.
    pub(crate) fn gather(&self, batch: &[usize], start: usize, out: &mut [f64]) {
        if batch.is_empty() {
            // A batch of rank 0 is one sample.
            return out.fill(self.data[self.origin]);
        }
        let step = self.strides[batch.len() - 1];
        for_each_run(batch, &self.strides, start, out.len(), |filled, run, off| {
            let dst = &mut out[filled..filled + run];
            let (low, high) = run_span(self.origin, off, step, run);
            let src = &self.data[low..=high];
            match step {
                0 => dst.fill(src[0]),
                1 => dst.copy_from_slice(src),
                s if s > 0 => dst.iter_mut().zip(src.iter().step_by(s as usize)).for_each(|(d, v)| *d = *v),
                s => dst.iter_mut().zip(src.iter().rev().step_by(s.unsigned_abs())).for_each(|(d, v)| *d = *v),
            }
        });
    }
}

/// Gathers samples `start..start + len` of several sources with the same strides (W11's
/// columns of one matrix) at once, row by row: memory is swept once, in address order, instead
/// of once per column. `outs[c]` receives source `c`. Four adjacent columns of one span are
/// read four elements of a row at a time and transposed four rows at a time; the rest are
/// gathered in blocks of rows that stay in L1.
pub(crate) fn gather_rows(batch: &[usize], sources: &[Layout], start: usize, outs: &mut [&mut [f64]]) {
    let Some(first) = sources.first() else { return };
    let len = outs.first().map_or(0, |o| o.len());
    let step = first.strides[batch.len() - 1];
    let adjacent = |c: usize| {
        let a = &sources[c];
        c + 4 <= sources.len() && (1..4).all(|i| std::ptr::eq(a.data, sources[c + i].data) && sources[c + i].origin == a.origin + i)
    };
    let (mut quads, mut singles) = (Vec::new(), Vec::new());
    let mut c = 0;
    while c < sources.len() {
        if adjacent(c) {
            quads.push(c);
            c += 4;
        } else {
            singles.push(c);
            c += 1;
        }
    }
    let mut spans: Vec<&[f64]> = Vec::with_capacity(singles.len());
    for_each_run(batch, &first.strides, start, len, |filled, run, off| {
        for &c in &quads {
            transpose4(sources[c].data, sources[c].origin as isize + off, step, run, &mut outs[c..c + 4], filled);
        }
        spans.clear();
        spans.extend(singles.iter().map(|&c| {
            let (low, high) = run_span(sources[c].origin, off, step, run);
            &sources[c].data[low..=high]
        }));
        for block in (0..run).step_by(ROW_BLOCK) {
            let rows = block..(block + ROW_BLOCK).min(run);
            for (&c, span) in singles.iter().zip(&spans) {
                let dst = &mut outs[c][filled + rows.start..filled + rows.end];
                match step {
                    s if s > 0 => dst.iter_mut().zip(span[rows.start * s as usize..].iter().step_by(s as usize)).for_each(|(d, v)| *d = *v),
                    s => dst
                        .iter_mut()
                        .zip(span[..span.len() - rows.start * s.unsigned_abs()].iter().rev().step_by(s.unsigned_abs()))
                        .for_each(|(d, v)| *d = *v),
                }
            }
        }
    });
}

/// Rows `0..run` of four adjacent columns whose row 0 starts at `data[at]`, rows `step` apart,
/// into `outs[0..4]` from index `filled`: four rows of four read, four columns of four written.
/// Against gathering the four columns one element at a time: 2.6 against 4.6 ms for W11's
/// 2e5 x 20 matrix (one thread; the rows of four are one load each, the columns one store).
fn transpose4(data: &[f64], at: isize, step: isize, run: usize, outs: &mut [&mut [f64]], filled: usize) {
    let [o0, o1, o2, o3] = outs else { return };
    let row = |r: usize| -> [f64; 4] {
        let p = (at + r as isize * step) as usize;
        data[p..p + 4].try_into().unwrap_or_default()
    };
    let mut r = 0;
    while r + 4 <= run {
        let (a, b, c, d) = (row(r), row(r + 1), row(r + 2), row(r + 3));
        let i = filled + r;
        o0[i..i + 4].copy_from_slice(&[a[0], b[0], c[0], d[0]]);
        o1[i..i + 4].copy_from_slice(&[a[1], b[1], c[1], d[1]]);
        o2[i..i + 4].copy_from_slice(&[a[2], b[2], c[2], d[2]]);
        o3[i..i + 4].copy_from_slice(&[a[3], b[3], c[3], d[3]]);
        r += 4;
    }
    for r in r..run {
        let v = row(r);
        (o0[filled + r], o1[filled + r], o2[filled + r], o3[filled + r]) = (v[0], v[1], v[2], v[3]);
    }
}

/// Rows per block of [`gather_rows`].
const ROW_BLOCK: usize = 32;

/// The lowest and highest element a run of `run` samples from `origin + off` with stride `step` reads.
fn run_span(origin: usize, off: isize, step: isize, run: usize) -> (usize, usize) {
    let at = (origin as isize + off) as usize;
    let reach = (run - 1) * step.unsigned_abs();
    if step >= 0 {
        (at, at + reach)
    } else {
        (at - reach, at)
    }
}

/// Walks samples `start..start + len` (flat batch indices, batch of rank at least 1) in runs
/// along the innermost dimension: `f(filled, run, off)` for each, where `filled` samples came
/// before it and `off` is the run's first offset by `strides` (without any origin).
fn for_each_run(batch: &[usize], strides: &[isize], start: usize, len: usize, mut f: impl FnMut(usize, usize, isize)) {
    let inner = batch.len() - 1;
    let mut idx = vec![0usize; batch.len()];
    let mut rest = start;
    for d in (0..batch.len()).rev() {
        idx[d] = rest % batch[d];
        rest /= batch[d];
    }
    let mut off = idx.iter().zip(strides).map(|(&i, &s)| i as isize * s).sum::<isize>();
    let mut filled = 0;
    while filled < len {
        let run = (batch[inner] - idx[inner]).min(len - filled);
        f(filled, run, off);
        filled += run;
        off += run as isize * strides[inner];
        idx[inner] += run;
        for d in (1..batch.len()).rev() {
            if idx[d] < batch[d] {
                break;
            }
            off -= strides[d] * idx[d] as isize;
            idx[d] = 0;
            idx[d - 1] += 1;
            off += strides[d - 1];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test view: origin, shape, strides, and the batch it is read in.
    type Case = (usize, &'static [usize], &'static [isize], &'static [usize]);

    /// Element `idx` of a view, the slow way.
    fn at(data: &[f64], origin: usize, strides: &[isize], idx: &[usize]) -> f64 {
        data[(origin as isize + idx.iter().zip(strides).map(|(&i, &s)| i as isize * s).sum::<isize>()) as usize]
    }

    /// Every batch index of `batch`, in C order.
    fn indices(batch: &[usize]) -> Vec<Vec<usize>> {
        let n: usize = batch.iter().product();
        (0..n)
            .map(|mut flat| {
                let mut idx = vec![0; batch.len()];
                for d in (0..batch.len()).rev() {
                    idx[d] = flat % batch[d];
                    flat /= batch[d];
                }
                idx
            })
            .collect()
    }

    /// Views with positive, negative, zero and mixed strides, broadcast or not, gathered from
    /// any start and in any length, give the elements indexing gives; several with the same
    /// strides gathered row by row give the same.
    #[test]
    fn gathers_read_every_layout_as_indexing_does() {
        let data: Vec<f64> = (0..600).map(|i| i as f64 * 0.5 - 7.0).collect();
        // (origin, shape, strides, batch)
        let cases: [Case; 8] = [
            (0, &[40], &[3], &[40]),
            (117, &[40], &[-3], &[40]),
            (5, &[40], &[0], &[40]),
            (0, &[12, 9], &[1, 12], &[12, 9]),
            (590, &[12, 9], &[-20, -1], &[12, 9]),
            (3, &[12, 1], &[20, 0], &[12, 9]),
            (10, &[9], &[7], &[12, 9]),
            (300, &[3, 1, 5], &[-60, 99, 4], &[3, 4, 5]),
        ];
        for (origin, shape, strides, batch) in cases {
            let view = InputView::strided(&data, origin, shape, strides).expect("fits");
            let layout = view.layout(batch);
            let lead = batch.len() - shape.len();
            let want: Vec<f64> = indices(batch)
                .iter()
                .map(|idx| {
                    let own: Vec<usize> = idx[lead..].iter().zip(shape).map(|(&i, &n)| if n == 1 { 0 } else { i }).collect();
                    at(&data, origin, strides, &own)
                })
                .collect();
            let n = want.len();
            for (start, len) in [(0, n), (1, n - 1), (n / 3, n / 2), (n - 1, 1), (7, 13)] {
                let mut got = vec![f64::NAN; len];
                layout.gather(batch, start, &mut got);
                assert_eq!(got, want[start..start + len], "{shape:?} {strides:?} from {start}");
                let twin = InputView::strided(&data, origin + 1, shape, strides).map(|v| v.layout(batch));
                if let (Ok(twin), true) = (twin, strides.last().is_some_and(|s| s.unsigned_abs() > 1)) {
                    let (mut a, mut b) = (vec![f64::NAN; len], vec![f64::NAN; len]);
                    gather_rows(batch, &[layout.clone(), twin.clone()], start, &mut [&mut a, &mut b]);
                    let mut b_want = vec![f64::NAN; len];
                    twin.gather(batch, start, &mut b_want);
                    assert_eq!((a, b), (got, b_want), "rows of {shape:?} {strides:?} from {start}");
                }
            }
        }
    }

    /// Columns of one matrix gathered together (four adjacent ones transposed at a time, the
    /// rest one by one, rows forwards or backwards, in 1-d and 2-d batches) equal each
    /// column gathered alone.
    #[test]
    fn columns_of_one_matrix_gather_as_each_alone() {
        let (rows, cols) = (203, 7);
        let data: Vec<f64> = (0..rows * cols).map(|i| i as f64 * 1.5 - 100.0).collect();
        // Per kind: (origin of column c, shape, strides, batch).
        let kinds: [Case; 3] =
            [(0, &[203], &[7], &[203]), ((rows - 1) * cols, &[203], &[-7], &[203]), (0, &[7, 29], &[29 * 7, 7], &[7, 29])];
        let orders: [&[usize]; 4] = [&[0, 1, 2, 3, 4, 5, 6], &[2, 3, 4, 5, 0, 1], &[6, 5, 4, 3], &[1, 2, 3, 4, 5]];
        for (origin, shape, strides, batch) in kinds {
            for columns in orders {
                let layouts: Vec<Layout> =
                    columns.iter().map(|&c| InputView::strided(&data, origin + c, shape, strides).expect("fits").layout(batch)).collect();
                for (start, len) in [(0, 203), (5, 101), (198, 5), (30, 3)] {
                    let mut got = vec![vec![f64::NAN; len]; layouts.len()];
                    let mut outs: Vec<&mut [f64]> = got.iter_mut().map(|g| g.as_mut_slice()).collect();
                    gather_rows(batch, &layouts, start, &mut outs);
                    for (l, g) in layouts.iter().zip(&got) {
                        let mut want = vec![f64::NAN; len];
                        l.gather(batch, start, &mut want);
                        assert_eq!(g, &want, "columns {columns:?} of batch {batch:?} from {start}");
                    }
                }
            }
        }
    }

    /// A view that reaches outside its data is refused, not read.
    #[test]
    fn views_that_do_not_fit_their_data_are_refused() {
        let data = [1.0; 10];
        assert!(InputView::strided(&data, 0, &[10], &[1]).is_ok());
        assert!(InputView::strided(&data, 9, &[10], &[-1]).is_ok());
        assert!(InputView::strided(&data, 9, &[1000], &[0]).is_ok());
        assert!(InputView::strided(&data, 0, &[0, 5], &[99, 99]).is_ok());
        assert!(InputView::strided(&data, 0, &[11], &[1]).is_err());
        assert!(InputView::strided(&data, 8, &[10], &[-1]).is_err());
        assert!(InputView::strided(&data, 10, &[], &[]).is_err());
        assert!(InputView::strided(&data, 0, &[2, 5], &[5]).is_err());
        assert!(InputView::strided(&data, 0, &[usize::MAX], &[isize::MAX]).is_err());
        assert!(InputView::contiguous(&data, &[2, 5]).is_ok());
        assert!(InputView::contiguous(&data, &[3, 5]).is_err());
    }
}
