"""The accounts example (top-level ``examples/python``) runs as written with tidings and with
the ``eventsourcing`` package, both print the same balances, and the tidings program is the
shorter one in lines of code (blank lines, comments and docstrings not counted)."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"
EXPECTED = ["ada 35", "edsger 165", "grace 110", "ada loaded: 35"]


def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    source = path.read_text(encoding="utf-8")
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            if ast.get_docstring(node) is not None:
                first = node.body[0]
                docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    layout = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in layout:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def run(program: str, db: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / program), str(db)], capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_both_programs_print_the_same_balances(tmp_path: Path) -> None:
    assert run("accounts_tidings.py", tmp_path / "tidings.db") == EXPECTED
    assert run("accounts_eventsourcing.py", tmp_path / "eventsourcing.db") == EXPECTED


def test_the_tidings_program_is_shorter() -> None:
    ours = code_lines(EXAMPLES / "accounts_tidings.py")
    theirs = code_lines(EXAMPLES / "accounts_eventsourcing.py")
    assert ours < theirs, (ours, theirs)
    assert theirs >= 100, "the eventsourcing program is the whole program, as the issue measured (108)"


def test_code_lines_skips_blanks_comments_and_docstrings(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('"""Doc\nstring."""\n\n# comment\nx = 1  # trailing\n\ndef f() -> None:\n    """Doc."""\n    return None\n')
    assert code_lines(sample) == 3
