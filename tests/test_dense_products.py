"""Dense layers run as matrix products: the compiler lowers groups of linear forms (``W @ x``,
and the ``W.T @ delta`` of their gradients) and the batch sums of outer products (the weight
gradients) to blocked matrix products. Checked here: that the lowering happens, that its
values agree with NumPy and with the unlowered evaluation within a stated bound, that they
do not depend on the thread count or on where chunks start, and that small hand-written
scalar graphs are left as they were."""

import numpy as np
import pytest

import chainrule as cr


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def network(n_in, hidden, n_out):
    x = cr.var("x", shape=(n_in,))
    y = cr.var("y", shape=(n_out,))
    W1, b1 = cr.var("W1", shape=(hidden, n_in)), cr.var("b1", shape=(hidden,))
    W2, b2 = cr.var("W2", shape=(n_out, hidden)), cr.var("b2", shape=(n_out,))
    out = cr.sigmoid(W2 @ cr.sigmoid(W1 @ x + b1) + b2)
    J = cr.mean(((y - out) ** 2).mean())
    grads = cr.grad(J, [W1, b1, W2, b2])
    return cr.compile([J, *grads], inputs=[x, y, W1, b1, W2, b2])


def numpy_backprop(X, Y, W1, b1, W2, b2):
    a1 = sigmoid(X @ W1.T + b1)
    a2 = sigmoid(a1 @ W2.T + b2)
    J = np.mean(((Y - a2) ** 2).mean(axis=1))
    d2 = -2.0 * (Y - a2) / (Y.shape[1] * len(X)) * a2 * (1 - a2)
    d1 = d2 @ W2 * a1 * (1 - a1)
    return [J, d1.T @ X, d1.sum(0), d2.T @ a1, d2.sum(0)]


def data(n, n_in, hidden, n_out, seed=0):
    rng = np.random.default_rng(seed)
    X, Y = rng.random((n, n_in)), rng.random((n, n_out))
    params = [rng.standard_normal(s) / 3 for s in [(hidden, n_in), (hidden,), (n_out, hidden),
                                                    (n_out,)]]
    return X, Y, params


def tape_of(fn, n, sizes):
    inputs = [(n,)] * sizes[0] + [()] * sizes[1]
    return fn.flat.tape(*inputs)


@pytest.fixture(scope="module")
def net():
    return network(16, 12, 6)


def test_layers_and_weight_gradients_become_matrix_products(net):
    text = tape_of(net, 5000, (16 + 6, 12 * 16 + 12 + 6 * 12 + 6))
    # Forward: W1 @ x and W2 @ h; backward: W2.T @ delta; weight gradients: two outer sums.
    assert text.count("matmul(") == 3, text
    assert text.count("sum(outer(") == 2, text


@pytest.mark.parametrize("n", [1, 7, 1024, 1025, 5000])
def test_values_match_numpy_backprop(net, n):
    X, Y, params = data(n, 16, 12, 6, seed=n)
    got = net(X, Y, *params)
    for g, e in zip(got, numpy_backprop(X, Y, *params), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-16)


def test_products_agree_with_the_unlowered_chain_within_the_stated_bound(net):
    """A single sample (every input one value) runs the scalar code, which sums each dot
    product left to right as the graph spells it; the batch runs matrix products. The README
    states the bound: a few ulp of the sum of the magnitudes of the terms."""
    X, Y, params = data(200, 16, 12, 6)
    batch = net(X, Y, *params)
    for i in range(0, 200, 37):
        one = net(X[i], Y[i], *params)
        # The per-sample gradient of a mean over a batch of one is the batch's gradient over N.
        np.testing.assert_allclose(one[0], np.mean((Y[i] - sigmoid(
            sigmoid(X[i] @ params[0].T + params[1]) @ params[2].T + params[3])) ** 2),
            rtol=1e-14)
    # The whole batch against itself split into samples: means of per-sample values.
    singles = [net(X[i:i + 1], Y[i:i + 1], *params) for i in range(200)]
    mean_of_singles = [np.mean([s[k] for s in singles], axis=0) for k in range(5)]
    for g, e in zip(batch, mean_of_singles, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-17)


def test_results_do_not_depend_on_the_thread_count(net):
    X, Y, params = data(9000, 16, 12, 6, seed=3)
    with cr.using_threads(1):
        one = net(X, Y, *params)
    with cr.using_threads(2):
        two = net(X, Y, *params)
    for a, b in zip(one, two, strict=True):
        assert np.array_equal(a, b)


def test_a_sample_gets_the_same_bits_wherever_its_chunk_starts(net):
    X, Y, params = data(3000, 16, 12, 6, seed=4)
    per_sample = cr.compile(cr.sigmoid(cr.var("W1", shape=(12, 16)) @ cr.var("x", shape=(16,))),
                            inputs=[cr.var("x", shape=(16,)), cr.var("W1", shape=(12, 16))])
    assert "matmul(" in per_sample.flat.tape(*([(3000,)] * 16 + [()] * 192))
    full = per_sample(X, params[0])
    shifted = per_sample(X[5:], params[0])
    assert np.array_equal(full[5:], shifted)


def test_small_scalar_weighted_sums_keep_their_exact_chain():
    x, y, z, a, b = cr.vars("x y z a b")
    f = cr.compile([a * x + b * y + a * z, b * x + a * y + b * z], inputs=[x, y, z, a, b])
    assert "matmul" not in f.tape()
    xs = np.linspace(-1, 1, 7)
    got = f(xs, xs * 3, xs * 5, 0.1, 0.7)
    assert np.array_equal(got[0], 0.1 * xs + 0.7 * (xs * 3) + 0.1 * (xs * 5))


def test_products_read_argument_rows_in_place_with_the_same_bits(net):
    """A matrix product reads an argument's rows where they are when its element views are
    evenly spaced (an (N, k) array, C or Fortran order, or a strided view of one), and copies
    them otherwise (columns in separate arrays): both give the same bits."""
    n = 2500  # three chunks, the last one short
    X, Y, params = data(n, 16, 12, 6, seed=3)
    flat_params = [float(v) for p in params for v in p.ravel()]

    def call(x_columns, y_columns):
        return [np.asarray(r) for r in net.flat(*x_columns, *y_columns, *flat_params)]

    separate = call([np.array(X[:, j]) for j in range(16)], [np.array(Y[:, j]) for j in range(6)])
    wide = np.zeros((n, 40))
    wide[:, 3:19] = X
    layouts = {
        "C rows": X,
        "Fortran rows": np.asfortranarray(X),
        "every other row of a bigger array": np.repeat(X, 2, axis=0)[::2],
        "a slice of wider rows": wide[:, 3:19],
        "reversed columns": np.ascontiguousarray(X[:, ::-1])[:, ::-1],
    }
    for name, Xl in layouts.items():
        got = call([Xl[:, j] for j in range(16)], [Y[:, j] for j in range(6)])
        for g, s in zip(got, separate, strict=True):
            assert g.tobytes() == s.tobytes(), name


@pytest.mark.parametrize("arrange", ["as built", "transposed", "rows permuted", "one value"])
def test_products_read_weights_in_the_slots_or_packed(arrange):
    """A product reads its matrix where the weights lie when they are evenly spaced (a weight
    array, or the transpose of one), and a packed copy otherwise (rows in another order, one
    value everywhere): every arrangement agrees with NumPy."""
    rng = np.random.default_rng(11)
    x = cr.var("x", shape=(9,))
    W, V, c = cr.var("W", shape=(8, 9)), cr.var("V", shape=(9, 8)), cr.var("c")
    perm = [3, 0, 7, 1, 6, 2, 5, 4]
    matrix = {"as built": W, "transposed": V.T, "rows permuted": W[perm],
              "one value": W * 0.0 + c}[arrange]
    out = cr.sigmoid(matrix @ x)
    f = cr.compile([out.sum(), *cr.grad(cr.mean(out.sum()), [x])], inputs=[x, W, V, c])
    X, Wv, Vv, cv = (rng.standard_normal((300, 9)), rng.standard_normal((8, 9)),
                     rng.standard_normal((9, 8)), 0.3)
    assert "matmul(" in f.flat.tape(*([(300,)] * 9 + [()] * 145)), arrange
    M = {"as built": Wv, "transposed": Vv.T, "rows permuted": Wv[perm],
         "one value": Wv * 0.0 + cv}[arrange]
    s = sigmoid(X @ M.T)
    got = f(X, Wv, Vv, cv)
    np.testing.assert_allclose(got[0], s.sum(axis=1), rtol=1e-13)
    np.testing.assert_allclose(got[1], (s * (1 - s)) @ M / 300, rtol=1e-12, atol=1e-17)
