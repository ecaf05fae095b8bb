"""Namespaces like two Binder pods and a server: the pods' only way out is TCP 443.

    peer A (10.1.0.2) ──┐                                   ┌── peer B (10.2.0.2)
                        └── server: 203.0.113.1 (coturn)  ──┘
                                    203.0.113.2 (volli-signal)

iptables in each peer's namespace drops every packet leaving it except TCP to port 443 of
the server's two addresses (and loopback); IPv6 is off there.  The server does not
forward, so the peers cannot reach each other except through the TURN relay.  The
server's addresses are TEST-NET-3 (RFC 5737), which the shipped coturn configuration
does not deny as peers (it denies private ranges), and which never leave these namespaces.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from conftest import require
from topology import remove, sh

TURN_IP, SIGNAL_IP = "203.0.113.1", "203.0.113.2"


@dataclass(frozen=True)
class Egress:
    peer_a: str
    peer_b: str
    server: str

    @staticmethod
    def exec_prefix(ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]


def _wire(server: str, peer: str, subnet: str) -> None:
    sh("ip", "-n", server, "link", "add", peer[-2:], "type", "veth", "peer", "name", "eth0",
       "netns", peer)  # fmt: skip
    sh("ip", "-n", server, "addr", "add", f"{subnet}.1/24", "dev", peer[-2:])
    sh("ip", "-n", peer, "addr", "add", f"{subnet}.2/24", "dev", "eth0")
    sh("ip", "-n", server, "link", "set", peer[-2:], "up")
    sh("ip", "-n", peer, "link", "set", "eth0", "up")
    sh("ip", "-n", peer, "route", "add", "default", "via", f"{subnet}.1")


def _only_tcp_443_out(peer: str) -> None:
    run = ["ip", "netns", "exec", peer]
    sh(*run, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
    sh(*run, "iptables", "-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT")
    for ip in (TURN_IP, SIGNAL_IP):
        sh(*run, "iptables", "-A", "OUTPUT", "-p", "tcp", "-d", ip, "--dport", "443",
           "-j", "ACCEPT")  # fmt: skip
    sh(*run, "iptables", "-P", "OUTPUT", "DROP")


@contextmanager
def egress_topology() -> Iterator[Egress]:
    require(os.geteuid() == 0, "needs root to create network namespaces")
    require(shutil.which("iptables") is not None, "needs iptables (apt-get install iptables)")
    tag = secrets.token_hex(2)
    topo = Egress(f"vb{tag}pa", f"vb{tag}pb", f"vb{tag}sv")
    names = [topo.peer_a, topo.peer_b, topo.server]
    try:
        for ns in names:
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for ip in (TURN_IP, SIGNAL_IP):
            sh("ip", "-n", topo.server, "addr", "add", f"{ip}/32", "dev", "lo")
        _wire(topo.server, topo.peer_a, "10.1.0")
        _wire(topo.server, topo.peer_b, "10.2.0")
        for peer in (topo.peer_a, topo.peer_b):
            _only_tcp_443_out(peer)
        yield topo
    finally:
        remove(names)
