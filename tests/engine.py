"""A real Redis (or Valkey) engine and real ``volli-signal`` processes for signaling tests.

The engine listens on 127.0.0.1 on a random port with no persistence, so a
restart loses everything, as the backplane's recovery must expect.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from conftest import require


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def engine_binary() -> str:
    found = shutil.which("valkey-server") or shutil.which("redis-server")
    require(found is not None, "redis-server is not installed (apt-get install redis-server)")
    assert found is not None
    return found


@dataclass
class Engine:
    workdir: Path
    port: int = field(default_factory=free_tcp_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Engine:
        self.proc = subprocess.Popen(
            [
                *(engine_binary(), "--bind", "127.0.0.1", "--port", str(self.port)),
                *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
                *("--logfile", str(self.workdir / f"engine-{self.port}.log")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the engine did not start: {self.log()[-2000:]}")
            time.sleep(0.02)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the engine abruptly (SIGKILL): its state is gone, as after a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log(self) -> str:
        path = self.workdir / f"engine-{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def engine(workdir: Path) -> Iterator[Engine]:
    running = Engine(workdir).start()
    try:
        yield running
    finally:
        running.stop()


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
