"""The cells of notebook 07, groups (issue 27), kept apart from build_notebooks.py so other
notebooks can be added there without touching these.  build_notebooks.py writes it."""

from __future__ import annotations

GROUPS: list[tuple[str, str]] = [
    (
        "md",
        """# Groups: a mesh of kernels chatting

Three profiles form a group through a signaling room, one goes offline and catches up,
one is removed and can no longer read.  What you will see:

- a **membership record** — `{group_id, version, members, admins, prev_hash}` — signed by
  an admin and chained by hash; every message names the version it was sent under;
- **fan-out**: one body ciphertext per message, a key wrap per member under that pair's
  session (so each copy has the pairwise forward secrecy), members connecting only when a
  message needs them;
- **removal** taking effect on the next message.

The rules in full: [docs/groups.md](../docs/groups.md).""",
    ),
    (
        "code",
        """%load_ext volli_nb
import tempfile
from pathlib import Path
from volli_nb import MessagesStore, NetworkConfig
from volli_nb.net.signaling.server import SignalingServer

folder = Path(tempfile.mkdtemp(prefix="volli-groups-"))
def profile(name):   # a profile that lasts (carol closes hers and opens it again)
    return MessagesStore.open(folder / f"{name}.sqlite", f"{name}'s passphrase", name=name,
                              config=NetworkConfig(loopback_only=True))

async def until(check, timeout=20):
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("not yet")

import asyncio
server = await SignalingServer(port=0).start()      # volli-signal, on this machine
alice, bob, carol = profile("alice"), profile("bob"), profile("carol")
for a in (alice, bob, carol):       # names for each other (a room pins keys, not names)
    for b in (alice, bob, carol):
        if a is not b:
            a.add_contact(b.identity.public, name=b.name)
for store in (alice, bob, carol):   # auto_pair=False: nobody connects until a message needs it
    await store.join("study-room", server.url, auto_pair=False)
names = {s.peer_id: s.name for s in (alice, bob, carol)}
def named(statuses):   # {peer id: status} → {name: status}, in name order
    return dict(sorted((names[p], s) for p, s in statuses.items()))
await until(lambda: len(alice.room_session.online) == 2)
print("connections before the group:", alice.network_store.connected_peers())""",
    ),
    (
        "md",
        """## A group is a signed record

`create_group` signs **version 1**: its id comes from alice's key and fresh randomness (so
nobody can create a group under an id that someone else will use), alice is its admin.
The whole chain goes to every member through the outbox, and the members connect as it
needs them.""",
    ),
    (
        "code",
        """group = await alice.create_group("study", [bob.peer_id, carol.peer_id])
gid = group.group_id
print(group)
await until(lambda: bob.groups() and carol.groups())
for store in (bob, carol):
    g = store.group(gid)
    print(f"{store.name} holds version {g.version}, record {g.record_hash[:16]}…, "
          f"admins: {[names[a] for a in g.admins]}")""",
    ),
    (
        "md",
        """## One body, a key wrap per member

A message to the group is written once and queued once per member; each attempt seals
it under the sessions of the members connected *now* — one body ciphertext, a key wrap
each — and names the record's version and hash in its header.""",
    ),
    (
        "code",
        """hello = await alice.send_message(gid, "hello, study group")
print("delivery per member:", named(await alice.wait_delivered(hello.message_id)))
print([e.message for e in alice.log.entries(category="group") if "fan-out" in e.message][-1])
reply = await bob.send_message(gid, "hi all")   # bob needs carol now: they pair, lazily
await bob.wait_delivered(reply.message_id)
for store in (alice, bob, carol):
    print(store.name, "shows", [m.text for m in store.history(gid)])""",
    ),
    (
        "md",
        """## Carol goes offline, and catches up

Carol closes her profile.  Messages sent meanwhile wait in the senders' outboxes (the
1 s / 5 s / 15 s / 60 s schedule); when she opens it again and rejoins the room, the
senders see her, pair, and flush.""",
    ),
    (
        "code",
        """await carol.close()
await until(lambda: carol.peer_id not in alice.room_session.online)
missed = await alice.send_message(gid, "carol, you missed this")
await until(lambda: alice.delivery_status(missed.message_id)[bob.peer_id] == "delivered")
print("while carol is away:", named(alice.delivery_status(missed.message_id)))
carol = profile("carol")
await carol.join("study-room", server.url, auto_pair=False)
await alice.wait_delivered(missed.message_id, timeout=30)
print("carol, back online, shows:", [m.text for m in carol.history(gid)])""",
    ),
    (
        "md",
        """## Carol is removed

Alice signs **version 2** without carol.  Bob and carol receive it (carol learns she is
out); from the next message on, no outbox row — and so no key — exists for her.""",
    ),
    (
        "code",
        """from volli_nb.core.protocol import frames
sent_frames = []   # what alice hands her data channels, as an observer inside them sees it
alice.network_store.trace.taps.append(lambda way, peer, data: sent_frames.append((way, peer, data)))

v2 = await alice.remove_member(gid, carol.peer_id)
print(v2)
await until(lambda: bob.group(gid).version == 2 and carol.group(gid).version == 2)
print("carol is still a member:", carol.group(gid).is_member)
secret = await alice.send_message(gid, "only bob and me now")
print("recipients:", list(named(await alice.wait_delivered(secret.message_id))))
print("carol shows it:", "only bob and me now" in [m.text for m in carol.history(gid)])
try:
    await carol.send_message(gid, "am I still here?")
except Exception as exc:
    print(type(exc).__name__, "→", exc)""",
    ),
    (
        "md",
        """**Even handed the frame.**  Give carol's store the very frame alice sent bob, as if it
had arrived on carol's own channel with alice: nothing opens — the envelope holds no key
wrap for her.""",
    ),
    (
        "code",
        """from volli_nb.core.protocol.events import FrameReceived
to_bob = [frames.decode_frame(d) for way, peer, d in sent_frames
          if way == "out" and peer == bob.peer_id and d[1] == frames.BUNDLE]
keys = carol.sessions.get(alice.peer_id)
for frame in to_bob:
    if secret.message_id in frame.message_ids and keys is not None:
        verdict = carol.receiver.frame(alice.peer_id, FrameReceived(keys.session_id, frame.bundle))
        print("carol's store stored", len(verdict.stored), "message(s); refused:",
              sorted({type(error).__name__ for _, error in verdict.refused}))""",
    ),
    (
        "md",
        """## The panels

The groups panel: each group's version and record hash, its members and admins, and per
member the delivery of the recent messages.  The sequence diagram draws the fan-out.""",
    ),
    (
        "code",
        """from volli_nb.ui.widgets import GroupsPanel, SequencePanel
GroupsPanel(alice)""",
    ),
    (
        "code",
        """SequencePanel(alice)""",
    ),
    (
        "md",
        "When you are done, `for store in (alice, bob, carol): await store.close()` and then "
        "`await server.close()` close the peers and the server (the panels keep their last "
        "view).",
    ),
]
