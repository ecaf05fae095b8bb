"""Throwaway network namespaces wired as two NATed LANs and a public segment.

    peer A (10.1.0.2) ── router A ──┐                 ┌── router B ── peer B (10.2.0.2)
                       NAT 10.9.1.2 └── public 10.9.0.1 (coturn) ──┘ NAT 10.9.2.2

Routers masquerade with ``--random-fully`` (symmetric NAT: a new mapping per
destination), so server-reflexive candidates do not connect and only a TURN
relay does.  Every address lives inside namespaces this module creates.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from conftest import require

PUBLIC = "10.9.0.1"


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@dataclass(frozen=True)
class Topology:
    peer_a: str
    peer_b: str
    router_a: str
    router_b: str
    public: str

    def exec_prefix(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]


def _link(ns1: str, if1: str, addr1: str, ns2: str, if2: str, addr2: str) -> None:
    sh("ip", "-n", ns1, "link", "add", if1, "type", "veth", "peer", "name", if2, "netns", ns2)
    sh("ip", "-n", ns1, "addr", "add", addr1, "dev", if1)
    sh("ip", "-n", ns2, "addr", "add", addr2, "dev", if2)
    sh("ip", "-n", ns1, "link", "set", if1, "up")
    sh("ip", "-n", ns2, "link", "set", if2, "up")


@contextmanager
def nat_topology() -> Iterator[Topology]:
    require(os.geteuid() == 0, "needs root to create network namespaces")
    require(shutil.which("iptables") is not None, "needs iptables (apt-get install iptables)")
    tag = secrets.token_hex(2)
    t = Topology(*(f"vn{tag}{n}" for n in ("pa", "pb", "ra", "rb", "pub")))
    names = [t.peer_a, t.peer_b, t.router_a, t.router_b, t.public]
    try:
        for ns in names:
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", t.public, "addr", "add", f"{PUBLIC}/32", "dev", "lo")
        _link(t.public, "pa", "10.9.1.1/24", t.router_a, "out", "10.9.1.2/24")
        _link(t.public, "pb", "10.9.2.1/24", t.router_b, "out", "10.9.2.2/24")
        _link(t.router_a, "in", "10.1.0.1/24", t.peer_a, "eth0", "10.1.0.2/24")
        _link(t.router_b, "in", "10.2.0.1/24", t.peer_b, "eth0", "10.2.0.2/24")
        sh("ip", "-n", t.peer_a, "route", "add", "default", "via", "10.1.0.1")
        sh("ip", "-n", t.peer_b, "route", "add", "default", "via", "10.2.0.1")
        sh("ip", "-n", t.router_a, "route", "add", "default", "via", "10.9.1.1")
        sh("ip", "-n", t.router_b, "route", "add", "default", "via", "10.9.2.1")
        for ns in (t.router_a, t.router_b, t.public):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for ns in (t.router_a, t.router_b):
            sh(
                "ip",
                "netns",
                "exec",
                ns,
                "iptables",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-o",
                "out",
                "-j",
                "MASQUERADE",
                "--random-fully",
            )
        yield t
    finally:
        remove(names)


def remove(names: list[str]) -> None:
    """Kill what runs in each namespace (the test started it all), then delete it."""
    for ns in names:
        pids = subprocess.run(
            ["ip", "netns", "pids", ns], capture_output=True, text=True
        ).stdout.split()
        for pid in pids:
            subprocess.run(["kill", "-9", pid], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@contextmanager
def namespace() -> Iterator[str]:
    """One throwaway namespace like `volli-nb netns` makes: lo plus v0 (10.203.0.1)."""
    require(os.geteuid() == 0, "needs root to create network namespaces")
    require(shutil.which("iptables") is not None, "needs iptables (apt-get install iptables)")
    ns = f"vn{secrets.token_hex(3)}"
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        sh("ip", "-n", ns, "addr", "add", "10.203.0.1/24", "dev", "v0")
        sh("ip", "-n", ns, "link", "set", "v0", "up")
        sh("ip", "-n", ns, "link", "set", "v1", "up")
        yield ns
    finally:
        remove([ns])
