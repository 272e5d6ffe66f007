//! PLACEHOLDER until the vectorised kernels land (helper-owned file): scalar libm loops with the
//! final module's signatures.
#![allow(missing_docs)]

macro_rules! scalar_kernels {
    ($($name:ident => $f:expr;)*) => {$(
        pub fn $name(x: &[f64], out: &mut [f64]) {
            let f: fn(f64) -> f64 = $f;
            for (o, v) in out.iter_mut().zip(x) { *o = f(*v); }
        }
    )*};
}

scalar_kernels! {
    exp => f64::exp; log => f64::ln; sin => f64::sin; cos => f64::cos; tan => f64::tan;
    tanh => f64::tanh; sqrt => f64::sqrt; sigmoid => crate::ops::sigmoid;
}
