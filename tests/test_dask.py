"""Compiled functions over Dask arrays (chainrule.daskarray): lazy results equal to the
in-memory call, on Dask's threaded scheduler and on a two-process LocalCluster, with uneven
chunks, broadcasting, nested and partial reductions, training, and a worker killed mid-run."""

from __future__ import annotations

import doctest
import os
import pickle
import sys
import threading

import numpy as np
import pytest

import chainrule as cr
from chainrule import daskarray

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

x, y, w, b, c = cr.vars("x y w b c")
RNG = np.random.default_rng(7)


def w2():
    f = cr.sin(cr.cos(x)) * cr.exp(-(y**2)) + cr.log(1 + x**2) * cr.sigmoid(x * y)
    return cr.compile([f, *cr.grad(f, [x, y])], inputs=[x, y])


def w1():
    w1_, b1, w2_, b2 = cr.vars("w1 b1 w2 b2")
    yhat = cr.sigmoid(w2_ * cr.sigmoid(w1_ * x + b1) + b2)
    loss = cr.mean((y - yhat) ** 2)
    return cr.compile([loss, *cr.grad(loss, [w1_, b1, w2_, b2])], inputs=[x, y, w1_, b1, w2_, b2])


# -- schedulers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    import cloudpickle

    # Workers get this module's helpers (the killer below) by value, not by importing tests/.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                       host="127.0.0.1", dashboard_address=None)
    with distributed.Client(cluster, set_as_default=False) as cl:
        yield cl
    cluster.close()


@pytest.fixture(params=["threads", "cluster"])
def run(request):
    """Computes Dask collections on the threaded scheduler or on the cluster."""
    if request.param == "threads":
        return lambda *cs: dask.compute(*cs, scheduler="threads")
    cl = request.getfixturevalue("client")
    return lambda *cs: tuple(cl.gather(cl.compute(list(cs)), direct=False))


def same(lazy, expected, run, rtol=0.0):
    """Checks lazy results against in-memory ones: bitwise, or to ``rtol`` for reductions."""
    lazy = lazy if isinstance(lazy, tuple) else (lazy,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for value in lazy:
        assert isinstance(value, da.Array), type(value)
    got = run(*lazy)
    for g, e in zip(got, expected, strict=True):
        assert np.shape(g) == np.shape(e)
        assert type(g) is type(e), (type(g), type(e))
        if rtol:
            np.testing.assert_allclose(g, e, rtol=rtol, atol=0)
        else:
            np.testing.assert_array_equal(g, e)


# -- per-sample outputs: bitwise equal ------------------------------------------------------


def test_per_sample_uneven_chunks(run):
    xs, ys = RNG.normal(size=10_007), RNG.normal(size=10_007)
    fn = w2()
    lazy = fn(da.from_array(xs, chunks=(3000, 4000, 3007)), da.from_array(ys, chunks=1500))
    assert lazy[0].chunks == ((3000, 4000, 3007),)
    same(lazy, fn(xs, ys), run)


def test_mixed_with_numpy_scalars_and_keywords(run):
    xs, ys = RNG.normal(size=5000), RNG.normal(size=5000)
    fn = cr.compile([cr.sin(x) * c + y, c * 2], inputs=[x, y, c])
    same(fn(da.from_array(xs, chunks=1234), ys, 1.5), fn(xs, ys, 1.5), run)
    same(fn(c=np.float64(3), y=da.from_array(ys, chunks=700), x=xs), fn(xs, ys, 3.0), run)


@pytest.mark.parametrize("numpy_row", [False, True])
def test_broadcast_column_against_row(run, numpy_row):
    xs, ys = RNG.normal(size=(300, 1)), RNG.normal(size=70)
    fn = w2()
    row = ys if numpy_row else da.from_array(ys, chunks=30)
    lazy = fn(da.from_array(xs, chunks=(128, 1)), row)
    assert lazy[0].shape == (300, 70)
    same(lazy, fn(xs, ys), run)


def test_unit_chunks_are_merged_for_bitwise_results(run):
    # A one-element block would be evaluated by the core's scalar path (same math, other ulps).
    xs, ys = RNG.normal(size=9), RNG.normal(size=9)
    fn = w2()
    lazy = fn(da.from_array(xs, chunks=(1, 4, 1, 1, 2)), ys)
    assert 1 not in lazy[0].chunks[0]
    same(lazy, fn(xs, ys), run)


def test_integer_and_bool_arrays_and_zero_d_arguments(run):
    xs = np.arange(12).reshape(3, 4)
    fn = cr.compile([x * y + 1], inputs=[x, y])
    same(fn(da.from_array(xs, chunks=2), da.asarray(np.float64(0.5))), fn(xs, 0.5), run)
    same(fn(da.from_array(xs > 5, chunks=2), 2), fn(xs > 5, 2), run)


def test_single_output_is_not_a_tuple():
    fn = cr.compile(cr.sin(x), inputs=[x])
    out = fn(da.ones(4, chunks=2))
    assert isinstance(out, da.Array) and out.shape == (4,)


# -- reductions: to 1e-12 ---------------------------------------------------------------------


def test_article_network_loss_and_gradient(run):
    xs = RNG.uniform(0, 1, 20_001)
    ys = 0.2 + 0.6 * xs
    params = (0.3, -0.1, 0.8, 0.05)
    fn = w1()
    lazy = fn(da.from_array(xs, chunks=6000), da.from_array(ys, chunks=7000), *params)
    assert all(v.shape == () for v in lazy)
    same(lazy, fn(xs, ys, *params), run, rtol=1e-12)


def test_mean_divides_by_the_global_count(run):
    xs = np.arange(10.0)
    fn = cr.compile([cr.mean(x), cr.sum(x), cr.mean(x * 0 + 1)], inputs=[x])
    got = run(*fn(da.from_array(xs, chunks=(7, 3))))
    assert got == (4.5, 45.0, 1.0)
    assert all(type(g) is np.float64 for g in got)


@pytest.mark.parametrize("name", ["centred", "standardised", "three_deep", "mixed"])
def test_nested_reductions(run, name):
    centred = x - cr.mean(x)
    exprs = {
        "centred": [centred, cr.mean(x)],
        "standardised": [centred / cr.sqrt(cr.mean(centred**2)), cr.mean(centred**2)],
        "three_deep": [x - cr.mean(x - cr.mean(x - cr.mean(x * y)))],
        "mixed": [cr.sum(y * centred) / cr.sum(1), cr.exp(-centred) + cr.mean(y), x * y],
    }[name]
    fn = cr.compile(exprs, inputs=[x, y])
    xs, ys = RNG.normal(size=(40, 50)), RNG.normal(size=50)
    lazy = fn(da.from_array(xs, chunks=(15, 20)), da.from_array(ys, chunks=20))
    same(tuple(lazy), fn(xs, ys), run, rtol=1e-12)


def passes(lazy) -> int:
    """How many layers of the graph call chainrule once per data block."""
    from dask.highlevelgraph import HighLevelGraph

    layers = HighLevelGraph.merge(*[v.__dask_graph__() for v in lazy]).layers
    return sum(1 for name, layer in layers.items()
               if name.startswith("chainrule-") and len(layer) > 1)


def test_training_step_is_one_pass_over_the_data():
    # mean's gradient holds 1/sum(1) inside per-sample sums: a count, not another pass.
    lazy = w1()(da.ones(100, chunks=10), da.ones(100, chunks=10), 0.1, 0.2, 0.3, 0.4)
    assert passes(lazy) == 1


@pytest.mark.parametrize("c_is_array", [False, True])
def test_sums_of_one_value(run, c_is_array):
    fn = cr.compile([cr.sum(c), cr.sum(cr.sum(1)), cr.sum(c * cr.mean(x)),
                     cr.mean(x) * cr.sum(1), x * cr.sum(c)], inputs=[x, c])
    xs = RNG.normal(size=(20, 30))
    cs = RNG.normal(size=30) if c_is_array else 1.25
    ca = da.from_array(cs, chunks=7) if c_is_array else cs
    same(tuple(fn(da.from_array(xs, chunks=(6, 7)), ca)), fn(xs, cs), run, rtol=1e-12)


@pytest.mark.parametrize("shape", [(60, 1), (1, 40), (60, 40)])
def test_reduction_gradients_with_array_bound_weights(run, shape):
    # grad(mean(loss), w) for w bound to an array holds sum(..., over=w): w's shape comes out.
    loss = cr.mean((y - cr.sigmoid(w * x + b)) ** 2)
    fn = cr.compile([loss, *cr.grad(loss, [w, b])], inputs=[x, y, w, b])
    xs, ys = RNG.normal(size=(60, 40)), RNG.normal(size=(60, 40))
    ws = RNG.normal(size=shape)
    lazy = fn(da.from_array(xs, chunks=(25, 15)), ys, da.from_array(ws, chunks=25), 0.1)
    assert lazy[1].shape == shape
    same(tuple(lazy), fn(xs, ys, ws, 0.1), run, rtol=1e-12)


def test_over_sums_nested_inside_per_sample_work(run):
    # For w bound to an array the gradient is per sample but holds sum(x, over=w).
    fn = cr.compile([cr.grad(w * x - cr.mean(w * x), w), cr.grad(cr.sum(cr.sin(w * x)), w)],
                    inputs=[x, w])
    xs, ws = RNG.normal(size=(30, 20)), RNG.normal(size=(30, 1))
    lazy = fn(da.from_array(xs, chunks=(8, 9)), da.from_array(ws, chunks=(8, 1)))
    assert lazy[1].shape == (30, 1)
    same(tuple(lazy), fn(xs, ws), run, rtol=1e-12)


def test_numpy_weight_against_dask_batch(run):
    loss = cr.sum(cr.sin(w * x))
    fn = cr.compile([loss, cr.grad(loss, w)], inputs=[x, w])
    xs, ws = RNG.normal(size=(50, 8)), RNG.normal(size=8)
    same(tuple(fn(da.from_array(xs, chunks=(20, 3)), ws)), fn(xs, ws), run, rtol=1e-12)


# -- laziness, errors, pickling, threads --------------------------------------------------------


def test_results_are_lazy_and_stable():
    calls = []

    def spy(block):
        calls.append(1)
        return block

    xs = da.from_array(np.arange(8.0), chunks=4).map_blocks(spy, meta=np.empty(0))
    fn = cr.compile([x + 1, cr.mean(x)], inputs=[x])
    out = fn(xs)
    assert calls == [] and out[1].shape == ()
    assert out[0].name == fn(xs)[0].name  # the same call gives the same keys


def test_errors_are_the_in_memory_errors():
    fn = cr.compile(x + y, inputs=[x, y])
    with pytest.raises(cr.ShapeError):
        fn(da.ones(3), da.ones(4))
    with pytest.raises(TypeError, match="complex"):
        fn(da.ones(3, dtype=complex), 1.0)
    with pytest.raises(TypeError, match="dtype"):
        fn(da.from_array(np.array(["a", "b"])), 1.0)
    with pytest.raises(TypeError, match="Delayed"):
        fn(dask.delayed(np.ones)(3), 1.0)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fn(da.ones(6, chunks=2)[da.ones(6, chunks=2) > 0], 1.0)
    with pytest.raises(TypeError):
        fn(da.ones(3))


def test_tasks_pickle_and_rebuild_once():
    fn = w2()
    task = daskarray._Task(fn, (0, 1.5), "samples", None, None)
    again = pickle.loads(pickle.dumps(task))
    assert pickle.loads(pickle.dumps(task)).fn is again.fn  # compiled once per worker
    xs = RNG.normal(size=100)
    for a, e in zip(again(xs), fn(xs, 1.5), strict=True):
        np.testing.assert_array_equal(a, e)
    assert dask.base.tokenize(task) == dask.base.tokenize(again)


def test_task_threads_are_the_tasks_own(restore_threads):
    cr.set_num_threads(2)
    assert daskarray._task_threads(None) is None  # main thread: the process's setting
    seen = []
    t = threading.Thread(target=lambda: seen.append(daskarray._task_threads(None)))
    t.start()
    t.join()
    assert seen == [1]  # a scheduler's pool thread: one chainrule thread per task
    # A task's count holds on its own thread only: the process's setting is never changed,
    # so another thread running at the same time keeps it.
    fn = cr.compile(x * 2, inputs=[x])
    task = daskarray._Task(fn, (0,), "samples", None, 1)
    other = []
    inside = threading.Event()
    release = threading.Event()

    def watch():
        inside.wait(10)
        other.append(cr.get_num_threads())
        release.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    call = cr.Function._call

    def slow_call(self, *args, **kwargs):
        inside.set()
        release.wait(10)
        return call(self, *args, **kwargs)

    cr.Function._call = slow_call
    try:
        task(np.ones(4))
    finally:
        cr.Function._call = call
    watcher.join()
    assert other == [2]
    assert cr.get_num_threads() == 2


@pytest.fixture
def threads_seen(monkeypatch):
    """Records chainrule's thread count during each in-memory call a Dask task makes."""
    seen: list[int] = []
    call = cr.Function.__call__

    def spy(self, *args, **kwargs):
        if not any(hasattr(a, "__dask_graph__") for a in args):
            seen.append(cr.get_num_threads())
        return call(self, *args, **kwargs)

    monkeypatch.setattr(cr.Function, "__call__", spy)
    return seen


@pytest.mark.parametrize(("scheduler", "configured", "expected"), [
    ("threads", None, 1),  # several tasks at once: one chainrule thread each
    ("sync", None, 2),  # one task at a time, in this thread: the process's setting
    ("threads", 2, 2),
    ("sync", 1, 1),
])
def test_threads_per_task(restore_threads, threads_seen, scheduler, configured, expected):
    cr.set_num_threads(2)
    fn = cr.compile([x * 2, cr.sum(x)], inputs=[x])
    with dask.config.set({daskarray.CONFIG_KEY: configured}):
        lazy = fn(da.ones(100, chunks=30))
    dask.compute(*lazy, scheduler=scheduler)
    assert threads_seen and set(threads_seen) == {expected}
    assert cr.get_num_threads() == 2  # restored after the tasks


def test_threads_per_task_attribute_wins_and_is_checked(restore_threads, threads_seen):
    cr.set_num_threads(2)
    fn = cr.compile(x * 2, inputs=[x])
    daskarray.threads_per_task = 1
    try:
        with dask.config.set({daskarray.CONFIG_KEY: 2}):
            lazy = fn(da.ones(10, chunks=5))
        daskarray.threads_per_task = 0
        with pytest.raises(ValueError, match="threads"):
            fn(da.ones(2))
    finally:
        daskarray.threads_per_task = None
    lazy.compute(scheduler="sync")
    assert set(threads_seen) == {1}


def test_docstring_examples():
    result = doctest.testmod(daskarray, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


# -- training ---------------------------------------------------------------------------------


def test_training_steps_on_dask_match_memory():
    """The loop nn.fit runs, with one dask.compute of J and dJ/dtheta per epoch."""
    net = cr.SigmoidNetwork(seed=1)
    xs = np.linspace(0, 1, 3001)
    ys = 0.2 + 0.6 * xs
    xd, yd = da.from_array(xs, chunks=1000), da.from_array(ys, chunks=1000)
    theta_mem = theta_dask = net._theta.copy()
    for _ in range(5):
        loss_m, *g_m = net._step_fn(xs, ys, *theta_mem.tolist())
        loss_d, *g_d = dask.compute(*net._step_fn(xd, yd, *theta_dask.tolist()),
                                    scheduler="threads")
        np.testing.assert_allclose(loss_d, loss_m, rtol=1e-12)
        theta_mem = theta_mem - 2.0 * np.array(g_m)
        theta_dask = theta_dask - 2.0 * np.array(g_d)
    np.testing.assert_allclose(theta_dask, theta_mem, rtol=1e-11)


def test_fit_accepts_dask_arrays():
    xs = np.linspace(0, 1, 500)
    ys = 0.2 + 0.6 * xs
    mem = cr.SigmoidNetwork(seed=0).fit(xs, ys, lr=2.0, epochs=10)
    with dask.config.set(scheduler="threads"):
        lazy = cr.SigmoidNetwork(seed=0).fit(da.from_array(xs, chunks=200),
                                             da.from_array(ys, chunks=200), lr=2.0, epochs=10)
    np.testing.assert_allclose(lazy, mem, rtol=1e-12)


# -- a worker dies mid-computation ----------------------------------------------------------


def _kill_worker_once(block, marker):
    """Kills this worker process the first time any task gets here, then passes blocks on."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return block
    os.close(fd)
    os._exit(1)


def test_worker_killed_mid_computation_is_retried(client, tmp_path):
    marker = str(tmp_path / "killed")
    xs, ys = RNG.normal(size=40_000), RNG.normal(size=40_000)
    fn = cr.compile([x - cr.mean(x * y), cr.sum(cr.sin(x))], inputs=[x, y])
    xd = da.from_array(xs, chunks=5000).map_blocks(_kill_worker_once, marker, meta=np.empty(0))
    futures = client.compute(list(fn(xd, ys)))
    got = client.gather(futures)
    assert os.path.exists(marker)  # the worker did die
    expected = fn(xs, ys)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12)
    client.wait_for_workers(2, timeout=30)
