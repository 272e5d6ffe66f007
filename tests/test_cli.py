"""The command line, run as ``python -m chainrule`` in a subprocess (what users run) and, for
the cheaper cases, through ``main(argv)`` in process."""

import math
import os
import re
import subprocess
import sys
import textwrap

import pytest

from chainrule import cli


def run(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "chainrule", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env=env, check=False)


def call(capsys, *args):
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- help -------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, expected", [
    ((), ["train", "diff", "bench"]),
    (("train",), ["--epochs", "--lr", "--hidden", "--data", "--seed", "--batch-size", "--plot"]),
    (("diff",), ["--wrt", "--explain", "--check"]),
])
def test_help(args, expected):
    result = run(*args, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: chainrule")
    for word in expected:
        assert word in result.stdout


def test_no_command_prints_help_and_fails(capsys):
    code, out, _ = call(capsys)
    assert code == 2 and "usage: chainrule" in out


def test_unknown_option_is_an_argparse_error(capsys):
    code, _, err = call(capsys, "diff", "x", "--nope")
    assert code == 2 and "unrecognized arguments: --nope" in err


# -- train ------------------------------------------------------------------------------------
def _number(pattern, text):
    return float(re.search(pattern, text).group(1))


def test_train_prints_parameters_loss_and_accuracy():
    result = run("train", "--epochs", "300", "--seed", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name in ("w1", "b1", "w2", "b2"):
        assert re.search(rf"\b{name} = +-?\d+\.\d+", out), name
    initial = _number(r"initial loss: (\S+)", out)
    final = _number(r"final loss: (\S+)", out)
    assert final < 0.5 * initial
    assert re.search(r"accuracy: \d+\.\d% \(prediction within 0.1 of the target\)", out)
    assert "300 epochs" in out and "the article's network" in out
    assert "loss=" in result.stderr and "300/300" in result.stderr  # the tqdm bar


def test_train_xor_with_hidden_layers_and_minibatches():
    result = run("train", "--data", "xor", "--hidden", "8,4", "--epochs", "40", "--lr", "5",
                 "--batch-size", "32", "--no-progress")
    assert result.returncode == 0, result.stderr
    # A dense network's arrays are reported by shape, norm and range, not value by value.
    assert re.search(r"W3  shape \(1, 4\) +norm +\d+\.\d{4}  min", result.stdout)
    assert "W3_0_3" not in result.stdout and "mini-batches of 32" in result.stdout
    assert "-> 1 sigmoid output, 65 parameters" in result.stdout
    assert "side of 0.5" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("args", [("--hidden", "0"), ("--hidden", "4,x"), ("--lr", "-1"),
                                  ("--epochs", "-3"), ("--data", "mnist")])
def test_train_rejects_bad_options(capsys, args):
    code, _, err = call(capsys, "train", *args)
    assert code == 2 and "error" in err


def test_train_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "fit.png"
    result = run("train", "--epochs", "50", "--no-progress", "--plot", str(path))
    assert result.returncode == 0, result.stderr
    assert path.read_bytes().startswith(b"\x89PNG")
    xor = tmp_path / "xor.png"
    assert run("train", "--data", "xor", "--epochs", "5", "--no-progress", "--plot",
               str(xor)).returncode == 0
    assert xor.read_bytes().startswith(b"\x89PNG")


def test_train_plot_without_matplotlib_says_how_to_install(tmp_path):
    # A matplotlib that fails to import, first on the path, stands in for a missing one.
    fake = tmp_path / "matplotlib"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    result = run("train", "--plot", str(tmp_path / "x.png"), env=env)
    assert result.returncode == 1
    assert "install matplotlib (pip install 'chainrule[plot]') to use --plot" in result.stderr
    assert "Traceback" not in result.stderr and "learned parameters" not in result.stdout


# -- diff -------------------------------------------------------------------------------------
def test_diff_prints_the_derivative():
    result = run("diff", "sin(cos(x))", "--wrt", "x")
    assert result.returncode == 0
    assert result.stdout == "d/dx = -cos(cos(x)) * sin(x)\n"


def test_diff_latex():
    result = run("diff", "sqrt(x) * y", "--wrt", "x", "--latex")
    assert result.returncode == 0
    assert result.stdout == "\\frac{y}{2 \\sqrt{x}}\n"
    both = run("diff", "x * y", "--latex")
    assert both.stdout == "% d/dx\ny\n% d/dy\nx\n"
    refused = run("diff", "x * y", "--latex", "--explain")
    assert refused.returncode == 2 and "--latex" in refused.stderr


@pytest.mark.parametrize("wrt", [["--wrt", "x,y"], ["--wrt", "x", "--wrt", "y"], []])
def test_diff_several_variables(capsys, wrt):
    code, out, _ = call(capsys, "diff", "x * sin(y)", *wrt)
    assert code == 0
    assert out.splitlines() == ["d/dx = sin(y)", "d/dy = x * cos(y)"]


def test_diff_prints_shared_parts_on_their_own_lines(capsys):
    code, out, _ = call(capsys, "diff", "sigmoid(x)")
    assert code == 0
    assert out == "d/dx = sigmoid(x) * sigmoid(-x)\n"
    code, out, _ = call(capsys, "diff", "sigmoid(sigmoid(w * x + b))", "--wrt", "w")
    assert out.startswith("d/dw =\n  t1 = sigmoid(w * x + b)\n")


def test_diff_notes_a_variable_that_is_not_there(capsys):
    code, out, err = call(capsys, "diff", "sin(x)", "--wrt", "z")
    assert code == 0 and out == "d/dz = 0\n" and "z does not occur" in err


def test_explain_walks_the_chain_rule():
    result = run("diff", "sin(cos(x))", "--explain")
    assert result.returncode == 0
    lines = [line.strip() for line in result.stdout.splitlines()]
    expected = ["chain rule: d/dx f(u) = f'(u) * du/dx", "outer: sin(u)", "inner: u = cos(x)",
                "d/du sin(u) = cos(u)", "du/dx = -sin(x)   (basic derivative of cos)",
                "product: cos(cos(x)) * -sin(x)", "simplified: -cos(cos(x)) * sin(x)"]
    start = lines.index(expected[0])
    assert lines[start:start + len(expected)] == expected
    assert lines[-1] == "d/dx = -cos(cos(x)) * sin(x)"


def test_explain_binary_rules_and_nested_steps(capsys):
    code, out, _ = call(capsys, "diff", "sin(x**2) * exp(x) + x / (1 + x)", "--explain")
    assert code == 0
    for rule in ("sum rule: (u + v)' = u' + v'", "product rule: (u * v)' = u' * v + u * v'",
                 "quotient rule: (u / v)' = (u' * v - u * v') / v**2",
                 "power rule: (u * u)' = (u**2)' = 2 * u * u'", "outer: sin(u)",
                 "inner: u = x ** 2"):
        assert rule in out, rule
    assert "(step 2)" in out and "step 2: " in out
    assert "u' * v + u * v' = 2 * (cos(x ** 2) * x) * exp(x) + sin(x ** 2) * exp(x)" in out


def test_explain_powers_and_constants(capsys):
    _, out, _ = call(capsys, "diff", "x**3 + 2**x - 3*sqrt(x)", "--explain")
    assert "power rule: (u**c)' = c * u**(c - 1) * u'" in out
    assert "c * u**(c - 1) * u' = 3 * x ** 2 * 1" in out
    assert "c**v * log(c) * v' = 2 ** x * log(2) * 1" in out
    assert "constant factor: (c * u)' = c * u'" in out


def test_explain_refuses_big_expressions(capsys):
    big = " + ".join(f"sin({i} * x)" for i in range(1, 40))
    code, out, err = call(capsys, "diff", big, "--explain")
    assert code == 1 and "more than 50 steps" in err
    assert out.startswith("d/dx = ")  # the answer is still given


def test_check_right():
    result = run("diff", "sin(x)**2", "--check", "2*sin(x)*cos(x)")
    assert result.returncode == 0
    assert "correct: the candidate agrees with d/dx of sin(x)**2 at all 200 random points" \
        in result.stdout


def test_check_wrong_shows_points():
    result = run("diff", "sin(x)**2", "--check", "cos(x**2)*2*x")
    assert result.returncode == 1
    out = result.stdout
    assert "wrong: the candidate differs from d/dx of sin(x)**2 at" in out
    rows = [line.split() for line in out.splitlines()[-5:]]
    assert all(len(r) == 3 for r in rows)
    for xv, true, cand in ((float(a), float(b), float(c)) for a, b, c in rows):
        assert true == pytest.approx(math.sin(2 * xv), rel=1e-4, abs=1e-5)
        assert abs(true - cand) > 1e-6


def test_check_samples_where_both_are_finite(capsys):
    code, out, _ = call(capsys, "diff", "log(x) * x", "--check", "log(x) + 1")
    assert code == 0 and "x uniform in [0.05, 3]" in out


def test_check_needs_one_variable(capsys):
    code, _, err = call(capsys, "diff", "x * y", "--check", "y")
    assert code == 2 and "--wrt" in err
    code, _, _ = call(capsys, "diff", "x * y", "--wrt", "x", "--check", "y")
    assert code == 0


def test_parse_error_is_reported_without_traceback():
    result = run("diff", "sin(x + * 2)")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "position 8" in result.stderr
    assert result.stderr.rstrip().endswith("^")
    lines = result.stderr.rstrip().splitlines()
    assert lines[-1].index("^") == lines[-2].index("*")


def test_candidate_parse_error(capsys):
    code, _, err = call(capsys, "diff", "sin(x)", "--check", "cos(x")
    assert code == 2 and "cannot parse the candidate" in err and "^" in err


# -- bench ------------------------------------------------------------------------------------
def test_bench_passes_arguments_to_the_checkouts_runner(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "chainrule"\n')
    (tmp_path / "benches").mkdir()
    (tmp_path / "benches" / "run.py").write_text(textwrap.dedent("""
        def main(argv=None):
            print("runner got", argv)
            return 3
    """))
    result = run("bench", "--quick", "--workloads", "W1", cwd=tmp_path / "benches")
    assert result.stdout.strip() == "runner got ['--quick', '--workloads', 'W1']"
    assert result.returncode == 3


def test_bench_without_a_checkout_explains_how_to_run_it(capsys, monkeypatch):
    monkeypatch.setattr(cli, "find_bench_runner", lambda *a, **k: None)
    code, _, err = call(capsys, "bench", "--quick")
    assert code == 1 and "python benches/run.py" in err


def test_find_bench_runner_ignores_other_projects(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')
    (tmp_path / "benches").mkdir()
    (tmp_path / "benches" / "run.py").write_text("")
    found = cli.find_bench_runner(tmp_path)
    assert found is None or found.parent.parent != tmp_path
