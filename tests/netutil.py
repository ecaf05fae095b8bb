"""Helpers for networked tests: stores on temp files, pairing in one call."""

from __future__ import annotations

import asyncio
from pathlib import Path

from volli_nb.app.messages_store import MessagesStore
from volli_nb.base.clock import Clock, system_clock
from volli_nb.core.netconfig import NetworkConfig
from volli_nb.core.store.database import KDF_MIN
from volli_nb.lab.relay import Conditions, ImpairmentRelay, impaired_pair

# Set by conftest from --latency / --packet-loss / --jitter: pair() then goes through
# an impairment relay, so the networked tests run under those conditions.
CONDITIONS = Conditions()
RELAYS: list[ImpairmentRelay] = []


def open_store(
    tmp: Path,
    name: str,
    *,
    clock: Clock = system_clock,
    loopback: bool = True,
    **config: object,
) -> MessagesStore:
    return MessagesStore.open(
        tmp / f"{name}.sqlite",
        f"{name} passphrase",
        name=name,
        kdf=KDF_MIN,
        clock=clock,
        config=NetworkConfig(loopback_only=loopback, **config),  # type: ignore[arg-type]
    )


async def pair(a: MessagesStore, b: MessagesStore, timeout: float = 15.0) -> None:
    """Pair ``a`` (offer) with ``b`` (answer) by pairing codes, and wait for both sides.

    Under ``--latency``/``--packet-loss`` the pair goes through an impairment relay."""
    if CONDITIONS.active:
        RELAYS.append(await impaired_pair(a, b, CONDITIONS, max(timeout, 60.0)))
        return
    code = await a.create_pairing_code()
    answer = await b.accept_pairing_code(code)
    await a.complete_pairing(answer)
    await asyncio.gather(a.wait_connected(b.peer_id, timeout), b.wait_connected(a.peer_id, timeout))
