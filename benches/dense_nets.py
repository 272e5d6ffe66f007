"""The networks of benches/dense.py: data, and each library's value + gradient and SGD epoch.

The network is 64-30-10 (W8) or 784-30-10 with sigmoid units and J = (1/N) sum over samples
and outputs of (y - yhat)**2. Every builder takes (modules, Net) and returns a callable of
no arguments whose result benches/dense.py checks against NumPy's before timing it; the
``child_*`` functions build a library's first result in a fresh process, lap by lap.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402 - checking helpers and the shared seed live there

HIDDEN, OUTPUTS = 30, 10
BIG_INPUTS = 784
BATCH = 10
# Nielsen's digits network trains with eta = 3 on C = (1/2N) sum ||y - a||^2; our J has no
# 1/2, so the same steps take half the rate.
LR = 1.5
SEED = run.SEED
ARRAYS_MISSING = "skipped: chainrule has no cr.ExprArray yet (array variables, issue 20)"


@dataclass
class Net:
    """A data set and the network's parameters at which every library is evaluated."""

    X: np.ndarray  # (N, n_inputs)
    Y: np.ndarray  # (N, 10), one-hot
    params: tuple  # W1 (30, n_in), b1 (30,), W2 (10, 30), b2 (10,)
    source: str

    @property
    def n_inputs(self):
        return self.X.shape[1]


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def one_hot(labels):
    Y = np.zeros((len(labels), OUTPUTS))
    Y[np.arange(len(labels)), labels] = 1.0
    return Y


def init_params(n_in, rng):
    # N(0, 1/fan_in) weights keep pre-activations where the sigmoid bends (as nn.py does);
    # small nonzero biases make the bias gradients differ from a plain column sum of zeros.
    return (rng.normal(0.0, 1.0 / math.sqrt(n_in), (HIDDEN, n_in)), rng.normal(0.0, 0.1, HIDDEN),
            rng.normal(0.0, 1.0 / math.sqrt(HIDDEN), (OUTPUTS, HIDDEN)),
            rng.normal(0.0, 0.1, OUTPUTS))


def digits_net():
    """W8's data: the 8x8 digits if scikit-learn is there, else seeded look-alikes."""
    rng = np.random.default_rng(SEED + 8)
    try:
        from sklearn.datasets import load_digits

        digits = load_digits()
        X, labels = digits.data / 16.0, digits.target
        source = "scikit-learn's 8x8 digits (1,797 x 64, grey levels / 16)"
    except ImportError:
        X, labels = rng.integers(0, 17, (1_797, 64)) / 16.0, rng.integers(0, 10, 1_797)
        source = "synthetic 1,797 x 64 (scikit-learn not installed), seeded"
    return Net(np.ascontiguousarray(X, dtype=np.float64), one_hot(labels), init_params(64, rng),
               source)


def big_net(n):
    rng = np.random.default_rng(SEED + 784)
    X = rng.random((n, BIG_INPUTS))
    return Net(X, one_hot(rng.integers(0, 10, n)), init_params(BIG_INPUTS, rng),
               f"synthetic {n:,} x {BIG_INPUTS}, uniform [0, 1), seeded")


def epoch_order(n):
    """One seeded shuffle, cut to whole batches (shared by every implementation)."""
    order = np.random.default_rng(SEED + 10).permutation(n)
    return order[: n // BATCH * BATCH]


# --------------------------------------------------------------------------
# NumPy: the reference, hand-written backprop
# --------------------------------------------------------------------------


def sigmoid_(z):
    """1 / (1 + exp(-z)) in place: no temporaries beyond z itself."""
    np.negative(z, out=z)
    np.exp(z, out=z)
    z += 1.0
    return np.reciprocal(z, out=z)


def numpy_value_grad(X, Y, W1, b1, W2, b2):
    """J and dJ/d(W1, b1, W2, b2) for J = (1/N) sum (Y - sigmoid(...))**2."""
    n = len(X)
    A1 = X @ W1.T
    A1 += b1
    sigmoid_(A1)
    A2 = A1 @ W2.T
    A2 += b2
    sigmoid_(A2)
    E = np.subtract(A2, Y)
    J = np.vdot(E, E) / n
    # dJ/dZ2 = (2/N) E A2 (1 - A2), built in E's buffer.
    D2 = E
    D2 *= A2
    np.subtract(1.0, A2, out=A2)
    D2 *= A2
    D2 *= 2.0 / n
    gW2, gb2 = D2.T @ A1, D2.sum(axis=0)
    D1 = D2 @ W2
    D1 *= A1
    np.subtract(1.0, A1, out=A1)
    D1 *= A1
    return J, D1.T @ X, D1.sum(axis=0), gW2, gb2


def numpy_loss_plain(X, Y, W1, b1, W2, b2):
    """J written plainly, so that it also runs on complex parameters (complex step)."""
    A1 = 1.0 / (1.0 + np.exp(-(X @ W1.T + b1)))
    A2 = 1.0 / (1.0 + np.exp(-(A1 @ W2.T + b2)))
    E = A2 - Y
    return (E * E).sum() / len(X)


def verify_numpy_gradient(net, directions=2, samples=300):
    """Raise run.Mismatch unless NumPy's backprop equals complex-step derivatives of J.

    The complex step h = 1e-30 gives the directional derivative exact to rounding, so a
    wrong backprop formula cannot serve as the reference.
    """
    X, Y = net.X[:samples], net.Y[:samples]
    _, *grads = numpy_value_grad(X, Y, *net.params)
    rng = np.random.default_rng(SEED + 1)
    for d in range(directions):
        v = [rng.normal(size=p.shape) for p in net.params]
        h = 1e-30
        shifted = [p + 1j * h * vp for p, vp in zip(net.params, v, strict=True)]
        want = numpy_loss_plain(X, Y, *shifted).imag / h
        got = sum(float(np.vdot(g, vp)) for g, vp in zip(grads, v, strict=True))
        scale = sum(float(np.linalg.norm(g) * np.linalg.norm(vp))
                    for g, vp in zip(grads, v, strict=True))
        if abs(got - want) > run.RTOL * scale:
            raise run.Mismatch(f"NumPy backprop ({net.source}), direction {d}: gradient . v = "
                               f"{got!r}, complex step {want!r}")


def matmul_operands(net):
    """The five products of numpy_value_grad, as (a, b) pairs with the same shapes."""
    X, (W1, _, W2, _) = net.X, net.params
    n = len(X)
    A1 = np.random.default_rng(SEED).random((n, HIDDEN))
    D2 = np.random.default_rng(SEED + 2).random((n, OUTPUTS))
    return [(X, W1.T), (A1, W2.T), (D2.T, A1), (D2, W2), (A1.T, X)]


def build_numpy(mods, net):
    return lambda: numpy_value_grad(net.X, net.Y, *net.params)


def build_numpy_matmuls(mods, net):
    pairs = matmul_operands(net)
    return lambda: [a @ b for a, b in pairs]


def numpy_epoch(net):
    order = epoch_order(len(net.X))
    Xs, Ys = net.X[order], net.Y[order]
    params = [p.copy() for p in net.params]
    for s in range(0, len(order), BATCH):
        _, *grads = numpy_value_grad(Xs[s:s + BATCH], Ys[s:s + BATCH], *params)
        for p, g in zip(params, grads, strict=True):
            p -= LR * g
    return params


def build_numpy_epoch(mods, net):
    return lambda: numpy_epoch(net)


# --------------------------------------------------------------------------
# JAX
# --------------------------------------------------------------------------


def jax_loss(jax):
    jnp = jax.numpy

    def loss(params, X, Y):
        W1, b1, W2, b2 = params
        A1 = jax.nn.sigmoid(X @ W1.T + b1)
        A2 = jax.nn.sigmoid(A1 @ W2.T + b2)
        return jnp.sum((A2 - Y) ** 2) / X.shape[0]

    return loss


def flat_jax(jax, result):
    value, grads = jax.block_until_ready(result)
    return (value, *grads)


def build_jax(mods, net):
    jax = mods["jax"]
    step = jax.jit(jax.value_and_grad(jax_loss(jax)))
    # Placed on the device once, outside the timing (as run.py's anchors).
    params, X, Y = jax.device_put((net.params, net.X, net.Y))
    return lambda: flat_jax(jax, step(params, X, Y))


def jax_update(jax):
    grad_fn = jax.value_and_grad(jax_loss(jax))

    def update(params, X, Y):
        _, grads = grad_fn(params, X, Y)
        return tuple(p - LR * g for p, g in zip(params, grads, strict=True))

    return update


def build_jax_epoch(mods, net):
    jax = mods["jax"]
    update = jax.jit(jax_update(jax))
    order = epoch_order(len(net.X))

    def epoch():
        Xs, Ys = net.X[order], net.Y[order]
        params = net.params
        # Batches are NumPy slices, as the other loops take them (run.py's W10 measured
        # slicing a device array at ~100 µs a step).
        for s in range(0, len(order), BATCH):
            params = update(params, Xs[s:s + BATCH], Ys[s:s + BATCH])
        return jax.block_until_ready(params)

    return epoch


def build_jax_scan(mods, net):
    jax = mods["jax"]
    update = jax_update(jax)
    order = epoch_order(len(net.X))

    @jax.jit
    def train(params, Xb, Yb):
        return jax.lax.scan(lambda p, batch: (update(p, *batch), None), params, (Xb, Yb))[0]

    def epoch():
        Xb = net.X[order].reshape(-1, BATCH, net.n_inputs)
        Yb = net.Y[order].reshape(-1, BATCH, OUTPUTS)
        return jax.block_until_ready(train(net.params, Xb, Yb))

    return epoch


# --------------------------------------------------------------------------
# chainrule
# --------------------------------------------------------------------------


class ScalarVarsNet:
    """The network with one scalar variable per weight, built as nn.SigmoidNetwork builds
    its units today (same names, W{l}_{j}_{i} and b{l}_{j}; nn has one output, this has
    10, so it is built here): one argument per input column, target column and parameter."""

    def __init__(self, cr, n_in):
        xs = cr.vars([f"x{i}" for i in range(n_in)])
        ys = cr.vars([f"y{k}" for k in range(OUTPUTS)])
        self.W1 = [[cr.var(f"W1_{j}_{i}") for i in range(n_in)] for j in range(HIDDEN)]
        self.b1 = [cr.var(f"b1_{j}") for j in range(HIDDEN)]
        self.W2 = [[cr.var(f"W2_{k}_{j}") for j in range(HIDDEN)] for k in range(OUTPUTS)]
        self.b2 = [cr.var(f"b2_{k}") for k in range(OUTPUTS)]
        h = [self.unit(cr, w, xs, b) for w, b in zip(self.W1, self.b1, strict=True)]
        out = [self.unit(cr, w, h, b) for w, b in zip(self.W2, self.b2, strict=True)]
        err = None
        for y, o in zip(ys, out, strict=True):
            err = (y - o) ** 2 if err is None else err + (y - o) ** 2
        self.loss = cr.mean(err)
        self.data_vars = [*xs, *ys]
        self.param_vars = [*(w for row in self.W1 for w in row), *self.b1,
                           *(w for row in self.W2 for w in row), *self.b2]

    @staticmethod
    def unit(cr, weights, inputs, bias):
        z = None
        for w, a in zip(weights, inputs, strict=True):
            z = w * a if z is None else z + w * a
        return cr.sigmoid(z + bias)

    def compile(self, cr):
        grads = cr.grad(self.loss, self.param_vars)
        return cr.compile([self.loss, *grads], inputs=[*self.data_vars, *self.param_vars])


def flat_params(params):
    return np.concatenate([np.ravel(p) for p in params])


def unflat_params(theta, like):
    out, start = [], 0
    for p in like:
        out.append(theta[start:start + p.size].reshape(p.shape))
        start += p.size
    return out


def columns(X, Y):
    # Contiguous once, as nn.SigmoidNetwork.fit prepares them, not per call.
    return [np.ascontiguousarray(X[:, i]) for i in range(X.shape[1])] + \
        [np.ascontiguousarray(Y[:, k]) for k in range(OUTPUTS)]


def scalar_vars_call(fn, cols, params):
    """One value + gradient from arrays to arrays: the parameters go in as 2,000-odd floats
    and the gradient comes back as as many, packed into the parameters' shapes."""
    out = fn(*cols, *flat_params(params).tolist())
    return (out[0], *unflat_params(np.array(out[1:]), params))


def build_scalar_vars(mods, net):
    fn = ScalarVarsNet(mods["chainrule"], net.n_inputs).compile(mods["chainrule"])
    cols = columns(net.X, net.Y)
    return lambda: scalar_vars_call(fn, cols, net.params)


def build_scalar_vars_epoch(mods, net):
    fn = ScalarVarsNet(mods["chainrule"], net.n_inputs).compile(mods["chainrule"])
    cols, order = columns(net.X, net.Y), epoch_order(len(net.X))

    def epoch():
        shuffled = [c[order] for c in cols]
        theta = flat_params(net.params)
        for s in range(0, len(order), BATCH):
            _, *grads = fn(*[c[s:s + BATCH] for c in shuffled], *theta.tolist())
            theta = theta - LR * np.array(grads)
        return unflat_params(theta, net.params)

    return epoch


def has_arrays(cr):
    return hasattr(cr, "ExprArray")


def arrays_loss(cr, n_in):
    """(J, parameters, inputs) with array variables, written against DESIGN.md's API."""
    x, y = cr.var("x", shape=(n_in,)), cr.var("y", shape=(OUTPUTS,))
    W1, b1 = cr.var("W1", shape=(HIDDEN, n_in)), cr.var("b1", shape=(HIDDEN,))
    W2, b2 = cr.var("W2", shape=(OUTPUTS, HIDDEN)), cr.var("b2", shape=(OUTPUTS,))
    yhat = cr.sigmoid(W2 @ cr.sigmoid(W1 @ x + b1) + b2)
    return cr.mean(((y - yhat) ** 2).sum()), [W1, b1, W2, b2], [x, y, W1, b1, W2, b2]


def arrays_function(cr, n_in):
    J, params, inputs = arrays_loss(cr, n_in)
    return cr.compile([J, *cr.grad(J, params)], inputs=inputs)


def build_arrays(mods, net):
    fn = arrays_function(mods["chainrule arrays"], net.n_inputs)
    return lambda: fn(net.X, net.Y, *net.params)


def build_arrays_epoch(mods, net):
    fn = arrays_function(mods["chainrule arrays"], net.n_inputs)
    order = epoch_order(len(net.X))

    def epoch():
        Xs, Ys = net.X[order], net.Y[order]
        params = net.params
        for s in range(0, len(order), BATCH):
            _, *grads = fn(Xs[s:s + BATCH], Ys[s:s + BATCH], *params)
            params = [p - LR * g for p, g in zip(params, grads, strict=True)]
        return params

    return epoch


def build_arrays_core_epoch(mods, net):
    """The epoch as nn.SigmoidNetwork.fit runs it: one call into the core, which gathers each
    shuffled batch, evaluates J and its gradient and steps the parameters in place."""
    fn = arrays_function(mods["chainrule arrays"], net.n_inputs)
    order = epoch_order(len(net.X)).astype(np.int64)
    X, Y = np.ascontiguousarray(net.X), np.ascontiguousarray(net.Y)

    def epoch():
        theta = flat_params(net.params)
        fn.flat._sgd_epoch([X, Y], theta, LR, BATCH, order)
        return unflat_params(theta, net.params)

    return epoch


# (row name, library it needs, builder); the matmuls alone are timed, not checked. The "1 BLAS
# thread" rows are there because OpenBLAS's threads wait for each other by spinning: on the
# shared 2-core machine at load 5-9, NumPy's W8 value + gradient took a median of 195 ms with
# 2 BLAS threads against a minimum of 1.05 ms, and a ratio to that says nothing.
VALUE_GRAD_ROWS = (
    ("numpy", "numpy", build_numpy),
    ("numpy, 1 BLAS thread", "numpy 1 BLAS thread", build_numpy),
    ("numpy matmuls only", "numpy", build_numpy_matmuls),
    ("numpy matmuls only, 1 BLAS thread", "numpy 1 BLAS thread", build_numpy_matmuls),
    ("jax jit(value_and_grad)", "jax", build_jax),
    ("chainrule scalar-vars", "chainrule", build_scalar_vars),
    ("chainrule arrays", "chainrule arrays", build_arrays),
)
EPOCH_ROWS = (
    ("numpy", "numpy", build_numpy_epoch),
    ("numpy, 1 BLAS thread", "numpy 1 BLAS thread", build_numpy_epoch),
    ("jax jit per step", "jax", build_jax_epoch),
    ("jax lax.scan", "jax", build_jax_scan),
    ("chainrule scalar-vars", "chainrule", build_scalar_vars_epoch),
    ("chainrule arrays", "chainrule arrays", build_arrays_epoch),
    ("chainrule arrays, epoch in the core", "chainrule arrays", build_arrays_core_epoch),
)


# --------------------------------------------------------------------------
# First results, lap by lap (run by benches/dense.py in fresh processes)
# --------------------------------------------------------------------------


def child_numpy(net):
    laps = run.Laps()
    out = numpy_value_grad(net.X, net.Y, *net.params)
    laps.lap("first_call")
    return laps.times, out, lambda: numpy_value_grad(net.X, net.Y, *net.params)


def child_jax(net):
    laps = run.Laps()
    jax = run._load_jax(None)
    laps.lap("import")
    step = jax.jit(jax.value_and_grad(jax_loss(jax)))
    lowered = step.lower(net.params, net.X, net.Y)  # tracing runs the differentiation
    laps.lap("grad")
    compiled = lowered.compile()
    laps.lap("compile")
    out = flat_jax(jax, compiled(net.params, net.X, net.Y))
    laps.lap("first_call")
    return laps.times, out, lambda: flat_jax(jax, compiled(net.params, net.X, net.Y))


def child_scalar_vars(net):
    laps = run.Laps()
    import chainrule as cr

    laps.lap("import")
    model = ScalarVarsNet(cr, net.n_inputs)
    laps.lap("build")
    grads = cr.grad(model.loss, model.param_vars)
    laps.lap("grad")
    fn = cr.compile([model.loss, *grads], inputs=[*model.data_vars, *model.param_vars])
    laps.lap("compile")
    cols = columns(net.X, net.Y)
    out = scalar_vars_call(fn, cols, net.params)
    laps.lap("first_call")
    return laps.times, out, lambda: scalar_vars_call(fn, cols, net.params)


def child_arrays(net):
    laps = run.Laps()
    import chainrule as cr

    laps.lap("import")
    if not has_arrays(cr):
        return {"skipped": ARRAYS_MISSING}, None, None
    J, params, inputs = arrays_loss(cr, net.n_inputs)
    laps.lap("build")
    grads = cr.grad(J, params)
    laps.lap("grad")
    fn = cr.compile([J, *grads], inputs=inputs)
    laps.lap("compile")
    out = fn(net.X, net.Y, *net.params)
    laps.lap("first_call")
    return laps.times, out, lambda: fn(net.X, net.Y, *net.params)


CHILDREN = {
    "numpy": ("numpy", child_numpy),
    "jax": ("jax", child_jax),
    "chainrule scalar-vars": ("chainrule", child_scalar_vars),
    "chainrule arrays": ("chainrule arrays", child_arrays),
}
