"""Every default the binding shows is core's (docs/architecture.md: the bindings convert and
delegate). ``tidings._tidings._core_defaults()`` reads core's values; against them this checks
the literal defaults of every signature, at runtime and in the stub (``mypy.stubtest`` checks
that the two agree), the ``name=value`` defaults the stub's docstrings and the README give, and
what an argument left out becomes. Changing a default in core and not in the binding, or in
the binding and not in core, fails here."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

import tidings
import tidings._tidings as native

CORE: dict[str, dict[str, Any]] = native._core_defaults()
STUB = Path(tidings.__file__).parent / "_tidings.pyi"
README = Path(__file__).resolve().parent.parent / "README.md"
URL = "https://hooks.example.com/in"


def core_key(qualname: str) -> str:
    """The key of ``CORE`` for a callable: a ``Transaction`` method has the ``Store`` one's."""
    return re.sub(r"^Transaction\.", "Store.", qualname)


def core_value(qualname: str, argument: str) -> Any:
    defaults = CORE.get(core_key(qualname), {})
    assert argument in defaults, f"{qualname}({argument}=...) has a default core does not give"
    return defaults[argument]


def runtime_callables() -> Iterator[tuple[str, Callable[..., Any]]]:
    yield "verify", tidings.verify
    classes = (tidings.Store, tidings.Transaction, tidings.DeliveryEngine, tidings.Subscription, tidings.TenantRate)
    for cls in (*classes, tidings.RetentionRule):
        yield cls.__name__, cls
        for name, member in vars(cls).items():
            if not name.startswith("_") and callable(member):
                yield f"{cls.__name__}.{name}", member


def signature(function: Callable[..., Any]) -> list[inspect.Parameter]:
    """The parameters of ``function`` (none for a class Python cannot construct)."""
    try:
        return list(inspect.signature(function).parameters.values())
    except ValueError:
        return []


def test_runtime_literal_defaults_are_cores() -> None:
    checked: list[str] = []
    for qualname, function in runtime_callables():
        for parameter in signature(function):
            if parameter.default not in (inspect.Parameter.empty, None):
                assert parameter.default == core_value(qualname, parameter.name), f"{qualname}({parameter.name})"
                checked.append(f"{qualname}({parameter.name})")
    # The stub's docstrings and the README name these; they must stay literal at runtime too.
    expected_checks = ("Store(durability)", "TenantRate(mode)", "DeliveryEngine.stop(timeout)", "verify(tolerance)")
    also = ("Store.subscribe(on_failure)", "Subscription.wait_for_position(timeout)", "Store.relay_in(ack_wait)")
    for expected in (*expected_checks, *also):
        assert expected in checked


def stub_functions() -> Iterator[tuple[str, ast.FunctionDef]]:
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    name = node.name if item.name == "__new__" else f"{node.name}.{item.name}"
                    yield name, item


def stub_defaults(function: ast.FunctionDef) -> dict[str, Any]:
    """Each argument with a default, and its value."""
    arguments = function.args
    positional = arguments.posonlyargs + arguments.args
    pairs = list(zip(positional[len(positional) - len(arguments.defaults) :], arguments.defaults))
    pairs += [(a, d) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d is not None]
    return {a.arg: ast.literal_eval(d) for a, d in pairs}


def test_stub_literal_defaults_are_cores() -> None:
    for qualname, function in stub_functions():
        for argument, default in stub_defaults(function).items():
            if default is not None:
                assert default == core_value(qualname, argument), f"_tidings.pyi: {qualname}({argument})"


def documented(text: str, arguments: set[str]) -> dict[str, Any]:
    """The ``name=value`` defaults a docstring gives for ``arguments``."""
    found: dict[str, Any] = {}
    for name, value in re.findall(r"``(\w+)=([^`]+)``", text):
        if name in arguments:
            found[name] = ast.literal_eval(value)
    return found


@pytest.mark.parametrize("qualname", ["Store", "Store.create_endpoint", "Store.start_delivery"])
def test_stub_docstrings_give_cores_defaults(qualname: str) -> None:
    functions = dict(stub_functions())
    classes = {node.name: node for node in ast.parse(STUB.read_text(encoding="utf-8")).body if isinstance(node, ast.ClassDef)}
    function = functions[qualname]
    docstring = ast.get_docstring(classes["Store"] if qualname == "Store" else function) or ""
    arguments = set(stub_defaults(function))
    shown = documented(docstring, arguments)
    for name, value in shown.items():
        assert value == core_value(qualname, name), f"_tidings.pyi: {qualname} docstring, {name}"
    numbers = {n for n, v in CORE[qualname].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert numbers <= set(shown), f"_tidings.pyi: {qualname} docstring does not give {numbers - set(shown)}"


# The README's call forms, by the name it writes, and the callable whose defaults they show.
README_CALLS = {
    "Store": "Store",
    "create_endpoint": "Store.create_endpoint",
    "enable_endpoint": "Store.enable_endpoint",
    "start_delivery": "Store.start_delivery",
    "deliveries": "Store.deliveries",
    "call": "Store.call",
    "read_stream": "Store.read_stream",
    "read_all": "Store.read_all",
    "subscribe": "Store.subscribe",
    "relay_in": "Store.relay_in",
    "wait_idle": "DeliveryEngine.wait_idle",
    "stop": "DeliveryEngine.stop",
    "verify": "verify",
}


def test_readme_calls_give_cores_defaults() -> None:
    checked: set[str] = set()
    for name, arguments in re.findall(r"`(?:tidings\.)?(\w+)\(([^`]*)\)", README.read_text(encoding="utf-8")):
        for argument, text in re.findall(r"(\w+)=([^,()]+)", arguments):
            try:
                value = ast.literal_eval(text.strip())
            except (ValueError, SyntaxError):
                continue  # not a value: `auth=Bearer(t)\|ApiKey(h, v)`, `template=str\|dict`, `source=`
            if name in README_CALLS and value not in (None, Ellipsis):
                assert value == core_value(README_CALLS[name], argument), f"README.md: {name}({argument}=)"
                checked.add(f"{name}({argument})")
    assert {"Store(durability)", "start_delivery(workers)", "wait_idle(timeout)", "verify(tolerance)"} <= checked
    assert {"relay_in(batch)", "relay_in(ack_wait)"} <= checked


def test_readme_delivery_table_gives_cores_defaults() -> None:
    text = README.read_text(encoding="utf-8").split("## Delivery", 1)[1]
    table = text.split("| option | default | meaning |", 1)[1].split("\n\n", 1)[0]
    shown: dict[str, Any] = {}
    for row in table.strip().splitlines()[1:]:
        cells = row.split("|")
        names, default = re.findall(r"`(\w+)`", cells[1]), cells[2].strip()
        if default.startswith("`"):
            values = re.findall(r"`([^`]+)`", default)
            shown.update({n: ast.literal_eval(v) for n, v in zip(names, values)})
    defaults = CORE["Store.start_delivery"]
    for name, value in shown.items():
        assert value == defaults[name], f"README.md: the Delivery table's {name}"
    numbers = {n for n, v in defaults.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert numbers <= set(shown), f"README.md: the Delivery table does not give {numbers - set(shown)}"


def test_arguments_left_out_take_cores_defaults() -> None:
    with tidings.Store(":memory:") as plain:
        assert plain.source == CORE["Store"]["source"]
        created = [plain.create_endpoint(URL)]
        with plain.transaction() as tx:
            created.append(tx.create_endpoint(URL))
    for endpoint in created:
        for name in CORE["Store.create_endpoint"]:
            assert getattr(endpoint, name) == CORE["Store.create_endpoint"][name], name
    assert tidings.TenantRate(5).mode == CORE["TenantRate"]["mode"]


def test_delivery_counts_name_every_state(store: tidings.Store) -> None:
    states = ["pending", "sending", "retrying", "paused", "succeeded", "failed", "cancelled"]
    assert store.delivery_counts() == dict.fromkeys(states, 0)
    assert list(store.delivery_counts()) == states
