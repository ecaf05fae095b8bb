"""Run code in real ipykernel kernels through jupyter_client."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel


class KernelError(AssertionError):
    pass


def execute(kc: BlockingKernelClient, code: str, timeout: float = 60.0) -> str:
    """Run ``code``; return what it printed and displayed (text/plain and text/html)."""
    msg_id = kc.execute(code)
    out: list[str] = []
    while True:
        try:
            msg: dict[str, Any] = kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise KernelError(f"no reply within {timeout} s to:\n{code}") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            data = content["data"]
            out.append(data.get("text/html") or data.get("text/plain", ""))
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
