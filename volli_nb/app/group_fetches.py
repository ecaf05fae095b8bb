"""Fetches of a group's records: what a fetch is answered with, and how often a peer is
asked or answered.

A member's fetches must not make us queue one answer each, nor a stranger's messages one
fetch each: :class:`Recently` bounds both.

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
PER_PEER = 16  # records asked of (or answered to) one peer within the window, at most
PEERS = 1024  # peers remembered at most


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
    """What was done for each peer within the last ``window`` seconds, by key, bounded:
    once a peer has ``per_peer`` recent keys (or ``peers`` peers have some), nothing more
    is done for it until some age out."""

    def __init__(self, window: float = AGAIN, per_peer: int = PER_PEER, peers: int = PEERS) -> None:
        self.window, self.per_peer, self.peers = window, per_peer, peers
        self._at: dict[str, dict[Hashable, float]] = {}

    def first(self, peer: str, key: Hashable, now: float) -> bool:
        """Whether to do ``key`` for ``peer`` now (not done within the window, and room)."""
        mine = self._at.get(peer)
        if mine is None:
            if len(self._at) >= self.peers:
                self._at = {p: k for p, k in self._at.items() if self._fresh(k, now)}
                if len(self._at) >= self.peers:
                    return False
            mine = self._at[peer] = {}
        if self._within(now - mine.get(key, now - self.window)):
            return False
        if len(mine) >= self.per_peer:
            mine = self._at[peer] = self._fresh(mine, now)
            if len(mine) >= self.per_peer:
                return False
        mine[key] = now
        return True

    def _fresh(self, keys: dict[Hashable, float], now: float) -> dict[Hashable, float]:
        return {k: t for k, t in keys.items() if self._within(now - t)}

    def _within(self, elapsed: float) -> bool:
        """Done within the window.  A time ahead of ``now`` is not: the wall clock stepped
        back (else nothing would be asked or answered again until it caught up)."""
        return 0 <= elapsed < self.window

    def __len__(self) -> int:
        return sum(len(k) for k in self._at.values())


__all__ = ["AGAIN", "Recently", "answer"]
