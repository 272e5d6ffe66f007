"""Fuzzing the two readers of untrusted input: ``cr.parse`` on arbitrary text, token soups and
mangled printed expressions, and unpickling of arbitrary and corrupted bytes. Every input either
works or raises the documented exception (ParseError / ChainruleError, both ValueErrors, or
TypeError): never another exception, a caught Rust panic (RuntimeError), a crash or a hang. The
Hypothesis runs are derandomised (a fixed-length run); a seeded run of a few thousand inputs in
a subprocess catches what would take pytest down with it (a segfault, an abort, a hang)."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chainrule as cr
from chainrule.compiled import load_function
from chainrule.expr import _load
from conftest import to_expr, trees

SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=200,
                    suppress_health_check=list(HealthCheck))

TOKENS = ["x", "y", "z", "_a", "t1", "t2", "sin", "cos", "log", "per_sample", "sum", "mean",
          "over", "inf", "nan", "(", ")", "+", "-", "*", "/", "**", "***", "=", ",", ";", "\n",
          " ", "\t", "\r", "0", "1", "2.5", ".5", "1.", "1e", "1e-", "1e400", "1e-400", "5e-324",
          "0x1", "1_0", "é", "∑", "\x00", "#", "$", "\\", "[", "]", "{", "'", '"', ".", "e", "E",
          "@", "x.y", "lambda", "__import__", "ｘ", "٣", "\u2028", "\x85", "\ufeff"]

soups = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)


def parse_outcome(text: str):
    """Parses ``text``; a result must print back to itself, an error must be a ParseError whose
    position (if it gives one) lies inside the text."""
    try:
        e = cr.parse(text)
    except cr.ParseError as err:
        message = str(err)
        assert message
        for pos in re.findall(r"at position (\d+)", message):
            assert int(pos) <= len(text.encode()), (text, message)
        return err
    assert isinstance(e, cr.Expr)
    assert cr.parse(str(e)) == e, (text, str(e))
    return e


@SETTINGS
@given(st.text(max_size=120))
def test_parse_arbitrary_text(text):
    parse_outcome(text)


@SETTINGS
@given(soups)
def test_parse_token_soups(text):
    parse_outcome(text)


@SETTINGS
@given(trees(12, reductions=True),
       st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(TOKENS), st.booleans()),
                min_size=1, max_size=4))
def test_parse_mangled_printed_expressions(tree, edits):
    """Printed text one to four edits away from valid: deep in the grammar, not at its door."""
    text = str(to_expr(tree))
    for at, token, delete in edits:
        i = at % (len(text) + 1)
        text = text[:i] + text[i + 1:] if delete else text[:i] + token + text[i:]
    parse_outcome(text)


@pytest.mark.parametrize("text", ["x + \ud800", "\udfff", "sin(x)\udc80"])
def test_parse_lone_surrogates(text):
    """A str that is not valid Unicode (lone surrogates) is bad text like any other."""
    with pytest.raises((cr.ChainruleError, TypeError)):
        cr.parse(text)


@pytest.mark.parametrize("value", [b"x", None, 1, 2.5, ["x"], cr.var("x")])
def test_parse_non_text(value):
    with pytest.raises(TypeError, match="str"):
        cr.parse(value)


# -- unpickling ---------------------------------------------------------------------------------


class Payload:
    """Pickles as a call of ``loader`` on arbitrary arguments: what a corrupt pickle does."""

    def __init__(self, loader, *args):
        self.loader, self.args = loader, args

    def __reduce__(self):
        return (self.loader, self.args)


def load_outcome(data: bytes, *, function: bool = False):
    """Unpickles; a result must be an Expr (or Function), an error ChainruleError or TypeError."""
    try:
        back = pickle.loads(data)
    except (cr.ChainruleError, TypeError) as err:
        assert str(err)
        return err
    assert isinstance(back, cr.Function if function else cr.Expr), back
    return back


def mutated(data: bytes, edits, start: int, end: int) -> bytes:
    """``data`` with bytes in ``[start, end)`` overwritten (the length stays, so the pickle's
    own framing stays intact and only chainrule's payload is corrupt)."""
    out = bytearray(data)
    for at, value in edits:
        out[start + at % (end - start)] = value
    return bytes(out)


def payload_span(data: bytes) -> tuple[int, int]:
    """Where chainrule's payload sits in a protocol 3+ pickle (after its length prefix)."""
    start = data.index(b"CRG")
    length = data[start - 1] if data[start - 2] == ord("C") else int.from_bytes(
        data[start - 4:start], "little")
    return start, start + length


byte_edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1,
                      max_size=4)


@SETTINGS
@given(st.one_of(st.binary(max_size=80), st.binary(max_size=80).map(lambda b: b"CRG\x01" + b)))
def test_load_arbitrary_bytes(data):
    load_outcome(pickle.dumps(Payload(_load, data)))


@SETTINGS
@given(trees(10, reductions=True), st.sampled_from([3, 4, 5]), byte_edits)
def test_load_corrupted_expression_pickles(tree, protocol, edits):
    good = pickle.dumps(to_expr(tree), protocol)
    start, end = payload_span(good)
    load_outcome(mutated(good, edits, start, end))


@SETTINGS
@given(trees(10, reductions=True), st.integers(0, 10**6), st.binary(max_size=8))
def test_load_truncated_and_extended_expressions(tree, cut, tail):
    data = pickle.dumps(to_expr(tree))
    start, end = payload_span(data)
    payload = data[start:end]
    load_outcome(pickle.dumps(Payload(_load, payload[: cut % (len(payload) + 1)])))
    load_outcome(pickle.dumps(Payload(_load, payload + tail)))


@SETTINGS
@given(trees(8, reductions=True), byte_edits, st.integers(1, 3))
def test_load_corrupted_function_pickles(tree, edits, n_outputs):
    e = to_expr(tree)
    fn = cr.compile([e, cr.sin(e)], inputs=list(cr.vars("x y z")))
    good = pickle.dumps(fn)
    start, end = payload_span(good)
    load_outcome(mutated(good, edits, start, end), function=True)
    corrupt = mutated(good, edits, start, end)[start:end]
    load_outcome(pickle.dumps(Payload(load_function, corrupt, n_outputs, n_outputs == 1)),
                 function=True)


@pytest.mark.parametrize("data, n_outputs, single", [
    (b"CRG\x01\x00\x00", 1, True),  # no nodes at all, one output promised
    (b"CRG\x01\x00\x00", 0, True),  # a single output, but none listed
    (b"CRG\x01\x01\x00" + bytes(8) + b"\x01\x00", 3, False),  # one node, three outputs promised
])
def testload_function_with_too_few_nodes(data, n_outputs, single):
    """A Function pickle whose payload holds fewer nodes than it says is corrupt data."""
    load_outcome(pickle.dumps(Payload(load_function, data, n_outputs, single)), function=True)


@pytest.mark.parametrize("data", [b"CRG\x01\x00\x00", pickle.dumps([1]),
                                  b"CRG\x01\x02\x01\x01x\x01\x01y\x02\x00\x01"])
def test_load_expression_payload_with_wrong_root_count(data):
    """An Expr pickle's payload must hold exactly one root; anything else is corrupt data."""
    load_outcome(pickle.dumps(Payload(_load, data)))


# -- a crash-proof fixed-length run ----------------------------------------------------------

CHILD = textwrap.dedent("""
    import random, sys
    import chainrule as cr
    from chainrule import _core
    from chainrule.expr import _load
    tokens = {tokens!r}
    rng = random.Random(20260101)
    allowed = (cr.ChainruleError, TypeError)
    x, y = cr.vars("x y")
    seeds = [cr.sin(x) * y + cr.mean(x), cr.sum(x ** y, over=y), cr.grad(cr.tanh(x * y), x)]
    for i in range({n}):
        text = "".join(rng.choice(tokens) for _ in range(rng.randrange(30)))
        data = bytearray(_core.encode([seeds[i % 3]]))
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        for call, arg in ((cr.parse, text), (_load, bytes(data)), (_load, b"CRG\\x01" + junk)):
            try:
                call(arg)
            except allowed:
                pass
            except Exception as exc:
                print(f"{{call.__name__}}({{arg!r}}) raised {{exc!r}}")
                sys.exit(1)
    print("ok")
""")


def test_fixed_length_run_in_a_subprocess():
    """5,000 seeded inputs of each kind in a child process: a crash or hang there fails
    this test instead of ending the test run."""
    script = CHILD.format(tokens=TOKENS, n=5000)
    try:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=120, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("the fuzz run hung (no result in 120 s)")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), (
        f"exit code {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
