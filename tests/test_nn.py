"""The sigmoid network trainer: its graph, one update against hand-derived NumPy formulas,
training on the built-in sets, shapes, errors and reproducibility."""

import re
import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule import data
from chainrule.nn import SigmoidNetwork, accuracy, is_binary
from conftest import NP

sigmoid = NP["sigmoid"]


def article_gradient(p, x, y):
    """dJ/d(w1, b1, w2, b2) for J = mean((y - yhat)**2), by hand (the article's backprop)."""
    h = sigmoid(p["w1"] * x + p["b1"])
    yhat = sigmoid(p["w2"] * h + p["b2"])
    delta2 = -2.0 * (y - yhat) * yhat * (1.0 - yhat)  # dJ/dz2 per sample, times N
    delta1 = delta2 * p["w2"] * h * (1.0 - h)  # dJ/dz1 per sample, times N
    return {"w1": np.mean(delta1 * x), "b1": np.mean(delta1),
            "w2": np.mean(delta2 * h), "b2": np.mean(delta2)}, np.mean((y - yhat) ** 2)


@pytest.fixture(scope="module")
def scurve():
    return data.load("scurve")


def test_default_is_the_article_network():
    net = SigmoidNetwork()
    assert net.param_names == ("w1", "b1", "w2", "b2")
    assert str(net.output_expr) == "sigmoid(w2 * sigmoid(w1 * x + b1) + b2)"
    assert net.loss_expr == cr.parse("mean((y - sigmoid(w2 * sigmoid(w1 * x + b1) + b2))**2)")
    assert [v.name for v in net.data_vars] == ["x"] and net.target_var.name == "y"
    assert set(net.gradient_exprs) == {"w1", "b1", "w2", "b2"}


def test_gradient_exprs_are_the_symbolic_gradients():
    net = SigmoidNetwork()
    w2 = net.param_vars["w2"]
    assert net.gradient_exprs["w2"] == cr.grad(net.loss_expr, w2)
    # dJ/dw1 reaches w1 back through w2 and ends in x; dJ/dw2 ends at the hidden output.
    dw1, dw2 = (re.sub(r"over=\w+", "", str(net.gradient_exprs[n]).splitlines()[-1])
                for n in ("w1", "w2"))
    assert "w2" in dw1 and "x" in dw1
    assert "w2" not in dw2 and "x" not in dw2


def test_one_step_matches_hand_derived_backprop():
    rng = np.random.default_rng(7)
    x, y = rng.uniform(0, 1, 50), rng.uniform(0.1, 0.9, 50)
    net = SigmoidNetwork()
    start = {"w1": 0.7, "b1": -0.3, "w2": 1.3, "b2": 0.2}
    net.params = start
    lr = 0.5
    history = net.fit(x, y, lr=lr, epochs=1)
    grad, loss = article_gradient(start, x, y)
    np.testing.assert_allclose(history, [loss], rtol=1e-12)
    for name, value in net.params.items():
        expected = start[name] - lr * grad[name]
        assert value == pytest.approx(expected, rel=1e-12, abs=1e-15), name
        assert value != start[name]  # the step moved every parameter


def test_gradient_values_match_hand_derived_formulas_at_trained_weights(scurve):
    X, Y = scurve
    net = SigmoidNetwork(seed=3)
    net.fit(X, Y, lr=2.0, epochs=50)
    grad, _ = article_gradient(net.params, X, Y)
    fn = cr.compile(list(net.gradient_exprs.values()),
                    inputs=[net.data_vars[0], net.target_var, *net.param_vars.values()])
    got = fn(X, Y, *net.params.values())
    np.testing.assert_allclose(got, [grad[n] for n in net.param_names], rtol=1e-12)


def test_history_is_the_loss_at_the_start_of_each_epoch(scurve):
    X, Y = scurve
    a, b = SigmoidNetwork(seed=1), SigmoidNetwork(seed=1)
    history = a.fit(X, Y, lr=1.0, epochs=3)
    assert history[0] == pytest.approx(b.loss(X, Y), rel=1e-14)
    b.fit(X, Y, lr=1.0, epochs=1)
    assert history[1] == pytest.approx(b.loss(X, Y), rel=1e-14)
    assert isinstance(history, np.ndarray) and history.shape == (3,)


def test_training_reduces_the_loss_on_the_1d_set(scurve):
    X, Y = scurve
    net = SigmoidNetwork(seed=0)
    history = net.fit(X, Y, lr=2.0, epochs=300)
    assert net.loss(X, Y) < 0.5 * history[0]
    assert np.all(np.diff(history) <= 1e-12)  # full-batch descent with a small step: monotone


def test_training_learns_xor_with_a_wider_hidden_layer():
    X, Y = data.load("xor")
    net = SigmoidNetwork(n_inputs=2, hidden=(4,), seed=0)
    history = net.fit(X, Y, lr=10.0, epochs=300)
    assert net.loss(X, Y) < 0.5 * history[0]
    assert net.accuracy(X, Y) > 0.95


def test_one_hidden_node_cannot_learn_xor():
    X, Y = data.load("xor")
    net = SigmoidNetwork(n_inputs=2, hidden=(1,), seed=0)
    net.fit(X, Y, lr=10.0, epochs=1000)
    assert net.accuracy(X, Y) < 0.85  # a monotone function of one projection: 3 clusters of 4


def test_bump_is_learnable_with_more_nodes():
    X, Y = data.load("bump")
    net = SigmoidNetwork(hidden=(4,), seed=3)
    history = net.fit(X, Y, lr=10.0, epochs=300)
    assert net.loss(X, Y) < 0.5 * history[0]


@pytest.mark.parametrize("shape", [(20,), (20, 1)])
def test_predict_shape_for_one_input(shape):
    net = SigmoidNetwork()
    X = np.linspace(0, 1, 20).reshape(shape)
    pred = net.predict(X)
    assert pred.shape == (20,)
    p = net.params
    expected = sigmoid(p["w2"] * sigmoid(p["w1"] * X.ravel() + p["b1"]) + p["b2"])
    np.testing.assert_allclose(pred, expected, rtol=1e-13)


def test_predict_shape_for_two_inputs_and_deeper_net():
    net = SigmoidNetwork(n_inputs=2, hidden=(8, 4), seed=2)
    assert net.predict(np.zeros((5, 2))).shape == (5,)
    assert net.param_names == ("W1", "b1", "W2", "b2", "W3", "b3")
    shapes = {name: value.shape for name, value in net.params.items()}
    assert shapes == {"W1": (8, 2), "b1": (8,), "W2": (4, 8), "b2": (4,), "W3": (1, 4),
                      "b3": (1,)}
    assert [v.name for v in net.data_vars] == ["x"] and net.data_vars[0].shape == (2,)


@pytest.mark.parametrize("n_inputs, X, message", [
    (1, np.zeros((4, 2)), r"shape \(4, 2\).*\(N,\) or \(N, 1\)"),
    (2, np.zeros(4), r"shape \(4,\).*\(N, 2\)"),
    (2, np.zeros((4, 3)), r"\(N, 2\)"),
    (1, np.zeros((2, 2, 1)), r"shape \(2, 2, 1\)"),
    (1, np.zeros(0), "no samples"),
])
def test_wrong_input_shapes_raise(n_inputs, X, message):
    net = SigmoidNetwork(n_inputs=n_inputs)
    with pytest.raises(ValueError, match=message):
        net.predict(X)
    with pytest.raises(ValueError, match=message):
        net.fit(X, np.zeros(len(X)), epochs=1)


def test_wrong_target_shape_raises():
    net = SigmoidNetwork()
    with pytest.raises(ValueError, match=r"Y has shape \(3,\); expected \(4,\)"):
        net.fit(np.zeros(4), np.zeros(3), epochs=1)
    with pytest.raises(ValueError, match=r"Y has shape \(4, 2\)"):
        net.fit(np.zeros(4), np.zeros((4, 2)), epochs=1)
    net.fit(np.zeros(4), np.zeros((4, 1)), epochs=1)  # a column of targets is fine


@pytest.mark.parametrize("kwargs", [{"lr": 0}, {"lr": -1.0}, {"epochs": -1}, {"batch_size": 0}])
def test_bad_fit_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        SigmoidNetwork().fit(np.zeros(4), np.zeros(4), **kwargs)


@pytest.mark.parametrize("kwargs", [{"hidden": ()}, {"hidden": (0,)}, {"n_inputs": 0}])
def test_bad_shapes_of_network_raise(kwargs):
    with pytest.raises(ValueError):
        SigmoidNetwork(**kwargs)


def test_params_setter_checks_names():
    net = SigmoidNetwork()
    with pytest.raises(KeyError, match="no parameter 'w3'"):
        net.params = {"w3": 1.0}
    net.params = {"b2": 0.25}
    assert net.params["b2"] == 0.25


def test_initialisation_is_seeded_and_scaled():
    assert SigmoidNetwork(seed=4).params == SigmoidNetwork(seed=4).params
    a = SigmoidNetwork(n_inputs=3, hidden=(5,), seed=4)
    b = SigmoidNetwork(n_inputs=3, hidden=(5,), seed=4)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert SigmoidNetwork(seed=4).params != SigmoidNetwork(seed=5).params
    net = SigmoidNetwork(n_inputs=2, hidden=(64,), seed=0)
    first, second = net.params["W1"], net.params["W2"]
    biases = np.concatenate([net.params["b1"], net.params["b2"]])
    assert 0.4 < first.std() < 1.0  # ~ 1/sqrt(2)
    assert 0.08 < second.std() < 0.2  # ~ 1/sqrt(64)
    assert np.all(biases == 0.0)


def test_minibatch_mode_is_deterministic_for_a_seed(scurve):
    X, Y = scurve

    def run(seed):
        net = SigmoidNetwork(seed=0)
        return net.fit(X, Y, lr=1.0, epochs=5, batch_size=16, seed=seed), net.params

    h1, p1 = run(11)
    h2, p2 = run(11)
    h3, p3 = run(12)
    np.testing.assert_array_equal(h1, h2)
    assert p1 == p2
    assert p1 != p3
    assert h1[0] == h3[0]  # the loss at the start does not depend on the shuffle


def test_minibatch_steps_per_epoch(scurve):
    X, Y = scurve
    full, mini = SigmoidNetwork(seed=0), SigmoidNetwork(seed=0)
    full.fit(X, Y, lr=1.0, epochs=1)
    mini.fit(X, Y, lr=1.0, epochs=1, batch_size=len(Y))  # one batch holding every sample
    for name, value in full.params.items():
        assert mini.params[name] == pytest.approx(value, rel=1e-12)
    # Smaller batches make more (different) steps in one epoch.
    small = SigmoidNetwork(seed=0)
    small.fit(X, Y, lr=1.0, epochs=1, batch_size=20)
    assert small.loss(X, Y) < full.loss(X, Y)


def hand_loop(net, X, Y, theta, epochs, batch, lr=0.5, seed=3):
    """The steps fit(batch_size=batch, seed=seed) takes, spelled out: each epoch indexes the
    batches of a seeded permutation and calls the compiled J and dJ/dtheta on each."""
    fn = cr.compile([net.loss_expr, *net.gradient_exprs.values()],
                    inputs=[*net.data_vars, net.target_var, *net.param_vars.values()])
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(Y))
        for start in range(0, len(Y), batch):
            idx = order[start:start + batch]
            _, *grads = fn(X[idx], Y[idx], *theta)
            theta = [t - lr * g for t, g in zip(theta, grads, strict=True)]
    return theta


@pytest.mark.parametrize("hidden", [(1,), (3,)])
def test_minibatch_fit_is_a_hand_loop_over_the_compiled_function(scurve, hidden):
    """fit(batch_size=...) takes the same steps, bit for bit, as indexing each batch by its
    shuffled indices and calling the compiled J and dJ/dtheta (the last batch short)."""
    X, Y = scurve
    batch = 16 if len(Y) % 16 else 15
    net = SigmoidNetwork(hidden=hidden, seed=0)
    theta = hand_loop(net, X, Y, list(net.params.values()), epochs=2, batch=batch)
    net.fit(X, Y, lr=0.5, epochs=2, batch_size=batch, seed=3)
    for got, expected in zip(net.params.values(), theta, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_progress_bar_shows_the_loss(scurve, capsys):
    X, Y = scurve
    SigmoidNetwork().fit(X, Y, lr=1.0, epochs=20, progress=True)
    err = capsys.readouterr().err
    assert "20/20" in err and "loss=" in err
    SigmoidNetwork().fit(X, Y, lr=1.0, epochs=20)
    assert capsys.readouterr().err == ""


def test_accuracy_definitions():
    assert is_binary([0.0, 1.0, 1.0]) and not is_binary([0.0, 0.5])
    assert accuracy([0.4, 0.6, 0.9], [0.0, 1.0, 0.0]) == pytest.approx(2 / 3)
    assert accuracy([0.3, 0.6], [0.35, 0.8]) == 0.5


def test_importing_chainrule_leaves_the_progress_bar_unloaded():
    # tqdm.auto pulls in ~100 modules (asyncio, email, ssl, ...): imported by fit, not by the
    # package.
    code = "import sys, chainrule; print('tqdm' in sys.modules, 'asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("which", ["X", "Y"])
def test_masked_training_data_is_refused(which):
    """np.asarray dropped the mask, so a masked 1e300 target was trained on as data."""
    X, Y = np.linspace(-1, 1, 8), np.linspace(0, 1, 8)
    data = {"X": X, "Y": Y}
    data[which] = np.ma.masked_array(data[which], mask=[0] * 7 + [1])
    net = SigmoidNetwork(seed=0)
    before = net.params
    with pytest.raises(TypeError, match=rf"'{which}' is a masked array.*\.filled\("):
        net.fit(data["X"], data["Y"], epochs=3)
    assert net.params == before


@pytest.mark.parametrize("n, batch", [(50, 16), (2600, 1100)])
def test_dense_minibatch_fit_is_a_hand_loop_over_the_array_function(n, batch):
    """A dense network's in-core epochs (one prepared runner per batch size, kept plans,
    parameters passed as plain values, products reading the batch's rows in place) take the
    same steps, bit for bit, as calling the compiled array function on each shuffled batch;
    both sizes leave a short last batch, and batches of 1,100 span two chunks each."""
    rng = np.random.default_rng(7)
    X, Y = rng.random((n, 8)), rng.random((n, 3))
    net = SigmoidNetwork(n_inputs=8, hidden=(6,), n_outputs=3, seed=0)
    tape = net._step_fn.flat.tape(*([(n,)] * 11 + [()] * (len(net._step_fn.flat.inputs) - 11)))
    assert "matmul(" in tape and "sum(outer(" in tape  # the products run as GEMMs
    theta = hand_loop(net, X, Y, [np.array(v) for v in net.params.values()], epochs=3, batch=batch)
    net.fit(X, Y, lr=0.5, epochs=3, batch_size=batch, seed=3)
    for got, expected in zip(net.params.values(), theta, strict=True):
        np.testing.assert_array_equal(got, expected)
