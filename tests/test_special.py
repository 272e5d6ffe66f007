"""The special and numerically stable functions (erf, erfc, softplus, log_sigmoid, logaddexp):
accuracy against mpmath in ulp over their whole range, the stable forms' tails, IEEE edge values
and the gradients at the edges. The shared sweeps (test_ops, test_grad, test_hypothesis) cover
their round trips and gradients in the bulk."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr

mpmath = pytest.importorskip("mpmath")
mpmath.mp.prec = 200

x, y = cr.vars("x y")


def _ordered(v: np.ndarray) -> np.ndarray:
    """Doubles as integers on a line where neighbours differ by 1 and both zeros meet."""
    b = np.asarray(v, dtype=np.float64).view(np.int64).astype(object)
    return np.array([i if i >= 0 else -(i & (2**63 - 1)) for i in b], dtype=object)


def _ulp(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    got, want = np.asarray(got), np.asarray(want)
    same_special = (np.isnan(got) & np.isnan(want)) | (np.isinf(got) & (got == want))
    assert np.all(np.isfinite(got) | same_special), "non-finite where the reference is not"
    got, want = np.where(same_special, 0.0, got), np.where(same_special, 0.0, want)
    return np.abs(_ordered(got) - _ordered(want)).astype(float)


def _exact(f, *args):
    rows = zip(*args, strict=True)
    return np.array([float(f(*(mpmath.mpf(float(a)) for a in row))) for row in rows])


def _softplus(a):
    return mpmath.log1p(mpmath.exp(a))


MPMATH = {
    # beyond |a| = 40 both round to their limits; mpmath overflows on huge arguments
    "erf": lambda a: mpmath.erf(max(min(a, 40), -40)),
    "erfc": lambda a: mpmath.erfc(max(min(a, 40), -40)),
    "softplus": _softplus,
    "log_sigmoid": lambda a: -_softplus(-a),
}

rng = np.random.default_rng(17)
SAMPLES = {
    # the polynomial pieces' edges, the tails where erf rounds to +-1 and erfc underflows
    "erf": np.concatenate([rng.uniform(-7, 7, 600), rng.uniform(-1e-3, 1e-3, 50),
                           [0.0, -0.0, 5e-324, -1e-310, 1e-300, 0.84375, 1.25, 2.857, 6.0, -6.0,
                            5.9, 28.0, 1e300, np.inf, -np.inf, np.nan]]),
    "erfc": np.concatenate([rng.uniform(-7, 28, 800), rng.uniform(26.0, 27.3, 100),
                            [0.0, -0.0, 5e-324, 0.84375, 1.25, 2.857, 6.0, 26.5, 27.2, 27.3, 28.0,
                             -1e300, 1e300, np.inf, -np.inf, np.nan]]),
    "softplus": np.concatenate([rng.uniform(-800, 800, 400), rng.uniform(-40, 40, 400),
                                rng.uniform(-1e-3, 1e-3, 50),
                                [0.0, -0.0, 5e-324, -745.2, -744.0, 709.8, 1e300, -1e300, np.inf,
                                 -np.inf, np.nan]]),
}
SAMPLES["log_sigmoid"] = -SAMPLES["softplus"]


@pytest.mark.parametrize("name", list(MPMATH))
def test_within_4_ulp_of_mpmath(name):
    a = SAMPLES[name]
    finite = np.isfinite(a)
    want = np.full_like(a, np.nan)
    want[finite] = _exact(MPMATH[name], a[finite])
    fn = cr.compile(getattr(cr, name)(x), inputs=[x])
    got = fn(a)
    with np.errstate(invalid="ignore"):
        ref_inf = {"erf": np.sign(a), "erfc": np.where(a > 0, 0.0, 2.0),
                   "softplus": np.where(a > 0, np.inf, 0.0),
                   "log_sigmoid": np.where(a > 0, -0.0, -np.inf)}[name]
    want[~finite] = np.where(np.isnan(a[~finite]), np.nan, ref_inf[~finite])
    err = _ulp(got, want)
    worst = int(np.argmax(err))
    why = f"{name}({a[worst]!r}) = {got[worst]!r}, mpmath {want[worst]!r}: {err[worst]} ulp"
    assert err[worst] <= 4, why
    # single values take the latency path: the same bits
    for v in a[::37]:
        assert np.array_equal(fn(v), fn(np.array([v]))[0], equal_nan=True)


def test_logaddexp_within_4_ulp_of_mpmath():
    a = np.concatenate([rng.uniform(-800, 800, 300), rng.uniform(-5, 5, 300), [0.0, -745.0, 709.0]])
    b = np.concatenate([rng.uniform(-800, 800, 300), a[300:600] + rng.uniform(-40, 40, 300),
                        [-0.0, -745.0, 709.5]])
    # and near the curve e^a + e^b = 1, where the result is near 0 and max(a, b) cancels
    a = np.concatenate([a, rng.uniform(-3, -0.1, 100)])
    b = np.concatenate([b, np.log1p(-np.exp(a[-100:])) + rng.uniform(-1e-3, 1e-3, 100)])
    want = _exact(lambda p, q: mpmath.log(mpmath.exp(p) + mpmath.exp(q)), a, b)
    got = cr.compile(cr.logaddexp(x, y), inputs=[x, y])(a, b)
    # 4 ulp, or 2^-52 absolute where the result is near 0 (documented, as NumPy's)
    err = np.where(np.abs(got - want) <= 2.0**-52, 0.0, _ulp(got, want))
    assert err.max() <= 4, f"{err.max()} ulp at {a[np.argmax(err)]}, {b[np.argmax(err)]}"


def test_erfc_keeps_full_relative_accuracy_in_its_tail():
    fn = cr.compile(cr.erfc(x), inputs=[x])
    for v in [5.0, 10.0, 20.0, 26.0, 26.5, 27.0]:
        want = float(mpmath.erfc(v))
        assert want > 0 and abs(fn(v) - want) <= 4 * np.spacing(want), v
    assert fn(27.3) == 0.0 and fn(-30.0) == 2.0


def test_stable_forms_are_exact_in_both_tails():
    f = cr.compile([cr.softplus(x), cr.log_sigmoid(x), cr.grad(cr.softplus(x), x),
                    cr.grad(cr.log_sigmoid(x), x)], inputs=[x])
    sp, ls, dsp, dls = f(np.array([1000.0, -1000.0, -700.0, 40.0]))
    assert sp[0] == 1000.0 and sp[1] == 0.0 and ls[1] == -1000.0 and ls[0] == -0.0
    assert sp[2] == pytest.approx(float(mpmath.exp(-700)), rel=1e-15)  # no 1 + exp(x) rounding to 1
    assert ls[3] == pytest.approx(-float(mpmath.exp(-40)), rel=1e-15)
    np.testing.assert_array_equal(dsp[:2], [1.0, 0.0])
    np.testing.assert_array_equal(dls[:2], [0.0, 1.0])
    assert dsp[2] == pytest.approx(float(mpmath.exp(-700)), rel=1e-14)  # sigmoid keeps its tail
    assert dls[3] == pytest.approx(float(mpmath.exp(-40)), rel=1e-14)


def test_logaddexp_edges_follow_numpy():
    f = cr.compile([cr.logaddexp(x, y), *cr.grad(cr.logaddexp(x, y), [x, y])], inputs=[x, y])
    inf = np.inf
    a = np.array([inf, -inf, inf, -inf, 0.0, 1000.0, -1000.0, 3.0, np.nan])
    b = np.array([inf, -inf, -inf, 2.0, 0.0, 0.0, 0.0, 3.0, 1.0])
    v, da, db = f(a, b)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(v, np.logaddexp(a, b))
    # partials sigmoid(a - b), sigmoid(b - a): finite and exact away from a = b = +-inf
    np.testing.assert_array_equal(da[2:8], [1.0, 0.0, 0.5, 1.0, 0.0, 0.5])
    np.testing.assert_array_equal(db[2:8], [0.0, 1.0, 0.5, 0.0, 1.0, 0.5])
    assert np.isnan(da[:2]).all() and np.isnan(db[:2]).all()  # a - b is nan there (documented)


def test_erf_derivatives_at_the_edges():
    d = cr.compile(cr.grad(cr.erf(x), x) + cr.grad(cr.erfc(x), x), inputs=[x])
    np.testing.assert_array_equal(d(np.array([0.0, 30.0, -np.inf, np.inf])), [0.0, 0.0, 0.0, 0.0])
    de = cr.compile(cr.grad(cr.erf(x), x), inputs=[x])
    for v in [0.0, 0.5, 3.0, 10.0, -26.0]:
        want = float(2 / mpmath.sqrt(mpmath.pi) * mpmath.exp(-mpmath.mpf(v) ** 2))
        # exp(-(x * x)) from the rounded square: relative error up to x**2 * 2**-53 (documented)
        assert de(v) == pytest.approx(want, rel=4e-16 + v * v * 2.0**-52), v
