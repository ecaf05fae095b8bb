"""Would today's releases break us?  `make test-latest`, not part of CI.

Tests and CI install the exact versions of ``requirements/lock.txt``; users who
``pip install volli_nb`` get the newest versions ``pyproject.toml`` allows.  This installs
those newest versions into a throwaway venv, says which differ from the lock, and runs ruff,
mypy and the pure-core tests there, so a drift is found by one command, not by a red CI.

The pure-core tests are the test files that import nothing of volli_nb above ``core`` and
``base``: they need no network, no namespace and no browser.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
IMPORT = re.compile(r"^\s*(?:from|import)\s+volli_nb\.(\w+)", re.M)
PURE = {"core", "base"}


def pure_core_tests() -> list[Path]:
    """Test files whose volli_nb imports all stay in the pure layers."""
    found = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        layers = set(IMPORT.findall(path.read_text(encoding="utf-8")))
        if layers and layers <= PURE:
            found.append(path)
    return found


def pins(text: str) -> dict[str, str]:
    """``name==version`` lines (markers dropped; the first pin of a name wins)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            out.setdefault(m.group(1).lower().replace("_", "-"), m.group(2))
    return out


def step(name: str, cmd: list[str], results: list[tuple[str, int, float]]) -> None:
    print(f"\n== {name}: {' '.join(cmd)}", flush=True)
    start = time.monotonic()
    code = subprocess.call(cmd, cwd=ROOT)
    results.append((name, code, time.monotonic() - start))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the throwaway venv")
    args = parser.parse_args()
    uv = Path(sys.executable).parent / "uv"
    work = Path(tempfile.mkdtemp(prefix="volli-latest-"))
    venv = work / "venv"
    py = venv / "bin" / "python"
    subprocess.check_call([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    subprocess.check_call(
        [str(uv), "pip", "install", "--python", str(py), "--resolution", "highest",
         "--refresh", "-e", ".[dev]"],
        cwd=ROOT,
    )
    frozen = subprocess.run(
        [str(uv), "pip", "freeze", "--python", str(py)], capture_output=True, text=True, check=True
    ).stdout
    locked, newest = pins(LOCK.read_text(encoding="utf-8")), pins(frozen)
    drift = sorted(
        (name, locked.get(name, "-"), version)
        for name, version in newest.items()
        if name != "volli-nb" and locked.get(name) != version
    )
    print(f"\n== {len(drift)} packages newer than (or missing from) the lock:")
    for name, old, new in drift:
        print(f"  {name:32} {old:>14} -> {new}")

    results: list[tuple[str, int, float]] = []
    bin_ = venv / "bin"
    step("ruff", [str(bin_ / "ruff"), "check", "volli_nb", "tests"], results)
    step("mypy", [str(bin_ / "mypy"), "--python-executable", str(py)], results)
    tests = [str(p.relative_to(ROOT)) for p in pure_core_tests()]
    step("pure-core tests", [str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
         results)

    print("\n== test-latest: what the newest allowed releases do")
    for name, code, seconds in results:
        print(f"  {name:16} {'ok' if code == 0 else f'FAILED (exit {code})':>18}  {seconds:6.1f} s")
    failed = [name for name, code, _ in results if code]
    if failed:
        print("  a release allowed by pyproject.toml breaks " + ", ".join(failed)
              + ": fix the code (or narrow the range), then `make lock` in its own commit")
    if not args.keep:
        subprocess.call(["rm", "-rf", str(work)])
    else:
        print(f"  venv kept at {venv}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
