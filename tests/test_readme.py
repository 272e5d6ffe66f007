"""The README is true: every example in it runs and prints what it shows.

Conventions the README follows (this test enforces them; keep them when you edit it):

- A ```python block is run, in a fresh namespace, and what it prints is compared with the
  ```text block that follows it directly (blank lines between are fine). A ```python block
  without a ```text block after it must print nothing. A ```python block that starts with
  `>>>` is a doctest and is checked by doctest instead.
- A ```console block holds commands, each on a line starting with `$ chainrule ...`, each
  followed by its output (stdout and stderr, as a terminal shows them: of a line rewritten
  with carriage returns, such as a progress bar, the last state). The commands are run as
  `python -m chainrule ...` in a temporary directory.
- In expected output, `...` matches anything (doctest's ELLIPSIS): only for what varies from run
  to run or machine to machine (timings, progress rates). Use it sparingly.
- A block that cannot run here (it needs a cluster, or continues a block that does) is
  preceded by the line `<!-- test: skip (reason) -->`; MAX_SKIPPED bounds how many there are.
- Blocks tagged ```sh or left untagged are install and development commands; they are not run,
  and must not hide an example (no `import chainrule`, no `$ chainrule`).
- The error table's rows are run too: each `Example call` (in the namespace ERRORS_NAMESPACE sets
  up, which the README states above the table) must raise the exception the row names, with the
  message shown (`...` matches anything; "(then the line and a caret)" means the message's first
  line is shown). Rows whose example is described in words are not run (MAX_UNRUN_ROWS).

On a mismatch the failure shows, per block, the README line and a diff of expected and actual.
"""

from __future__ import annotations

import builtins
import contextlib
import difflib
import doctest
import io
import os
import pathlib
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass

import pytest

import chainrule as cr

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
SKIP_MARK = re.compile(r"<!--\s*test:\s*skip\s*\((.+)\)\s*-->")
MAX_SKIPPED = 3
MAX_UNRUN_ROWS = 3
ERRORS_NAMESPACE = """
import pickle
import numpy as np
import chainrule as cr
x, y = cr.vars("x y")
fn = cr.compile(x * y, inputs=[x, y])
"""


@dataclass
class Block:
    lang: str
    line: int  # 1-based line of the opening fence
    text: str
    skip: str | None  # the reason, when marked to be skipped
    output: str | None = None  # the ```text block that follows a ```python block


def _blocks() -> list[Block]:
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = re.match(r"^```(\S*)\s*$", lines[i])
        if not match:
            i += 1
            continue
        start = i
        end = next(j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```")
        before = [line for line in lines[max(0, start - 3):start] if line.strip()]
        skip = SKIP_MARK.search(before[-1]) if before else None
        blocks.append(Block(match.group(1), start + 1, "\n".join(lines[start + 1:end]) + "\n",
                            skip.group(1) if skip else None))
        i = end + 1
    # Attach each ```text block to the ```python block right before it.
    paired: list[Block] = []
    for block in blocks:
        if block.lang == "text":
            assert paired and paired[-1].lang == "python" and paired[-1].output is None, (
                f"README.md:{block.line}: a ```text block must follow a ```python block directly")
            paired[-1].output = block.text
        else:
            paired.append(block)
    return paired


BLOCKS = _blocks()
PYTHON = [b for b in BLOCKS if b.lang == "python"]
CONSOLE = [b for b in BLOCKS if b.lang == "console"]


def _matches(expected: str, actual: str) -> bool:
    return doctest.OutputChecker().check_output(expected, actual, doctest.ELLIPSIS)


def _check(where: str, expected: str, actual: str) -> None:
    """Fails with a diff of expected and actual, and the actual text to paste into the README."""
    if _matches(expected, actual):
        return
    diff = difflib.unified_diff(expected.splitlines(), actual.splitlines(),
                                "README (expected)", "actual", lineterm="")
    pytest.fail(f"{where}: the output differs from what the README shows\n" + "\n".join(diff)
                + "\n--- the actual output in full, to paste into the README ---\n" + actual,
                pytrace=False)


@pytest.mark.parametrize("block", PYTHON, ids=[f"line{b.line}" for b in PYTHON])
def test_python_block(block, restore_threads, tmp_path, monkeypatch):
    if block.skip:
        pytest.skip(block.skip)
    monkeypatch.chdir(tmp_path)
    if block.text.lstrip().startswith(">>>"):
        test = doctest.DocTestParser().get_doctest(block.text, {}, f"README.md:{block.line}",
                                                   str(README), block.line)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        report = io.StringIO()
        result = runner.run(test, out=report.write)
        assert result.failed == 0, report.getvalue()
        return
    stdout = io.StringIO()
    code = compile(block.text, f"README.md:{block.line}", "exec")
    with contextlib.redirect_stdout(stdout):
        exec(code, {"__name__": "__readme__"})  # noqa: S102 - running the README's code is the test
    expected = block.output or ""
    _check(f"README.md:{block.line} (```python)", expected, stdout.getvalue())


def _commands(block: Block) -> list[tuple[str, str]]:
    """(command, expected output) pairs of a ```console block."""
    pairs: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:], []))
        else:
            assert pairs, f"README.md:{block.line}: a ```console block starts with a `$ ` command"
            pairs[-1][1].append(line)
    return [(command, "".join(out + "\n" for out in output)) for command, output in pairs]


def _as_terminal_shows(text: str) -> str:
    # Not splitlines(): it would split at the carriage returns too.
    lines = text.removesuffix("\n").split("\n")
    return "".join(line.rstrip("\r").split("\r")[-1] + "\n" for line in lines)


@pytest.mark.parametrize("block", CONSOLE, ids=[f"line{b.line}" for b in CONSOLE])
def test_console_block(block, tmp_path):
    if block.skip:
        pytest.skip(block.skip)
    commands = _commands(block)
    assert commands, f"README.md:{block.line}: a ```console block without commands"
    for command, expected in commands:
        argv = shlex.split(command)
        assert argv[0] == "chainrule", f"README.md:{block.line}: not a chainrule command: {command}"
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
        done = subprocess.run([sys.executable, "-m", "chainrule", *argv[1:]], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=600, check=False)
        actual = _as_terminal_shows(done.stdout.decode("utf-8"))
        where = f"README.md:{block.line} (`$ {command}`, exit code {done.returncode})"
        _check(where, expected, actual)


def test_other_blocks_hide_no_examples():
    for block in BLOCKS:
        if block.lang in ("python", "console"):
            continue
        assert block.lang in ("", "sh"), (
            f"README.md:{block.line}: unknown block language {block.lang!r}")
        assert "import chainrule" not in block.text and "$ chainrule" not in block.text, (
            f"README.md:{block.line}: an example in an untagged block is never checked; "
            "tag it ```python or ```console")


def test_few_blocks_are_skipped():
    skipped = [f"README.md:{b.line} ({b.skip})" for b in BLOCKS if b.skip]
    assert len(skipped) <= MAX_SKIPPED, f"too many README blocks are not tested: {skipped}"
    assert len(PYTHON) >= 4 and len(CONSOLE) >= 4, "the README's examples were not found"


def _error_rows() -> list[tuple[int, list[str]]]:
    rows = []
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if line.startswith("| `") and len(cells) == 4 and cells[0].strip("`").endswith(
                ("Error", "Interrupt")):
            rows.append((number, cells))
    return rows


ERROR_ROWS = _error_rows()
_CODE = re.compile(r"`([^`]+)`")


def _only_code(cell: str) -> bool:
    """Whether a cell is nothing but code spans joined by `;` or `<br>`."""
    return re.fullmatch(r"(`[^`]+`(\s*;\s*|<br>)?)+", cell) is not None


@pytest.mark.parametrize("number,cells", ERROR_ROWS, ids=[f"line{n}" for n, _ in ERROR_ROWS])
def test_error_table_row(number, cells, restore_threads):
    name, _, example, message = cells
    if not _only_code(example):
        pytest.skip("the example is described in words")
    calls = _CODE.findall(example)
    first_line_only = "(then the line and a caret)" in message
    if "<br>" in message:
        messages = ["\n".join(_CODE.findall(message))]
    else:
        messages = _CODE.findall(message)
    assert len(messages) == len(calls), f"README.md:{number}: one message per example call"
    exception = getattr(cr, name.strip("`"), None) or getattr(builtins, name.strip("`"))
    for call, expected in zip(calls, messages, strict=True):
        namespace: dict = {}
        exec(ERRORS_NAMESPACE, namespace)  # noqa: S102 - the namespace the README states
        with pytest.raises(BaseException) as caught:
            exec(compile(call, f"README.md:{number}", "exec"), namespace)  # noqa: S102
        assert type(caught.value) is exception, (
            f"README.md:{number}: {call} raised {type(caught.value).__name__}: {caught.value}, "
            f"not {exception.__name__}")
        actual = str(caught.value)
        if first_line_only:
            actual = actual.splitlines()[0]
        _check(f"README.md:{number} ({call})", expected + "\n", actual + "\n")


def test_few_error_rows_are_unrun():
    unrun = [number for number, cells in ERROR_ROWS if not _only_code(cells[2])]
    assert len(ERROR_ROWS) >= 20, "the README's error table was not found"
    assert len(unrun) <= MAX_UNRUN_ROWS, f"error table rows not run: README.md lines {unrun}"


def test_the_conventions_themselves():
    # A progress bar rewritten with carriage returns shows its last state, as on a terminal.
    assert _as_terminal_shows("a\n\rbar 0%\rbar 100%\nb\n") == "a\nbar 100%\nb\n"
    assert _matches("bar [...<00:00, ...epoch/s, loss=0.5]\n",
                    "bar [00:01<00:00, 9.5epoch/s, loss=0.5]\n")
    assert not _matches("loss=0.5\n", "loss=0.6\n")
    block = Block("console", 1, "$ chainrule diff x --wrt x\nd/dx = 1\n$ chainrule diff 2\n", None)
    assert _commands(block) == [
        ("chainrule diff x --wrt x", "d/dx = 1\n"), ("chainrule diff 2", "")]
