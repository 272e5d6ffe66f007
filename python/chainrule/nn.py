"""A small sigmoid network trained by gradient descent, built only on chainrule's public API.

The network is the article's: by default one input, one sigmoid hidden node and a sigmoid
output, ``yhat = sigmoid(w2 * sigmoid(w1 * x + b1) + b2)``; wider and deeper hidden layers are
allowed. The loss ``J = mean((y - yhat)**2)`` is a chainrule expression with one variable per
weight and bias; ``cr.grad`` gives dJ/dtheta symbolically, ``cr.compile`` turns J and its
gradient into one fused function, once, and :meth:`SigmoidNetwork.fit` runs
``theta := theta - lr * dJ/dtheta`` in a Python loop.

Parameter names: the article's network (``n_inputs=1, hidden=(1,)``) uses the article's
``w1, b1, w2, b2``. Any other shape uses ``W{l}_{j}_{i}`` for the weight from unit ``i`` of layer
``l - 1`` to unit ``j`` of layer ``l`` and ``b{l}_{j}`` for the bias of unit ``j`` of layer ``l``;
layer 0 is the input, layers are numbered from 1, units from 0, and the last layer is the single
output node. The data variables are ``x`` (one input) or ``x0 .. x{n-1}``, and ``y``.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np

import chainrule as cr

from .arguments import refuse_masked

__all__ = ["SigmoidNetwork", "accuracy"]


class SigmoidNetwork:
    """A fully connected network of sigmoid nodes with one sigmoid output, trained on
    J = mean((y - yhat)**2).

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
    """

    def __init__(self, n_inputs: int = 1, hidden: Sequence[int] | int = (1,), seed: int = 0):
        self.n_inputs = _positive_int("n_inputs", n_inputs)
        self.hidden = _hidden_tuple(hidden)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._build_graph()
        self._theta = self._initial_theta()
        # Compiled once here; fit and predict only call them.
        theta_vars = list(self._param_vars.values())
        data = [*self.data_vars, self.target_var]
        grads = list(self.gradient_exprs.values())
        self._step_fn = cr.compile([self.loss_expr, *grads], inputs=[*data, *theta_vars])
        self._loss_fn = cr.compile(self.loss_expr, inputs=[*data, *theta_vars])
        self._predict_fn = cr.compile(self.output_expr, inputs=[*self.data_vars, *theta_vars])

    # -- the graph --------------------------------------------------------------------------
    def _build_graph(self) -> None:
        article = self.n_inputs == 1 and self.hidden == (1,)
        names = ["x"] if self.n_inputs == 1 else [f"x{i}" for i in range(self.n_inputs)]
        self.data_vars: tuple[cr.Expr, ...] = cr.vars(names)
        self.target_var = cr.var("y")
        self._param_vars: dict[str, cr.Expr] = {}
        self._fan_in: dict[str, int] = {}
        units = list(self.data_vars)
        for layer, width in enumerate((*self.hidden, 1), start=1):
            units = [self._node(layer, j, units, article) for j in range(width)]
        self.output_expr: cr.Expr = units[0]
        self.loss_expr: cr.Expr = cr.mean((self.target_var - self.output_expr) ** 2)
        grads = cr.grad(self.loss_expr, list(self._param_vars.values()))
        self.gradient_exprs: dict[str, cr.Expr] = dict(zip(self._param_vars, grads, strict=True))

    def _node(self, layer: int, j: int, inputs: list[cr.Expr], article: bool) -> cr.Expr:
        """One sigmoid unit: sigmoid(sum_i W_ji * a_i + b_j), registering its variables."""
        z = None
        for i, a in enumerate(inputs):
            w = self._param(f"w{layer}" if article else f"W{layer}_{j}_{i}", len(inputs))
            z = w * a if z is None else z + w * a
        b = self._param(f"b{layer}" if article else f"b{layer}_{j}", 0)
        return cr.sigmoid(z + b)

    def _param(self, name: str, fan_in: int) -> cr.Expr:
        self._param_vars[name] = cr.var(name)
        self._fan_in[name] = fan_in
        return self._param_vars[name]

    def _initial_theta(self) -> np.ndarray:
        # Weights ~ N(0, 1/fan_in) keep each pre-activation near unit variance, where the sigmoid
        # is neither flat nor linear; zero biases are fine since random weights break symmetry.
        fan = np.array([self._fan_in[n] for n in self._param_vars], dtype=float)
        scale = np.where(fan > 0, 1.0 / np.sqrt(np.maximum(fan, 1.0)), 0.0)
        return self._rng.normal(0.0, 1.0, len(fan)) * scale

    # -- parameters -------------------------------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        """The parameter names in the order of the gradient.

        >>> SigmoidNetwork(n_inputs=2, hidden=(1,)).param_names
        ('W1_0_0', 'W1_0_1', 'b1_0', 'W2_0_0', 'b2_0')
        """
        return tuple(self._param_vars)

    @property
    def param_vars(self) -> dict[str, cr.Expr]:
        """The parameter variables, name -> Expr (to differentiate or print with).

        >>> print(SigmoidNetwork().param_vars["w1"])
        w1
        """
        return dict(self._param_vars)

    @property
    def params(self) -> dict[str, float]:
        """The current parameters, name -> float. Assign a mapping to set some or all of them.

        >>> net = SigmoidNetwork()
        >>> net.params = {"w1": 1.5}
        >>> net.params["w1"]
        1.5
        """
        return dict(zip(self._param_vars, map(float, self._theta), strict=True))

    @params.setter
    def params(self, values: Mapping[str, float]) -> None:
        theta = self._theta.copy()
        names = list(self._param_vars)
        for name, value in values.items():
            if name not in self._param_vars:
                raise KeyError(f"no parameter {name!r}; the parameters are {', '.join(names)}")
            theta[names.index(name)] = float(value)
        self._theta = theta

    # -- training and prediction ------------------------------------------------------------
    def fit(self, X, Y, lr: float = 0.5, epochs: int = 2000, batch_size: int | None = None,
            progress: bool = False, seed: int | None = None) -> np.ndarray:
        """Gradient descent ``theta := theta - lr * dJ/dtheta``; returns the loss per epoch.

        Full batch by default (one step per epoch). With ``batch_size``, each epoch visits the
        samples in a shuffled order, one step per mini-batch; the shuffle comes from a NumPy
        generator seeded with ``seed`` (default: the network's own generator, seeded at
        construction), so a run is reproducible. ``history[k]`` is the full-batch loss J at the
        start of epoch k, before that epoch's updates (``loss(X, Y)`` gives the loss after
        training). ``progress=True`` shows a tqdm bar with the loss.

        >>> import numpy as np
        >>> net = SigmoidNetwork()
        >>> X = np.linspace(0, 1, 20)
        >>> net.fit(X, X / 2, lr=1.0, epochs=3).shape
        (3,)
        """
        cols, y = self._check_data(X, Y)
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
        for epoch in bar:
            if batch_size is None:
                history[epoch] = self._step(cols, y, lr)
            else:
                history[epoch] = self._loss_fn(*cols, y, *self._theta.tolist())
                self._minibatch_epoch(cols, y, lr, batch_size, rng)
            if epoch % every == 0 or epoch == epochs - 1:
                bar.set_postfix(loss=f"{history[epoch]:.5f}", refresh=False)
        bar.close()
        return history

    def _step(self, cols: list[np.ndarray], y: np.ndarray, lr: float) -> float:
        """One update on these samples; returns the loss before it."""
        results = self._step_fn(*cols, y, *self._theta.tolist())
        if hasattr(results[0], "__dask_graph__"):
            # Dask arrays in: J and dJ/dtheta of all blocks in one Dask computation per step.
            import dask

            results = dask.compute(*results)
        loss, *grads = results
        self._theta = self._theta - lr * np.array(grads)
        return float(loss)

    def _minibatch_epoch(self, cols, y, lr, batch_size, rng) -> None:
        order = rng.permutation(len(y))
        if not all(isinstance(c, np.ndarray) for c in (*cols, y)):
            for start in range(0, len(y), batch_size):
                idx = order[start:start + batch_size]
                self._step([c[idx] for c in cols], y[idx], lr)
            return
        # One gather per epoch, then each step reads a slice of it (a view, no copy): the same
        # samples in the same order as indexing with each step's indices. The parameters stay
        # numbers between steps, and theta - lr * grad is the same float64 arithmetic as the
        # array update in _step. Measured (1-1-1 network, batch 32, µs a step): 6.9 for
        # indexing, arrays and np.array(grads) per step, 6.1 this way.
        cols, y = [c[order] for c in cols], y[order]
        step, theta = self._step_fn, self._theta.tolist()
        for start in range(0, len(y), batch_size):
            stop = start + batch_size
            _, *grads = step(*[c[start:stop] for c in cols], y[start:stop], *theta)
            theta = [t - lr * g for t, g in zip(theta, grads, strict=True)]
        self._theta = np.array(theta, dtype=float)

    def predict(self, X) -> np.ndarray:
        """The network's output for each sample: an array of shape (N,).

        >>> import numpy as np
        >>> SigmoidNetwork().predict(np.zeros((3, 1))).shape
        (3,)
        """
        cols = self._check_inputs(X)
        return np.asarray(self._predict_fn(*cols, *self._theta.tolist()), dtype=float)

    def loss(self, X, Y) -> float:
        """J = mean((Y - predict(X))**2) at the current parameters.

        >>> import numpy as np
        >>> net = SigmoidNetwork()
        >>> X = np.linspace(0, 1, 5)
        >>> bool(abs(net.loss(X, X) - np.mean((X - net.predict(X)) ** 2)) < 1e-15)
        True
        """
        cols, y = self._check_data(X, Y)
        return float(self._loss_fn(*cols, y, *self._theta.tolist()))

    def accuracy(self, X, Y, tol: float = 0.1) -> float:
        """The fraction of samples predicted right, as :func:`accuracy` defines it.

        >>> import numpy as np
        >>> SigmoidNetwork().accuracy(np.zeros(4), np.full(4, 0.5), tol=0.5)
        1.0
        """
        return accuracy(self.predict(X), self._check_data(X, Y)[1], tol)

    # -- checking arguments -----------------------------------------------------------------
    def _check_inputs(self, X) -> list[np.ndarray]:
        X = _float_array("X", X)
        n = self.n_inputs
        if X.ndim == 1 and n == 1:
            cols = [X]
        elif X.ndim == 2 and X.shape[1] == n:
            cols = [_column(X, i) for i in range(n)]
        else:
            allowed = f"(N,) or (N, {n})" if n == 1 else f"(N, {n})"
            raise ValueError(f"X has shape {X.shape}; this network has {n} input(s), so X must "
                             f"have shape {allowed}")
        if len(cols[0]) == 0:
            raise ValueError("X has no samples")
        return cols

    def _check_data(self, X, Y) -> tuple[list[np.ndarray], np.ndarray]:
        cols = self._check_inputs(X)
        y = _float_array("Y", Y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0].copy()
        if y.shape != (len(cols[0]),):
            raise ValueError(f"Y has shape {y.shape}; expected ({len(cols[0])},) or "
                             f"({len(cols[0])}, 1), one target per row of X")
        return cols, y

    def __repr__(self) -> str:
        return f"SigmoidNetwork(n_inputs={self.n_inputs}, hidden={self.hidden}, seed={self.seed})"


def accuracy(pred, Y, tol: float = 0.1) -> float:
    """Fraction of predictions that are right. For 0/1 targets (classification, e.g. ``xor``)
    a prediction is right when it falls on the target's side of 0.5; for any other targets
    (regression) when it is within ``tol`` of the target.

    >>> accuracy([0.2, 0.7, 0.4], [0.0, 1.0, 1.0])
    0.6666666666666666
    >>> accuracy([0.2, 0.5], [0.25, 0.8])
    0.5
    """
    pred, Y = np.asarray(pred, dtype=float), np.asarray(Y, dtype=float).reshape(-1)
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
