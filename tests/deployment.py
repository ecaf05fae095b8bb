"""Start the shipped deployment (deploy/): coturn from turnserver.conf and volli-signal
from its systemd unit's ExecStart and environment file, changing only addresses, ports,
paths, certificates and the secret — so the files users copy are the files tested."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import require
from coturn import stop
from tls_ca import Pki

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def adjusted(text: str, changes: dict[str, str], extra: dict[str, str] | None = None) -> str:
    """``text`` (key=value lines) with each key in ``changes`` set; every such key must
    already be there once, so the shipped file cannot drift from what is tested."""
    out = text
    for key, value in changes.items():
        pattern = re.compile(rf"^{re.escape(key)}=.*$", re.M)
        assert len(pattern.findall(out)) == 1, f"{key}= is not in the shipped file once"
        out = pattern.sub(lambda _m, k=key, v=value: f"{k}={v}", out)
    return out + "".join(f"{k}={v}\n" for k, v in (extra or {}).items())


def _wait_for(path: Path, marker: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if path.exists() and marker in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            text = path.read_text(errors="replace") if path.exists() else ""
            raise RuntimeError(f"{what} exited: {text[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start: {path.read_text(errors='replace')[-2000:]}")


@contextmanager
def shipped_coturn(tmp: Path, netns: str, ip: str, pki: Pki, secret: str) -> Iterator[Path]:
    """coturn with deploy/turnserver.conf, on 443 of ``ip`` inside ``netns``."""
    require(shutil.which("turnserver") is not None, "coturn is missing (apt-get install coturn)")
    log = tmp / "turnserver.log"
    conf = tmp / "turnserver.conf"
    conf.write_text(
        adjusted(
            (DEPLOY / "turnserver.conf").read_text(),
            {
                "listening-ip": ip,
                "relay-ip": ip,
                "external-ip": ip,
                "min-port": "49152",
                "max-port": "49352",
                "cert": str(pki.cert),
                "pkey": str(pki.key),
                "static-auth-secret": secret,
                "log-file": str(log),
            },
            {"pidfile": str(tmp / "turnserver.pid"), "userdb": str(tmp / "turndb")},
        )
    )
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, "turnserver", "-c", str(conf), "--no-stdout-log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(log, "Total General servers", proc, "turnserver")
        yield log
    finally:
        stop(proc)


def signal_command(env: dict[str, str]) -> list[str]:
    """The unit's ExecStart, expanded as systemd does (``${X}`` one word, ``$X`` split)."""
    unit = (DEPLOY / "volli-signal.service").read_text()
    (line,) = re.findall(r"^ExecStart=(.*)$", unit, re.M)
    words: list[str] = []
    for word in shlex.split(line):
        if re.fullmatch(r"\$[A-Z_]+", word):
            words += env[word[1:]].split()
        else:
            words.append(re.sub(r"\$\{([A-Z_]+)\}", lambda m: env[m.group(1)], word))
    assert words[0] == "/opt/volli/bin/volli-signal"
    return [str(Path(sys.executable).parent / "volli-signal"), *words[1:]]


def shipped_env(**changes: str) -> dict[str, str]:
    text = adjusted((DEPLOY / "volli-signal.env").read_text(), changes)
    return dict(re.findall(r"^([A-Z_]+)=(.*)$", text, re.M))


@contextmanager
def shipped_signal(tmp: Path, netns: str, env: dict[str, str]) -> Iterator[str]:
    """volli-signal as its unit starts it, inside ``netns``; yields its wss:// URL."""
    out = tmp / f"signal-{time.monotonic_ns()}.log"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, *signal_command(env)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={"VOLLI_TURN_SECRET": env["VOLLI_TURN_SECRET"], "PATH": "/usr/bin:/bin"},
        )
    try:
        _wait_for(out, "volli-signal listening on", proc, "volli-signal")
        yield f"wss://{env['VOLLI_SIGNAL_HOST']}:443"
    finally:
        stop(proc)
