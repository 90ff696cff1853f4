"""The README's Python quickstart runs as written (it brings its own receiver on 127.0.0.1)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_readme_has_one_quickstart() -> None:
    assert len(python_blocks()) == 1


def test_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    [code] = python_blocks()
    namespace: dict[str, object] = {"__name__": "quickstart"}
    exec(compile(code, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "verified order.created" in out
    assert "delivered: succeeded" in out
    assert os.path.exists(tmp_path / "app.db")
