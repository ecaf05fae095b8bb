"""The README's debug-command table: its Python column runs exactly as written."""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from netutil import open_store, pair
from test_network import arun

pytestmark = pytest.mark.network
README = Path(__file__).resolve().parent.parent / "README.md"


def python_column() -> list[str]:
    text = README.read_text()
    table = text.split("<!-- debug-table -->")[1].split("<!-- /debug-table -->")[0]
    rows = [r for r in table.strip().splitlines()[2:] if r.startswith("|")]
    cells = [re.findall(r"`([^`]+)`", r.split(" | ")[1]) for r in rows]
    return [c[0] for c in cells]


async def run_snippet(code: str, namespace: dict[str, Any]) -> Any:
    body = textwrap.indent(f"return ({code})" if "=" not in code.split("(")[0] else code, "    ")
    exec(f"async def __snippet():\n{body}\n    globals().update(locals())", namespace)
    return await namespace["__snippet"]()


def test_every_python_equivalent_runs(tmp_path: Path) -> None:
    snippets = python_column()
    assert len(snippets) == 6

    async def main() -> None:
        store, other = open_store(tmp_path, "me"), open_store(tmp_path, "other")
        await pair(store, other)
        ghost = open_store(tmp_path, "ghost")
        store.add_contact(ghost.identity.public)
        await store.send_message(ghost.peer_id, "queued")
        namespace: dict[str, Any] = {"messagesStore": store, "peer_id": other.peer_id}
        results = [await run_snippet(code, namespace) for code in snippets]
        assert namespace["pc"].connectionState == "connected"
        assert results[1].selected is not None  # candidates(peer_id)
        assert results[3] == [(other.peer_id, "connected", "completed")]
        assert [r.recipient for r in results[4]] == [ghost.peer_id]  # get_pending()
        assert results[5].waiting_offline == 1  # sync_messages()
        await asyncio.gather(store.close(), other.close())
        ghost.database.close()

    arun(main)
