"""Fetches of a group's records: what a fetch is answered with, and how often a peer is
asked or answered (a member's fetch must not make us queue one answer per fetch, nor a
stranger's messages one fetch each).

A member holding a message under a record it does not hold asks the message's sender for
the chain up to that record (``grp-<id>.fetch``).  The answer (:func:`answer`) goes up to
the record asked for and on along the current path only while it lists the asker: a
member catches up, a removed member learns of its removal and of no later membership.
"""

from __future__ import annotations

from collections.abc import Hashable

from volli_nb.core.groups.chain import GroupChain
from volli_nb.core.groups.record import MembershipRecord

AGAIN = 30.0  # seconds before the same fetch is asked, or answered, again
REMEMBERED = 4096  # (peer, record) pairs remembered at most, per direction


def answer(chain: GroupChain, record: MembershipRecord, peer_id: str) -> list[MembershipRecord]:
    """A fetch's answer to ``peer_id``, a member of the held ``record`` (module docstring)."""
    newest = chain.path()
    if record not in newest:
        return chain.path_to(record.hash)
    end = newest.index(record) + 1
    while end < len(newest) and peer_id in newest[end - 1].member_ids:
        end += 1
    return newest[:end]


class Recently:
    """What was done within the last ``window`` seconds, by key, bounded: once ``limit``
    keys are all recent, nothing more is done until some age out."""

    def __init__(self, window: float = AGAIN, limit: int = REMEMBERED) -> None:
        self.window, self.limit = window, limit
        self._at: dict[Hashable, float] = {}

    def first(self, key: Hashable, now: float) -> bool:
        """Whether to do ``key`` now (not done within the window, and room to remember it)."""
        if now - self._at.get(key, now - self.window) < self.window:
            return False
        if len(self._at) >= self.limit:
            self._at = {k: t for k, t in self._at.items() if now - t < self.window}
            if len(self._at) >= self.limit:
                return False
        self._at[key] = now
        return True

    def __len__(self) -> int:
        return len(self._at)


__all__ = ["AGAIN", "Recently", "answer"]
