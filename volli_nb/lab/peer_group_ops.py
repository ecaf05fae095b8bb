"""The peer process's group operations (:mod:`.peer_process`): make and change a group, read
its record as JSON, and wait until chosen members acknowledged a message."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from volli_nb.base.errors import TransportClosed

if TYPE_CHECKING:
    from volli_nb.app.group_info import GroupInfo
    from volli_nb.app.messages_store import MessagesStore


class GroupOperations:
    """The group part of the peer process's request table."""

    def __init__(self, store: MessagesStore) -> None:
        self.store = store

    def table(self) -> dict[str, Callable[..., Any]]:
        return {
            "create_group": self.create_group,
            "group_change": self.group_change,
            "group": self.group,
            "wait_delivered": self.wait_delivered,
        }

    async def group(self, group_id: str) -> dict[str, Any]:
        return _group(self.store.group(group_id))

    async def create_group(self, name: str, members: list[str]) -> dict[str, Any]:
        return _group(await self.store.create_group(name, members))

    async def group_change(self, change: str, group_id: str, peer_id: str = "") -> dict[str, Any]:
        """``add``, ``remove``, ``admin`` (a member) or ``leave``."""
        store = self.store
        if change == "leave":
            return _group(await store.leave_group(group_id))
        how = {"add": store.add_member, "remove": store.remove_member, "admin": store.set_admin}
        return _group(await how[change](group_id, peer_id))

    async def wait_delivered(
        self, message_id: str, to: list[str] | None = None, timeout: float = 15.0
    ) -> dict[str, Any]:
        """Until ``to`` (default: every recipient) acknowledged; then, or at ``timeout``
        (``late``), where each recipient stands."""
        mid = bytes.fromhex(message_id)
        try:
            return {"status": await self.store.wait_delivered(mid, timeout, to=to)}
        except TransportClosed:  # not acknowledged within ``timeout``
            return {"status": self.store.delivery_status(mid), "late": True}


def _group(info: GroupInfo) -> dict[str, Any]:
    return {
        "group_id": info.group_id,
        "version": info.version,
        "record_hash": info.record_hash,
        "members": list(info.members),
        "admins": list(info.admins),
        "is_member": info.is_member,
    }
