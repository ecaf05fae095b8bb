"""What the app shows of a group: its current version, and each change in words.

Plain data, so the facade, the panels, the shell and the magics read the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from volli_nb.core.groups.chain import GroupChain
from volli_nb.core.groups.record import MembershipRecord

Names = Callable[[str], str]


@dataclass(frozen=True)
class GroupInfo:
    """One group as this member holds it: ``group(id)`` and ``groups()`` return these."""

    group_id: str
    name: str
    version: int
    record_hash: str  # hex: what this version's messages are bound to
    members: tuple[str, ...]  # peer ids, increasing
    admins: tuple[str, ...]
    me: str
    lost: int = 0  # records held that lost a concurrent change

    @property
    def is_member(self) -> bool:
        return self.me in self.members

    @property
    def is_admin(self) -> bool:
        return self.me in self.admins

    def others(self) -> tuple[str, ...]:
        """The members a message goes to (everyone but us)."""
        return tuple(m for m in self.members if m != self.me)

    def __repr__(self) -> str:
        members = ", ".join(m[:8] + ("*" if m in self.admins else "") for m in self.members)
        state = "" if self.is_member else " (not a member)"
        return (
            f"<Group {self.name!r} {self.group_id} v{self.version} {self.record_hash[:8]}: "
            f"{members}{state}>"
        )


def group_info(chain: GroupChain, me: str) -> GroupInfo:
    tip = chain.tip
    return GroupInfo(
        tip.group_id, tip.name, tip.version, tip.hash.hex(), tip.member_ids, tip.admins, me,
        len(chain.lost),
    )  # fmt: skip


def describe_change(parent: MembershipRecord | None, record: MembershipRecord, names: Names) -> str:
    """``alice added carol; made bob an admin``: what ``record`` changed, in words."""
    who = names(record.signer)
    if parent is None:
        members = ", ".join(names(m) for m in record.member_ids if m != record.signer)
        return f"{who} created {record.name!r} with {members or 'nobody else'}"
    before, after = set(parent.member_ids), set(record.member_ids)
    parts = []
    if record.signer in before - after and after == before - {record.signer}:
        return f"{who} left"
    if added := sorted(after - before):
        parts.append("added " + ", ".join(names(m) for m in added))
    if removed := sorted(before - after):
        parts.append("removed " + ", ".join(names(m) for m in removed))
    if promoted := sorted(set(record.admins) - set(parent.admins)):
        parts.append("made " + ", ".join(names(m) for m in promoted) + " admin")
    if demoted := sorted((set(parent.admins) - set(record.admins)) & after):
        parts.append("took admin from " + ", ".join(names(m) for m in demoted))
    if record.name != parent.name:
        parts.append(f"renamed the group {record.name!r}")
    return f"{who} " + ("; ".join(parts) or "signed an unchanged membership")


__all__ = ["GroupInfo", "describe_change", "group_info"]
