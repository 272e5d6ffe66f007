"""``chainrule train --data digits``: scikit-learn's 8x8 digits, the held-out split, the
64-30-10 network reaching 95% test accuracy with the default settings, the plot of the
misclassified digits, and a clear message when scikit-learn is missing."""

import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from chainrule import cli, data
from chainrule.nn import SigmoidNetwork

HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason="needs the digits extra")
needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs the plot extra")


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "chainrule", *args], capture_output=True,
                          text=True, timeout=600, env=env, check=False)


def _percent(label, text):
    return float(re.search(rf"^{label} accuracy: (\d+\.\d)%", text, re.MULTILINE).group(1))


# -- the data ---------------------------------------------------------------------------------
@needs_sklearn
def test_load_digits():
    X, Y = data.load("digits")
    assert X.shape == (1797, 64) and Y.shape == (1797,)
    assert X.dtype == np.float64 and Y.dtype == np.float64
    assert X.min() == 0 and X.max() == 1  # 0..16 scaled by /16
    assert set(np.unique(Y)) == set(range(10))
    X10, Y10 = data.load("digits", n=10)
    np.testing.assert_array_equal(X10, X[:10])
    np.testing.assert_array_equal(Y10, Y[:10])
    with pytest.raises(ValueError, match="has 1797 samples, so n must be at most 1797"):
        data.load("digits", n=5000)


def test_split_is_seeded_disjoint_and_complete():
    X, Y = np.arange(100.0).reshape(50, 2), np.arange(50.0)
    X_train, Y_train, X_test, Y_test = data.split(X, Y, 0.2)
    assert len(Y_test) == 10 and len(Y_train) == 40
    assert sorted(np.concatenate([Y_train, Y_test])) == list(range(50))
    np.testing.assert_array_equal(X_test[:, 0], 2 * Y_test)  # rows stay with their targets
    np.testing.assert_array_equal(data.split(X, Y, 0.2)[3], Y_test)
    assert not np.array_equal(data.split(X, Y, 0.2, seed=1)[3], Y_test)
    assert len(data.split(X, Y, 0.001)[3]) == 1  # at least one held out, one kept
    with pytest.raises(ValueError, match="test_fraction must lie strictly between 0 and 1"):
        data.split(X, Y, 1.0)
    with pytest.raises(ValueError, match="X has 50 samples but Y has 49"):
        data.split(X, Y[:-1])


def test_help_lists_digits(capsys):
    assert cli.main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "20% held out" in out


# -- training ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One default run of the command, shared by the tests that read its report and plot."""
    if not HAVE_SKLEARN:
        pytest.skip("needs the digits extra")
    path = tmp_path_factory.mktemp("digits") / "digits.png"
    plot = ["--plot", str(path)] if HAVE_MATPLOTLIB else []
    result = run("train", "--data", "digits", *plot)
    assert result.returncode == 0, result.stderr
    return result, path


def test_digits_reaches_95_percent_on_held_out_samples(digits_run):
    out = digits_run[0].stdout
    assert _percent("test", out) >= 95.0
    assert _percent("train", out) >= 95.0
    assert "test accuracy" in out and "(359 held-out samples)" in out


def test_the_reported_accuracy_is_the_networks(digits_run):
    # The same settings through the API, scored here by argmax: the command reports that number.
    settings = data.SETTINGS["digits"]
    X_train, Y_train, X_test, Y_test = data.split(*data.load("digits"), settings["test_fraction"])
    net = SigmoidNetwork(n_inputs=64, hidden=settings["hidden"], n_outputs=10, seed=0)
    net.fit(X_train, Y_train, lr=settings["lr"], epochs=settings["epochs"],
            batch_size=settings["batch_size"], seed=0)
    accuracy = np.mean(net.predict(X_test).argmax(axis=1) == Y_test)
    assert accuracy >= 0.95
    assert f"test accuracy: {100 * accuracy:.1f}%" in digits_run[0].stdout


def test_digits_report(digits_run):
    result = digits_run[0]
    out = result.stdout
    assert "data: digits, 1797 samples (1438 to train on, 359 held out to test), 64 inputs" in out
    assert "64 inputs -> hidden 30 (sigmoid) -> 10 sigmoid outputs, 2260 parameters" in out
    assert "30 epochs, lr 10, mini-batches of 20, seed 0" in out
    for name, shape in (("W1", "(30, 64)"), ("b1", "(30,)"), ("W2", "(10, 30)"), ("b2", "(10,)")):
        assert re.search(rf"^  {name}  shape {re.escape(shape)} +norm +\d+\.\d{{4}}  min", out,
                         re.MULTILINE), name
    assert len(out.splitlines()) < 20  # no thousands of weights
    initial = float(re.search(r"initial loss: (\S+)", out).group(1))
    final = float(re.search(r"final loss: (\S+)", out).group(1))
    assert final < initial / 10
    assert "the largest output names the class" in out
    assert "30/30" in result.stderr and "loss=" in result.stderr  # the tqdm bar


@needs_matplotlib
def test_digits_plot_writes_a_png(digits_run):
    result, path = digits_run
    assert f"plot written to {path}" in result.stdout
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@needs_sklearn
def test_an_untrained_network_is_near_chance(capsys):
    # The accuracy is measured, not assumed: with no training it is about one in ten.
    code = cli.main(["train", "--data", "digits", "--epochs", "0", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert _percent("test", out) < 30


@needs_sklearn
def test_options_override_the_digits_defaults(capsys):
    code = cli.main(["train", "--data", "digits", "--hidden", "12", "--epochs", "1", "--lr", "3",
                     "--batch-size", "50", "--seed", "4", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "hidden 12 (sigmoid) -> 10 sigmoid outputs, 910 parameters" in out
    assert "1 epochs, lr 3, mini-batches of 50, seed 4" in out
    assert "W1  shape (12, 64)" in out


# -- the plot ---------------------------------------------------------------------------------
@needs_matplotlib
@pytest.mark.parametrize("wrong, shown", [(3, 3), (50, 40), (0, 0)])
def test_digits_figure_shows_the_misclassified(wrong, shown):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (60, 64))
    labels = np.arange(60) % 10
    predicted = labels.copy()
    predicted[:wrong] = (labels[:wrong] + 1) % 10
    fig = cli._digits_figure(np.geomspace(1, 0.01, 30), images, predicted, labels)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == shown
    assert [ax.get_title() for ax in drawn] == [f"{(i + 1) % 10} ({i % 10})" for i in range(shown)]
    if shown:
        np.testing.assert_array_equal(drawn[0].images[0].get_array(), images[0].reshape(8, 8))
    title = fig.subfigs[1].get_suptitle()
    assert f"misclassified test digits: {wrong} of 60" in title
    assert ("the first 40" in title) == (wrong > 40)
    assert any(ax.get_title() == "loss" and ax.lines for ax in fig.axes)


# -- without scikit-learn ---------------------------------------------------------------------
def test_digits_without_sklearn_says_how_to_install(tmp_path):
    # An sklearn that fails to import, first on the path, stands in for a missing one.
    fake = tmp_path / "sklearn"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('no scikit-learn here')\n")
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    result = run("train", "--data", "digits", env={**os.environ, "PYTHONPATH": path})
    assert result.returncode == 1
    assert "pip install 'chainrule[digits]'" in result.stderr
    assert result.stderr.startswith("chainrule: the digits data set comes with scikit-learn")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_load_digits_without_sklearn_raises_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'chainrule\[digits\]'"):
        data.load("digits")
