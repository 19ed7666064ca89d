"""The package import graph: layers import only downward.

Every module of `detection/` is parsed with `ast` (nothing is imported, so a cycle cannot hide
behind an import error) and each import, at module level or inside a function, relative or
absolute, becomes an edge between *units*: a subpackage (`detection.ava`) or a top-level module
(`detection.errors`). Imports inside a unit are not edges.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = "detection"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

# The bottom layer and the units each of its members may import (besides itself).
BOTTOM = {
    "errors": set(),
    "utils": {"errors"},
    "structures": {"errors"},
    "ava": {"errors", "utils"},
}


def _module_name(path: Path, package_dir: Path) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> str | None:
    """`detection.ava.csv_io` -> "ava"; `detection.errors` -> "errors"; `detection` itself and
    modules of other projects -> None."""
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) < 2:
        return None
    return parts[1]


def _imported_modules(path: Path, package_dir: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in the file. `from X import name` yields
    `X.name` as well as `X`, since `name` may be a submodule (`from detection import errors`,
    `from . import boxes`)."""
    module = _module_name(path, package_dir)
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                if node.level - 1 >= len(anchor):
                    raise AssertionError(f"{path}:{node.lineno}: relative import above {PACKAGE}")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[tuple[str, str], list[str]]:
    """{(importing unit, imported unit): ["detection/x/y.py:12", ...]} over all of detection/."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(package_dir.rglob("*.py")):
        source = _unit(_module_name(path, package_dir))
        if source is None:  # detection/__init__.py (empty: it must not pull in layers)
            continue
        for target_module, line in _imported_modules(path, package_dir):
            target = _unit(target_module)
            if target is None or target == source:
                continue
            # `from detection import x` where x is a name defined in detection/__init__.py
            # rather than a subpackage or module is no edge.
            if not _is_unit(target, package_dir):
                continue
            where = f"{path.relative_to(package_dir.parent)}:{line}"
            if where not in edges[(source, target)]:
                edges[(source, target)].append(where)
    return dict(edges)


def _is_unit(name: str, package_dir: Path) -> bool:
    return (package_dir / name).is_dir() or (package_dir / f"{name}.py").is_file()


def _describe(edge: tuple[str, str], where: list[str]) -> str:
    return f"{PACKAGE}.{edge[0]} -> {PACKAGE}.{edge[1]} ({', '.join(where)})"


def _find_cycle(edges: dict[tuple[str, str], list[str]]) -> list[str] | None:
    """One cycle of units [a, b, ..., a], or None."""
    successors = defaultdict(set)
    for source, target in edges:
        successors[source].add(target)
    state: dict[str, str] = {}  # "open" while on the DFS stack, "done" after

    def visit(unit: str, stack: list[str]) -> list[str] | None:
        state[unit] = "open"
        stack.append(unit)
        for nxt in sorted(successors[unit]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, stack)
                if cycle:
                    return cycle
        stack.pop()
        state[unit] = "done"
        return None

    for unit in sorted(successors):
        if unit not in state:
            cycle = visit(unit, [])
            if cycle:
                return cycle
    return None


@pytest.fixture(scope="module")
def graph() -> dict[tuple[str, str], list[str]]:
    return import_graph()


def test_the_parser_sees_relative_and_absolute_imports(graph):
    # Known edges of the current tree, one per import style, so that a parser that silently
    # finds nothing cannot pass the tests below.
    assert ("evaluation", "ava") in graph  # from detection.ava... import
    assert ("ava", "errors") in graph  # from ..errors import / from detection.errors import
    assert ("apps", "errors") in graph


def test_relative_imports_resolve_to_units(tmp_path):
    package = tmp_path / PACKAGE
    (package / "ava").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "errors.py").write_text("")
    (package / "utils").mkdir()
    (package / "utils" / "__init__.py").write_text("")
    (package / "ava" / "__init__.py").write_text("from . import labelmap\nfrom .. import utils\n")
    (package / "ava" / "labelmap.py").write_text(
        "from ..errors import UserError\nfrom .constants import FPS\n"
        "def f():\n    import detection.utils.atomic\n"
    )
    assert import_graph(package) == {
        ("ava", "utils"): ["detection/ava/__init__.py:2", "detection/ava/labelmap.py:4"],
        ("ava", "errors"): ["detection/ava/labelmap.py:1"],
    }


def test_a_cycle_through_a_lazy_import_is_found(tmp_path):
    package = tmp_path / PACKAGE
    for name in ("data", "models", "config"):
        (package / name).mkdir(parents=True)
        (package / name / "__init__.py").write_text("")
    (package / "data" / "video.py").write_text("from detection.config import get_cfg\n")
    (package / "config" / "defaults.py").write_text("from ..models import build\n")
    (package / "models" / "build.py").write_text("def f():\n    from ..data import video\n")
    assert _find_cycle(import_graph(package)) == ["config", "models", "data", "config"]


def test_no_cycle_between_packages(graph):
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + "; ".join(
        _describe((a, b), graph[(a, b)]) for a, b in zip(cycle, cycle[1:], strict=False)
    )


def test_the_package_root_imports_no_layer():
    # detection/__init__.py runs before any module of the package: an import there would make
    # every layer depend on the imported one.
    root = PACKAGE_DIR / "__init__.py"
    imported = [(m, line) for m, line in _imported_modules(root, PACKAGE_DIR) if _unit(m)]
    assert not imported, f"{root} imports {imported}"


def test_bottom_layer_imports_only_further_down(graph):
    bad = [
        _describe(edge, where)
        for edge, where in sorted(graph.items())
        if edge[0] in BOTTOM and edge[1] not in BOTTOM[edge[0]]
    ]
    assert not bad, "bottom-layer import not allowed: " + "; ".join(bad)


def test_nothing_imports_apps(graph):
    bad = [_describe(edge, where) for edge, where in sorted(graph.items()) if edge[1] == "apps"]
    assert not bad, "only apps may import apps: " + "; ".join(bad)


def test_engine_is_imported_only_by_apps(graph):
    bad = [
        _describe(edge, where)
        for edge, where in sorted(graph.items())
        if edge[1] == "engine" and edge[0] != "apps"
    ]
    assert not bad, "only apps may import engine: " + "; ".join(bad)
