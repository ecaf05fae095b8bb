"""Shared fixtures and the no-silent-skip rule for CI."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
IN_NETNS = bool(os.environ.get("VOLLI_NETNS"))


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` fails, except under CI, where a missing part is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    del config
    for item in items:
        if item.get_closest_marker("network") and IN_CI and not IN_NETNS:
            item.add_marker(
                pytest.mark.xfail(
                    reason="networked tests must run inside `volli-nb netns` under CI",
                    strict=True,
                    run=False,
                )
            )
