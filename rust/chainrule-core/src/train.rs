//! Mini-batch gradient descent inside the core: one call runs an epoch (shuffle, then for each
//! batch evaluate the loss and its gradient and step the parameters), so a training loop
//! makes one call per epoch instead of a round trip through Python per step.

use crate::error::{Error, Result};
use crate::eval::{Args, Runner};
use crate::function::Function;
use crate::shape::InputView;

/// Training data for one group of a function's leading inputs: `rows` samples, each `width`
/// consecutive values (row-major), one per input of the group.
pub struct Rows<'a> {
    /// The values, `rows x width`, row-major.
    pub values: &'a [f64],
    /// Values per sample (inputs in the group).
    pub width: usize,
}

/// How an epoch runs.
#[derive(Clone, Copy, Debug)]
pub struct Sgd {
    /// The step size: `theta -= lr * gradient`.
    pub lr: f64,
    /// Samples per step (the last step of an epoch takes what is left).
    pub batch: usize,
}

impl Function {
    /// Runs one epoch of mini-batch gradient descent. The function's inputs are the data
    /// inputs (the groups of `data`, in order) followed by one input per parameter; its
    /// outputs are the loss followed by the gradient with respect to each parameter, all
    /// reduced over the batch. The epoch visits the samples in `order` (row indices, e.g. a
    /// shuffle; `None` for the data's own order), `sgd.batch` at a time. `params` are updated
    /// in place after every step; returns the loss of each step. `stop` is asked between steps (and inside long ones), as in
    /// [`Function::run_watched`].
    pub fn sgd_epoch(
        &self,
        data: &[Rows],
        params: &mut [f64],
        order: Option<&[usize]>,
        sgd: Sgd,
        stop: &mut dyn FnMut() -> bool,
    ) -> Result<Vec<f64>> {
        let width: usize = data.iter().map(|d| d.width).sum();
        let n_inputs = self.inputs().len();
        if width + params.len() != n_inputs {
            return Err(Error::Unsupported(format!(
                "an epoch needs one input per data column and per parameter: {width} data columns and {} parameters for {n_inputs} inputs",
                params.len()
            )));
        }
        if self.outputs().len() != 1 + params.len() {
            return Err(Error::Unsupported(format!(
                "an epoch needs the loss and one gradient per parameter as outputs: {} outputs for {} parameters",
                self.outputs().len(),
                params.len()
            )));
        }
        let mut rows: Option<usize> = None;
        for d in data {
            let n = d.values.len().checked_div(d.width).unwrap_or(0);
            if d.width == 0 || n * d.width != d.values.len() || rows.is_some_and(|r| r != n) {
                return Err(Error::Unsupported("every data group needs the same number of samples".into()));
            }
            rows = Some(n);
        }
        let n = rows.unwrap_or(0);
        if sgd.batch == 0 || !sgd.lr.is_finite() {
            return Err(Error::Unsupported(format!(
                "an epoch needs a batch size >= 1 and a finite lr (batch {}, lr {})",
                sgd.batch, sgd.lr
            )));
        }
        let own_order: Vec<usize>;
        let order = match order {
            Some(o) => {
                if let Some(bad) = o.iter().find(|&&i| i >= n) {
                    return Err(Error::Unsupported(format!("sample index {bad} in the epoch's order is out of range for {n} samples")));
                }
                o
            }
            None => {
                own_order = (0..n).collect();
                &own_order
            }
        };
        let n = order.len();
        let mut columns = vec![0.0; width * sgd.batch.min(n.max(1))];
        // The loss, then the gradient.
        let mut values = vec![0.0; 1 + params.len()];
        let mut losses = Vec::with_capacity(n.div_ceil(sgd.batch));
        // Steps take `full` samples, the last one perhaps `tail`: one prepared call and one
        // runner each, kept for the whole epoch.
        let full = sgd.batch.min(n);
        let tail = if n > full { n % full } else { 0 };
        let prepare = |b: usize| -> Result<crate::eval::Call> {
            let shapes: Vec<Vec<usize>> = (0..n_inputs).map(|k| if k < width { vec![b] } else { Vec::new() }).collect();
            let call = self.prepare(&shapes)?;
            if call.output_shapes.iter().any(|s| !s.is_empty()) {
                return Err(Error::Unsupported(
                    "an epoch needs a loss and gradients that are single values (reduced over the batch, e.g. with mean)".into(),
                ));
            }
            Ok(call)
        };
        let calls = [(n > 0).then(|| prepare(full)).transpose()?, (tail > 0).then(|| prepare(tail)).transpose()?];
        let mut runners: Vec<Option<Runner>> = calls.iter().map(|c| c.as_ref().map(Runner::new)).collect();
        // The views' memory, kept from step to step (making a vector of 74 views each step was
        // ~4 µs of a ~40 µs step for W8).
        let mut spare: Vec<InputView> = Vec::with_capacity(width);
        for start in (0..n).step_by(sgd.batch) {
            let b = sgd.batch.min(n - start);
            let picked = &order[start..start + b];
            let mut column = 0;
            for d in data {
                for (i, &row) in picked.iter().enumerate() {
                    for (j, &v) in d.values[row * d.width..(row + 1) * d.width].iter().enumerate() {
                        columns[(column + j) * b + i] = v;
                    }
                }
                column += d.width;
            }
            let runner = runners[usize::from(b != full)].as_mut().expect("a call is prepared for every step's size");
            {
                // The data columns through views; the parameters as they are, with no view
                // each (2,260 of them per step for W8's 64-30-10 network).
                let mut views = recycled(std::mem::take(&mut spare));
                views.extend(columns[..width * b].chunks(b).map(InputView::column));
                let args = Args { views: &views, singles: params };
                runner.run_values(args, &mut values, stop, &|o| self.value_over_empty_groups(o))?;
                spare = recycled(views);
            }
            for (p, g) in params.iter_mut().zip(&values[1..]) {
                *p -= sgd.lr * g;
            }
            losses.push(values[0]);
            if stop() {
                return Err(Error::Interrupted);
            }
        }
        Ok(losses)
    }
}

/// An empty vector of views with `views`' memory, for views of another borrow: collecting in
/// place keeps the allocation.
fn recycled<'b>(mut views: Vec<InputView<'_>>) -> Vec<InputView<'b>> {
    views.clear();
    views.into_iter().map(|_| unreachable!("the vector is empty")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{mean, mul, sub, var};
    use crate::grad::grad;

    /// Least squares y = w * x on data with w = 2: each step moves w toward 2, the epoch
    /// visits every sample once, and the same seed gives the same steps.
    #[test]
    fn an_epoch_steps_toward_the_minimum_and_is_reproducible() {
        let (x, y, w) = (var("x").unwrap(), var("y").unwrap(), var("w").unwrap());
        let loss = mean(&mul(&sub(&y, &mul(&w, &x)), &sub(&y, &mul(&w, &x))));
        let g = grad(&loss, std::slice::from_ref(&w)).unwrap();
        let f = Function::new(&[loss, g[0].clone()], &[x, y, w]).unwrap();
        let values: Vec<f64> = (0..10).flat_map(|i| [i as f64 / 10.0, 2.0 * i as f64 / 10.0]).collect();
        let data = [Rows { values: &values, width: 2 }];
        let sgd = Sgd { lr: 0.5, batch: 3 };
        let run = |order: Option<&[usize]>| {
            let mut w0 = [0.0];
            let losses = f.sgd_epoch(&data, &mut w0, order, sgd, &mut || false).unwrap();
            (w0[0], losses)
        };
        let (w1, losses) = run(None);
        assert_eq!(losses.len(), 4);
        assert!((w1 - 2.0).abs() < 1.0, "w = {w1}");
        // By hand: the first step's gradient on samples 0, 1, 2 at w = 0.
        let first: f64 = (0..3).map(|i| -2.0 * (2.0 * i as f64 / 10.0) * (i as f64 / 10.0)).sum::<f64>() / 3.0;
        let (w_one, _) = {
            let mut w0 = [0.0];
            let l = f.sgd_epoch(&data, &mut w0, Some(&[0, 1, 2]), sgd, &mut || false).unwrap();
            (w0[0], l)
        };
        assert!((w_one - (0.0 - 0.5 * first)).abs() < 1e-15);
        let reversed: Vec<usize> = (0..10).rev().collect();
        assert_ne!(run(Some(&reversed)).1, losses);
        let mut w0 = [0.0];
        assert!(f.sgd_epoch(&data, &mut w0, Some(&[10]), sgd, &mut || false).is_err());
        assert!(f.sgd_epoch(&data, &mut w0, None, Sgd { lr: 0.5, batch: 0 }, &mut || false).is_err());
        assert!(f.sgd_epoch(&data, &mut [0.0, 1.0], None, sgd, &mut || false).is_err());
    }
}
