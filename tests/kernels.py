"""Run code in real ipykernel kernels through jupyter_client."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel


class KernelError(AssertionError):
    pass


def text_of(data: dict[str, Any]) -> str:
    """What a display shows: its HTML if it has one, else its plain text."""
    return str(data.get("text/html") or data.get("text/plain", ""))


def execute(
    kc: BlockingKernelClient,
    code: str,
    timeout: float = 60.0,
    *,
    on_message: Callable[[dict[str, Any]], None] | None = None,
    display_ids: list[str] | None = None,
) -> str:
    """Run ``code``; return what it printed and displayed (text/html, else text/plain).

    ``on_message`` sees every iopub message meanwhile (other cells' too); ``display_ids``
    collects the ids of the displays this cell made, for later updates."""
    msg_id = kc.execute(code)
    out: list[str] = []
    end = time.monotonic() + timeout
    while True:
        try:
            msg: dict[str, Any] = kc.get_iopub_msg(timeout=max(0.1, end - time.monotonic()))
        except queue.Empty:
            raise KernelError(f"no reply within {timeout} s to:\n{code}") from None
        if on_message is not None:
            on_message(msg)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            out.append(text_of(content["data"]))
            display_id = content.get("transient", {}).get("display_id")
            if display_id and display_ids is not None:
                display_ids.append(display_id)
        elif kind == "error":
            raise KernelError(f"{content['ename']}: {content['evalue']}\n" + "".join(out))
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(out)


@contextmanager
def kernel(cwd: str) -> Iterator[BlockingKernelClient]:
    km: KernelManager
    km, kc = start_new_kernel(kernel_name="python3", cwd=cwd)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
