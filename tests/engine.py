"""A real Redis (or Valkey) engine and real ``volli-signal`` processes for signaling tests."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conftest import require

from volli_nb.lab.redis_engine import Engine, engine_binary

__all__ = ["Engine", "engine", "require_engine", "signal_processes"]


def require_engine() -> None:
    """Fail under CI, skip elsewhere, when no engine is installed."""
    require(engine_binary() is not None, "no redis-server (apt-get install redis-server)")


@contextmanager
def engine(workdir: Path) -> Iterator[Engine]:
    require_engine()
    with Engine(workdir) as running:
        yield running


@dataclass
class SignalProcess:
    proc: subprocess.Popen[str]
    url: str

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)


@contextmanager
def signal_processes(redis_url: str, n: int, *extra: str) -> Iterator[list[SignalProcess]]:
    """``n`` real ``volli-signal --redis`` processes on one engine."""
    procs: list[SignalProcess] = []
    try:
        for _ in range(n):
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "volli_nb.net.signaling.server", "--port", "0"),
                    *("--redis", redis_url, *extra),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdout is not None
            line = proc.stdout.readline()
            found = re.search(r"(wss?://\S+)", line)
            if not found:
                proc.kill()
                raise RuntimeError(f"volli-signal did not start: {line!r}")
            procs.append(SignalProcess(proc, found.group(1)))
        yield procs
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.terminate()
        for p in procs:
            try:
                p.proc.wait(10)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()
