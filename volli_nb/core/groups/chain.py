"""A group's chain of membership records: what follows what, who may sign, and which of
two concurrent changes wins.

**Accepting a record** (:meth:`GroupChain.apply`), each defect its own typed error:

1. a record already held is :class:`~volli_nb.base.errors.ReplayedGroupRecord`;
2. version 1 starts a group (:func:`check_genesis`): signed by a member it lists as admin
   (:class:`NotGroupAdmin`, :class:`ForgedGroupRecord`), its id derived from that
   signer's key and origin (:class:`SquattedGroupId`); any other first record of an
   unknown group is :class:`UnknownGroup`;
3. a later version must name a held record as ``prev_hash`` (else
   :class:`GroupRecordsMissing` if it is newer than ours: fetch the chain; else
   :class:`StaleGroupRecord`), be exactly one version above it, in the same group
   (:class:`BrokenGroupChain`), be signed (:class:`ForgedGroupRecord`) by an admin of
   that previous version (:class:`NotGroupAdmin`); the one exception: a member may sign
   the record that removes exactly itself and changes nothing else (leaving).  An admin
   removes or demotes only itself or admins **junior** to it (:class:`NotGroupAdmin`);
4. it must extend the current version, or compete with it (below); a record for a
   version that is already built upon is :class:`StaleGroupRecord` (settled), one
   competing with the version that removed or demoted its signer is
   :class:`RevokedGroupRecord`, a second losing one by the same signer is
   :class:`StaleGroupRecord` (one lost record is kept per signer and version, not a
   pile), and one built on a change that lost is :class:`BrokenGroupChain`.

**Seniority.**  An admin's seniority is the version since which it has been an admin
without a break (the creator: 1); a member promoted, demoted and promoted again starts
over.  Admins promoted by the same record are equals: neither may remove the other.

**Two changes made from the same version** (both records name version *n* as previous).
The winner has the lower :meth:`GroupChain.precedence`::

    (0 for an admin's change, 1 for a member's own leaving,
     the version since which its signer has been an admin,
     BLAKE2b-256(prev_hash ‖ signer's identity key, person "volli-group-rank"),
     the record's hash)

so the senior admin's change wins, a member's leaving never cancels an admin's change,
and between equals the ticket decides, which the shared parent and the signer's key fix
(an admin cannot grind its record's contents to win; only its own two siblings fall
back to the hash).  It is a total order computed from the records and the path to *n*
alone, so whichever order they arrive in, every member ends on the same version.  As
only a senior admin may remove or demote one, the record that removes or demotes the
signer of its competitor always wins: **a removed or demoted admin cannot take the
group back** with a record made on the version before its removal (arriving after it,
that record is refused as :class:`RevokedGroupRecord`).  The loser is kept as a *lost*
record (messages sent under it still open, if their sender is still a member) and
reported (:attr:`Applied.lost`), so its author can apply the change again on top.

**Settled.**  Once a record builds on version *n + 1*, a competitor for *n + 1* that
arrives later is refused as stale: the rule decides between changes made at the same
time, it never rewrites history that has been built upon.  (So a change built on
version *n + 1* before every member has heard of a winning competitor of *n + 1* can
leave members disagreeing; docs/groups.md says what then.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from volli_nb.base.errors import (
    BrokenGroupChain,
    GroupRecordsMissing,
    NotGroupAdmin,
    ReplayedGroupRecord,
    RevokedGroupRecord,
    SquattedGroupId,
    StaleGroupRecord,
    UnknownGroup,
    UsageError,
)
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.groups.record import (
    GroupMember,
    MembershipRecord,
    check_signature,
    derive_group_id,
    sign_record,
)

RANK_PERSON = b"volli-group-rank"


def check_genesis(record: MembershipRecord) -> None:
    """Version 1 of a group: see the module docstring, step 2."""
    if record.version != 1:
        raise UnknownGroup(
            f"{record.group_id} {record.short()}: a group this member does not hold; "
            "its chain must start at version 1"
        )
    key = record.key_of(record.signer)
    if key is None:
        raise NotGroupAdmin(f"{record.group_id} v1 is signed by {record.signer}, not a member")
    check_signature(record, key)
    assert record.origin is not None  # the decoder and sign_record make sure
    if derive_group_id(key, record.origin) != record.group_id:
        raise SquattedGroupId(
            f"{record.group_id} is not the id {record.signer}'s key and this record's origin "
            "give: someone tried to create a group under an id that is not theirs"
        )
    if record.signer not in record.admins:
        raise NotGroupAdmin(f"{record.group_id} v1: its creator {record.signer} is not an admin")


def is_leaving(parent: MembershipRecord, record: MembershipRecord) -> bool:
    """Whether ``record`` only removes its own signer from ``parent`` (and changes nothing else)."""
    return (
        record.signer in parent.member_ids
        and record.member_ids == tuple(p for p in parent.member_ids if p != record.signer)
        and record.admins == tuple(a for a in parent.admins if a != record.signer)
        and record.name == parent.name
    )


def check_follows(parent: MembershipRecord, record: MembershipRecord) -> None:
    """``record`` as the version after ``parent``: see the module docstring, step 3."""
    if record.group_id != parent.group_id or record.prev_hash != parent.hash:
        raise BrokenGroupChain(
            f"{record.group_id} {record.short()} does not name {parent.group_id} "
            f"{parent.short()} as its previous version"
        )
    if record.version != parent.version + 1:
        raise BrokenGroupChain(
            f"{record.group_id}: version {record.version} cannot follow version "
            f"{parent.version} (versions go up by one)"
        )
    key = parent.key_of(record.signer)
    if key is None:
        raise NotGroupAdmin(
            f"{record.group_id} {record.short()} is signed by {record.signer}, who was not a "
            f"member of version {parent.version}"
        )
    check_signature(record, key)
    if record.signer not in parent.admins and not is_leaving(parent, record):
        raise NotGroupAdmin(
            f"{record.group_id} {record.short()}: {record.signer} was not an admin of version "
            f"{parent.version}; only an admin changes membership (a member may only leave)"
        )


def strikes(parent: MembershipRecord, record: MembershipRecord) -> set[str]:
    """The members of ``parent`` that ``record`` removes, and its admins it demotes."""
    kept, admins = set(record.member_ids), set(record.admins)
    gone = {p for p in parent.member_ids if p not in kept}
    return gone | {a for a in parent.admins if a not in admins}


def rank(parent: MembershipRecord, record: MembershipRecord) -> tuple[bytes, bytes]:
    """Between equal admins, the concurrent-change rule's tie-break (module docstring)."""
    key = parent.key_of(record.signer) or b""
    ticket = hashlib.blake2b(record.prev_hash + key, digest_size=32, person=RANK_PERSON)
    return ticket.digest(), record.hash


@dataclass(frozen=True)
class Applied:
    """What accepting one record did: the tip after it, whether the tip moved, and the
    records that lost a concurrent change here (the old tip, or this record)."""

    record: MembershipRecord
    tip: MembershipRecord
    moved: bool
    lost: tuple[MembershipRecord, ...] = ()

    @property
    def won(self) -> bool:
        return self.record not in self.lost


class GroupChain:
    """The verified records of one group: the current version (``tip``), the path that
    leads to it, and the records that lost a concurrent change."""

    def __init__(self, first: MembershipRecord) -> None:
        check_genesis(first)
        self.group_id = first.group_id
        self.records: dict[bytes, MembershipRecord] = {first.hash: first}
        self.lost: set[bytes] = set()
        self.tip = first
        self._seniority: dict[bytes, dict[str, int]] = {}  # record hash → admin → since

    @classmethod
    def load(cls, records: Iterable[MembershipRecord], tip: bytes) -> GroupChain:
        """Rebuild a chain from stored records and its tip's hash, verifying every one
        again (:class:`BrokenGroupChain` if they do not form one)."""
        by_hash = {r.hash: r for r in records}
        path: list[MembershipRecord] = []
        step = by_hash.get(tip)
        while step is not None:
            path.append(step)
            step = by_hash.get(step.prev_hash) if step.version > 1 else None
        if not path or path[-1].version != 1:
            raise BrokenGroupChain("a stored group chain does not lead back to its version 1")
        chain = cls(path[-1])
        for record in reversed(path[:-1]):
            chain.check_follows(chain.tip, record)
            chain.records[record.hash], chain.tip = record, record
        for record in sorted(by_hash.values(), key=lambda r: r.version):
            if record.hash not in chain.records:
                parent = chain.records.get(record.prev_hash)
                if parent is None or parent.hash in chain.lost:
                    raise BrokenGroupChain(f"stored record {record.short()} follows nothing held")
                chain.check_follows(parent, record)
                chain.records[record.hash] = record
                chain.lost.add(record.hash)
        return chain

    def copy(self) -> GroupChain:
        other = object.__new__(GroupChain)
        other.group_id, other.tip = self.group_id, self.tip
        other.records, other.lost = dict(self.records), set(self.lost)
        other._seniority = self._seniority  # keyed by immutable records: shared safely
        return other

    # --- reading -----------------------------------------------------------------

    @property
    def version(self) -> int:
        return self.tip.version

    def path(self) -> list[MembershipRecord]:
        """The records from version 1 to the tip."""
        out = [self.tip]
        while out[-1].version > 1:
            out.append(self.records[out[-1].prev_hash])
        return out[::-1]

    def path_to(self, record_hash: bytes) -> list[MembershipRecord]:
        """The records from version 1 to the held record ``record_hash`` (for a member that
        fetches the record a message was sent under)."""
        record = self.records.get(record_hash)
        if record is None:
            return []
        out = [record]
        while out[-1].version > 1:
            out.append(self.records[out[-1].prev_hash])
        return out[::-1]

    def get(self, record_hash: bytes) -> MembershipRecord | None:
        return self.records.get(record_hash)

    def is_current_path(self, record_hash: bytes) -> bool:
        return record_hash in self.records and record_hash not in self.lost

    def seniority(self, record: MembershipRecord) -> dict[str, int]:
        """Each admin of the held ``record``: the version since which it has been an admin
        without a break (module docstring)."""
        todo = [record]  # back to a record already known (a loop: chains are long)
        while todo[-1].hash not in self._seniority and todo[-1].version > 1:
            todo.append(self.records[todo[-1].prev_hash])
        before = self._seniority.get(todo[-1].hash, {})
        for step in reversed(todo):
            if step.hash not in self._seniority:
                self._seniority[step.hash] = {a: before.get(a, step.version) for a in step.admins}
            before = self._seniority[step.hash]
        return before

    def precedence(self, record: MembershipRecord) -> tuple[int, int, bytes, bytes]:
        """The concurrent-change rule's order for a record on a held parent: the lower
        wins (module docstring)."""
        parent = self.records[record.prev_hash]
        since = self.seniority(parent).get(record.signer)
        ticket, digest = rank(parent, record)
        return (0, since, ticket, digest) if since is not None else (1, 0, ticket, digest)

    def check_follows(self, parent: MembershipRecord, record: MembershipRecord) -> None:
        """:func:`check_follows`, and an admin removes or demotes only itself or admins
        junior to it (:class:`NotGroupAdmin`)."""
        check_follows(parent, record)
        seniority = self.seniority(parent)
        mine = seniority.get(record.signer)
        senior = sorted(
            p
            for p in strikes(parent, record) - {record.signer}
            if p in seniority and (mine is None or seniority[p] <= mine)
        )
        if senior:
            raise NotGroupAdmin(
                f"{record.group_id} {record.short()}: {record.signer} removes or demotes "
                f"{', '.join(senior)}, admin(s) since a version no later than its own; an "
                "admin removes or demotes only admins promoted after it"
            )

    # --- accepting -----------------------------------------------------------------

    def apply(self, record: MembershipRecord) -> Applied:
        """Accept ``record`` (module docstring), or raise its typed error, changing nothing."""
        if record.group_id != self.group_id:
            raise BrokenGroupChain(f"a {record.group_id} record offered to {self.group_id}'s chain")
        if record.hash in self.records:
            raise ReplayedGroupRecord(f"{record.group_id} {record.short()} is already held")
        parent = self.records.get(record.prev_hash) if record.version > 1 else None
        if parent is None:
            if record.version > self.tip.version:
                raise GroupRecordsMissing(
                    f"{record.group_id} {record.short()} follows a version this member does "
                    f"not hold (it holds v{self.tip.version}): fetch the chain"
                )
            raise StaleGroupRecord(
                f"{record.group_id}: version {record.version} is settled (this member holds "
                f"v{self.tip.version})"
            )
        self.check_follows(parent, record)
        if parent.hash in self.lost:
            raise BrokenGroupChain(
                f"{record.group_id} {record.short()} builds on {parent.short()}, a change that "
                "lost a concurrent one"
            )
        if parent is self.tip:
            return self._adopt(record, lost=())
        tip = self.tip
        if record.version != tip.version or parent.hash != tip.prev_hash:
            raise StaleGroupRecord(
                f"{record.group_id}: version {record.version} is settled (v{tip.version} "
                "builds on it); make the change again on the current version"
            )
        if self.precedence(record) < self.precedence(tip):
            self.lost.add(tip.hash)
            return self._adopt(record, lost=(tip,))
        if record.signer in strikes(parent, tip):
            raise RevokedGroupRecord(
                f"{record.group_id} {record.short()} by {record.signer} competes with "
                f"{tip.short()}, which removed or demoted its signer: a removed admin cannot "
                "take the group back"
            )
        if any(self.records[h].signer == record.signer and self.records[h].prev_hash == parent.hash
               for h in self.lost):  # fmt: skip
            raise StaleGroupRecord(
                f"{record.group_id} {record.short()}: {record.signer} already has a change of "
                f"v{parent.version} that lost to {tip.short()}; one is kept, not a pile"
            )
        self.records[record.hash] = record
        self.lost.add(record.hash)
        return Applied(record, tip, False, (record,))

    def _adopt(self, record: MembershipRecord, *, lost: tuple[MembershipRecord, ...]) -> Applied:
        self.records[record.hash] = record
        self.tip = record
        return Applied(record, record, True, lost)

    # --- proposing -------------------------------------------------------------------

    def propose(
        self,
        signer: Identity,
        *,
        members: Iterable[GroupMember],
        admins: Iterable[str],
        name: str | None = None,
    ) -> MembershipRecord:
        """The next version as ``signer`` would sign it; :class:`UsageError` if it may not
        (not an admin, or a change other than leaving), checked as every member will."""
        record = sign_record(
            signer,
            group_id=self.group_id,
            version=self.tip.version + 1,
            prev_hash=self.tip.hash,
            name=self.tip.name if name is None else name,
            members=list(members),
            admins=list(admins),
        )
        try:
            self.check_follows(self.tip, record)
        except NotGroupAdmin as exc:
            raise UsageError(f"{exc}") from None
        return record


__all__ = [
    "Applied",
    "GroupChain",
    "check_follows",
    "check_genesis",
    "is_leaving",
    "rank",
    "strikes",
]
