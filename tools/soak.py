"""Run the test suite N times and print a table of failures per test (``make soak-tests``).

A flaky test is a bug; this is how to find one.  Some runs can compete with a CPU hog
(the CI machine has two cores and nothing else), one can run in a shuffled order to find
order dependence, and ``--clean-clone`` runs ``make test`` in a fresh clone of HEAD each
time, as CI does.  Not part of ``make test``: it takes N times as long.

    python tools/soak.py -n 5 --hog 2 --shuffle 1        # runs 1-2 hogged, run 3 shuffled
    python tools/soak.py -n 3 -- -m network -x           # extra pytest arguments
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOG = "while True: pass"


@dataclass
class Run:
    number: int
    kind: str
    seconds: float = 0.0
    exit_code: int = 0
    tests: int = 0
    failed: list[str] = field(default_factory=list)


def failures(report: Path) -> tuple[int, list[str]]:
    """(tests run, ids of failed or errored tests) from a JUnit XML report."""
    if not report.exists():
        return 0, ["<no report: the run did not reach pytest>"]
    tree = ET.parse(report)
    cases = list(tree.iter("testcase"))
    bad = [
        f"{case.get('classname', '')}::{case.get('name', '')}"
        for case in cases
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return len(cases), bad


def one_run(number: int, kind: str, args: argparse.Namespace, extra: list[str]) -> Run:
    run = Run(number, kind)
    hogs: list[subprocess.Popen[bytes]] = []
    if "hog" in kind:
        hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(args.hog_procs)]
    report = Path(tempfile.mkdtemp(prefix="volli-soak-")) / "report.xml"
    pytest_args = ["-q", "-p", "no:cacheprovider", f"--junitxml={report}", *extra]
    if "shuffle" in kind:
        pytest_args.append(f"--shuffle-seed={number}")
    env = {**os.environ, "CI": os.environ.get("CI", "true")}
    started = time.monotonic()
    try:
        if args.clean_clone:
            where = Path(tempfile.mkdtemp(prefix="volli-soak-clone-")) / "main"
            subprocess.run(["git", "clone", "-q", str(ROOT), str(where)], check=True)
            if (ROOT.parent / "shared").exists() and not (where.parent / "shared").exists():
                (where.parent / "shared").symlink_to(ROOT.parent / "shared")
            subprocess.run([str(where / ".ci" / "fetch-wheels")], check=True)  # as .ci/run
            cmd = ["make", "test", f"PYTEST_ARGS={' '.join(pytest_args)}"]
            run.exit_code = subprocess.run(cmd, cwd=where, env=env).returncode
        else:
            bin_dir = Path(sys.executable).parent
            cmd = [str(bin_dir / "volli-nb"), "netns", "--if-root", "--"]
            cmd += [sys.executable, "-m", "pytest", *pytest_args]
            run.exit_code = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    run.seconds = time.monotonic() - started
    run.tests, run.failed = failures(report)
    return run


def table(runs: list[Run]) -> str:
    per_test: dict[str, list[int]] = defaultdict(list)
    for run in runs:
        for test in run.failed:
            per_test[test].append(run.number)
    lines = ["run  kind            tests  failed  exit  seconds"]
    for r in runs:
        lines.append(
            f"{r.number:>3}  {r.kind:<14} {r.tests:>6}  {len(r.failed):>6}  {r.exit_code:>4}"
            f"  {r.seconds:>7.0f}"
        )
    lines.append("")
    if not per_test:
        lines.append(f"failures per test: none in {len(runs)} runs")
    else:
        lines.append(f"failures per test ({len(runs)} runs)")
        width = max(len(t) for t in per_test)
        for test, numbers in sorted(per_test.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            where = ", ".join(map(str, numbers))
            lines.append(f"  {test:<{width}}  {len(numbers)}/{len(runs)}  (runs {where})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="number of runs")
    parser.add_argument(
        "--hog", type=int, default=0, help="how many runs (the first ones) compete with a CPU hog"
    )
    parser.add_argument("--hog-procs", type=int, default=1, help="busy processes per hog")
    parser.add_argument(
        "--shuffle",
        type=int,
        default=0,
        help="how many runs (after the hogged ones) shuffle the test order",
    )
    parser.add_argument("--clean-clone", action="store_true", help="make test in a fresh clone")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    runs: list[Run] = []
    for number in range(1, args.n + 1):
        kind = "plain"
        if number <= args.hog:
            kind = "hog"
        elif number <= args.hog + args.shuffle:
            kind = "shuffle"
        print(f"soak: run {number}/{args.n} ({kind})", file=sys.stderr, flush=True)
        runs.append(one_run(number, kind, args, extra))
        print(table(runs), file=sys.stderr, flush=True)
    print(table(runs))
    return 0 if all(not r.failed and r.exit_code == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
