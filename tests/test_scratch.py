"""A scratch profile's folder goes at interpreter exit when ``close()`` never ran (a kernel
restarted with a scratch store open), unless another process holds that profile open.

Real processes: each scratch owner is a Python subprocess that exits on its own.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from volli_nb.app.messages_store import MessagesStore
from volli_nb.app.scratch import SCRATCH_FILE, SCRATCH_PASSPHRASE
from volli_nb.core.store.database import KDF_MIN

OPEN_AND_EXIT = """
import sys
from volli_nb import MessagesStore
store = MessagesStore.scratch("left", directory=sys.argv[1])
print(store.scratch_dir, flush=True)
if sys.argv[2] == "hand over":  # close without deleting, then wait until the other opened it
    import asyncio
    folder, store.scratch_dir = store.scratch_dir, None
    asyncio.run(store.close())
    print("closed", flush=True)
    sys.stdin.readline()
"""


def _start(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], Path]:
    child = subprocess.Popen(
        [sys.executable, "-c", OPEN_AND_EXIT, str(tmp_path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    return child, Path(child.stdout.readline().strip())


def test_an_unclosed_scratch_folder_goes_at_exit(tmp_path: Path) -> None:
    child, folder = _start(tmp_path, "exit")
    assert child.wait(timeout=30) == 0
    assert folder.name.startswith("volli-left-") and not folder.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_folder_another_process_holds_open_stays(tmp_path: Path) -> None:
    child, folder = _start(tmp_path, "hand over")
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == "closed"
    profile = folder / SCRATCH_FILE
    other = MessagesStore.open(profile, SCRATCH_PASSPHRASE, name="other", kdf=KDF_MIN)
    try:
        child.stdin.write("exit now\n")
        child.stdin.flush()
        assert child.wait(timeout=30) == 0
        assert profile.exists()  # our live store's file was not deleted under it
    finally:
        asyncio.run(other.close())


def test_a_kernel_restart_removes_its_scratch_folders(tmp_path: Path) -> None:
    """Jupyter's restart (and shutdown) ends the kernel's interpreter normally."""
    from jupyter_client.manager import start_new_kernel
    from kernels import execute

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        code = "from volli_nb import MessagesStore as M\ns = M.scratch('kernel', directory='.')"
        folder = Path(execute(kc, code + "\nprint(s.scratch_dir.resolve())").strip())
        assert folder.parent == tmp_path.resolve() and folder.exists()
        km.restart_kernel(now=False)
        assert not folder.exists()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
