"""The installed package: metadata, native module, stubs and py.typed ship with it."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

import tidings
import tidings._tidings as native


def test_installed_distribution() -> None:
    assert importlib.metadata.version("tidings") == tidings.__version__
    package = Path(tidings.__file__).parent
    assert "site-packages" in package.parts, "tests must run against the installed package"
    assert (package / "py.typed").is_file()
    assert (package / "_tidings.pyi").is_file()
    assert Path(native.__file__).name.endswith(".abi3.so")
    assert isinstance(tidings.SCHEMA_VERSION, int) and tidings.SCHEMA_VERSION >= 1


# Written in Python on top of the native module (tidings/_aggregate.py).
PURE_PYTHON = {"Aggregate", "Repository", "applies"}


def test_public_names() -> None:
    assert set(tidings.__all__) == set(native.__all__) | PURE_PYTHON
    for name in set(tidings.__all__) - PURE_PYTHON:
        assert getattr(tidings, name) is getattr(native, name)
    for name in PURE_PYTHON:
        assert getattr(tidings, name).__module__ == "tidings._aggregate"
    assert tidings.Store.__module__ == "tidings"
    assert tidings.DeliveryRecord.__name__ == "DeliveryRecord"
    assert tidings.DeliveryEngine.__name__ == "DeliveryEngine"


def test_old_record_name_is_a_deprecated_alias() -> None:
    assert "Delivery" not in tidings.__all__
    with pytest.warns(DeprecationWarning, match="renamed tidings.DeliveryRecord"):
        assert tidings.Delivery is tidings.DeliveryRecord
    with pytest.raises(AttributeError):
        getattr(tidings, "NoSuchName")


def test_in_memory_store() -> None:
    with tidings.Store(":memory:") as store:
        assert store.path == ":memory:"
        store.execute("CREATE TABLE t (x)")
        with store.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (1)")
            tx.append("s", "a.b", {"x": 1})
        assert store.query("SELECT x FROM t") == [(1,)]
        assert store.read_all(wait=0.01)[0].data == {"x": 1}
