"""The import graph of ``annotator/``: no circle, and the bulk package in layers.

Every ``import`` statement counts, at module level or inside a function or an ``if
TYPE_CHECKING:`` block: a lazy import is still an arrow between two modules.  An arrow goes to
the module named (``from .x import name`` → ``x``; ``from . import x`` → ``x`` when ``x`` is a
module), not to the packages above it that Python also initialises.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "annotator"


def _module_names(package: Path) -> dict[str, Path]:
    """Dotted name → file of every module under ``package`` (a package is its ``__init__.py``)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module → the modules of ``package`` it imports (see the module doc)."""
    modules = _module_names(package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # `import a.b.c` where c is a name: its module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as ``[a, b, ..., a]``, or ``[]`` when the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_reads_relative_lazy_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .top import A\n")
    (pkg / "top.py").write_text("import typing\nif typing.TYPE_CHECKING:\n    from .sub.leaf import B\n")
    (pkg / "sub" / "__init__.py").write_text("from . import leaf\n")
    (pkg / "sub" / "leaf.py").write_text("def f():\n    from ..top import A\n    import pkg.sub\n")
    assert import_graph(pkg) == {
        "pkg": {"pkg.top"},
        "pkg.top": {"pkg.sub.leaf"},
        "pkg.sub": {"pkg.sub.leaf"},
        "pkg.sub.leaf": {"pkg.top", "pkg.sub"},
    }
    cycle = find_cycle(import_graph(pkg))
    assert cycle[0] == cycle[-1] and "pkg.sub.leaf" in cycle  # its lazy imports close two circles


def test_annotator_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


BULK_LAYERS = ["boxes", "records", "step", "journal", "local", "ray_runner", "run"]  # each imports only earlier ones


def test_bulk_modules_import_only_the_layers_below_them():
    graph = import_graph()
    bulk = {f"annotator.bulk.{m}" for m in BULK_LAYERS}
    assert {m for m in graph if m.startswith("annotator.bulk.")} == bulk, "a bulk module is missing from BULK_LAYERS"
    for i, layer in enumerate(BULK_LAYERS):
        below = {f"annotator.bulk.{m}" for m in BULK_LAYERS[:i]}
        inside = {m for m in graph[f"annotator.bulk.{layer}"] if m.startswith("annotator.bulk")}
        assert inside <= below, f"annotator.bulk.{layer} imports {sorted(inside - below)}, which stand above it"


def _documented_layers() -> list[tuple[str, list[str]]]:
    """The ``LAYERS`` table of docs/architecture.md (a Python block there)."""
    import re

    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(LAYERS = \[.*?\])\n```", text, re.S)
    assert block, "docs/architecture.md lost its LAYERS table"
    namespace: dict = {}
    exec(block.group(1), namespace)
    return namespace["LAYERS"]


def test_no_module_imports_one_above_it_as_docs_architecture_says():
    layers = _documented_layers()

    def layer_of(module: str) -> int:
        rel = module.removeprefix("annotator").removeprefix(".") or "__init__"
        hits = [i for i, (_, names) in enumerate(layers) for n in names if rel == n or rel.startswith(n + ".")]
        assert len(hits) == 1, f"{module} is in {len(hits)} layers of docs/architecture.md, not 1"
        return hits[0]

    graph = import_graph()
    upward = sorted((m, t) for m, targets in graph.items() for t in targets if layer_of(t) > layer_of(m))
    assert upward == [], f"imports of a higher layer: {upward}"
    assert find_cycle(graph) == []
