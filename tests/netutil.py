"""Helpers for networked tests: stores on temp files, pairing in one call."""

from __future__ import annotations

import asyncio
from pathlib import Path

from volli_nb.clock import Clock, system_clock
from volli_nb.messages import MessagesStore
from volli_nb.network import NetworkConfig
from volli_nb.storage import KDF_MIN


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
    """Pair ``a`` (offer) with ``b`` (answer) by pairing codes, and wait for both sides."""
    code = await a.create_pairing_code()
    answer = await b.accept_pairing_code(code)
    await a.complete_pairing(answer)
    await asyncio.gather(a.wait_connected(b.peer_id, timeout), b.wait_connected(a.peer_id, timeout))
