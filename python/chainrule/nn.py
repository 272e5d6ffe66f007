"""Sigmoid networks trained by gradient descent, built only on chainrule's public API.

The default is the article's network: one input, one sigmoid hidden node and a sigmoid output,
``yhat = sigmoid(w2 * sigmoid(w1 * x + b1) + b2)``, with the article's parameter names
``w1, b1, w2, b2`` (floats), data variable ``x`` and target ``y``. Any other shape is a dense
network of array variables (:class:`~chainrule.ExprArray`): input ``x`` of shape
``(n_inputs,)``, for each layer ``l`` (from 1) weights ``W{l}`` of shape (units, units of the
layer before) and biases ``b{l}``, and target ``y`` (a scalar for one output, else of shape
``(n_outputs,)``); the classic 784-30-10 digit network is
``SigmoidNetwork(n_inputs=784, hidden=(30,), n_outputs=10)``.

The loss is the article's quadratic cost ``J = mean over samples of the mean over outputs of
(y - yhat)**2`` (``cost="cross_entropy"`` for the cross-entropy of sigmoid outputs instead).
``cr.grad`` gives dJ/dtheta symbolically and ``cr.compile`` turns J and its gradient into one
fused function, once. :meth:`SigmoidNetwork.fit` runs ``theta := theta - lr * dJ/dtheta``:
each epoch is one call into the core (shuffle, then every mini-batch step, with the parameters
updated in place), not a Python round trip per step.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np

import chainrule as cr

from .arguments import refuse_masked

__all__ = ["SigmoidNetwork", "accuracy"]

COSTS = ("quadratic", "cross_entropy")


class SigmoidNetwork:
    """A fully connected network of sigmoid nodes trained on the quadratic cost (or the
    cross-entropy) by gradient descent.

    >>> import numpy as np
    >>> net = SigmoidNetwork(seed=0)
    >>> sorted(net.params)
    ['b1', 'b2', 'w1', 'w2']
    >>> print(net.output_expr)
    sigmoid(w2 * sigmoid(w1 * x + b1) + b2)
    >>> X = np.linspace(0, 1, 50); Y = 0.2 + 0.6 * X
    >>> history = net.fit(X, Y, lr=2.0, epochs=300)
    >>> bool(history[-1] < history[0] / 2)
    True
    >>> net.predict(X).shape
    (50,)
    >>> digits = SigmoidNetwork(n_inputs=64, hidden=(30,), n_outputs=10)
    >>> {name: w.shape for name, w in digits.params.items()}
    {'W1': (30, 64), 'b1': (30,), 'W2': (10, 30), 'b2': (10,)}
    """

    def __init__(self, n_inputs: int = 1, hidden: Sequence[int] | int = (1,),
                 n_outputs: int = 1, seed: int = 0, cost: str = "quadratic"):
        self.n_inputs = _positive_int("n_inputs", n_inputs)
        self.hidden = _hidden_tuple(hidden)
        self.n_outputs = _positive_int("n_outputs", n_outputs)
        if cost not in COSTS:
            raise ValueError(f"cost must be one of {', '.join(COSTS)}, not {cost!r}")
        self.cost = cost
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self.article = self.n_inputs == 1 and self.hidden == (1,) and self.n_outputs == 1
        if self.article:
            self._build_article()
        else:
            self._build_dense()
        grads = cr.grad(self.loss_expr, list(self._param_vars.values()))
        self.gradient_exprs: dict = dict(zip(self._param_vars, grads, strict=True))
        self._theta = self._initial_theta()
        # Compiled once here; fit and predict only call them.
        theta_vars = list(self._param_vars.values())
        data = [*self.data_vars, self.target_var]
        self._step_fn = cr.compile([self.loss_expr, *grads], inputs=[*data, *theta_vars])
        self._loss_fn = cr.compile(self.loss_expr, inputs=[*data, *theta_vars])
        self._predict_fn = cr.compile(self.output_expr, inputs=[*self.data_vars, *theta_vars])
        # The scalar function the core's epochs run: one input per data column and parameter.
        self._epoch_fn = self._step_fn if self.article else self._step_fn.flat

    # -- the graph --------------------------------------------------------------------------
    def _build_article(self) -> None:
        x, y = cr.var("x"), cr.var("y")
        w1, b1, w2, b2 = cr.vars("w1 b1 w2 b2")
        self._param_vars: dict = {"w1": w1, "b1": b1, "w2": w2, "b2": b2}
        self._fan_in = {"w1": 1, "b1": 0, "w2": 1, "b2": 0}
        self.data_vars: tuple = (x,)
        self.target_var = y
        z = w2 * cr.sigmoid(w1 * x + b1) + b2
        self.output_expr = cr.sigmoid(z)
        self.loss_expr = self._cost(y, z, self.output_expr)

    def _build_dense(self) -> None:
        # One input stays a scalar variable, so X may be (N,) as for the article's network.
        x = cr.var("x") if self.n_inputs == 1 else cr.var("x", shape=(self.n_inputs,))
        y = cr.var("y") if self.n_outputs == 1 else cr.var("y", shape=(self.n_outputs,))
        self.data_vars = (x,)
        self.target_var = y
        self._param_vars = {}
        self._fan_in = {}
        a = cr.ExprArray.of([x]) if self.n_inputs == 1 else x
        widths = (self.n_inputs, *self.hidden, self.n_outputs)
        z = None
        for layer, (fan_in, units) in enumerate(zip(widths, widths[1:], strict=False), start=1):
            W = cr.var(f"W{layer}", shape=(units, fan_in))
            b = cr.var(f"b{layer}", shape=(units,))
            self._param_vars[f"W{layer}"], self._fan_in[f"W{layer}"] = W, fan_in
            self._param_vars[f"b{layer}"], self._fan_in[f"b{layer}"] = b, 0
            z = W @ a + b
            a = cr.sigmoid(z)
        if self.n_outputs == 1:
            a, z = a[0], z[0]
        self.output_expr = a
        self.loss_expr = self._cost(y, z, a)

    def _cost(self, y, z, yhat):
        if self.cost == "quadratic":
            per_output = (y - yhat) ** 2
        else:  # -log of the likelihood of y under the sigmoid's output, without log(0)
            per_output = -(y * cr.log_sigmoid(z) + (1 - y) * cr.log_sigmoid(-z))
        per_sample = per_output if isinstance(per_output, cr.Expr) else per_output.mean()
        return cr.mean(per_sample)

    def _shape(self, name: str) -> tuple[int, ...]:
        v = self._param_vars[name]
        return v.shape if isinstance(v, cr.ExprArray) else ()

    def _initial_theta(self) -> np.ndarray:
        # Weights ~ N(0, 1/fan_in) keep each pre-activation near unit variance, where the sigmoid
        # is neither flat nor linear; zero biases are fine since random weights break symmetry.
        fan = np.concatenate([np.full(int(np.prod(self._shape(n))), self._fan_in[n], dtype=float)
                              for n in self._param_vars])
        scale = np.where(fan > 0, 1.0 / np.sqrt(np.maximum(fan, 1.0)), 0.0)
        draws = self._rng.normal(0.0, 1.0, len(fan))
        # Drawn unit by unit (a row of weights, then its bias), so a network gets the values
        # it got when each unit had scalar parameters.
        return draws[self._unit_order()] * scale

    def _unit_order(self) -> np.ndarray:
        """For each parameter in theta's order (W1, b1, W2, ...), its place in the draws,
        which go unit by unit: W1[0, :], b1[0], W1[1, :], b1[1], ..., W2[0, :], ..."""
        if self.article:
            return np.arange(4)
        places, at = [], 0
        names = list(self._param_vars)
        for W in names[::2]:
            units, fan_in = self._shape(W)
            per_unit = at + np.arange(units)[:, None] * (fan_in + 1)
            places += [(per_unit + np.arange(fan_in)).ravel(), per_unit[:, 0] + fan_in]
            at += units * (fan_in + 1)
        return np.concatenate(places)

    # -- parameters -------------------------------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        """The parameter names in the order of the gradient.

        >>> SigmoidNetwork(n_inputs=2, hidden=(3,)).param_names
        ('W1', 'b1', 'W2', 'b2')
        """
        return tuple(self._param_vars)

    @property
    def param_vars(self) -> dict:
        """The parameter variables, name -> Expr (the article's network) or ExprArray.

        >>> print(SigmoidNetwork().param_vars["w1"])
        w1
        """
        return dict(self._param_vars)

    def _split(self, theta: np.ndarray) -> dict:
        out, at = {}, 0
        for name in self._param_vars:
            shape = self._shape(name)
            size = int(np.prod(shape))
            out[name] = float(theta[at]) if not shape else theta[at:at + size].reshape(shape)
            at += size
        return out

    @property
    def params(self) -> dict:
        """The current parameters: name -> float for the article's network, name -> array
        (a copy) for a dense one. Assign a mapping to set some or all of them.

        >>> net = SigmoidNetwork()
        >>> net.params = {"w1": 1.5}
        >>> net.params["w1"]
        1.5
        """
        return self._split(self._theta.copy())

    @params.setter
    def params(self, values: Mapping[str, object]) -> None:
        theta = self._theta.copy()
        views = self._split(theta)
        names = list(self._param_vars)
        for name, value in values.items():
            if name not in self._param_vars:
                raise KeyError(f"no parameter {name!r}; the parameters are {', '.join(names)}")
            shape = self._shape(name)
            if not shape:
                at = sum(int(np.prod(self._shape(n))) for n in names[:names.index(name)])
                theta[at] = float(value)  # type: ignore[arg-type]
                continue
            array = np.asarray(value, dtype=float)
            if array.shape != shape:
                raise ValueError(f"parameter {name} has shape {shape}, not {array.shape}")
            views[name][...] = array
        self._theta = theta

    def _param_arguments(self) -> list:
        return list(self._split(self._theta).values())

    # -- training and prediction ------------------------------------------------------------
    def fit(self, X, Y, lr: float = 0.5, epochs: int = 2000, batch_size: int | None = None,
            progress: bool = False, seed: int | None = None) -> np.ndarray:
        """Gradient descent ``theta := theta - lr * dJ/dtheta``; returns the loss per epoch.

        Full batch by default (one step per epoch). With ``batch_size``, each epoch visits the
        samples in a shuffled order, one step per mini-batch (the last takes what is left);
        the shuffle comes from a NumPy generator seeded with ``seed`` (default: the network's
        own generator, seeded at construction), so a run is reproducible. Every
        epoch is one call into the core, which updates the parameters in place.
        ``history[k]`` is the full-batch loss J at the start of epoch k, before that epoch's
        updates (``loss(X, Y)`` gives the loss after training). ``progress=True`` shows a
        tqdm bar with the loss.

        >>> import numpy as np
        >>> net = SigmoidNetwork()
        >>> X = np.linspace(0, 1, 20)
        >>> net.fit(X, X / 2, lr=1.0, epochs=3).shape
        (3,)
        """
        x, y = self._check_data(X, Y)
        lr = _positive_float("lr", lr)
        epochs = _non_negative_int("epochs", epochs)
        if batch_size is not None:
            batch_size = _positive_int("batch_size", batch_size)
        rng = self._rng if seed is None else np.random.default_rng(seed)
        history = np.empty(epochs)
        # Imported here, not with the package: tqdm.auto brings asyncio, email, ssl and ~100
        # modules, which were 95 of the 246 ms of `import chainrule` and 7.5k objects that every
        # full garbage collection then walks (~7 ms each on the 2-core machine).
        from tqdm.auto import tqdm

        bar = tqdm(range(epochs), disable=not progress, desc="training", unit="epoch",
                   dynamic_ncols=True)
        # Refreshing the postfix every epoch would cost more than a step.
        every = max(1, epochs // 200)
        lazy = hasattr(x, "__dask_graph__") or hasattr(y, "__dask_graph__")
        rows = [x if x.ndim == 2 else x[:, None], y if y.ndim == 2 else y[:, None]]
        theta = np.ascontiguousarray(self._theta, dtype=np.float64)
        for epoch in bar:
            if lazy:
                history[epoch] = self._dask_step(x, y, theta, lr, batch_size)
            elif batch_size is None:
                history[epoch] = self._epoch_fn._sgd_epoch(rows, theta, lr, len(y))[0]
            else:
                history[epoch] = self.loss(x, y)
                order = rng.permutation(len(y))
                self._epoch_fn._sgd_epoch(rows, theta, lr, batch_size, order)
            self._theta = theta
            if epoch % every == 0 or epoch == epochs - 1:
                bar.set_postfix(loss=f"{history[epoch]:.5f}", refresh=False)
        bar.close()
        return history

    def _dask_step(self, x, y, theta: np.ndarray, lr: float, batch_size: int | None) -> float:
        """A full-batch step on Dask arrays: J and dJ/dtheta of all blocks in one Dask
        computation. Steps ``theta`` in place, as the core's epochs do, since fit keeps it."""
        import dask

        if batch_size is not None or not self.article:
            raise TypeError("Dask arrays train the article's network, full batch only")
        loss, *grads = dask.compute(*self._step_fn(x, y, *theta.tolist()))
        theta -= lr * np.array(grads)
        return float(loss)

    def predict(self, X) -> np.ndarray:
        """The network's output for each sample: shape (N,) for one output, else
        (N, n_outputs).

        >>> import numpy as np
        >>> SigmoidNetwork().predict(np.zeros((3, 1))).shape
        (3,)
        """
        x = self._check_inputs(X)
        return np.asarray(self._predict_fn(x, *self._param_arguments()), dtype=float)

    def loss(self, X, Y) -> float:
        """J at the current parameters.

        >>> import numpy as np
        >>> net = SigmoidNetwork()
        >>> X = np.linspace(0, 1, 5)
        >>> bool(abs(net.loss(X, X) - np.mean((X - net.predict(X)) ** 2)) < 1e-15)
        True
        """
        x, y = self._check_data(X, Y)
        return float(self._loss_fn(x, y, *self._param_arguments()))

    def accuracy(self, X, Y, tol: float = 0.1) -> float:
        """The fraction of samples predicted right, as :func:`accuracy` defines it.

        >>> import numpy as np
        >>> SigmoidNetwork().accuracy(np.zeros(4), np.full(4, 0.5), tol=0.5)
        1.0
        """
        return accuracy(self.predict(X), self._check_data(X, Y)[1], tol)

    # -- checking arguments -----------------------------------------------------------------
    def _check_inputs(self, X):
        X = _float_array("X", X)
        n = self.n_inputs
        if X.ndim == 1 and n == 1:
            x = X
        elif X.ndim == 2 and X.shape[1] == n:
            x = _column(X, 0) if n == 1 else X
        else:
            allowed = f"(N,) or (N, {n})" if n == 1 else f"(N, {n})"
            raise ValueError(f"X has shape {X.shape}; this network has {n} input(s), so X must "
                             f"have shape {allowed}")
        if len(x) == 0:
            raise ValueError("X has no samples")
        return x if hasattr(x, "__dask_graph__") else np.ascontiguousarray(x)

    def _check_data(self, X, Y):
        x = self._check_inputs(X)
        y = _float_array("Y", Y)
        n, k = len(x), self.n_outputs
        if k == 1:
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0].copy()
            if y.shape != (n,):
                raise ValueError(f"Y has shape {y.shape}; expected ({n},) or ({n}, 1), one "
                                 f"target per row of X")
            return x, y
        if y.shape == (n,) and np.all((y == np.round(y)) & (y >= 0) & (y < k)):
            y = np.eye(k)[y.astype(np.intp)]  # class labels as one-hot targets
        if y.shape != (n, k):
            raise ValueError(f"Y has shape {y.shape}; expected ({n}, {k}) targets, or ({n},) "
                             f"class labels 0..{k - 1}")
        return x, np.ascontiguousarray(y)

    def __repr__(self) -> str:
        outputs = "" if self.n_outputs == 1 else f", n_outputs={self.n_outputs}"
        return (f"SigmoidNetwork(n_inputs={self.n_inputs}, hidden={self.hidden}{outputs}, "
                f"seed={self.seed})")


def accuracy(pred, Y, tol: float = 0.1) -> float:
    """Fraction of predictions that are right. With several outputs (shape (N, k)) the
    largest output names the class, compared with the targets' largest (one-hot) or with
    class labels. For 0/1 targets (classification, e.g. ``xor``)
    a prediction is right when it falls on the target's side of 0.5; for any other targets
    (regression) when it is within ``tol`` of the target.

    >>> accuracy([0.2, 0.7, 0.4], [0.0, 1.0, 1.0])
    0.6666666666666666
    >>> accuracy([0.2, 0.5], [0.25, 0.8])
    0.5
    """
    pred, Y = np.asarray(pred, dtype=float), np.asarray(Y, dtype=float)
    if pred.ndim == 2 and pred.shape[1] > 1:  # several outputs: the largest is the class
        labels = Y.argmax(axis=1) if Y.ndim == 2 else Y
        return float(np.mean(pred.argmax(axis=1) == labels))
    pred, Y = pred.reshape(-1), Y.reshape(-1)
    if is_binary(Y):
        return float(np.mean((pred > 0.5) == (Y > 0.5)))
    return float(np.mean(np.abs(pred - Y) <= tol))


def is_binary(Y) -> bool:
    """Whether all targets are 0 or 1 (then :func:`accuracy` thresholds at 0.5).

    >>> is_binary([0, 1, 1]), is_binary([0.1, 0.9])
    (True, False)
    """
    Y = np.asarray(Y, dtype=float)
    return bool(np.all((Y == 0) | (Y == 1)))


def _column(X, i: int):
    """Column ``i`` of X, contiguous once here rather than copied by every call; a Dask
    array's column stays lazy."""
    if hasattr(X, "__dask_graph__"):
        return X[:, i]
    return np.ascontiguousarray(X[:, i])


def _float_array(name: str, value) -> np.ndarray:
    if hasattr(value, "__dask_graph__"):
        # Kept lazy: chainrule evaluates Dask arrays block by block (chainrule.daskarray).
        return value if value.dtype == np.float64 else value.astype(np.float64)
    refuse_masked(name, value)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    return array


def _hidden_tuple(hidden: Sequence[int] | int) -> tuple[int, ...]:
    widths = (hidden,) if isinstance(hidden, numbers.Integral) else tuple(hidden)
    if not widths:
        raise ValueError("hidden must name at least one layer, e.g. hidden=(1,) or (8, 4)")
    return tuple(_positive_int("hidden layer width", w) for w in widths)


def _positive_int(name: str, value) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def _non_negative_int(name: str, value) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    return int(value)


def _positive_float(name: str, value) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a positive number, not {value!r}")
    return float(value)
