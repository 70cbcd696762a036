"""The rooms' import graph, read from the source with `ast` (imports inside functions
included): no cycle, no import from a lower room into a higher one (unitaf_data <
unitaf_pipelines < unitaf_model < unitaf_cli), and no Ray at module level in unitaf_data."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# folder -> import name, lowest room first
ROOMS = {"unitaf_data": "unitaf_data", "pipelines": "unitaf_pipelines",
         "unitaf_model": "unitaf_model", "cli": "unitaf_cli"}


def modules(root: Path) -> dict[str, Path]:
    """Every module of the rooms by its import name."""
    found = {}
    for folder, name in ROOMS.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = [name, *path.relative_to(root / folder).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported(node: ast.AST, package: str) -> list[str]:
    """The module names an import statement names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    module = node.module or ""
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        module = ".".join([*base, *([module] if module else [])])
    return [module, *(f"{module}.{alias.name}" for alias in node.names)]


def _owner(name: str, known: dict[str, Path]) -> str | None:
    """The project module that `name` (a module or a name in one) belongs to."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports, at module level or inside functions."""
    known = modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = {_owner(t, known) for node in ast.walk(ast.parse(path.read_text()))
                   for t in _imported(node, package)}
        graph[name] = {t for t in targets if t and t != name and not name.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) where a lower room imports a higher one."""
    rank = {name: k for k, name in enumerate(ROOMS.values())}

    def room(module: str) -> int:
        return rank[module.partition(".")[0]]

    return sorted((m, t) for m, targets in graph.items() for t in targets if room(t) > room(m))


def module_level_imports(path: Path) -> set[str]:
    """Top-level package names imported outside any function (class bodies count)."""
    names = set()

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            names.update(n.partition(".")[0] for n in _imported(child, "") if n)
            walk(child)

    walk(ast.parse(path.read_text()))
    return names


def test_the_rooms_import_each_other_without_cycles():
    assert cycles(import_graph(ROOT)) == []


def test_no_room_imports_a_higher_room():
    assert upward_imports(import_graph(ROOT)) == []


def test_the_data_room_imports_ray_only_inside_functions():
    assert [str(path.relative_to(ROOT)) for name, path in modules(ROOT).items()
            if name.startswith("unitaf_data") and "ray" in module_level_imports(path)] == []


def test_the_checks_find_a_cycle_an_upward_import_and_ray_at_module_level(tmp_path):
    for folder in ROOMS:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "unitaf_data" / "a.py").write_text(
        "import ray\n\n\ndef f():\n    from unitaf_data import b\n")
    (tmp_path / "unitaf_data" / "b.py").write_text("from . import a\n")
    (tmp_path / "unitaf_data" / "c.py").write_text(
        "def g():\n    import ray\n    from unitaf_model.m import x\n")
    (tmp_path / "unitaf_model" / "m.py").write_text("x = 1\n")
    graph = import_graph(tmp_path)
    assert cycles(graph) == [["unitaf_data.a", "unitaf_data.b"]]
    assert upward_imports(graph) == [("unitaf_data.c", "unitaf_model.m")]
    assert module_level_imports(tmp_path / "unitaf_data" / "a.py") == {"ray"}
    assert module_level_imports(tmp_path / "unitaf_data" / "c.py") == set()
