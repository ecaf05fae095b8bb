"""aiortc workarounds: INIT retransmissions carry verification tag 0; a busy receiver
loses no datagram (flow control and socket buffers)."""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path

import aioice.ice
import pytest
from aiortc import rtcsctptransport as sctp
from conftest import require
from netutil import open_store

import volli_nb.net.network_store  # noqa: F401  (applies the fixes, as every app does)
from volli_nb.lab.bench.plain_aiortc import PlainPeer
from volli_nb.lab.relay import Conditions, ImpairmentRelay


class _Dtls:
    """Just enough of an RTCDtlsTransport to capture what SCTP sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.transport = None
        self.state = "connected"

    async def _send_data(self, data: bytes) -> None:
        self.sent.append(data)

    def _register_data_receiver(self, receiver: object) -> None:
        pass


def _tag(packet: bytes) -> int:
    return int(struct.unpack_from("!L", packet, 4)[0])


def test_an_init_goes_with_tag_zero_even_after_the_peers_init_arrived() -> None:
    async def main() -> None:
        dtls = _Dtls()
        transport = sctp.RTCSctpTransport(dtls)  # type: ignore[arg-type]
        transport._local_port = transport._remote_port = 5000
        transport._remote_verification_tag = 367061037  # the peer's INIT arrived first
        await transport._send_chunk(sctp.InitChunk())
        await transport._send_chunk(sctp.CookieAckChunk())
        assert [_tag(p) for p in dtls.sent] == [0, 367061037]

    asyncio.run(main())


class _DropInitAcks(ImpairmentRelay):
    """Drops the second DTLS application-data datagram each way: after an INIT collision
    (each side sends INIT as soon as DTLS is up), that is each side's INIT-ACK."""

    def __init__(self) -> None:
        super().__init__(Conditions())
        self.app_data = {"a": 0, "b": 0}
        self.dropped: list[str] = []

    def _arrived(self, side_name: str, data: bytes, addr: tuple[str, int]) -> None:
        if data[:1] == b"\x17":  # DTLS record type 23: application data (SCTP inside)
            self.app_data[side_name] += 1
            if self.app_data[side_name] == 2:
                self.dropped.append(side_name)
                return
        super()._arrived(side_name, data, addr)


@pytest.mark.network
def test_peers_connect_when_both_init_acks_of_a_collision_are_lost(tmp_path: Path) -> None:
    """Unpatched, this never opens: ICE and DTLS connected, SCTP stuck in COOKIE-WAIT."""

    async def main() -> None:
        a, b = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
        relay = await _DropInitAcks().start()
        try:
            code = relay.offer_through(await a.create_pairing_code())
            answer = relay.answer_through(await b.accept_pairing_code(code))
            await a.complete_pairing(answer)
            await asyncio.gather(a.wait_connected(b.peer_id, 30), b.wait_connected(a.peer_id, 30))
            assert sorted(relay.dropped) == ["a", "b"]
        finally:
            await asyncio.gather(a.close(), b.close())
            relay.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_every_sctp_packet_from_the_peer_is_stamped_for_liveness() -> None:
    from volli_nb.net import aiortc_sctp

    async def main() -> None:
        transport = sctp.RTCSctpTransport(_Dtls())  # type: ignore[arg-type]
        assert aiortc_sctp.last_received(transport) is None
        await transport._handle_data(b"not even a packet")  # stamped before parsing
        stamp = aiortc_sctp.last_received(transport)
        assert stamp is not None and abs(stamp - time.monotonic()) < 1.0

    asyncio.run(main())


SNMP = Path("/proc/net/snmp")


def udp_receive_drops() -> int:
    """Datagrams this network namespace dropped because a socket's buffer was full."""
    lines = SNMP.read_text().splitlines()
    names, values = [line.split() for line in lines if line.startswith("Udp:")]
    return int(values[names.index("RcvbufErrors")])


@pytest.mark.network
def test_a_busy_receiver_loses_no_datagram() -> None:
    """aiortc's SCTP sender ignored the receiver's window, and aioice's sockets buffer 256
    KiB: while a receiver stored a large frame (its loop busy), what the sender kept
    sending overflowed its UDP socket, and SCTP recovered by timeouts (a bench transfer of
    10,000 messages took 0.7 to 17 s, with up to 88,000 drops).  Counted in datagrams the
    kernel dropped, not in time (9,485 with the fix disabled, 0 with it)."""
    require(SNMP.exists(), "needs Linux's UDP counters (/proc/net/snmp)")

    async def main() -> None:
        plain = PlainPeer()
        try:
            await plain.start()
            await plain.transfer(20_000, 100)  # slow start grows the sender's window
            before = udp_receive_drops()
            await plain.transfer(20_000, 100, busy=0.5)
            assert udp_receive_drops() - before == 0
        finally:
            await plain.close()

    asyncio.run(asyncio.wait_for(main(), 120))


def test_a_peer_whose_loop_is_busy_for_seconds_keeps_its_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aioice gave each consent check (RFC 7675) one try of 0.5 s and closed ICE after six
    misses in a row, so a peer whose loop was busy for a while (a large transfer on a
    loaded machine, a long cell) lost its connection mid-transfer, and the association
    closed with both sides idle: the bench's baseline once waited 8 minutes on it.  Here
    checks come every 0.1 s (six misses take ~4 s) and the receiver blocks 6 s: the
    connection must stay up and deliver every message (without the fix: ICE closes at
    ~4 s and 1,000 messages never arrive).  Counted, not timed."""
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.1)  # this process's checks only

    async def main() -> None:
        plain = PlainPeer()
        states: list[str] = []
        try:
            await plain.start()
            plain.pc.on("connectionstatechange", lambda: states.append(plain.pc.connectionState))
            transfer = await asyncio.wait_for(plain.transfer(1000, 100, busy=6.0), 60)
            assert transfer.seconds > 0 and states == [] and plain.pc.connectionState == "connected"
        finally:
            await plain.close()

    asyncio.run(asyncio.wait_for(main(), 120))


async def _data(
    transport: sctp.RTCSctpTransport, first_tsn: int, total: int, *, last: bool, size: int = 1000
) -> int:
    """Feed one message of ``total`` bytes in DATA chunks of ``size`` (its last fragment
    only if ``last``); the next TSN."""
    count = total // size
    for i in range(count):
        flags = (sctp.SCTP_DATA_FIRST_FRAG if i == 0 else 0) | (
            sctp.SCTP_DATA_LAST_FRAG if last and i == count - 1 else 0
        )
        chunk = sctp.DataChunk(flags=flags)
        chunk.tsn, chunk.stream_id, chunk.protocol = first_tsn + i, 1, 53
        chunk.stream_seq, chunk.user_data = 0 if first_tsn == 1 else 1, b"x" * size
        await transport._receive_data_chunk(chunk)
    return first_tsn + count


def _held(transport: sctp.RTCSctpTransport) -> int:
    return sum(len(c.user_data) for s in transport._inbound_streams.values() for c in s.reassembly)


def test_a_message_that_never_ends_aborts_the_association_and_frees_what_it_held() -> None:
    """Unpatched, aiortc held every chunk of a message whose last fragment never came,
    whatever window it advertised: 10 MB sent, 10 MB held (before any channel binding)."""
    from volli_nb.net import aiortc_sctp

    async def main() -> None:
        dtls = _Dtls()
        transport = sctp.RTCSctpTransport(dtls)  # type: ignore[arg-type]
        transport._local_port = transport._remote_port = 5000
        transport._last_received_tsn = 0
        transport._set_state(transport.State.ESTABLISHED)
        largest = sctp.LOCAL_MAX_MESSAGE_SIZE - sctp.LOCAL_MAX_MESSAGE_SIZE % 1000
        tsn = await _data(transport, 1, largest, last=True)  # the largest we take: delivered
        assert _held(transport) == 0 and transport.state == "connected"
        await _data(transport, tsn, 10_000_000, last=False)
        assert transport.state == "closed"
        assert _held(transport) == 0
        assert aiortc_sctp.MAX_HELD < 4 * 1024 * 1024
        assert dtls.sent  # the ABORT

    asyncio.run(main())


def test_a_message_in_one_byte_chunks_is_bounded_by_its_chunks_too() -> None:
    """A held chunk costs ~450 bytes however small it is, and aiortc walks an unfinished
    message's chunks on each new one (n²/2 steps), but the window counts only the data:
    one-byte chunks passed the byte bound (a million: ~450 MB held, and hours of CPU).
    The chunks held are counted too."""
    from volli_nb.net import aiortc_sctp

    async def main() -> None:
        transport = sctp.RTCSctpTransport(_Dtls())  # type: ignore[arg-type]
        transport._local_port = transport._remote_port = 5000
        transport._last_received_tsn = 0
        transport._set_state(transport.State.ESTABLISHED)
        chunks = aiortc_sctp.MAX_HELD_CHUNKS + 2 * aiortc_sctp.COUNT_EVERY
        await _data(transport, 1, chunks, last=False, size=1)
        assert transport.state == "closed"
        assert _held(transport) == 0

    asyncio.run(main())
