"""Million-deep chains and million-node graphs: every stage runs in a subprocess, so a stack
overflow (or a hang) shows up as a failing test rather than killing pytest."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import chainrule as cr

N = 1_000_000
TIMEOUT = 150  # seconds per stage; each should take a few seconds

# Chains the simplifier cannot fold away, with a scalar oracle for value and derivative. The
# sine chain is built through the Python API, the affine one by parsing its text (each is
# a million levels deep either way).
CHAINS = {
    "sin": textwrap.dedent("""
        def build(x):
            e = x
            for _ in range(N):
                e = cr.sin(e)
            return e

        def oracle(v):
            d = 1.0
            for _ in range(N):
                d *= math.cos(v)
                v = math.sin(v)
            return v, d
    """),
    "affine": textwrap.dedent("""
        def build(x):
            return cr.parse("(" * N + "x" + " * 1.0000001 + 0.1)" * N)

        def oracle(v):
            d = 1.0
            for _ in range(N):
                v = v * 1.0000001 + 0.1
                d *= 1.0000001
            return v, d
    """),
}

PRELUDE = "import gc, math, sys\nimport numpy as np\nimport chainrule as cr\nN = {n}\n"

STAGES = {
    "build_print_parse_grad_drop": """
        x = cr.var("x")
        e = build(x)
        text = str(e)
        assert len(text) > N, len(text)
        assert cr.parse(text) == e
        del text
        g = cr.grad(e, x)
        text = str(g)
        assert len(text) < 200 * N, len(text)
        assert cr.parse(text) == g
        del e, g, text
        gc.collect()
    """,
    "compile_evaluate": """
        x = cr.var("x")
        e = build(x)
        fn = cr.compile([e, cr.grad(e, x)], inputs=[x])
        del e
        value, deriv = fn(np.array([0.5, 1.0]))
        want = [oracle(0.5), oracle(1.0)]
        np.testing.assert_allclose(value, [w[0] for w in want], rtol=1e-9)
        np.testing.assert_allclose(deriv, [w[1] for w in want], rtol=1e-7)
        assert abs(fn(0.5)[0] - value[0]) <= 1e-9 * abs(value[0])
        del fn
    """,
}


def run_script(body: str, timeout: float = TIMEOUT) -> None:
    """Runs a script in a fresh interpreter; fails the test on a crash, error or timeout."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", body + "\nprint('ok')\n"],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {timeout} s (expected a few seconds)")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), (
        f"exit code {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}"
    )


@pytest.mark.parametrize("stage", list(STAGES))
@pytest.mark.parametrize("chain", list(CHAINS))
def test_million_deep_chain(chain, stage):
    run_script(PRELUDE.format(n=N) + CHAINS[chain] + textwrap.dedent(STAGES[stage]))


def test_parsed_chain_is_the_built_chain():
    x = cr.var("x")
    e = x
    for _ in range(50):
        e = e * 1.0000001 + 0.1
    assert cr.parse("(" * 50 + "x" + " * 1.0000001 + 0.1)" * 50) == e


def test_million_node_graph():
    """250,000 distinct terms sin(c_i * x + y) summed pairwise: about 1.25 million nodes."""
    run_script(PRELUDE.format(n=250_000) + textwrap.dedent("""
        x, y = cr.vars("x y")
        cs = 1.0 + np.arange(N) * 1e-6
        terms = [cr.sin(float(c) * x + y) for c in cs]
        while len(terms) > 1:
            terms = [a + b for a, b in zip(terms[::2], terms[1::2])] + terms[len(terms) & ~1:]
        f = terms[0]
        assert cr.parse(str(f)) == f
        gx, gy = cr.grad(f, [x, y])
        fn = cr.compile([f, gx, gy, cr.mean(f)], inputs=[x, y])
        xs, ys = np.array([0.3, -0.7]), np.array([0.1, 0.2])
        value, dx, dy, mean = fn(xs, ys)
        arg = np.outer(xs, cs) + ys[:, None]
        np.testing.assert_allclose(value, np.sin(arg).sum(1), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(dx, (np.cos(arg) * cs).sum(1), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(dy, np.cos(arg).sum(1), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(mean, np.sin(arg).sum(1).mean(), rtol=1e-9, atol=1e-9)
        del f, gx, gy, fn, terms
        gc.collect()
    """))


def test_deeply_nested_parentheses_parse():
    run_script(PRELUDE.format(n=N) + textwrap.dedent("""
        e = cr.parse("(" * N + "x" + ")" * N + " + 1")
        assert e == cr.var("x") + 1
        try:
            cr.parse("(" * N + "x")
        except cr.ParseError:
            pass
        else:
            raise AssertionError("unclosed parentheses parsed")
    """))


def test_deep_chain_with_shared_branches():
    """e_{k+1} = sin(e_k) * e_k: each level is used twice, so printing must name, not expand."""
    run_script(PRELUDE.format(n=100_000) + textwrap.dedent("""
        x = cr.var("x")
        e = x
        for _ in range(N):
            e = cr.sin(e) * e
        text = str(e)
        assert len(text) < 100 * N, len(text)
        assert cr.parse(text) == e
        g = cr.grad(e, x)
        assert len(str(g)) < 300 * N
        fn = cr.compile([e, g], inputs=[x])
        v, d = fn(np.array([1.0, 2.0]))
        assert v.shape == d.shape == (2,)
        del e, g, fn
    """))


def test_dropped_graphs_are_freed():
    """Hash-consing interns weakly: building and dropping big graphs does not grow memory."""
    run_script(PRELUDE.format(n=100_000) + textwrap.dedent("""
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096

        def build_and_drop(k):
            x = cr.var("x")
            e = x
            for i in range(N):
                e = cr.sin(e * (1.0 + k + i * 1e-9))
            fn = cr.compile([e, cr.grad(e, x)], inputs=[x])
            fn(np.ones(4))
            del e, fn
            gc.collect()
            # What the allocator keeps for reuse is not growth (it returns it after a delay).
            cr._core.release_memory()

        start = rss()
        build_and_drop(0)
        first = rss() - start
        for k in range(1, 3):
            build_and_drop(k)
        growth = rss() - start - first
        assert growth < max(0.5 * first, 48 << 20), (first, growth)
    """))
