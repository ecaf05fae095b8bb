"""Issue 15 items 1–2: TURN over UDP, TCP and TLS with a CA per server, and the preflight
that names each failure aiortc would swallow — against a real coturn on loopback.

coturn serves UDP, TCP and TLS on one port (as on 443); its certificate is signed by a
CA the test makes, which the system does not trust.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from coturn import PASSWORD, USER, Turn, coturn
from netutil import open_store, pair
from test_network import arun
from tls_ca import Pki, make_pki

from volli_nb.base.errors import (
    TurnAuthFailed,
    TurnCertificateError,
    TurnCredentialsExpired,
    TurnError,
    TurnRefused,
    TurnTimeout,
    UsageError,
)
from volli_nb.core.eventlog import EventLog
from volli_nb.core.netconfig import IceServer, NetworkConfig, parse_ice_url, udp_first_warning
from volli_nb.net import aiortc_compat
from volli_nb.net.signaling.turn import TurnIssuer
from volli_nb.net.turn_preflight import TurnPlanner, preflight
from volli_nb.ui.widgets.models import relay_title

pytestmark = pytest.mark.network

SECRET = "preflight-secret"
TIMEOUT = 1.5  # the preflight bound used here (the default is 5 s)


@pytest.fixture(scope="module")
def tls_turn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Turn, Pki]]:
    tmp = tmp_path_factory.mktemp("turn")
    pki = make_pki(tmp)
    with coturn(tmp, tls=pki) as turn:
        yield turn, pki


@pytest.fixture(scope="module")
def rest_turn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Turn]:
    tmp = tmp_path_factory.mktemp("rest")
    with coturn(tmp, auth_secret=SECRET) as turn:
        yield turn


def test_urls_are_normalised_and_what_aiortc_would_drop_is_refused() -> None:
    assert str(parse_ice_url("TURN:h:443?transport=TCP")) == "turn:h:443?transport=tcp"
    assert str(parse_ice_url("turns:h")) == "turns:h:5349?transport=tcp"
    assert str(parse_ice_url("turn:h")) == "turn:h:3478?transport=udp"
    assert str(parse_ice_url("stun:h")) == "stun:h:3478"
    assert IceServer(["turns:h:443"], "u", "p").url_list() == ["turns:h:443?transport=tcp"]
    for bad, why in [
        ("turns:h:443?transport=udp", "DTLS"),
        ("turn:h:443?transport=sctp", "udp or tcp"),
        ("stun:h?transport=tcp", "no transport"),
        ("http://h", "not a STUN/TURN URL"),
        ("turn:[::1]:3478", "IPv6"),
    ]:
        with pytest.raises(UsageError, match=why):
            parse_ice_url(bad)
    with pytest.raises(UsageError, match="none is a turns:"):
        IceServer("turn:h:3478", "u", "p", ca="ca.pem")
    config = NetworkConfig.relay_via("turns:turn.example.org:443", "u", "p", ca="ca.pem")
    assert config.relay_only and config.ice_servers[0].ca == "ca.pem"
    with pytest.raises(UsageError, match="turn: or turns:"):
        NetworkConfig.relay_via("stun:h", "u", "p")


def test_relay_only_with_a_udp_turn_url_first_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    servers = [IceServer(["turn:h:3478", "turns:h:443"], "u", "p")]
    assert udp_first_warning(servers, relay_only=False) is None
    assert udp_first_warning(list(reversed([IceServer("turns:h:443", "u", "p")])), True) is None
    store = open_store(tmp_path, "warn")
    store.network_store.set_configuration(servers, relay_only=True)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("first TURN URL is UDP (turn:h:3478?transport=udp)" in w for w in warned)
    assert any("turns:h:443?transport=tcp first" in w for w in warned)
    assert any("UDP" in e.message for e in store.network_store.log.entries(category="ice"))
    store.database.close()


def test_preflight_picks_a_working_url_and_says_why(tls_turn: tuple[Turn, Pki]) -> None:
    turn, pki = tls_turn
    server = IceServer(
        [turn.url_for("turns", "tcp"), turn.url_for("turn", "tcp"), turn.url_for()],
        USER,
        PASSWORD,
        ca=pki.ca,
    )

    async def main() -> None:
        report = await preflight([server], timeout=TIMEOUT)
        assert report.chosen is not None
        chosen = report.chosen_check
        assert chosen is not None and chosen.ok and chosen.relay is not None
        assert report.chosen.url_list() == [chosen.url]
        assert chosen.relay.startswith("127.0.0.1:")
        assert all(c.ok or c.note.startswith("not needed") for c in report.checks)
        assert report.summary().startswith(f"using {chosen.url}")
        only_tls = await preflight([server.only(turn.url_for("turns", "tcp"))], timeout=TIMEOUT)
        assert only_tls.chosen_check is not None and only_tls.chosen_check.ok

    arun(main)


def _silent_udp_port() -> tuple[socket.socket, int]:
    """A bound UDP socket that never answers: a TURN server that times out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


def _closed_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_each_failure_is_a_typed_error_saying_what_to_fix(
    tls_turn: tuple[Turn, Pki], rest_turn: Turn
) -> None:
    turn, pki = tls_turn
    silent, silent_port = _silent_udp_port()
    issuer = TurnIssuer(SECRET, (rest_turn.url,), ttl=600)
    expired = issuer.issue("peer", time.time() - 3600)
    wrong_secret = TurnIssuer("other-secret", (rest_turn.url,)).issue("peer", time.time())
    tls = turn.url_for("turns", "tcp")
    cases: list[tuple[IceServer, type[TurnError], str]] = [
        (IceServer(tls, USER, PASSWORD), TurnCertificateError, "not trusted .*ca='ca.pem'"),
        (
            IceServer(tls.replace("127.0.0.1", "localhost"), USER, PASSWORD, ca=pki.ca),
            TurnCertificateError,
            "mismatch.*host name the certificate was issued for",
        ),
        (IceServer(turn.url, USER, "wrong"), TurnAuthFailed, "refused the credentials"),
        (
            IceServer(rest_turn.url, expired.username, expired.credential),
            TurnCredentialsExpired,
            "expired 30\\d\\d s ago",
        ),
        (
            IceServer(rest_turn.url, wrong_secret.username, wrong_secret.credential),
            TurnAuthFailed,
            "static-auth-secret must equal volli-signal's --turn-secret",
        ),
        (
            IceServer(f"turn:127.0.0.1:{_closed_tcp_port()}?transport=tcp", USER, PASSWORD),
            TurnRefused,
            "refused the tcp connection",
        ),
        (
            IceServer(f"turn:127.0.0.1:{silent_port}", USER, PASSWORD),
            TurnTimeout,
            f"within {TIMEOUT:g} s: UDP is probably blocked.*transport=tcp",
        ),
    ]

    async def main() -> None:
        report = await preflight([s for s, _, _ in cases], timeout=TIMEOUT)
        assert report.chosen is None
        assert len(report.checks) == len(cases)
        for check, (server, kind, message) in zip(report.checks, cases, strict=True):
            assert check.url == server.url_list()[0]
            assert type(check.error) is kind, check.describe()
            assert check.error is not None and check.error.url == check.url
            assert re.search(message, str(check.error)), check.describe()
        failure = report.failure()
        assert type(failure) is TurnError and "no TURN server works" in str(failure)
        single = await preflight([cases[2][0]], timeout=TIMEOUT)
        assert type(single.failure()) is TurnAuthFailed

    try:
        arun(main)
    finally:
        silent.close()


def test_relay_only_pairs_over_turn_tls_with_a_ca_for_that_server_only(
    tmp_path: Path, tls_turn: tuple[Turn, Pki]
) -> None:
    """The CA reaches aioice through the compat module's context variable: the pair
    gathers relay candidates over TLS, while another store without the CA in the same
    process is refused (the trust is per server, not process-wide)."""
    turn, pki = tls_turn
    url = turn.url_for("turns", "tcp")

    async def main() -> None:
        via = NetworkConfig.relay_via(url, USER, PASSWORD, ca=pki.ca)
        alice, bob = (
            open_store(tmp_path, name, loopback=False, ice_servers=via.ice_servers, relay_only=True)
            for name in ("alice", "bob")
        )
        await pair(alice, bob)
        view = alice.network_store.candidates(bob.peer_id)
        assert {c.type for c in view.local} == {"relay"}
        assert view.selected is not None
        assert (view.selected[0].type, view.selected[1].type) == ("relay", "relay")
        report = alice.network_store.turn.report
        assert report is not None and report.chosen_check is not None
        assert report.chosen_check.url == url
        assert any("TURN preflight: using" in e.message for e in alice.log.entries(category="ice"))
        sent = await alice.send_message(bob.peer_id, "over TLS")
        await alice.wait_delivered(sent.message_id)
        assert relay_title(alice.network_store).startswith("ICE candidates · relay 127.0.0.1:")
        assert aiortc_compat.TURN_TLS.get() is None  # nothing left set in this context
        carol = open_store(tmp_path, "carol", loopback=False)
        carol.network_store.set_configuration([IceServer(url, USER, PASSWORD)], relay_only=True)
        assert relay_title(carol.network_store).endswith("(TURN not checked yet)")
        with pytest.raises(TurnCertificateError, match="not trusted"):
            await carol.create_pairing_code()
        title = relay_title(carol.network_store)  # the ICE panel says why there is no relay
        assert title.startswith("ICE candidates · no relay candidate: the certificate of")
        carol.network_store.set_configuration(
            [IceServer(url, USER, PASSWORD, ca=pki.ca)], relay_only=True
        )
        await carol.network_store.preflight()
        ready = relay_title(carol.network_store)
        assert ready.startswith(f"ICE candidates · relay ready via {url}")
        await asyncio.gather(alice.close(), bob.close(), carol.close())

    arun(main)


def test_relay_only_with_wrong_credentials_fails_before_gathering(
    tmp_path: Path, tls_turn: tuple[Turn, Pki]
) -> None:
    turn, _ = tls_turn

    async def main() -> None:
        store = open_store(tmp_path, "dave", loopback=False)
        store.network_store.set_configuration(
            [IceServer(turn.url_for("turn", "tcp"), USER, "wrong")], relay_only=True
        )
        with pytest.raises(TurnAuthFailed, match=r"refused the credentials.*'volli'"):
            await store.create_pairing_code()
        assert "no connection" in store.network_store.diagnose("nobody")
        await store.close()

    arun(main)


def test_the_planner_reuses_a_working_answer_and_checks_failures_again(
    tls_turn: tuple[Turn, Pki],
) -> None:
    """One preflight for connections made together; a working answer is reused for
    ``preflight_ttl`` (by the injected monotonic clock) and for the same credentials only;
    a failure is checked again at once."""
    turn, _ = tls_turn
    now = [1000.0]
    config = NetworkConfig(ice_servers=[IceServer(turn.url_for("turn", "tcp"), USER, PASSWORD)])
    log = EventLog()
    planner = TurnPlanner(config, log, clock=time.time, monotonic=lambda: now[0])

    def runs() -> int:
        return sum(e.message.startswith("TURN preflight:") for e in log.entries(category="ice"))

    async def main() -> None:
        first, second = await asyncio.gather(planner.servers(), planner.servers())
        assert first == second and first is not None and runs() == 1
        assert [s.url_list() for s in first] == [[turn.url_for("turn", "tcp")]]
        now[0] += config.preflight_ttl - 1
        await planner.servers()
        assert runs() == 1
        now[0] += 2  # past the TTL
        await planner.servers()
        assert runs() == 2
        config.ice_servers = [IceServer(turn.url_for("turn", "tcp"), USER, "wrong")]
        config.relay_only = True
        for expected in (3, 4):  # not cached: each connection asks again
            with pytest.raises(TurnAuthFailed):
                await planner.servers()
            assert runs() == expected
        config.relay_only = False  # without relay-only a failed TURN leaves STUN/host
        assert await planner.servers() == []
        config.preflight = False
        assert await planner.servers() is None  # the configuration as it is

    arun(main)
