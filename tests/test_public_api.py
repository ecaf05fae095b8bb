"""The public API: ``from volli_nb import …`` works, is typed, completes, and stays lazy;
``MessagesStore.scratch`` makes (and removes) a throwaway profile."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

import volli_nb
from volli_nb.core.store.keyring import KDF_MIN

INIT = Path(volli_nb.__file__)
PROMISED = ["MessagesStore", "NetworkConfig", "IceServer", "ChatMessage", "Identity", "VolliError"]


def test_the_promised_names_import_from_the_package() -> None:
    from volli_nb import ChatMessage, IceServer, Identity, MessagesStore, NetworkConfig, VolliError
    from volli_nb.app.chat import ChatMessage as chat_message_class
    from volli_nb.app.messages_store import MessagesStore as store_class
    from volli_nb.base.errors import VolliError as root_error
    from volli_nb.core.crypto.identity import Identity as identity_class
    from volli_nb.core.netconfig import IceServer as ice_server_class
    from volli_nb.core.netconfig import NetworkConfig as config_class

    assert MessagesStore is store_class and ChatMessage is chat_message_class
    assert NetworkConfig is config_class and IceServer is ice_server_class
    assert Identity is identity_class and VolliError is root_error
    assert set(PROMISED) <= set(volli_nb.__all__)


def test_every_lazy_name_is_typed_for_checkers_and_listed_for_completion() -> None:
    tree = ast.parse(INIT.read_text())
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module
                typed.update({alias.name: stmt.module for alias in stmt.names})
    assert typed == volli_nb._LAZY  # each name imported for mypy from where it is loaded
    assert sorted(volli_nb.__all__) == sorted(volli_nb._LAZY)
    assert set(volli_nb.__all__) <= set(dir(volli_nb))  # what tab completion offers


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'MessageStore'"):
        _ = volli_nb.MessageStore  # type: ignore[attr-defined]


def _loaded_after(code: str) -> list[str]:
    script = (
        f"import sys\n{code}\n"
        "print(','.join(m for m in ('asyncio', 'aiortc', 'aioice', 'ipywidgets', 'ptpython',"
        " 'IPython', 'websockets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [m for m in out.stdout.strip().split(",") if m]


def test_importing_the_package_loads_no_io_library() -> None:
    assert _loaded_after("import volli_nb") == []
    assert _loaded_after("from volli_nb import Identity, NetworkConfig, VolliError") == []
    assert "aiortc" in _loaded_after("from volli_nb import MessagesStore")  # loaded on use


def test_scratch_is_a_throwaway_loopback_profile_deleted_on_close(tmp_path: Path) -> None:
    from volli_nb import MessagesStore

    store = MessagesStore.scratch("ada", directory=tmp_path)
    other = MessagesStore.scratch("ada", directory=tmp_path)
    folder = store.scratch_dir
    assert folder is not None and folder.parent == tmp_path and folder.name.startswith("volli-ada-")
    assert store.database.path == folder / "profile.sqlite" and store.database.path.exists()
    assert other.scratch_dir != folder and other.peer_id != store.peer_id  # never shared
    assert store.name == "ada" and store.network_store.config.loopback_only
    (keyring,) = store.database.fetch("SELECT opslimit, memlimit FROM keyring")
    assert (keyring["opslimit"], keyring["memlimit"]) == KDF_MIN
    asyncio.run(store.close())
    assert not folder.exists()
    asyncio.run(other.close())
    assert list(tmp_path.iterdir()) == []


def test_scratch_passes_options_on_and_cleans_up_when_opening_fails(tmp_path: Path) -> None:
    from volli_nb import MessagesStore, NetworkConfig
    from volli_nb.base.clock import VirtualClock

    clock = VirtualClock(1234.0)
    config = NetworkConfig(loopback_only=False)
    store = MessagesStore.scratch("lan", directory=tmp_path, config=config, clock=clock)
    assert store.network_store.config is config and store.clock is clock
    asyncio.run(store.close())
    with pytest.raises(TypeError):
        MessagesStore.scratch("broken", directory=tmp_path, no_such_option=1)
    assert list(tmp_path.iterdir()) == []
