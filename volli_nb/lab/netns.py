"""Run a command inside a throwaway network namespace that nothing can leave.

The namespace holds loopback and one veth pair whose both ends stay inside it
(10.203.0.1/24 on ``v0``), plus a default route through ``v0`` like a
desktop's.  ICE, which skips 127.0.0.1 when it gathers host candidates, still
finds an address, and whatever is sent towards the world reaches ``v1``, which
has no address, and goes no further.  Needs root and iproute2; the namespace
is removed afterwards, with every process still in it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence

ENV_MARK = "VOLLI_NETNS"
ADDRESS = "10.203.0.1"


def can_create() -> tuple[bool, str]:
    """Whether this process may create namespaces, and if not, why."""
    if os.geteuid() != 0:
        return False, "needs root (ip netns add)"
    if shutil.which("ip") is None:
        return False, "needs iproute2 (apt-get install -y iproute2)"
    return True, ""


def ip(*args: str) -> None:
    """Run one ``ip`` command; a failure raises CalledProcessError (its message on stderr)."""
    subprocess.run(["ip", *args], check=True)


def _setup(name: str) -> None:
    ip("netns", "add", name)
    ip("-n", name, "link", "set", "lo", "up")
    ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    ip("-n", name, "addr", "add", f"{ADDRESS}/24", "dev", "v0")
    ip("-n", name, "link", "set", "v0", "up")
    ip("-n", name, "link", "set", "v1", "up")
    ip("-n", name, "route", "add", "default", "dev", "v0")


def teardown(name: str) -> None:
    """Kill whatever runs in namespace ``name``, then delete it."""
    pids = subprocess.run(
        ["ip", "netns", "pids", name], capture_output=True, text=True, check=False
    ).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def run(command: Sequence[str]) -> int:
    """Run ``command`` inside a fresh namespace; return its exit code."""
    ok, why = can_create()
    if not ok:
        raise PermissionError(f"volli-nb netns: {why}")
    name = f"volli-{os.getpid()}-{secrets.token_hex(3)}"
    _setup(name)
    try:
        env = dict(os.environ, **{ENV_MARK: name})
        proc = subprocess.Popen(["ip", "netns", "exec", name, *command], env=env)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            return proc.wait()
    finally:
        teardown(name)


def main(argv: Sequence[str], *, if_root: bool = False) -> int:
    """``volli-nb netns [--if-root] -- CMD``: with ``--if-root``, run CMD directly when
    namespaces are unavailable (networked tests then keep to loopback or skip)."""
    if not argv:
        print("usage: volli-nb netns [--if-root] -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    ok, why = can_create()
    if not ok:
        if not if_root:
            print(f"volli-nb netns: {why}", file=sys.stderr)
            return 2
        print(f"volli-nb netns: {why}; running without a namespace", file=sys.stderr)
        return subprocess.call(list(argv))
    return run(argv)
