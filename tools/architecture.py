"""Write the architecture map (README.md) and the module table (docs/architecture.md)
from the package itself, so the docs follow the tree.

Run: .venv/bin/python tools/architecture.py   (tests/test_docs.py checks both are current)
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "volli_nb"
LAYERS = ["ui", "lab", "app", "net", "core", "base"]  # top to bottom: imports point down
TARGETS = {
    ROOT / "README.md": ("<!-- architecture -->", "<!-- /architecture -->"),
    ROOT / "docs" / "architecture.md": ("<!-- modules -->", "<!-- /modules -->"),
}
WIDTH = 92


def _modules(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.py") if p.name != "__init__.py")


def _packages(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if (p / "__init__.py").exists())


def _line(prefix: str, label: str, names: list[str], column: int) -> list[str]:
    """``prefix label  a  b  c``, wrapped under the first name."""
    lines, current = [], f"{prefix}{label:<{column}}"
    indent = " " * len(current) if prefix.strip() else " " * (len(prefix) + column)
    for name in names:
        if len(current) + len(name) + 2 > WIDTH and current.strip() != label.strip():
            lines.append(current.rstrip())
            current = indent
        current += name + "  "
    lines.append(current.rstrip())
    return lines


def tree(package: Path = PACKAGE) -> str:
    """The package by layer, top layer first: each folder and the modules in it."""
    out = ["volli_nb/"]
    for i, layer in enumerate(LAYERS):
        last = i == len(LAYERS) - 1
        folder = package / layer
        out += _line("└── " if last else "├── ", f"{layer}/", _modules(folder), 11)
        subs = _packages(folder)
        for j, sub in enumerate(subs):
            branch = ("    " if last else "│   ") + ("└── " if j == len(subs) - 1 else "├── ")
            out += _line(branch, f"{sub.name}/", _modules(sub), 11)
    return "```\n" + "\n".join(out) + "\n```"


def _summary(path: Path) -> str:
    """The first paragraph of a module's docstring, as Markdown."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    first = re.sub(r":(?:func|mod|class|meth|data):`~?([^`]+)`", r"`\1`", first)
    return first.replace("``", "`").replace("|", "\\|")


def table(package: Path = PACKAGE) -> str:
    """Every module with what its docstring says it is, layer by layer."""
    rows = ["| module | what it is |", "|---|---|"]
    for layer in LAYERS:
        for path in sorted((package / layer).rglob("*.py")):
            rel = path.relative_to(package).as_posix()
            if path.name == "__init__.py" and " " not in _summary(path):
                continue  # a package that only marks its folder
            rows.append(f"| `{rel}` | {_summary(path)} |")
    return "\n".join(rows)


def blocks() -> dict[Path, str]:
    return {ROOT / "README.md": tree(), ROOT / "docs" / "architecture.md": table()}


def current(path: Path) -> str:
    """What stands between the markers in ``path`` now."""
    start, end = TARGETS[path]
    text = path.read_text()
    return text.split(start, 1)[1].split(end, 1)[0].strip()


def write() -> None:
    for path, block in blocks().items():
        start, end = TARGETS[path]
        text = path.read_text()
        head, rest = text.split(start, 1)
        tail = rest.split(end, 1)[1]
        path.write_text(f"{head}{start}\n{block}\n{end}{tail}")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    write() if "--check" not in sys.argv else print(all(current(p) == b for p, b in blocks().items()))
