"""The "this machine only" ICE mode depends on aioice internals: pin them here."""

from __future__ import annotations

import asyncio

import aioice.ice
import pytest

from volli_nb.lab.bench import plain_aiortc
from volli_nb.net import aiortc_compat


def test_loopback_only_is_scoped_to_the_context() -> None:
    aiortc_compat.install()
    assert aioice.ice.get_host_addresses is aiortc_compat._get_host_addresses  # still the hook
    with aiortc_compat.loopback_only():
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == []
    outside = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
    assert "127.0.0.1" not in outside  # aioice's own rule, unchanged outside the block


def test_install_is_idempotent() -> None:
    aiortc_compat.install()
    original = aiortc_compat._original
    aiortc_compat.install()
    assert aiortc_compat._original is original


@pytest.mark.network
def test_the_plain_aiortc_baseline_pairs_over_loopback_only() -> None:
    """The benchmarks' baseline (and any test that needs plain aiortc) uses one helper."""

    async def main() -> None:
        a, b = plain_aiortc.new_peer(), plain_aiortc.new_peer()
        seen: list[str] = []

        def via(sdp: str, kind: str) -> str:
            seen.append(kind)
            return sdp

        try:
            channel = await plain_aiortc.pair(a, b, via=via, timeout=30)
            assert channel.readyState == "open" and seen == ["offer", "answer"]
            for pc in (a, b):
                pair = aiortc_compat.selected_pair(pc)
                assert pair is not None
                assert (pair[0].address, pair[1].address) == ("127.0.0.1", "127.0.0.1")
        finally:
            await asyncio.gather(a.close(), b.close())

    asyncio.run(asyncio.wait_for(main(), 60))
