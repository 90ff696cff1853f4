"""The sample programs in ``bindings-python/examples`` run as written (CI also type-checks them
with ``mypy --strict``), so they cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_orders_service_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "orders_service.py"), str(tmp_path / "orders.db")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == [
        "endpoint created",
        "first (201, 1)",
        "again (409, None)",
        "second (201, 2)",
        "orders [('A-1', '19.90'), ('A-2', '5.00')]",
        "received [('A-1', '19.90'), ('A-2', '5.00')]",
        "projected 2 events",
        "totals [(2,)]",
    ]
    # A second run on the same file: the endpoint is declared again (upsert by name), and the
    # duplicate references answer 409 without writing.
    again = subprocess.run(
        [sys.executable, str(EXAMPLES / "orders_service.py"), str(tmp_path / "orders.db")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[:4] == ["endpoint updated", "first (409, None)", "again (409, None)", "second (409, None)"]
