"""Schema 4: message ids that name their sender (:mod:`volli_nb.core.message_id`).

A profile from before holds ids minted at random, and a receiver now refuses an id that
does not carry its sender's tag.  The upgrade gives every unbound id its bound form,
:func:`~volli_nb.core.message_id.rebound` of the old id and the message's sender, in
every table that names it: the message row (its MACs, and its sealed body, which names
its row), its outbox rows (their MACs) and the seen-set.

The map is deterministic, so two profiles agree without talking: alice re-mints a
message she still waits an ACK for to the id bob re-minted his stored copy to, and if
bob had stored it before the upgrade (only the ACK was lost), her copy sent after it is
acknowledged as a duplicate, not shown twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from volli_nb.core.message_id import bound_to, rebound
from volli_nb.core.store.outbox_ledger import (
    PRUNED,
    PRUNED_MAC,
    ROW_COLUMNS,
    STATUS_MAC,
    check_outbox_row,
    status_mac,
)
from volli_nb.core.store.outbox_rows import Status
from volli_nb.core.store.row_macs import MAC_COLUMN

if TYPE_CHECKING:
    from volli_nb.core.store.database import Database


def bind_message_ids(db: Database) -> None:
    """The schema-4 step (in the migration's transaction; MACs checked before use)."""
    for row in db.fetch("SELECT message_id, sender FROM messages"):
        old, sender = str(row["message_id"]), str(row["sender"])
        if not bound_to(bytes.fromhex(old), sender):
            _rebind_message(db, old, rebound(bytes.fromhex(old), sender).hex())
    found = db.fetch("SELECT peer_id FROM identity WHERE id = 1")
    if found:  # the outbox holds what this profile sends: its own ids
        _rebind_outbox(db, str(found[0]["peer_id"]))
    for row in db.fetch("SELECT message_id, sender FROM seen"):
        old, sender = str(row["message_id"]), str(row["sender"])
        if not bound_to(bytes.fromhex(old), sender):
            new = rebound(bytes.fromhex(old), sender).hex()
            db.execute("UPDATE OR IGNORE seen SET message_id = ? WHERE message_id = ?", (new, old))


def _rebind_message(db: Database, old: str, new: str) -> None:
    row = dict(db.fetch("SELECT * FROM messages WHERE message_id = ?", (old,))[0])
    db.check_row("messages", row)
    db.check_part("messages", row)
    body = db.unseal("messages", "body", old, row["body"])
    row["message_id"] = new
    pruned_mac = None if row[PRUNED] is None else db.part_mac("messages", row)
    db.execute(
        f"UPDATE messages SET message_id = ?, body = ?, {MAC_COLUMN} = ?, {PRUNED_MAC} = ? "
        "WHERE message_id = ?",
        (new, db.seal("messages", "body", new, body), db.row_mac("messages", row), pruned_mac, old),
    )


def _rebind_outbox(db: Database, me: str) -> None:
    for outbox in db.fetch(f"SELECT {ROW_COLUMNS} FROM outbox"):
        old = str(outbox["message_id"])
        if bound_to(bytes.fromhex(old), me):
            continue
        check_outbox_row(db, outbox)
        new = rebound(bytes.fromhex(old), me).hex()
        moved = {**dict(outbox), "message_id": new}
        db.execute(
            f"UPDATE outbox SET message_id = ?, {MAC_COLUMN} = ?, {STATUS_MAC} = ? WHERE id = ?",
            (
                new,
                db.row_mac("outbox", moved),
                status_mac(db, new, str(outbox["recipient"]), Status(outbox["status"])),
                outbox["id"],
            ),
        )


__all__ = ["bind_message_ids"]
