"""The folders are the layers: imports point downward only, and there is no import circle.

The layers are read from the package's folders (``volli_nb/<layer>/…``), so a new module
is checked without editing a list here.  Allowed directions:

    base  ← core ← net ← app ← ui, lab        (ui and lab never import each other,
                                                except that the cli may start lab tools)

``volli_nb/__init__.py`` is the lazy public facade and may name anything.  The pure core
must also *load* none of the I/O libraries, checked in a fresh interpreter.  And every
libsodium call goes through ``core/crypto/primitives.py``: no other module imports ``nacl``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import volli_nb

PACKAGE = Path(volli_nb.__file__).parent
LAYERS = ["base", "core", "net", "app", "ui", "lab"]
ALLOWED = {
    "base": {"base"},
    "core": {"base", "core"},
    "net": {"base", "core", "net"},
    "app": {"base", "core", "net", "app"},
    "ui": {"base", "core", "net", "app", "ui"},
    "lab": {"base", "core", "net", "app", "lab"},
}
EXCEPTIONS = {("volli_nb.ui.cli", "lab")}  # `volli-nb demo|bench|netsim|netns` start lab tools
FORBIDDEN = ["asyncio", "aiortc", "aioice", "websockets", "ipywidgets", "ptpython", "IPython"]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    type_only: bool


def module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def import_edges(root: Path) -> tuple[set[str], list[Edge]]:
    """Every module under ``root`` and every import of a package module, nested ones too."""
    modules = {module_name(root, p): p for p in root.rglob("*.py")}
    edges: list[Edge] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        typing_only = _type_checking_lines(tree)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")[: len(name.split(".")) - node.level + is_package]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                # `from pkg import submodule` depends on the submodule; `from m import name`
                # on m (the parent packages a submodule import runs are not counted).
                targets = [
                    f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module
                    for a in node.names
                ]
            for target in dict.fromkeys(targets):
                while target and target not in modules:  # an outside package, or `import a.b`
                    target = target.rpartition(".")[0]
                if target and target != name and target != root.name:
                    edges.append(Edge(name, target, node.lineno, node.lineno in typing_only))
    return set(modules), edges


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def violations(root: Path) -> list[str]:
    """Upward or sideways imports, modules outside any layer, and import circles."""
    modules, edges = import_edges(root)
    found = [
        f"{m}: not inside a layer folder ({', '.join(LAYERS)})"
        for m in sorted(modules)
        if m != root.name and layer_of(m) not in LAYERS
    ]
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for e in edges:
        src, dst = layer_of(e.source), layer_of(e.target)
        upward = src in ALLOWED and dst is not None and dst not in ALLOWED[src]
        if upward and (e.source, dst) not in EXCEPTIONS:
            found.append(f"{e.source}:{e.line} imports {e.target} ({src} → {dst})")
        if not e.type_only:
            graph[e.source].add(e.target)
    found += [" → ".join([*c, c[0]]) + ": import circle" for c in cycles(graph)]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
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
                result.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def test_imports_point_downward_and_never_circle() -> None:
    assert violations(PACKAGE) == []


def test_every_layer_folder_exists_and_holds_modules() -> None:
    modules, _ = import_edges(PACKAGE)
    for layer in LAYERS:
        assert any(layer_of(m) == layer for m in modules), f"no modules in volli_nb/{layer}/"


def _planted(tmp_path: Path, files: dict[str, str]) -> Path:
    copy = tmp_path / "volli_nb"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for rel, text in files.items():
        (copy / rel).write_text(text)
    return copy


def test_the_check_fails_on_a_planted_upward_import(tmp_path: Path) -> None:
    copy = _planted(tmp_path, {"core/planted.py": "from volli_nb.net import network_store\n"})
    assert violations(copy) == [
        "volli_nb.core.planted:1 imports volli_nb.net.network_store (core → net)"
    ]


def test_the_check_fails_on_a_planted_sideways_import(tmp_path: Path) -> None:
    copy = _planted(tmp_path, {"lab/planted.py": "def f():\n    from ..ui import shell\n"})
    assert violations(copy) == ["volli_nb.lab.planted:2 imports volli_nb.ui.shell (lab → ui)"]


def test_the_check_fails_on_a_planted_circle(tmp_path: Path) -> None:
    copy = _planted(
        tmp_path,
        {
            "core/planted_a.py": "from volli_nb.core import planted_b\n",
            "core/planted_b.py": "from . import planted_a\n",
        },
    )
    assert violations(copy) == [
        "volli_nb.core.planted_a → volli_nb.core.planted_b → volli_nb.core.planted_a: import circle"
    ]


def test_the_check_fails_on_a_module_outside_the_layers(tmp_path: Path) -> None:
    copy = _planted(tmp_path, {"stray.py": "X = 1\n"})
    assert violations(copy) == [
        "volli_nb.stray: not inside a layer folder (base, core, net, app, ui, lab)"
    ]


def core_modules() -> list[str]:
    modules, _ = import_edges(PACKAGE)
    return [*sorted(m for m in modules if layer_of(m) in {"base", "core"}), "volli_nb"]


def test_core_modules_load_no_io_libraries() -> None:
    script = (
        "import importlib, sys\n"
        f"for name in {core_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"core modules imported I/O libraries: {out}"


def test_the_runtime_check_itself_would_catch_an_io_import() -> None:
    script = "import sys, volli_nb.lab.netns, asyncio; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.strip() == "True"
    assert len(core_modules()) > 20  # the walk found the core


SODIUM = "volli_nb.core.crypto.primitives"  # the one module that may call libsodium


def nacl_imports(root: Path) -> list[str]:
    """Every ``import nacl…`` outside the primitives module, as ``module:line``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        name = module_name(root, path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            if name != SODIUM and any(n == "nacl" or n.startswith("nacl.") for n in names):
                found.append(f"{name}:{node.lineno}")
    return found


def test_only_the_primitives_module_imports_libsodium() -> None:
    assert nacl_imports(PACKAGE) == []


def test_the_libsodium_check_fails_on_a_planted_import(tmp_path: Path) -> None:
    copy = _planted(tmp_path, {"app/planted.py": "def f():\n    from nacl import utils\n"})
    assert nacl_imports(copy) == ["volli_nb.app.planted:2"]
