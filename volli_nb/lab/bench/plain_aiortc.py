"""The plain-aiortc side of ``volli-nb bench``: a child process that answers an offer,
echoes messages starting with ``E``, and reports when it has received what it was told
to expect.  No encryption, no ACKs: the baseline volli_nb is measured against.

Protocol on stdin/stdout (JSON lines): ``{"offer": sdp}`` → ``{"answer": sdp}``;
``{"expect": n_messages, "bytes": n_bytes}`` → later ``{"done": n, "bytes": b}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from volli_nb.net import aiortc_compat


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def serve() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    state = {"expect": -1, "bytes": -1, "got": 0, "got_bytes": 0}

    def check() -> None:
        if (
            state["expect"] >= 0
            and state["got"] >= state["expect"]
            and (state["got_bytes"] >= state["bytes"])
        ):
            _emit({"done": state["got"], "bytes": state["got_bytes"]})
            state["expect"] = -1

    @pc.on("datachannel")
    def on_channel(channel: RTCDataChannel) -> None:
        @channel.on("message")
        def on_message(data: bytes | str) -> None:
            raw = data if isinstance(data, bytes) else data.encode()
            if raw[:1] == b"E":
                channel.send(raw)
                return
            state["got"] += 1
            state["got_bytes"] += len(raw)
            check()

    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _emit({"ready": True})
    while line := await reader.readline():
        request = json.loads(line)
        if "offer" in request:
            await pc.setRemoteDescription(RTCSessionDescription(request["offer"], "offer"))
            with aiortc_compat.loopback_only():
                await pc.setLocalDescription(await pc.createAnswer())
            _emit({"answer": pc.localDescription.sdp})
        elif "expect" in request:
            state.update(expect=request["expect"], bytes=request["bytes"], got=0, got_bytes=0)
            check()
    await pc.close()


if __name__ == "__main__":
    asyncio.run(serve())
