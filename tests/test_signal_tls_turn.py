"""Issue 15 item 3: ``volli-signal`` over ``wss://`` handing out coturn credentials.

A CA made by the test signs the server's certificate; a real coturn started
with ``use-auth-secret`` judges the credentials, through a real TURN
allocation (aioice's client), so "valid" means what coturn says.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import create_turn_endpoint
from coturn import Turn, coturn
from netutil import open_store
from test_network import arun
from test_signaling import Recorder, until
from tls_ca import make_pki

from volli_nb.core.crypto.identity import Identity
from volli_nb.net.signaling.cli import tls_context
from volli_nb.net.signaling.client import SignalingClient, UntrustedServer
from volli_nb.net.signaling.server import SignalingServer
from volli_nb.net.signaling.turn import TurnCredentials, TurnIssuer

pytestmark = pytest.mark.network

SECRET = "north-wind-secret"


async def allocates(turn: Turn, username: str, password: str) -> bool:
    """Whether coturn grants a relay allocation for these credentials."""
    try:
        transport, _ = await asyncio.wait_for(
            create_turn_endpoint(
                asyncio.DatagramProtocol, (turn.host, turn.port), username, password, lifetime=60
            ),
            5,
        )
    except stun.TransactionFailed:
        return False
    transport.close()
    return True


def tls_server(tmp_path: Path, **kwargs: object) -> SignalingServer:
    pki = make_pki(tmp_path)
    return SignalingServer(port=0, ssl_context=tls_context(str(pki.cert), str(pki.key)), **kwargs)  # type: ignore[arg-type]


def test_wss_with_the_right_ca_registers_and_joins(tmp_path: Path) -> None:
    async def main() -> None:
        async with tls_server(tmp_path) as server:
            assert server.url.startswith("wss://127.0.0.1:")
            client = SignalingClient(
                Identity.generate(), server.url, Recorder(), ssl=tmp_path / "ca.pem"
            )
            await client.connect()
            assert await client.join("lab") == []
            await client.close()

    arun(main)


def test_a_wss_certificate_the_client_does_not_trust_is_a_typed_error(tmp_path: Path) -> None:
    async def main() -> None:
        async with tls_server(tmp_path) as server:
            with pytest.raises(UntrustedServer, match=r"not trusted .*ssl='ca.pem'"):
                await SignalingClient(Identity.generate(), server.url, Recorder()).connect()
            wrong_name = server.url.replace("127.0.0.1", "localhost")  # the cert names the IP
            with pytest.raises(UntrustedServer, match="mismatch"):
                await SignalingClient(
                    Identity.generate(), wrong_name, Recorder(), ssl=tmp_path / "ca.pem"
                ).connect()
            store = open_store(tmp_path, "alice")
            with pytest.raises(UntrustedServer):
                await store.join("lab", server.url)
            await store.close()

    arun(main)


def test_turn_credentials_arrive_on_registration_and_coturn_accepts_them(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        with coturn(tmp_path, auth_secret=SECRET) as turn:
            issuer = TurnIssuer(SECRET, (turn.url, "turns:turn.example.org:443"), ttl=600)
            async with SignalingServer(port=0, turn=issuer) as server:
                got: list[TurnCredentials] = []
                client = SignalingClient(
                    Identity.generate(), server.url, Recorder(), on_turn=got.append
                )
                await client.connect()
                await client.join("lab")
                creds = client.turn
                assert creds is not None and got == [creds]
                assert creds.urls == (  # normalised: explicit transport
                    f"{turn.url}?transport=udp",
                    "turns:turn.example.org:443?transport=tcp",
                )
                assert creds.username.endswith(":" + client.identity.peer_id)
                assert 599 <= creds.remaining(time.time()) <= 600
                assert await allocates(turn, creds.username, creds.credential)
                forged = TurnIssuer("not-the-secret", (turn.url,)).issue("x" * 16, time.time())
                assert not await allocates(turn, forged.username, forged.credential)
                await client.close()

    arun(main)


def test_expired_turn_credentials_are_refused_by_coturn(tmp_path: Path) -> None:
    """The expiry in the username is what coturn enforces: credentials issued an hour
    ago with a 10-minute life are refused."""

    async def main() -> None:
        with coturn(tmp_path, auth_secret=SECRET) as turn:
            issuer = TurnIssuer(SECRET, (turn.url,), ttl=600)
            old = issuer.issue("a" * 16, time.time() - 3600)
            fresh = issuer.issue("a" * 16, time.time())
            assert not await allocates(turn, old.username, old.credential)
            assert await allocates(turn, fresh.username, fresh.credential)

    arun(main)


def test_turn_credentials_are_refreshed_before_they_expire(tmp_path: Path) -> None:
    """With a 3 s TTL the server renews at half-life (1.5 s): a client that stays
    connected past the first credentials' expiry holds newer ones coturn accepts,
    while coturn refuses the first.  coturn compares whole seconds and was seen to
    accept credentials up to a second past their expiry (its clock is coarse), so the
    check waits 2 s past it."""
    ttl = 3.0

    async def main() -> None:
        with coturn(tmp_path, auth_secret=SECRET) as turn:
            async with SignalingServer(port=0, turn=TurnIssuer(SECRET, (turn.url,), ttl)) as server:
                got: list[TurnCredentials] = []
                client = SignalingClient(
                    Identity.generate(), server.url, Recorder(), on_turn=got.append
                )
                await client.connect()
                await until(lambda: len(got) == 1)
                first = got[0]
                await until(lambda: len(got) >= 2, timeout=ttl)
                assert time.time() < first.expires, "renewed only after expiry"
                assert got[1].expires > first.expires
                await until(lambda: time.time() > first.expires + 2, timeout=ttl + 3)
                assert not await allocates(turn, first.username, first.credential)
                newest = client.turn
                assert newest is not None and newest.remaining(time.time()) > 0
                assert await allocates(turn, newest.username, newest.credential)
                await client.close()

    arun(main)


def test_store_join_over_wss_configures_turn_by_itself(tmp_path: Path) -> None:
    """``await store.join(room, "wss://…", ssl=ca)`` is all a notebook needs: the TURN
    server the signaling server names is configured, and replaced (not added to) when
    the credentials are renewed."""

    async def main() -> None:
        issuer = TurnIssuer(SECRET, ("turn:127.0.0.1:3478?transport=tcp",), ttl=2)
        async with tls_server(tmp_path, turn=issuer) as server:
            store = open_store(tmp_path, "alice")
            await store.join("lab", server.url, ssl=tmp_path / "ca.pem")
            servers = store.network_store.config.ice_servers
            assert [s.url_list() for s in servers] == [["turn:127.0.0.1:3478?transport=tcp"]]
            first = servers[0].username
            assert first is not None and first.endswith(store.peer_id)
            await until(lambda: store.network_store.config.ice_servers[0].username != first, 3)
            assert len(store.network_store.config.ice_servers) == 1
            await store.close()

    arun(main)
