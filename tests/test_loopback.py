"""The "this machine only" ICE mode depends on aioice internals: pin them here."""

from __future__ import annotations

import aioice.ice

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
