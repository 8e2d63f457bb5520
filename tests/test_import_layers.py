"""The two packages import without cycles and along their layers (docs/architecture.md, "Layers").

Imports are read with ``ast`` from every module, those inside functions too (a lazy import that
papers over a cycle is still a cycle of the design); only ``if TYPE_CHECKING:`` blocks are left out,
as they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from kit.paths import REPO

ROOT = REPO
PACKAGES = ("rag_retrieval_integrations", "rag_retrieval_train")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run (``if TYPE_CHECKING:`` bodies left out)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _resolve(name: str) -> str | None:
    """The module of ours that ``name`` (a module or a name inside one) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name: str) -> set[str]:
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            wanted = [alias.name for alias in node.names]
        else:
            base = package
            for _ in range(max(node.level - 1, 0)):
                base = base.rpartition(".")[0]
            module = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
            wanted = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
        for target in wanted:
            resolved = _resolve(target) if target.split(".")[0] in PACKAGES else None
            if resolved and resolved != name:
                targets.add(resolved)
    return targets


GRAPH = {name: _imports(name) for name in MODULES}


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            connect(v)
    return found


def test_the_import_graph_is_read():
    assert "rag_retrieval_integrations.core.models.ranker" in GRAPH
    assert "rag_retrieval_integrations.core.models.ranker" in GRAPH["rag_retrieval_integrations.core.models.base"]


def test_no_import_cycles():
    assert _cycles() == []


INTEGRATIONS = "rag_retrieval_integrations"
# (importer prefix, forbidden prefix, why): the layers of docs/architecture.md
LAYERS = [
    (f"{INTEGRATIONS}.core", f"{INTEGRATIONS}.langchain", "the model layer knows no framework"),
    (f"{INTEGRATIONS}.core", f"{INTEGRATIONS}.llama_index", "the model layer knows no framework"),
    (f"{INTEGRATIONS}.core", f"{INTEGRATIONS}.server", "the model layer knows no transport"),
    (f"{INTEGRATIONS}.core", f"{INTEGRATIONS}.evaluation", "evaluation uses the model layer, not the reverse"),
    (f"{INTEGRATIONS}.core", f"{INTEGRATIONS}.adapter_fields", "the adapters' fields sit above the model layer"),
    (INTEGRATIONS, "rag_retrieval_train", "inference never needs the trainers"),
    (f"{INTEGRATIONS}.core", f"{INTEGRATIONS}.batch", "batch jobs run the model layer, not the reverse"),
    (f"{INTEGRATIONS}.langchain", f"{INTEGRATIONS}.llama_index", "each framework adapter stands alone"),
    (f"{INTEGRATIONS}.llama_index", f"{INTEGRATIONS}.langchain", "each framework adapter stands alone"),
    (f"{INTEGRATIONS}.server", f"{INTEGRATIONS}.langchain", "the server speaks HTTP, not a framework"),
    (f"{INTEGRATIONS}.server", f"{INTEGRATIONS}.llama_index", "the server speaks HTTP, not a framework"),
    (f"{INTEGRATIONS}.core.models", f"{INTEGRATIONS}.core.indexes", "indexes are built on models, not the reverse"),
    (f"{INTEGRATIONS}.core.models", f"{INTEGRATIONS}.core.engines", "engines store indexes, models know neither"),
    (
        f"{INTEGRATIONS}.core.indexes",
        f"{INTEGRATIONS}.core.engines",
        "an engine implements the Index API, not the reverse",
    ),
]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("importer, forbidden, why", LAYERS, ids=[f"{a} -/-> {b}" for a, b, _ in LAYERS])
def test_layers_import_only_downward(importer, forbidden, why):
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if _within(name, importer)
        for target in targets
        if _within(target, forbidden)
    )
    assert wrong == [], why
