"""Small built-in data sets for the trainer, made deterministically in code (no downloads).

Every set is drawn from a fixed-seed NumPy generator, so ``load(name)`` returns the same arrays
on every call and machine. Inputs lie in [0, 1]; targets lie in (0, 1), the range of the sigmoid
output node.

- ``scurve``: 1-D, an S-shaped curve made by the article's own network (one input, one sigmoid
  hidden node, sigmoid output) with known weights, plus a little noise. The article's network can
  learn it exactly.
- ``bump``: 1-D, a Gaussian bump. A single hidden node cannot make a bump (the article's network
  is monotone in x); two can (a difference of two sigmoids is a bump).
- ``xor``: 2-D, four noisy clusters labelled like XOR (targets 0 and 1). It needs a hidden layer of
  two or more nodes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DESCRIPTIONS", "NAMES", "SETTINGS", "load"]

#: The weights that generate ``scurve``: w1, b1, w2, b2 of the article's network.
SCURVE_WEIGHTS = (8.0, -4.0, 4.0, -2.0)

DESCRIPTIONS = {
    "scurve": "1-D S-shaped curve made by the article's network (learnable with hidden=(1,))",
    "bump": "1-D Gaussian bump (needs hidden=(2,) or wider)",
    "xor": "2-D XOR of four noisy clusters, targets 0/1 (needs hidden=(2,) or wider)",
}

#: Names accepted by :func:`load`.
NAMES = tuple(DESCRIPTIONS)

#: Training settings that learn each set in a second or two (``chainrule train``'s defaults).
SETTINGS = {
    "scurve": {"hidden": (1,), "lr": 2.0, "epochs": 2000},
    "bump": {"hidden": (4,), "lr": 10.0, "epochs": 4000},
    "xor": {"hidden": (4,), "lr": 10.0, "epochs": 2000},
}

# One fixed seed per set keeps the sets independent of each other and of the caller's RNG state.
_SEEDS = {"scurve": 1, "bump": 2, "xor": 3}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _scurve(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    w1, b1, w2, b2 = SCURVE_WEIGHTS
    x = np.sort(rng.uniform(0.0, 1.0, n))
    y = _sigmoid(w2 * _sigmoid(w1 * x + b1) + b2) + rng.normal(0.0, 0.02, n)
    return x, np.clip(y, 0.01, 0.99)


def _bump(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(rng.uniform(0.0, 1.0, n))
    y = 0.1 + 0.8 * np.exp(-(((x - 0.5) / 0.15) ** 2)) + rng.normal(0.0, 0.02, n)
    return x, np.clip(y, 0.01, 0.99)


def _xor(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    labels = np.array([0.0, 1.0, 1.0, 0.0])
    which = np.arange(n) % 4
    # Clusters of spread 0.1 around the corners, pulled in to stay inside [0, 1].
    x = 0.15 + 0.7 * corners[which] + rng.normal(0.0, 0.1, (n, 2))
    return np.clip(x, 0.0, 1.0), labels[which]


_MAKERS = {"scurve": _scurve, "bump": _bump, "xor": _xor}


def load(name: str, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(X, Y)`` for a built-in set: X of shape (n,) for 1-D sets and (n, 2) for ``xor``,
    Y of shape (n,). The same name and n always give the same arrays.

    >>> X, Y = load("scurve")
    >>> X.shape, Y.shape, bool(0 < Y.min() and Y.max() < 1)
    ((200,), (200,), True)
    >>> load("xor", n=8)[0].shape
    (8, 2)
    """
    if name not in _MAKERS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(NAMES)}")
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, not {n!r}")
    return _MAKERS[name](np.random.default_rng(_SEEDS[name]), int(n))
