"""Start and stop a real coturn (`turnserver`) for TURN tests."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conftest import require
from tls_ca import Pki

USER, PASSWORD, REALM = "volli", "relay-secret", "volli.test"


@dataclass(frozen=True)
class Turn:
    host: str
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"turn:{self.host}:{self.port}"

    def url_for(self, scheme: str = "turn", transport: str = "udp") -> str:
        return f"{scheme}:{self.host}:{self.port}?transport={transport}"


SERVICE_PORTS = range(20_000, 32_000)  # below Linux's ephemeral range (32768-60999)


def free_service_port(host: str = "127.0.0.1") -> int:
    """A port free for UDP *and* TCP (coturn listens on both), outside the ephemeral range.

    A port the kernel handed out for UDP (bind to 0) could be in use for TCP, often by
    an outgoing connection's ephemeral port: coturn then loops retrying its TCP bind and
    answered nothing within a test's 5 s (seen once in a clean-clone run)."""
    for port in random.sample(SERVICE_PORTS, 200):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((host, port))
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                    tcp.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no port in {SERVICE_PORTS} is free for UDP and TCP on {host}")


@contextmanager
def coturn(
    tmp: Path,
    host: str = "127.0.0.1",
    *,
    netns: str | None = None,
    relay_ports: int = 100,
    auth_secret: str | None = None,
    tls: Pki | None = None,
) -> Iterator[Turn]:
    """``auth_secret``: coturn's ``use-auth-secret`` (time-limited credentials) instead of
    the fixed USER/PASSWORD.  ``tls``: TLS on the same port as UDP and TCP (as on 443)."""
    require(
        shutil.which("turnserver") is not None, "coturn is not installed (apt-get install coturn)"
    )
    port = free_service_port(host) if netns is None else 3478
    low = 49152 + (port % 100) * relay_ports
    log = tmp / f"turnserver-{port}.log"
    empty = tmp / "turnserver.conf"  # not Debian's /etc/turnserver.conf
    empty.write_text("")
    cmd = [
        "turnserver",
        "-n",
        f"--listening-ip={host}",
        f"--listening-port={port}",
        f"--relay-ip={host}",
        "--allow-loopback-peers",
        *(
            ("--use-auth-secret", f"--static-auth-secret={auth_secret}")
            if auth_secret
            else ("--lt-cred-mech", f"--user={USER}:{PASSWORD}")
        ),
        f"--realm={REALM}",
        *(
            (f"--tls-listening-port={port}", f"--cert={tls.cert}", f"--pkey={tls.key}")
            if tls
            else ("--no-tls",)
        ),
        "--no-dtls",
        "--no-cli",
        "--fingerprint",
        f"--min-port={low}",
        f"--max-port={low + relay_ports - 1}",
        f"--pidfile={tmp / 'turnserver.pid'}",
        f"--db={tmp / 'turndb'}",
        f"--log-file={log}",
        "--simple-log",
        "--no-stdout-log",
    ]
    if netns is not None:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            if "Cannot bind" in text and "listener socket" in text:  # it would loop, mute
                raise RuntimeError(f"turnserver cannot listen on {port}: {text[-600:]}")
            if "Total General servers" in text:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"turnserver exited: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        yield Turn(host, port, log)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
