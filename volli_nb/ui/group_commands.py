"""Groups at a prompt: the shell's helpers and the ``%volli group …`` magic, on one set of
words.

A group is named by its id or its name (any case, if only one group has it); a member
by its contact name or peer id, as everywhere in the shell.  What waits (a change, a
message) runs on the loop: in the shell it returns a :class:`Running` (``await`` it, or
let it print one line); the magic updates its output when done.
"""

from __future__ import annotations

import io
import shlex
from collections.abc import Coroutine
from typing import Any

from volli_nb.base.errors import NotFound, UsageError
from volli_nb.core.groups.record import is_group_id
from volli_nb.ui.shell_helpers import Printed, TableView, either_way, resolve

GROUP_HELP = """\
  %volli group                 the groups panel (list, members, delivery per member)
  %volli group new NAME M…     a new group of you (its admin) and these contacts
  %volli group add G M [admin] add a member (you must be an admin); `admin` makes it one
  %volli group remove G M      remove a member: no key for any later message
  %volli group leave G         leave the group
  %volli group send G TEXT…    a message to every member (pairs lazily as needed)
  %volli group show G          one group: members, version, record hash, delivery"""


SHELL_GROUPS = {  # header → row key: the name first, the id last (a long one)
    "name": "name",
    "version": "version",
    "record": "record",
    "members": "members",
    "admins": "admins",
    "you": "you",
    "id": "group",
}


def find_group(store: Any, group: str, listed: str = "groups()") -> str:
    """A group's id from its id or its name (any case, if only one group has it);
    ``listed``: what lists the groups where the person typed (the shell's ``groups()``)."""
    if is_group_id(group):
        return group
    named: list[str] = [g.group_id for g in store.groups() if g.name.casefold() == group.casefold()]
    if len(named) > 1:
        raise UsageError(f"{len(named)} groups are named {group!r}; use an id: {named}")
    if not named:
        raise NotFound(f"no group {group!r}; {listed} lists them")
    return named[0]


def describe(store: Any, group_id: str) -> str:
    """One group in a few lines: version, record, members, admins, recent delivery."""
    from volli_nb.ui.widgets.groups_panel import delivery_table, members_table

    members = TableView(members_table(store, group_id))
    delivery = TableView(delivery_table(store, group_id))
    return f"{members.table.title}\n{members!r}\n\n{delivery!r}"


def group_changes(store: Any) -> dict[str, Any]:
    """The changes (``new_group``, ``add``, ``remove``, ``leave``): each starts at once."""

    def line(info: Any) -> str:
        return f"→ {info!r}"

    @either_way(lambda name, *members: f"new_group({name!r})", line)
    async def new_group(name: str, *members: str) -> Any:
        """A new group of us (its first admin) and these contacts (names or peer ids)."""
        return await store.create_group(name, [resolve(store, m) for m in members])

    @either_way(lambda group, member, **_: f"add({group!r}, {member!r})", line)
    async def add(group: str, member: str, *, admin: bool = False) -> Any:
        """Add a contact to a group we administer (``admin=True``: as an admin too)."""
        return await store.add_member(find_group(store, group), resolve(store, member), admin=admin)

    @either_way(lambda group, member: f"remove({group!r}, {member!r})", line)
    async def remove(group: str, member: str) -> Any:
        """Remove a member: it receives no key for any later message."""
        return await store.remove_member(find_group(store, group), resolve(store, member))

    @either_way(lambda group: f"leave({group!r})", line)
    async def leave(group: str) -> Any:
        """Leave a group (the last admin hands admin on)."""
        return await store.leave_group(find_group(store, group))

    return {"new_group": new_group, "add": add, "remove": remove, "leave": leave}


def group_helpers(store: Any) -> dict[str, Any]:
    """What the shell preloads for groups: ``groups()``, ``group(g)`` and the changes."""
    from volli_nb.ui.widgets.groups_panel import groups_table

    def groups() -> TableView:
        """Every group: version, record hash, members, admins, and what we are in it."""
        return TableView(groups_table(store), SHELL_GROUPS)

    def group(name_or_id: str) -> Printed:
        """One group: its members (admin, connected), and its recent messages' delivery."""
        return Printed(describe(store, find_group(store, name_or_id)))

    return {"groups": groups, "group": group, **group_changes(store)}


def magic_words(line: str) -> list[str]:
    """``%volli group …``'s words, as shell words, except that ``send G TEXT…`` keeps TEXT
    as typed: an apostrophe is not an unclosed quote (G may still be quoted)."""
    rest = io.StringIO(line)  # the lexer reads it word by word: what it left is the text
    lexer = shlex.shlex(rest, posix=True)
    lexer.whitespace_split, lexer.commenters = True, ""
    head = [lexer.get_token(), lexer.get_token()]
    if head[0] != "send" or head[1] is None:
        return shlex.split(line)
    text = rest.read().strip()
    return [head[0], head[1], text] if text else [head[0], head[1]]


def group_magic(store: Any, rest: list[str]) -> tuple[str, Coroutine[Any, Any, Any] | None, Any]:
    """``%volli group …`` → (what, work to run on the loop or None, what to show now)."""
    if not rest:
        return "panel", None, None
    command, args = rest[0], rest[1:]

    def find(group: str) -> str:
        return find_group(store, group, "%volli group")

    if command == "new" and args:
        members = [resolve(store, m) for m in args[1:]]
        return f"create_group({args[0]!r}, …)", store.create_group(args[0], members), None
    if command in ("add", "remove") and len(args) >= 2:
        group, member = find(args[0]), resolve(store, args[1])
        if command == "add":
            admin = args[2:] == ["admin"]
            return "add_member(…)", store.add_member(group, member, admin=admin), None
        return "remove_member(…)", store.remove_member(group, member), None
    if command == "leave" and args:
        return "leave_group(…)", store.leave_group(find(args[0])), None
    if command == "send" and len(args) >= 2:
        text = " ".join(args[1:])
        return "send_message(group, …)", store.send_message(find(args[0]), text), None
    if command == "show" and args:
        return "show", None, describe(store, find(args[0]))
    raise UsageError(f"usage:\n{GROUP_HELP}\n(got: group {shlex.join(rest)})")


__all__ = ["GROUP_HELP", "describe", "find_group", "group_helpers", "group_magic", "magic_words"]
