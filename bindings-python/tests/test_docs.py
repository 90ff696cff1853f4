"""Every public class, function, method and property of the ``tidings`` package has a runtime
docstring (what ``help()`` shows), submodules included (``tidings.aio`` and whatever comes
later), and the stub (``tidings/_tidings.pyi``) documents the same names."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import tidings

STUB = Path(tidings.__file__).parent / "_tidings.pyi"


def public_modules() -> Iterator[ModuleType]:
    yield tidings
    for info in pkgutil.iter_modules(tidings.__path__):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"tidings.{info.name}")


def public_names(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__]
    return [n for n in names if not n.startswith("__")]


def members(cls: type) -> Iterator[tuple[str, object]]:
    """The public attributes a class defines itself (inherited ones are documented where they
    are defined)."""
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if inspect.isclass(cls) and issubclass(cls, BaseException) and not callable(member):
            continue  # class-level data of an exception (none today)
        yield name, member


def documented(obj: object) -> bool:
    doc = getattr(obj, "__doc__", None)
    return isinstance(doc, str) and doc.strip() != ""


def undocumented() -> list[str]:
    missing: list[str] = []
    for module in public_modules():
        if not documented(module):
            missing.append(module.__name__)
        for name in public_names(module):
            obj = getattr(module, name)
            qualname = f"{module.__name__}.{name}"
            if inspect.isclass(obj):
                if not documented(obj):
                    missing.append(qualname)
                for attr, member in members(obj):
                    target = member.fget if isinstance(member, property) else member
                    if isinstance(member, (staticmethod, classmethod)):
                        target = member.__func__
                    if not documented(target):
                        missing.append(f"{qualname}.{attr}")
            elif callable(obj) and not documented(obj):
                missing.append(qualname)
    return missing


def test_every_public_name_has_a_runtime_docstring() -> None:
    assert undocumented() == []


def test_the_walk_sees_methods_properties_and_exceptions() -> None:
    """The walk is not vacuous: it reaches the kinds of object the first test checks."""
    assert documented(tidings.Store.append)
    assert documented(tidings.Store.execute)
    assert documented(tidings.Transaction.lastrowid)
    assert documented(tidings.Endpoint.max_attempts)
    assert documented(tidings.Event.replayed)
    assert "IntegrityError" in public_names(tidings)
    assert "usable" in (tidings.IntegrityError.__doc__ or "")


def stub_documented() -> tuple[set[str], set[str]]:
    """Names the stub declares (``Class.member`` for members) and those with a docstring."""
    declared: set[str] = set()
    with_doc: set[str] = set()
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and not node.name.startswith("_"):
            declared.add(node.name)
            if ast.get_docstring(node):
                with_doc.add(node.name)
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                    declared.add(f"{node.name}.{item.name}")
                    if ast.get_docstring(item):
                        with_doc.add(f"{node.name}.{item.name}")
    return declared, with_doc


def test_the_stub_documents_every_name_it_declares() -> None:
    declared, with_doc = stub_documented()
    assert sorted(declared - with_doc) == []


def test_the_stub_and_the_runtime_declare_the_same_public_members() -> None:
    declared, _ = stub_documented()
    native = importlib.import_module("tidings._tidings")
    runtime: set[str] = set()
    for name in native.__all__ if hasattr(native, "__all__") else dir(native):
        obj = getattr(native, name)
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        if getattr(obj, "__module__", "").startswith("tidings._"):
            continue  # written in Python (tidings/_sql.py): its source is its stub

        runtime.add(name)
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            runtime.update(f"{name}.{attr}" for attr, _ in members(obj))
    assert sorted(runtime - declared) == []
