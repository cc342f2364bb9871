"""The project's import graph, read from the sources with ``ast``: no cycles, and no dev
tooling or benchmarks behind the long-running commands.

Module-level imports (also those inside module-level ``if``/``try``) are what runs when a
module loads; imports under ``if TYPE_CHECKING:`` never run, and imports inside functions
run only when the function does (the CLI's lazy imports), so they are edges of their own
kind. A cycle of module-level imports makes the outcome depend on which module is imported
first (a half-initialised module, an ``ImportError`` on a name), so none is allowed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("hl7gw", "gateway", "mappers", "connectors")
# Developer tooling and benchmarks: importable, but never loaded by serve, bridge or function.
DEV_TOOLING = ("gateway.bench", "gateway.bench_ceilings", "gateway.cpu_time", "gateway.fsinfo",
               "gateway.pipeline_bench", "gateway.pipeline_figures", "connectors.bench",
               "mappers.bench", "gateway.dev")


@dataclass
class Module:
    """One module's imports: at load time, and per function (lazy)."""

    name: str
    is_package: bool
    eager: set[str] = field(default_factory=set)
    lazy: dict[str, set[str]] = field(default_factory=dict)  # function qualname -> modules


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, mod: Module, known: set[str]) -> Iterator[str]:
    """The project modules an import statement loads (its own module, not parent packages)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in known:
                yield alias.name
        return
    base = node.module or ""
    if node.level:
        package = mod.name if mod.is_package else mod.name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    if base not in known:
        return
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        yield sub if sub in known else base  # a submodule, or a name defined in ``base``


def _walk(body: list[ast.stmt], mod: Module, known: set[str], scope: str | None,
          type_checking: bool = False) -> None:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found = set(_targets(node, mod, known))
            if scope is None:
                mod.eager |= found
            else:
                mod.lazy.setdefault(scope, set()).update(found)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inner = node.name if scope is None else f"{scope}.{node.name}"
            _walk(node.body, mod, known, inner, type_checking)
        elif isinstance(node, ast.ClassDef):
            # a class body runs at load time; its methods are functions
            _walk(node.body, mod, known, scope if scope is None else f"{scope}.{node.name}",
                  type_checking)
        elif isinstance(node, ast.If):
            if type_checking or not _is_type_checking(node.test):
                _walk(node.body, mod, known, scope, type_checking)
            _walk(node.orelse, mod, known, scope, type_checking)
        elif isinstance(node, ast.Try | ast.With | ast.AsyncWith | ast.For | ast.While):
            for part in ("body", "orelse", "finalbody"):
                _walk(getattr(node, part, []), mod, known, scope, type_checking)
            for handler in getattr(node, "handlers", []):
                _walk(handler.body, mod, known, scope, type_checking)


def import_graph(type_checking: bool = False) -> dict[str, Module]:
    """Every project module and its imports of other project modules (with ``type_checking``,
    those under ``if TYPE_CHECKING:`` count as module-level ones)."""
    paths = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                   if "__pycache__" not in p.parts)
    modules = {}
    for path in paths:
        name, is_package = _module_name(path)
        modules[name] = (Module(name, is_package), path)
    known = set(modules)
    for mod, path in modules.values():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        _walk(tree.body, mod, known, None, type_checking)
    return {name: mod for name, (mod, _path) in modules.items()}


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (or a self-loop),
    as ``[a, b, ..., a]`` (Tarjan's algorithm, then a shortest way round from the first)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                components.append(comp)

    for v in sorted(edges):
        if v not in index:
            connect(v)
    cycles = []
    for comp in components:
        start = min(comp)
        # breadth-first from start back to start, inside the component
        prev: dict[str, str] = {}
        queue = [start]
        found: str | None = None
        while queue and found is None:
            nxt = []
            for v in queue:
                for w in sorted(edges.get(v, ())):
                    if w == start:
                        found = v
                        break
                    if w in comp and w not in prev:
                        prev[w] = v
                        nxt.append(w)
                if found is not None:
                    break
            queue = nxt
        path = [start]
        back = found
        while back is not None and back != start:
            path.append(back)
            back = prev.get(back)
        cycles.append([start, *reversed(path[1:]), start])
    return cycles


def lazy_closure(graph: dict[str, Module], roots: set[str],
                 loaded_only: frozenset[str] = frozenset()) -> dict[str, str]:
    """Every module reachable from ``roots`` by eager and lazy imports: module -> importer.

    An over-approximation of what can be loaded: any function of a reachable module may run,
    except in ``loaded_only`` modules (loaded, but their functions are not called).
    """
    seen = {root: "" for root in roots}
    todo = list(roots)
    while todo:
        name = todo.pop()
        mod = graph[name]
        lazy = () if name in loaded_only else mod.lazy.values()
        for target in mod.eager.union(*lazy):
            if target not in seen:
                seen[target] = name
                todo.append(target)
    return seen


def eager_closure(graph: dict[str, Module], roots: set[str]) -> dict[str, str]:
    """Every module loaded when ``roots`` load (module-level imports and parent packages)."""
    seen = {root: "" for root in roots}
    todo = list(roots)
    while todo:
        name = todo.pop()
        parents = {name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)}
        for target in graph[name].eager | {p for p in parents if p in graph}:
            if target not in seen:
                seen[target] = name
                todo.append(target)
    return seen


def _chain(seen: dict[str, str], name: str) -> str:
    chain = [name]
    while seen.get(chain[-1]):
        chain.append(seen[chain[-1]])
    return " <- ".join(chain)


def _dev(name: str) -> bool:
    return any(name == d or name.startswith(d + ".") for d in DEV_TOOLING)


GRAPH = import_graph()


def test_the_graph_reads_the_imports_it_should() -> None:
    # guards the reader itself: a known eager, TYPE_CHECKING-only and lazy import
    assert "mappers.engine.steps" in GRAPH["mappers.engine.loader"].eager
    assert "mappers.engine.context" not in GRAPH["mappers.registry"].eager
    assert "mappers.engine.context" in import_graph(type_checking=True)["mappers.registry"].eager
    assert "connectors.cloud.serve" in GRAPH["gateway.cli.function"].lazy["function_serve"]
    assert "connectors.cloud" not in GRAPH["gateway.cli.function"].eager
    assert "hl7gw.errors" in GRAPH["connectors.errors"].eager


def test_finds_a_cycle_and_names_it() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert sorted(find_cycles(edges)) == [["a", "b", "c", "a"], ["e", "e"]]


def test_no_import_cycles_among_the_projects_modules() -> None:
    edges = {name: mod.eager for name, mod in GRAPH.items()}
    cycles = find_cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_import_cycles_even_through_type_only_imports() -> None:
    """Type-only imports cannot fail at run time, but a cycle through them still ties the two
    sides together: ``mappers.engine.context`` (compiled by mypyc, runs per message) once
    imported the pydantic spec models that import the registry that names ``Context``."""
    edges = {name: mod.eager for name, mod in import_graph(type_checking=True).items()}
    cycles = find_cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_hl7gw_is_a_leaf_package() -> None:
    for name, mod in GRAPH.items():
        if name.split(".")[0] == "hl7gw":
            imported = mod.eager.union(*mod.lazy.values())
            assert all(t.split(".")[0] == "hl7gw" for t in imported), (name, imported)


def test_connectors_never_import_the_mapper_or_the_gateway() -> None:
    reached = lazy_closure(GRAPH, {n for n in GRAPH if n.startswith("connectors.")
                                  and not _dev(n)})
    bad = sorted(n for n in reached if n.split(".")[0] in ("mappers", "gateway"))
    assert not bad, "\n".join(_chain(reached, n) for n in bad)


def test_the_command_line_loads_no_dev_tooling_at_start() -> None:
    loaded = eager_closure(GRAPH, {"gateway.cli"})
    bad = sorted(n for n in loaded if _dev(n))
    assert not bad, "\n".join(_chain(loaded, n) for n in bad)


@pytest.mark.parametrize(("module", "function"), [
    ("gateway.cli.serve", "serve"),
    ("gateway.cli.bridge", "bridge"),
    ("gateway.cli.function", "function_serve"),
])
def test_long_running_commands_never_reach_dev_tooling(module: str, function: str) -> None:
    """What the command imports when it runs, and everything those modules may import."""
    assert module in GRAPH, f"{module} is gone: update this test's list of commands"
    assert function in GRAPH[module].lazy, f"{module}.{function} imports nothing when it runs?"
    # `hl7gw` loads every command module; this command's function and the shared helpers run
    cli = frozenset(n for n in GRAPH if n == "gateway.cli" or n.startswith("gateway.cli."))
    roots = set(eager_closure(GRAPH, {"gateway.cli"})) | GRAPH[module].lazy[function]
    roots |= set().union(*GRAPH["gateway.cli.common"].lazy.values())
    reached = lazy_closure(GRAPH, roots, loaded_only=cli)
    bad = sorted(n for n in reached if _dev(n))
    assert not bad, "\n".join(_chain(reached, n) for n in bad)


def test_the_function_command_never_reaches_the_mapper() -> None:
    roots = GRAPH["gateway.cli.function"].lazy["function_serve"]
    reached = lazy_closure(GRAPH, set(roots))
    bad = sorted(n for n in reached if n.split(".")[0] in ("mappers", "gateway"))
    assert not bad, "\n".join(_chain(reached, n) for n in bad)
