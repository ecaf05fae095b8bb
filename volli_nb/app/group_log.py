"""What group traffic received tells the event log: joins, changes, conflicts, refusals.

One line per fact a member should be able to read back (``group.joined``,
``group.changed``, ``group.conflict``, ``group.removed``, ``group.refused``), with the
names of the people involved rather than their ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from volli_nb.app.group_info import describe_change
from volli_nb.base.errors import VolliError
from volli_nb.core.groups.chain import Applied, GroupChain
from volli_nb.core.groups.record import MembershipRecord
from volli_nb.core.store.groups import HeldMessage

if TYPE_CHECKING:
    from volli_nb.app.groups import GroupBook


def applied(
    groups: GroupBook, peer_id: str, held: GroupChain | None, new: list[MembershipRecord],
    results: list[Applied],
) -> None:  # fmt: skip
    """The records a frame from ``peer_id`` brought (``held``: the chain before them)."""
    if not new:
        return
    names, log, me = groups.name, groups.log, groups.me
    tip = results[-1].tip if results else new[0]
    group_id = tip.group_id
    if held is None:
        log.add("group", f"joined {tip.name!r} ({group_id} {tip.short()})", peer_id=peer_id,
                kind="group.joined", group=group_id, version=tip.version)  # fmt: skip
    for result in results:
        parent = groups.chain(group_id)
        before = parent.get(result.record.prev_hash) if parent else None
        text = describe_change(before, result.record, names)
        log.add("group", f"{tip.name!r} {result.record.short()}: {text}", peer_id=peer_id,
                kind="group.changed", group=group_id, version=result.record.version,
                record=result.record.hash.hex(), moved=result.moved)  # fmt: skip
        for loser in result.lost:
            conflict(groups, result, loser)
    if me not in tip.member_ids and (held is None or me in held.tip.member_ids):
        log.add("group", f"removed from {tip.name!r} at {tip.short()}: no later message "
                "reaches us", kind="group.removed", group=group_id)  # fmt: skip


def conflict(groups: GroupBook, result: Applied, loser: MembershipRecord) -> None:
    winner, names = result.tip, groups.name
    mine = loser.signer == groups.me
    groups.log.add(
        "error" if mine else "group",
        f"{'our' if mine else names(loser.signer) + chr(39) + 's'} change {loser.short()} "
        f"lost to {names(winner.signer)}'s concurrent {winner.short()} (the senior admin, "
        f"or the lower ticket, wins){': apply it again on top' if mine else ''}",
        kind="group.conflict",
        group=loser.group_id,
        lost=loser.hash.hex(),
        won=winner.hash.hex(),
    )


def dropped(groups: GroupBook, held: HeldMessage, error: VolliError) -> None:
    groups.log.add(
        "error",
        f"held message {held.message_id.hex()[:8]} refused: {type(error).__name__}: {error}",
        peer_id=held.sender,
        kind="group.refused",
        message_id=held.message_id.hex(),
    )


__all__ = ["applied", "conflict", "dropped"]
