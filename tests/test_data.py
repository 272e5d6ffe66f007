"""The built-in data sets: deterministic, the documented shapes and ranges, clear errors."""

import numpy as np
import pytest

from chainrule import data
from conftest import NP

GENERATED = ("scurve", "bump", "xor")  # made in code; digits come from scikit-learn


@pytest.mark.parametrize("name", GENERATED)
def test_load_is_deterministic(name):
    X1, Y1 = data.load(name)
    X2, Y2 = data.load(name)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(Y1, Y2)


@pytest.mark.parametrize("name, x_shape", [("scurve", (200,)), ("bump", (200,)), ("xor", (200, 2))])
def test_shapes_and_ranges(name, x_shape):
    X, Y = data.load(name)
    assert X.shape == x_shape and Y.shape == (200,)
    assert X.dtype == np.float64 and Y.dtype == np.float64
    assert X.min() >= 0 and X.max() <= 1
    assert Y.min() >= 0 and Y.max() <= 1


def test_names_and_settings_cover_every_set():
    assert set(data.NAMES) == {"scurve", "bump", "xor", "digits"}
    assert set(data.SETTINGS) == set(data.NAMES) == set(data.DESCRIPTIONS)
    assert data.SETTINGS["scurve"]["hidden"] == (1,)


def test_scurve_is_made_by_the_article_network():
    X, Y = data.load("scurve")
    w1, b1, w2, b2 = data.SCURVE_WEIGHTS
    s = NP["sigmoid"]
    clean = s(w2 * s(w1 * X + b1) + b2)
    assert np.sqrt(np.mean((Y - clean) ** 2)) < 0.03  # only the small added noise
    assert Y[X < 0.2].mean() < 0.25 and Y[X > 0.8].mean() > 0.75


def test_xor_labels_follow_xor_of_the_halves():
    X, Y = data.load("xor")
    assert set(np.unique(Y)) == {0.0, 1.0}
    xor = (X[:, 0] > 0.5) != (X[:, 1] > 0.5)
    assert np.mean(xor == (Y == 1)) > 0.9  # the clusters' noise blurs a few points


def test_bump_peaks_in_the_middle():
    X, Y = data.load("bump")
    assert Y[np.abs(X - 0.5) < 0.05].mean() > 0.8
    assert Y[X < 0.1].mean() < 0.2 and Y[X > 0.9].mean() < 0.2


def test_n_and_errors():
    assert data.load("xor", n=10)[0].shape == (10, 2)
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        data.load("nope")
    with pytest.raises(ValueError, match="positive integer"):
        data.load("scurve", n=0)
