"""Issue 15 acceptance: two kernels on two machines, pairing through TURN on 443.

Two peers, each in its own namespace whose only way out is TCP 443 to a third namespace
(iptables), where the shipped deployment runs: coturn from ``deploy/turnserver.conf``
with TLS (a CA made by the test) and ``volli-signal`` from its systemd unit over
``wss://``.  The peers join a room, get TURN credentials from the server, pair
relay-only and exchange messages; then each failure a user meets is a typed error.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from deployment import shipped_coturn, shipped_env, shipped_signal
from egress import SIGNAL_IP, TURN_IP, Egress, egress_topology
from test_network import arun
from tls_ca import Pki, make_pki

from volli_nb.lab.peer_handle import PeerProcess
from volli_nb.net.signaling.turn import TurnIssuer

pytestmark = [pytest.mark.network, pytest.mark.slow]

SECRET = "deployment-test-secret"
TLS_URL = f"turns:{TURN_IP}:443?transport=tcp"
TCP_URL = f"turn:{TURN_IP}:443?transport=tcp"
UDP_URL = f"turn:{TURN_IP}:443?transport=udp"
PAIR_TIMEOUT = 30.0


@dataclass(frozen=True)
class Site:
    topo: Egress
    pki: Pki
    tmp: Path

    def env(self, *urls: str, ttl: float = 3600) -> dict[str, str]:
        return shipped_env(
            VOLLI_SIGNAL_HOST=SIGNAL_IP,
            VOLLI_SIGNAL_CERT=str(self.pki.cert),
            VOLLI_SIGNAL_KEY=str(self.pki.key),
            VOLLI_TURN_SECRET=SECRET,
            VOLLI_TURN_URLS=" ".join(f"--turn-url {u}" for u in urls),
            VOLLI_TURN_TTL=f"{ttl:g}",
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("deploy")
    pki = make_pki(tmp, ips=(TURN_IP, SIGNAL_IP))
    with egress_topology() as topo, shipped_coturn(tmp, topo.server, TURN_IP, pki, SECRET):
        yield Site(topo, pki, tmp)


@asynccontextmanager
async def peers(site: Site, tag: str) -> AsyncIterator[tuple[PeerProcess, PeerProcess]]:
    a, b = (
        PeerProcess(
            str(site.tmp / f"{name}-{tag}.sqlite"),
            name,
            loopback=False,
            prefix=site.topo.exec_prefix(ns),
            extra=["--relay-only"],
        )
        for name, ns in (("alice", site.topo.peer_a), ("bob", site.topo.peer_b))
    )
    await asyncio.gather(a.start(), b.start())
    try:
        yield a, b
    finally:
        await asyncio.gather(a.quit(), b.quit())


async def exchange(a: PeerProcess, b: PeerProcess) -> None:
    """Messages both ways, each acknowledged (a signed ACK back over the relay)."""
    for sender, receiver, text in ((a, b, "over 443"), (b, a, "and back")):
        sent = await sender.request("send", to=receiver.peer_id, text=text)
        await receiver.wait_event("received", timeout=PAIR_TIMEOUT, text=text)
        await sender.wait_event("delivered", timeout=PAIR_TIMEOUT, message_id=sent["message_id"])


async def connected(a: PeerProcess, b: PeerProcess) -> list[dict[str, object]]:
    """Both sides' view once connected: selected pair types and the TURN URL used."""

    async def wait(me: PeerProcess, other: PeerProcess) -> dict[str, object]:
        return await me.request(
            "wait_connected",
            reply_timeout=PAIR_TIMEOUT + 5,
            peer_id=other.peer_id,
            timeout=PAIR_TIMEOUT,
        )

    return list(await asyncio.gather(wait(a, b), wait(b, a)))


async def join_and_pair(
    a: PeerProcess, b: PeerProcess, url: str, ca: str
) -> list[dict[str, object]]:
    for peer in (a, b):
        await peer.request("join", room="class", url=url, ssl=ca)
    return await connected(a, b)


@pytest.mark.parametrize("turn_url", [TLS_URL, TCP_URL], ids=["turn-tls", "turn-tcp"])
def test_two_pods_pair_relay_only_through_turn_on_443(site: Site, turn_url: str) -> None:
    async def main() -> None:
        with shipped_signal(site.tmp, site.topo.server, site.env(turn_url)) as url:
            async with peers(site, turn_url[:5]) as (a, b):
                results = await join_and_pair(a, b, url, str(site.pki.ca))
                for result in results:
                    assert result["selected"] == ["relay", "relay"]
                    assert result["turn"] == turn_url  # the server's URL, checked by preflight
                    assert str(result["turn_username"]).split(":")[1] in (a.peer_id, b.peer_id)
                await exchange(a, b)

    arun(main, timeout=120)


def test_both_urls_from_the_server_the_preflight_keeps_one_that_works(site: Site) -> None:
    """The deployment's own pair of URLs (TLS and TCP on 443): aiortc would use only the
    first; the preflight tries both and hands aiortc the faster."""

    async def main() -> None:
        with shipped_signal(site.tmp, site.topo.server, site.env(TLS_URL, TCP_URL)) as url:
            async with peers(site, "both") as (a, b):
                results = await join_and_pair(a, b, url, str(site.pki.ca))
                assert {r["turn"] for r in results} <= {TLS_URL, TCP_URL}
                report = await a.request("preflight")
                assert report["chosen"] in (TLS_URL, TCP_URL) and report["failure"] is None
                await exchange(a, b)

    arun(main, timeout=120)


def test_credentials_that_expire_while_joined_are_renewed_and_still_pair(site: Site) -> None:
    """volli-signal with a 3 s TTL renews at half-life: alice stays joined past her first
    credentials' expiry (plus coturn's second of slack), then bob joins and they pair."""
    ttl = 3.0

    async def main() -> None:
        with shipped_signal(site.tmp, site.topo.server, site.env(TLS_URL, ttl=ttl)) as url:
            async with peers(site, "ttl") as (a, b):
                await a.request("join", room="class", url=url, ssl=str(site.pki.ca))
                first = await a.request("turn")
                assert first["username"] is not None
                while time.time() < float(first["expires"]) + 2:
                    await asyncio.sleep(0.25)
                await b.request("join", room="class", url=url, ssl=str(site.pki.ca))
                results = await connected(a, b)
                assert results[0]["selected"] == ["relay", "relay"]
                assert results[0]["turn_username"] != first["username"]  # renewed ones
                assert int(str(results[0]["turn_username"]).split(":")[0]) > time.time()
                await exchange(a, b)

    arun(main, timeout=120)


def _server(url: str, username: str, credential: str, ca: str | None) -> dict[str, object]:
    return {"urls": url, "username": username, "credential": credential, "ca": ca}


def test_each_failure_behind_the_443_egress_is_a_typed_error_saying_what_to_fix(
    site: Site,
) -> None:
    issuer = TurnIssuer(SECRET, (TLS_URL,), ttl=600)
    ca = str(site.pki.ca)

    async def main() -> None:
        with shipped_signal(site.tmp, site.topo.server, site.env(TLS_URL)) as url:
            async with peers(site, "neg") as (a, _b):
                good = issuer.issue(a.peer_id, time.time())
                old = issuer.issue(a.peer_id, time.time() - 3600)
                cases = [
                    (_server(TLS_URL, good.username, good.credential, None),
                     "TurnCertificateError", "not trusted"),
                    (_server(TLS_URL, good.username, "wrong", ca),
                     "TurnAuthFailed", "refused the credentials"),
                    (_server(TLS_URL, old.username, old.credential, ca),
                     "TurnCredentialsExpired", "expired"),
                    (_server(UDP_URL, good.username, good.credential, None),
                     "TurnTimeout", "UDP is probably blocked.*transport=tcp"),
                ]  # fmt: skip
                for server, kind, message in cases:
                    report = await a.request("preflight", servers=[server])
                    assert report["chosen"] is None
                    assert str(report["failure"]).startswith(kind + ":"), report
                    assert re.search(message, str(report["failure"])), report
                udp_then_tls = [
                    _server(UDP_URL, good.username, good.credential, None),
                    _server(TLS_URL, good.username, good.credential, ca),
                ]
                report = await a.request("preflight", servers=udp_then_tls)
                assert report["chosen"] == TLS_URL  # not the UDP one aiortc would take
                assert report["checks"][0]["note"].startswith("not needed")
                with pytest.raises(RuntimeError, match=r"UntrustedServer: .*not trusted"):
                    await a.request("join", room="class", url=url)  # no CA for wss://
            udp_only = PeerProcess(  # relay-only with a UDP TURN URL: connecting says why not
                str(site.tmp / "udp.sqlite"),
                "udp",
                loopback=False,
                prefix=site.topo.exec_prefix(site.topo.peer_a),
                extra=[
                    "--relay-only",
                    "--ice-server",
                    f"{UDP_URL},{good.username},{good.credential}",
                ],
            )
            await udp_only.start()
            try:
                with pytest.raises(RuntimeError, match=r"TurnTimeout: .*UDP is probably blocked"):
                    await udp_only.request("create_code")
            finally:
                await udp_only.quit()

    arun(main, timeout=120)
