"""Concurrency: one compiled function called from 16 Python threads at once (large batches on the
pool, small ones inline, thread count changed meanwhile) gives the single-threaded answers bit
for bit; compiling, differentiating and dropping in several threads at once is safe; fork() after
the pool ran (also while other threads intern nodes) leaves a working child; multiprocessing runs
pickled functions under 'fork' and 'spawn'. Every scenario runs in a subprocess with a timeout,
so a deadlock fails a test instead of hanging the run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

TIMEOUT = 120

PRELUDE = textwrap.dedent("""
    import os, sys, threading, pickle
    import numpy as np
    import chainrule as cr
    from chainrule import _core
    x, y, w = cr.vars("x y w")
    F = cr.sin(cr.cos(x)) * cr.exp(-y ** 2) + cr.log(1 + x ** 2) * cr.sigmoid(x * y)
    LOSS = cr.mean((y - cr.sigmoid(w * x)) ** 2)
    OUTPUTS = [F, *cr.grad(F, [x, y]), LOSS, cr.grad(LOSS, w), x - cr.mean(x)]
    FN = cr.compile(OUTPUTS, inputs=[x, y, w])
    RNG = np.random.default_rng(7)
    BIG = (RNG.normal(size=300_000), RNG.normal(size=300_000), 0.7)
    SMALL = (RNG.normal(size=5), 0.25, -1.5)

    def same(a, b):
        return all(np.asarray(p).tobytes() == np.asarray(q).tobytes() for p, q in zip(a, b))

    def run_threads(target, n, timeout=60):
        errors = []
        def guarded(i):
            try:
                target(i)
            except BaseException as exc:
                errors.append(f"thread {i}: {exc!r}")
        threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
        alive = [t.name for t in threads if t.is_alive()]
        assert not alive, f"deadlock: {len(alive)} threads still running"
        assert not errors, errors[:3]
""")


def run_script(body: str, timeout: float = TIMEOUT) -> str:
    """Runs PRELUDE + body in a fresh interpreter; fails on a crash, an error or a timeout."""
    try:
        proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)
                               + "\nprint('ok')\n"],
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {timeout} s: a deadlock or a hang")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), (
        f"exit code {proc.returncode}\nstdout: {proc.stdout[-2000:]}\n"
        f"stderr: {proc.stderr[-3000:]}")
    return proc.stdout


def test_sixteen_threads_call_one_function():
    run_script("""
        cr.set_num_threads(2)
        want_big, want_small = FN(*BIG), FN(*SMALL)
        barrier = threading.Barrier(16)

        def call(i):
            barrier.wait()
            for k in range(6):
                args, want = (BIG, want_big) if (i + k) % 3 == 0 else (SMALL, want_small)
                assert same(FN(*args), want), f"call {k} differs"

        run_threads(call, 16)
    """)


def test_thread_count_changes_while_threads_call():
    """Results are bitwise identical for any thread count, also when it changes mid-flight."""
    run_script("""
        cr.set_num_threads(1)
        want = FN(*BIG)
        stop = threading.Event()

        def call(i):
            if i == 0:
                k = 0
                while not stop.is_set():
                    cr.set_num_threads(1 + k % 3)
                    k += 1
                return
            for _ in range(4):
                assert same(FN(*BIG), want)
            if i == 1:
                stop.set()

        run_threads(call, 6)
    """)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
def test_using_threads_holds_for_this_thread_and_its_large_calls():
    """using_threads(n) sets the calling thread's count: its calls (also the large ones that
    evaluate on a helper thread) run on a pool of n threads, results are bitwise the same,
    blocks nest and restore on exceptions, and other threads keep the process's count."""
    out = run_script("""
        def pool_threads():
            names = []
            for t in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{t}/comm") as f:
                        names.append(f.read().strip())
                except OSError:
                    pass
            return sum(n.startswith("chainrule-") for n in names)

        cr.set_num_threads(2)
        xs = RNG.normal(size=1 << 19)  # large enough to evaluate on a helper thread
        base = FN(xs, 0.5, 0.7)
        before = pool_threads()
        other = []
        with cr.using_threads(3):
            assert cr.get_num_threads() == 3
            t = threading.Thread(target=lambda: other.append(cr.get_num_threads()))
            t.start()
            t.join()
            three = FN(xs, 0.5, 0.7)
            with cr.using_threads(1):
                assert cr.get_num_threads() == 1
                one = FN(xs, 0.5, 0.7)
            assert cr.get_num_threads() == 3
        assert cr.get_num_threads() == 2 and other == [2]
        assert same(base, three) and same(base, one)
        try:
            with cr.using_threads(1):
                raise KeyError("inside")
        except KeyError:
            pass
        assert cr.get_num_threads() == 2
        for bad in (0, -1, 1.5, True, None):
            try:
                with cr.using_threads(bad):
                    pass
            except ValueError:
                pass
            else:
                raise AssertionError(f"using_threads({bad!r}) was accepted")
        print("grown", pool_threads() - before)
    """)
    assert "grown 3" in out, out


def test_threads_compile_differentiate_and_drop_at_once():
    """Eight threads build overlapping expressions (the same nodes are interned, found and freed
    concurrently), differentiate, print, parse, compile and evaluate them; every result equals
    the one computed alone, and no node outlives the threads."""
    run_script("""
        import gc

        def work(seed):
            rng = np.random.default_rng(seed % 4)  # pairs of threads build the same graphs
            out = []
            for _ in range(40):
                cs = rng.uniform(0.5, 2.0, size=6)
                e = sum(cr.sin(float(c) * x + y) * cr.tanh(w * float(c)) for c in cs)
                e = e + cr.mean(e * x)
                g = cr.grad(e, [x, w])
                assert cr.parse(str(g[0])) == g[0]
                fn = cr.compile([e, *g], inputs=[x, y, w])
                out.append(fn(np.linspace(-1, 1, 3000), 0.5, 1.5))
            return out

        want = {s: work(s) for s in range(4)}
        gc.collect()
        before = _core.live_nodes()

        def check(i):
            got = work(i)
            assert all(same(a, b) for a, b in zip(got, want[i % 4]))

        run_threads(check, 8, timeout=100)
        del want
        gc.collect()
        assert _core.live_nodes() <= before, (_core.live_nodes(), before)
    """)


def test_threads_race_to_intern_and_free_the_same_node():
    """Threads repeatedly build and drop the same chain: a node freed in one thread while
    another re-creates it must never be handed out half-dead (the weak table's race)."""
    run_script("""
        import gc
        gc.collect()
        base = _core.live_nodes()

        def churn(i):
            for _ in range(300):
                e = x
                for k in range(30):
                    e = cr.sin(e) * (k + 1.0)
                assert str(e).count("sin") == 30
                del e

        run_threads(churn, 8)
        gc.collect()
        assert _core.live_nodes() == base, (_core.live_nodes(), base)
    """)


FORK_CHILD = """
    def in_child():
        ok = same(FN(*BIG), want) and same(FN(*SMALL), want_small)
        terms = [cr.sin(x * (k + 0.5)) + y for k in range(300)]  # nodes in every shard
        e = cr.grad(cr.tanh(x * y) * cr.mean(x) + terms[-1], x)
        v = cr.compile(e, inputs=[x, y])(np.linspace(0, 1, 100_000), 2.0)
        return ok and v.shape == (100_000,) and bool(np.isfinite(v).all())

    import time
    CHILD_TIME = []

    def fork_and_check():
        # A hang is told from slowness by the child's own work timed here first, in the parent.
        if not CHILD_TIME:
            start = time.monotonic()
            assert in_child()
            CHILD_TIME.append(time.monotonic() - start)
        timeout = max(10.0, 30 * CHILD_TIME[0])
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = 0 if in_child() else 3
            finally:
                os._exit(code)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.waitstatus_to_exitcode(status) == 0, f"child failed: {status}"
                return
            time.sleep(0.02)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise AssertionError(f"the forked child hung (a lock or the pool inherited from the "
                             f"parent): no exit in {timeout:.1f} s, 30 times its work in the parent"
                             )
"""


def test_fork_after_the_pool_ran():
    run_script(FORK_CHILD + """
    cr.set_num_threads(2)
    want, want_small = FN(*BIG), FN(*SMALL)
    for _ in range(3):
        fork_and_check()
    assert same(FN(*BIG), want)  # the parent's pool still works
    """)


def test_fork_while_other_threads_work():
    """fork() while other threads parse and evaluate with the GIL released, so they may hold
    the intern table's or the pool's locks at that instant: the child still works."""
    run_script(FORK_CHILD + """
    import warnings
    warnings.simplefilter("ignore", DeprecationWarning)  # Python's own fork-with-threads warning
    cr.set_num_threads(2)
    want, want_small = FN(*BIG), FN(*SMALL)
    text = str(sum(cr.sin(float(c) * x + y) for c in np.linspace(0.1, 9.9, 3000)))
    stop = threading.Event()

    def busy(i):
        while not stop.is_set():
            if i == 0:
                cr.parse(text)
            else:
                FN(*BIG)

    workers = [threading.Thread(target=busy, args=(i,), daemon=True) for i in range(2)]
    for t in workers:
        t.start()
    try:
        for _ in range(25):
            fork_and_check()
    finally:
        stop.set()
    """, timeout=300)


MULTIPROCESSING = """
    import multiprocessing as mp

    def evaluate(args):
        fn, xs, ys = args
        return fn(xs, ys, 0.3)

    if __name__ == "__main__":
        cr.set_num_threads(2)
        FN(*BIG)  # the parent's pool has run
        chunks = [(FN, BIG[0][i::4], BIG[1][i::4]) for i in range(4)]
        with mp.get_context("{method}").Pool(2) as pool:
            results = pool.map(evaluate, chunks, chunksize=1)
        for (fn, xs, ys), got in zip(chunks, results):
            assert same(got, FN(xs, ys, 0.3))
        e = pickle.loads(pickle.dumps(OUTPUTS[1]))
        assert e == OUTPUTS[1]
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_runs_pickled_functions(method, tmp_path):
    """Pickled Functions sent to worker processes give the parent's results bit for bit."""
    script = tmp_path / "mp_script.py"
    script.write_text(PRELUDE + textwrap.dedent(MULTIPROCESSING.format(method=method))
                      + "\n    print('ok')\n")
    try:
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"multiprocessing with {method!r} hung")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), (
        f"exit code {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def test_evaluate_from_many_threads_keeps_its_cache_sound_and_bounded():
    """The issue's scenario: 8 threads, 400 distinct expressions (more than the cache holds, so
    entries are evicted all the time), a thread switch every microsecond: every call answers
    right, and the cache ends at its size."""
    run_script("""
    from chainrule import compiled
    sys.setswitchinterval(1e-6)
    texts = [f"x * {k}.5 + 1" for k in range(400)]

    def calls(i):
        for r in range(6_000):
            k = (r * 7 + i * 53) % 400
            assert cr.evaluate(texts[k], x=2.0) == 2.0 * (k + 0.5) + 1

    run_threads(calls, 8, timeout=TIMEOUT)
    assert len(compiled._CACHE) == compiled._CACHE_SIZE, len(compiled._CACHE)
    """.replace("TIMEOUT", str(TIMEOUT)), timeout=3 * TIMEOUT)


def test_evaluate_survives_an_eviction_between_lookup_and_reuse(monkeypatch):
    """Where the race struck, made certain: right after evaluate's lookup finds an entry,
    another thread evaluates enough other expressions to evict it. Before the cache had a
    lock, the lookup's follow-up (moving the entry to the end) raised KeyError."""
    from collections import OrderedDict

    import chainrule as cr
    from chainrule import compiled

    class Interleaved(OrderedDict):
        armed = False

        def get(self, key, default=None):
            value = super().get(key, default)
            if Interleaved.armed and value is not None:
                Interleaved.armed = False
                # With the lock the other thread waits for this call; the bounded join lets
                # this one go on, and the other finishes after.
                other = threading.Thread(target=evict)
                other.start()
                other.join(timeout=1.0)
                threads.append(other)
            return value

    def evict():
        for k in range(compiled._CACHE_SIZE + 1):
            cr.evaluate(f"x + {k}", x=1.0)

    threads: list[threading.Thread] = []
    monkeypatch.setattr(compiled, "_CACHE", Interleaved())
    monkeypatch.setattr(compiled, "_CACHE_SIZE", 4)
    assert cr.evaluate("x * 3", x=2.0) == 6.0
    Interleaved.armed = True
    assert cr.evaluate("x * 3", x=2.0) == 6.0
    assert not Interleaved.armed, "the lookup was not interleaved"
    for t in threads:
        t.join(TIMEOUT)
    assert len(compiled._CACHE) <= 4


def test_thread_counts_keep_a_bounded_number_of_pools():
    """The issue's loop, `using_threads(k)` for k = 1..100, left a pool per count: 5,051 OS
    threads. Now the process's pool and two others are kept, so at most its count plus the two
    largest counts' threads remain; every count gives the same bits; and the count one thread
    chooses never exceeds what set_num_threads accepts."""
    run_script("""
    import time

    def os_threads():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))

    fn = cr.compile([F, LOSS, cr.grad(LOSS, w)], inputs=[x, y, w])
    cr.set_num_threads(2)
    want = fn(*BIG)
    before = os_threads()
    for k in range(1, 101):
        with cr.using_threads(k):
            assert same(fn(*BIG), want), f"{k} threads changed the result"
    bound = before + 99 + 100 + 4  # the pools of 99 and 100 threads, and some slack
    # Dropped pools' threads exit in their own time: wait for them, up to a minute.
    waited = time.monotonic()
    while os_threads() > bound and time.monotonic() - waited < 60:
        time.sleep(0.05)
    assert os_threads() <= bound, f"{os_threads()} OS threads after 100 counts ({before} before)"
    for k in (3, 1, 2):  # rebuilt after their eviction, and still right
        with cr.using_threads(k):
            assert same(fn(*BIG), want), f"{k} threads changed the result"
    """)


def test_thread_count_from_the_environment_is_capped():
    """CHAINRULE_NUM_THREADS=100000 would spawn 100,000 threads on the first large call; it is
    capped to the documented maximum (the API refuses such counts with a ValueError)."""
    import os

    script = PRELUDE + textwrap.dedent("""
        assert cr.get_num_threads() == _core.max_threads() >= 256, cr.get_num_threads()
        assert same(FN(*BIG), FN(*BIG))
        print("ok")
    """)
    env = {**os.environ, "CHAINRULE_NUM_THREADS": "100000"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
