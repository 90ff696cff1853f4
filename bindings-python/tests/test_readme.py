"""The READMEs' Python blocks run as written (the quickstarts bring their own receiver on
127.0.0.1; the JetStream example gets a nats-server with its stream through ``NATS_URL``), and
the root README's Node snippet verifies the Standard Webhooks test vector."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import nats.js
import pytest
from conftest import NatsServer
from nats.js.api import StreamInfo

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_readme_has_a_quickstart_an_asyncio_a_projections_and_a_jetstream_example() -> None:
    assert len(python_blocks()) == 4


def test_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code = python_blocks()[0]
    namespace: dict[str, object] = {"__name__": "quickstart"}
    exec(compile(code, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "verified order.created" in out
    assert "delivered: succeeded" in out
    assert os.path.exists(tmp_path / "app.db")


def test_asyncio_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code = python_blocks()[1]
    assert "tidings.aio" in code
    exec(compile(code, str(README), "exec"), {"__name__": "asyncio_example"})
    assert capsys.readouterr().out == "followed 100 orders\n"
    assert os.path.exists(tmp_path / "shop.db")


def test_projections_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code = python_blocks()[2]
    assert "tidings.Aggregate" in code and "subscribe" in code
    exec(compile(code, str(README), "exec"), {"__name__": "projections_example"})
    assert capsys.readouterr().out == "projected: [('account-ada', 42)]\nloaded: 42\n"


def test_jetstream_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], nats_server: NatsServer
) -> None:
    async def add_stream(js: nats.js.JetStreamContext) -> StreamInfo:
        return await js.add_stream(name="ORDERS", subjects=["orders.>"])

    nats_server.jetstream(add_stream)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NATS_URL", nats_server.url)
    code = python_blocks()[3]
    assert "relay_in" in code and "subject=" in code
    exec(compile(code, str(README), "exec"), {"__name__": "jetstream_example"})
    assert capsys.readouterr().out == (
        "relayed: [('order-42', 'order.created')]\nshipments: [('order-42', 9.99)]\n"
    )


ROOT_README = Path(__file__).resolve().parents[2] / "README.md"


def root_blocks(language: str) -> list[str]:
    text = ROOT_README.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def test_root_readme_python_blocks_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = root_blocks("python")
    assert len(blocks) == 2, "the quickstart and the receiver-side verification snippet"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(ROOT_README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "verified order.created" in out
    assert "delivered: succeeded" in out


def test_root_readme_node_snippet_verifies_the_test_vector() -> None:
    [code] = root_blocks("js")
    node = shutil.which("node")
    assert node is not None, "Node.js is needed to check the README's Node snippet"
    done = subprocess.run([node, "-e", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "verified"
