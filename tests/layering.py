"""The project's import graph, read from the source with ``ast`` (nothing is imported), and the
layering rules it must keep: see docs/architecture.md, "Where things live".

Every import counts, also one inside a function: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_PACKAGES = ("shop", "orders", "inventory", "shipping", "notifications", "bench")

# Longest prefix wins: a module belongs to the first part whose package holds it.
PARTS = {
    "shop.pipeline": "pipeline",
    "shop.local": "local",
    "shop.storefront": "storefront",
    "shop.proof": "proof",
    "shop.ops": "ops",
    "orders": "stage",
    "inventory": "stage",
    "shipping": "stage",
    "notifications": "stage",
    "shop": "project",
    "bench": "bench",
}
# What each part must never import. The project package (settings, urls, celery, admin
# wiring, management commands) sits on top and may import anything.
# The benchmark (``bench/``) drives the whole shop from outside: it may import any part, and
# only its management command imports it.
FORBIDDEN = {
    "pipeline": {"storefront", "stage", "proof", "local", "project", "bench"},
    "local": {"storefront", "stage", "proof", "project", "bench"},
    "stage": {"storefront", "proof", "local", "project", "bench"},
    "storefront": {"proof", "local", "project", "bench"},
    "proof": {"project", "bench"},
    "ops": {"storefront", "proof", "local", "project", "bench"},
    "bench": {"project"},
}


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the project outside migrations, by dotted name."""
    found = {}
    for top in TOP_PACKAGES:
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            if "migrations" in rel.parts:
                continue
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            found[".".join(parts)] = path
    return found


def part_of(module: str) -> str:
    for prefix in sorted(PARTS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return PARTS[prefix]
    raise KeyError(module)


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the project modules it imports (``from a import b`` counts b when b is a module)."""
    modules = project_modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = {t for t in _imported_names(tree, name, path.name == "__init__.py") if t in modules}
        # ``from shop.pipeline import faults`` names the package and the module: keep the module only.
        graph[name] = {t for t in targets if not any(o.startswith(t + ".") for o in targets)} - {name}
    return graph


def forbidden_imports(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for every import that goes up or sideways across the layers."""
    return sorted(
        f"{module} ({part_of(module)}) -> {target} ({part_of(target)})"
        for module, targets in graph.items()
        for target in targets
        if part_of(target) in FORBIDDEN.get(part_of(module), set())
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)
