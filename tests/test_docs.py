"""The docs follow the tree: the README's map and docs/architecture.md's table are what
``tools/architecture.py`` makes from the package, so a module missing from them fails here.
The README stays a five-minute read whose links all lead somewhere."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import volli_nb

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
sys.path.insert(0, str(ROOT / "tools"))
import architecture  # noqa: E402  (tools/ is not a package)

PACKAGE = Path(volli_nb.__file__).parent
REGENERATE = "out of date: run .venv/bin/python tools/architecture.py"


def mapped(block: str) -> set[str]:
    """``folder/module`` for every module the README's map names."""
    found: set[str] = set()
    parents: list[str] = []
    for line in block.splitlines():
        match = re.match(r"^([│ ]*)[├└]── (\w+)/\s*(.*)$", line)
        if match:
            depth = len(match.group(1)) // 4
            parents = [*parents[:depth], match.group(2)]
            names = match.group(3).split()
        elif parents and line.startswith(("│", " ")) and "──" not in line:
            names = line.split()[1:] if line.startswith("│") else line.split()
        else:
            continue
        found |= {"/".join([*parents, name]) for name in names}
    return found


def modules(package: Path) -> set[str]:
    return {
        p.relative_to(package).with_suffix("").as_posix()
        for p in package.rglob("*.py")
        if p.name != "__init__.py" and p.parent != package
    }


def test_every_module_is_on_the_readme_map() -> None:
    on_map = mapped(architecture.current(README))
    assert modules(PACKAGE) - on_map == set(), f"missing from the README's map, {REGENERATE}"
    assert on_map - modules(PACKAGE) == set(), f"on the map but gone, {REGENERATE}"


def test_the_map_and_the_module_table_are_what_the_package_generates() -> None:
    for path, block in architecture.blocks().items():
        assert architecture.current(path) == block, f"{path.name}: {REGENERATE}"


def test_the_checks_fail_for_a_new_module(tmp_path: Path) -> None:
    copy = tmp_path / "volli_nb"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "net" / "planted.py").write_text('"""A module nobody documented."""\n')
    block = architecture.tree(PACKAGE)
    assert modules(copy) - mapped(block) == {"net/planted"}
    assert architecture.tree(copy) != block
    assert "`net/planted.py` | A module nobody documented. |" in architecture.table(copy)


def test_quick_start_is_the_two_commands() -> None:
    text = README.read_text()
    quick = text.split("## Quick start", 1)[1]
    first_block = quick.split("```", 2)[1]
    assert first_block.splitlines()[1:] == ["make demo", "make test"]


def test_the_readme_stays_short_and_points_to_docs() -> None:
    text = README.read_text()
    assert len(text.split()) < 1800, "long material belongs in docs/"
    for doc in (ROOT / "docs").glob("*.md"):
        assert f"(docs/{doc.name})" in text, f"the README does not point to docs/{doc.name}"


def test_the_readme_names_every_debian_package_ci_installs() -> None:
    """A new user installs what the README lists; CI installs what .ci/run lists."""
    script = (ROOT / ".ci" / "run").read_text()
    found = re.search(r"apt-get install[^\n]*\\\n([^>\n]*)", script)
    assert found is not None, "no apt-get install line in .ci/run"
    packages = found.group(1).split()
    requirements = README.read_text().split("Requirements:", 1)[1].split("\n\n", 1)[0]
    named = set(re.findall(r"[\w.+-]+", requirements))
    assert {p for p in packages if p not in named} == set()
    assert "redis-server" in packages and "chromium-driver" in packages


def test_relative_links_in_readme_and_docs_lead_somewhere() -> None:
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        prose = re.sub(r"`[^`\n]*`", "", page.read_text())  # code is not a link
        for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", prose):
            assert (page.parent / link).exists(), f"{page.name} links to missing {link}"
