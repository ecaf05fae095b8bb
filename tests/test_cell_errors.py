"""A volli error in a notebook cell shows as one line once ``%load_ext volli_nb`` ran
(``%tb``: the full traceback), in a real ipykernel."""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from kernels import kernel


def errors_of(kc: BlockingKernelClient, code: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Run ``code``; return the content of every ``error`` output it made."""
    msg_id = kc.execute(code)
    found: list[dict[str, Any]] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            msg = kc.get_iopub_msg(timeout=max(0.1, end - time.monotonic()))
        except queue.Empty:
            break
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "error":
            found.append(msg["content"])
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return found
    raise AssertionError(f"no reply within {timeout} s to {code!r}")


MISTYPED = 'messagesStore.history("bobb")'  # a NotFound from inside the store


def test_a_volli_error_is_one_line_after_load_ext(tmp_path: Path) -> None:
    with kernel(str(tmp_path)) as kc:
        errors_of(kc, "from volli_nb import MessagesStore as M\nmessagesStore = M.scratch('alice')")
        (before,) = errors_of(kc, MISTYPED)  # importing alone changes nothing
        assert before["ename"] == "NotFound" and len(before["traceback"]) > 2

        assert errors_of(kc, "%load_ext volli_nb") == []
        (after,) = errors_of(kc, MISTYPED)
        assert after["ename"] == "NotFound" and "'bobb'" in after["evalue"]
        first, hint = after["traceback"]
        assert "NotFound" in first and "'bobb'" in first
        assert hint == "(%tb shows the full traceback)"
        (full,) = errors_of(kc, "%tb")  # the whole traceback, one command away
        assert len(full["traceback"]) > 2 and full["ename"] == "NotFound"
        (other,) = errors_of(kc, "int('x')")  # anything else: IPython's usual traceback
        assert other["ename"] == "ValueError" and len(other["traceback"]) > 2
        (awaited,) = errors_of(kc, 'await messagesStore.send_message("bobb", "hi")')
        assert len(awaited["traceback"]) == 2 and "bobb" in awaited["traceback"][0]

        assert errors_of(kc, "%unload_ext volli_nb") == []
        (unloaded,) = errors_of(kc, MISTYPED)
        assert len(unloaded["traceback"]) > 2
        errors_of(kc, "await messagesStore.close()")
