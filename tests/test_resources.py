"""Resources: memory follows references (20,000 compile-and-call cycles with failing calls among
them, and ten million distinct nodes built and dropped, keep RSS flat and the intern table empty);
a 20-million-element evaluation needs its inputs, its outputs and a small constant, nothing of the
batch's size beyond; a million-node graph and a million-deep chain go through every stage in
memory proportional to their size and give it all back; and Ctrl-C stops a long evaluation
within about a second. Each scenario runs in its own interpreter, so RSS and peak RSS
(VmHWM, reset through /proc/self/clear_refs) are its own."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PRELUDE = textwrap.dedent("""
    import gc, json, sys, time
    import numpy as np
    import chainrule as cr
    from chainrule import _core

    MB = 2**20

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        raise KeyError(key)

    def rss():
        return status("VmRSS")

    def reset_peak():
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    def report(**values):
        print(json.dumps(values))
""")


def run_script(body: str, timeout: float = 180) -> dict:
    """Runs PRELUDE + body in a fresh interpreter and returns what its last line reported."""
    try:
        proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {timeout} s")
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- no leaks ------------------------------------------------------------------------------------


def test_compile_and_call_cycles_keep_memory_flat():
    """20,000 cycles of build, differentiate, compile, call, with a failing call (bad shapes,
    argument count, dtype), compile (unknown variable) or parse in every fourth: RSS after the
    last cycle is within 16 MB of RSS after the first 2,000 (both after the allocators have
    returned what they keep for reuse), and no node survives."""
    result = run_script("""
        x, y, w = cr.vars("x y w")
        xs, ys = np.linspace(-1, 1, 500), np.linspace(2, 3, 500)

        def cycle(i):
            c = 1.0 + i * 1e-7  # a new constant: new nodes every cycle
            f = cr.sin(x * c) * cr.exp(-y) + cr.mean(cr.sigmoid(w * x) * c)
            fn = cr.compile([f, *cr.grad(f, [x, w])], inputs=[x, y, w])
            fn(xs, ys, 0.5)
            bad = i % 16
            try:
                if bad == 0:
                    fn(xs, ys[:7], 0.5)
                elif bad == 4:
                    fn(xs, ys)
                elif bad == 8:
                    fn(xs.astype(complex), ys, 0.5)
                elif bad == 12:
                    cr.compile(f * cr.var("v"), inputs=[x, y, w])(xs, ys, 0.5)
                elif bad % 4 == 0:
                    cr.parse(f"sin(x * {c} + ")
            except (ValueError, TypeError):
                pass

        import ctypes
        def trim(pad):
            ctypes.CDLL("libc.so.6").malloc_trim(pad)
            _core.release_memory()
        gc.collect()
        base_nodes = _core.live_nodes()
        for i in range(2_000):
            cycle(i)
        gc.collect()
        trim(0)
        warm = rss()
        for i in range(2_000, 20_000):
            cycle(i)
        gc.collect()
        trim(0)
        report(growth=(rss() - warm) / MB, nodes=_core.live_nodes() - base_nodes)
    """)
    assert result["nodes"] == 0, result
    assert result["growth"] < 16, result


def test_ten_million_distinct_nodes_built_and_dropped():
    """Twenty rounds of half a million distinct nodes each (parsed, so the cost is the core's),
    each dropped before the next: the intern table is empty after every round, and RSS (after
    malloc_trim and release_memory, so freed memory the allocators keep does not count) grows
    by less than 48 MB from the second round to the last. A leak of 8 bytes per node would be
    80 MB; the table itself may settle at up to twice its peak size (about 25 MB here) before it
    stops growing."""
    result = run_script("""
        import ctypes
        def trim(pad):
            ctypes.CDLL("libc.so.6").malloc_trim(pad)
            _core.release_memory()
        x, y = cr.vars("x y")
        gc.collect()
        base = _core.live_nodes()
        sizes, leftover, after = [], [], []
        for r in range(20):
            text = " + ".join(f"sin(x * {r * 10**6 + i}.25 + y)" for i in range(100_500))
            e = cr.parse(text)
            sizes.append(_core.live_nodes() - base)
            del e, text
            gc.collect()
            trim(0)
            leftover.append(_core.live_nodes() - base)
            after.append(rss() / MB)
        report(sizes=sizes, leftover=leftover, after=after)
    """, timeout=300)
    assert sum(result["sizes"]) >= 10_000_000, result["sizes"]
    assert result["leftover"] == [0] * 20, result
    assert result["after"][-1] - result["after"][1] < 48, result["after"]


# -- a large batch: inputs, outputs and a small constant -----------------------------------------

BIG_BATCH = {
    "per-sample outputs and gradients": (
        "[cr.sin(x) * y + cr.exp(-x * x), cr.grad(cr.tanh(x * y) * x, x)]", "(xs, 0.5, 1.0)"),
    "reductions nested in per-sample work": (
        "[x - cr.mean(x), cr.mean((x - cr.mean(x)) ** 2), cr.grad(cr.mean(x * cr.mean(x)), x)]",
        "(xs, 0.5, 1.0)"),
    "reduction to the shape of a broadcast weight": (
        "[cr.grad(cr.mean((y - cr.sigmoid(w * x)) ** 2), w)]", "(xs.reshape(4, -1), 0.5, W)"),
    "partial sum over a broadcast variable": (
        "[cr.sum(cr.sin(x) * w, over=w)]", "(xs.reshape(4, -1), 0.5, W)"),
}


@pytest.mark.parametrize("name", BIG_BATCH)
def test_twenty_million_elements_need_inputs_outputs_and_a_constant(name):
    """Peak RSS during one call on 20 million elements is at most RSS before it plus the
    outputs plus 64 MB (DESIGN.md: memory beyond inputs and outputs is O(threads x live
    registers x chunk); a single batch-sized temporary is 160 MB)."""
    outputs, args = BIG_BATCH[name]
    result = run_script(f"""
        x, y, w = cr.vars("x y w")
        fn = cr.compile({outputs}, inputs=[x, y, w])
        N = 20_000_000
        xs = np.empty(N)
        xs[:] = 0.5
        W = np.ones((4, 1))
        args = {args}
        fn(*[a[..., :16] if np.ndim(a) else a for a in args])  # warm up: pool, tapes
        gc.collect()
        reset_peak()
        before = rss()
        out = fn(*args)
        peak = status("VmHWM")
        outs = out if isinstance(out, tuple) else (out,)
        out_bytes = sum(np.asarray(o).nbytes for o in outs)
        report(extra=(peak - before - out_bytes) / MB, outputs=out_bytes / MB)
    """)
    assert result["extra"] < 64, result


# -- huge graphs, twice -------------------------------------------------------------------------


def test_million_deep_chain_and_million_node_graph_memory():
    """Build, differentiate, compile and run (16 samples) a chain a million deep and a graph
    of a million nodes: every node is freed afterwards, and the peak stays under 1 KiB per
    node (the graphs and their gradients, the tape and its registers together)."""
    result = run_script("""
        x, y = cr.vars("x y")
        xs = np.linspace(0.1, 0.9, 16)

        def chain():  # parsed: the core's cost, not a million Python calls
            return cr.parse("sin(" * 1_000_000 + "x" + ")" * 1_000_000)

        def wide():
            return cr.parse(" + ".join(f"sin({1 + i * 1e-6!r} * x + y)" for i in range(250_000)))

        def round_trip(build):
            gc.collect()
            reset_peak()
            before, base = rss(), _core.live_nodes()
            e = build()
            g = cr.grad(e, x)
            nodes = _core.live_nodes() - base
            fn = cr.compile([e, g], inputs=[x, y])
            v, d = fn(xs, 0.5)
            assert v.shape == d.shape == (16,) and np.isfinite(d).all()
            peak = status("VmHWM") - before
            del e, g, fn, v, d
            gc.collect()
            return dict(peak=peak / MB, nodes=nodes, leftover=_core.live_nodes() - base)

        report(chain=round_trip(chain), wide=round_trip(wide))
    """, timeout=300)
    for r in result.values():
        assert r["leftover"] == 0, result
        assert r["peak"] * 2**20 < 1024 * r["nodes"], result


# -- Ctrl-C ---------------------------------------------------------------------------------------

LONG_CALL = PRELUDE + textwrap.dedent("""
    # CPython turns SIGINT into KeyboardInterrupt only if SIGINT was not ignored when it
    # started, and a shell ignores it for background jobs (CI run as `bash .ci/run &`): the
    # child then inherits SIG_IGN and the signal never reaches the call under test.
    import signal
    signal.signal(signal.SIGINT, signal.default_int_handler)

    x = cr.var("x")
    xs = np.linspace(0, 1, 10_000_000)

    def build(depth):
        e = x
        for _ in range(depth):
            e = cr.sin(e) * 1.0001
        return cr.compile(e, inputs=[x])

    def estimate(fn):
        # A tenth of the batch: long enough to time and split over threads as the full call is.
        fn(xs[:1000])
        start = time.monotonic()
        fn(xs[:1_000_000])
        return (time.monotonic() - start) * 10

    # The work per sample grows until the full call is estimated at TARGET seconds, whatever the
    # machine's speed; the batch stays fixed, so memory does, and so does the time of one grab
    # of chunks (the interval between signal checks): TARGET / batch * chunks per grab.
    TARGET = 12.0
    depth = 50
    fn = build(depth)
    took = estimate(fn)
    while took < TARGET and depth < 1_000_000:
        depth = int(depth * min(max(1.3 * TARGET / max(took, 1e-3), 1.5), 50))
        fn = build(depth)
        took = estimate(fn)
    print(json.dumps({"estimate": took, "depth": depth}), flush=True)
    start = time.monotonic()
    try:
        fn(xs)
    except KeyboardInterrupt:
        print(json.dumps({"interrupted": True}), flush=True)
        sys.exit(130)
    print(json.dumps({"interrupted": False, "took": time.monotonic() - start}), flush=True)
""")


def test_ctrl_c_interrupts_a_long_evaluation():
    """SIGINT during a call sized (from a measured estimate) to take over ten seconds:
    KeyboardInterrupt within about a second, and in any case long before the call would end."""
    proc = subprocess.Popen([sys.executable, "-c", LONG_CALL], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        sized = json.loads(proc.stdout.readline() or "{}")
        estimate = sized.get("estimate", 0.0)
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=max(120, 4 * estimate))
        except subprocess.TimeoutExpired:
            pytest.fail("no exit within 120 s of SIGINT")
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert estimate > 10, f"the sizing loop did not reach a long call ({sized}): {err[-2000:]}"
    assert '"interrupted": true' in out and proc.returncode == 130, (
        f"the call ran to completion ({estimate:.1f} s estimated) instead of raising "
        f"KeyboardInterrupt; exited {proc.returncode} {waited:.1f} s after SIGINT\n{out}{err}")
    # A machine so loaded that the estimate itself stretched gets a proportionally later bound.
    assert waited < max(1.5, estimate / 10), (
        f"KeyboardInterrupt came {waited:.1f} s after SIGINT ({sized})")
