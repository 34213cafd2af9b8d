"""The code's layout holds: the folder says the layer, imports only go down, nothing imports in a
circle, no two modules share a name, and no module grows into a room nobody can find things in.

The layers, lowest first (docs/architecture.md draws them):
  0 trackpipe (the version), trackpipe.errors      shared leaves
  1 trackpipe.events                               the domain rules: no Beam, no I/O services
  2 trackpipe.storage, trackpipe.runtime and the   files and object stores, work folders, lock,
    support modules (config, manifest, dates,      publish; settings and the manifest; process
    gpg, console)                                  helpers
  3 transforms                                     Beam composites over the rules
  4 trackpipe.driver and the application packages  running a job, loading, reporting, generating,
    (warehouse, report, generator, bench)          benchmarking
  5 pipelines                                      the runnable recipes and their options
  6 trackpipe.cli                                  the command line
A module imports only from its own layer or below (imports used only for type checking, under
`if TYPE_CHECKING:`, are not imports at run time and are not counted).
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGES = ("trackpipe", "transforms", "pipelines")
MAX_LINES = 600

LAYERS = [
    (0, ("trackpipe", "trackpipe.errors")),
    (1, ("trackpipe.events",)),
    (
        2,
        (
            "trackpipe.storage",
            "trackpipe.runtime",
            "trackpipe.config",
            "trackpipe.manifest",
            "trackpipe.dates",
            "trackpipe.gpg",
            "trackpipe.console",
        ),
    ),
    (3, ("transforms",)),
    (4, ("trackpipe.driver", "trackpipe.warehouse", "trackpipe.report", "trackpipe.generator", "trackpipe.bench", "trackpipe.privacy")),
    (5, ("pipelines",)),
    (6, ("trackpipe.cli",)),
]


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def layer_of(module: str) -> int:
    best, rank = "", None
    for number, prefixes in LAYERS:
        for prefix in prefixes:
            matches = module == prefix or (module.startswith(prefix + ".") and prefix not in ("trackpipe",))
            if matches and len(prefix) > len(best):
                best, rank = prefix, number
    assert rank is not None, f"{module} belongs to no layer: add it to tests/test_layout.py and docs/architecture.md"
    return rank


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported_names(tree: ast.AST, module: str, is_package: bool):
    """Every (dotted name) imported at run time, lazy imports inside functions included."""
    todo = [tree]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                todo.extend(child.orelse)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                yield base
                for alias in child.names:
                    yield f"{base}.{alias.name}"
            todo.append(child)


def _resolve(name: str) -> str | None:
    """The project module a dotted import name refers to (the longest known prefix)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        targets = {_resolve(n) for n in _imported_names(tree, module, path.name == "__init__.py")}
        graph[module] = {t for t in targets if t and t != module}
    return graph


GRAPH = _graph()


def test_every_module_belongs_to_a_layer():
    for module in MODULES:
        layer_of(module)


def test_imports_only_go_down():
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in sorted(GRAPH.items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_the_domain_rules_import_no_beam_and_no_services():
    for module, path in MODULES.items():
        if layer_of(module) != 1:
            continue
        names = set(_imported_names(ast.parse(path.read_text()), module, path.name == "__init__.py"))
        assert not any(n == "apache_beam" or n.startswith("apache_beam.") for n in names), module
        assert all(layer_of(t) <= 1 for t in GRAPH[module]), (module, GRAPH[module])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_no_two_modules_share_a_name():
    names = Counter(path.stem for path in MODULES.values() if path.stem not in ("__init__", "__main__"))
    assert [name for name, n in names.items() if n > 1] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_a_room_of_its_own(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)} has {lines} lines: split it by concept"
