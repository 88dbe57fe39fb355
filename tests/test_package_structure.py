"""The package keeps its shape: no import circles between modules or feature packages, modules of one size."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "landscape_probe"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(*, lazy: bool) -> dict[str, set[str]]:
    """Every module's imports of other landscape_probe modules.

    Args:
        lazy: also count imports inside functions and under ``if TYPE_CHECKING`` (not run at import time).
    """
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        nodes = ast.walk(tree) if lazy else (node for node in tree.body if not isinstance(node, ast.If))
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("landscape_probe"):
                for target in (node.module, *(f"{node.module}.{alias.name}" for alias in node.names)):
                    if target in modules and target != name and not name.startswith(target + "."):
                        graph[name].add(target)
    return graph


def feature(name: str) -> str:
    """The feature package a module belongs to (``landscape_probe.slicing``), or the core module itself."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else name


def cycle_from(graph: dict[str, set[str]], start: str) -> list[str] | None:
    stack = [(start, [start])]
    seen = set()
    while stack:
        node, path = stack.pop()
        for target in graph.get(node, ()):
            if target == start:
                return path + [target]
            if target not in seen:
                seen.add(target)
                stack.append((target, path + [target]))
    return None


def test_no_module_imports_itself_through_others_at_import_time():
    graph = import_graph(lazy=False)
    cycles = [cycle for name in graph if (cycle := cycle_from(graph, name))]
    assert not cycles, " -> ".join(cycles[0])


def test_no_two_feature_packages_import_each_other_even_lazily():
    graph = import_graph(lazy=True)
    packages: dict[str, set[str]] = {}
    for name, targets in graph.items():
        for target in targets:
            if feature(name) != feature(target):
                packages.setdefault(feature(name), set()).add(feature(target))
    cycles = [cycle for name in packages if (cycle := cycle_from(packages, name))]
    assert not cycles, " -> ".join(cycles[0])


def test_cycle_finder_finds_a_planted_cycle():
    assert cycle_from({"a": {"b"}, "b": {"c"}, "c": {"a"}}, "a") == ["a", "b", "c", "a"]
    assert cycle_from({"a": {"b"}, "b": set()}, "a") is None


def test_modules_stay_small():
    sizes = {module_name(path): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    too_long = {name: lines for name, lines in sizes.items() if lines > 330}
    assert not too_long
