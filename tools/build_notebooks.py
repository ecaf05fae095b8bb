"""Write the tutorial notebooks (stored without outputs) from the cell texts below.

Run: .venv/bin/python tools/build_notebooks.py   (tests check the committed files match)
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}

SETUP = '''%load_ext volli_nb
# a volli error shows as one line (its type, what to do); %tb shows its full traceback
from volli_nb import MessagesStore, show_progress
# MessagesStore.scratch(name): a throwaway profile, 127.0.0.1 only, deleted on close
# (or when the kernel stops or restarts)
# show_progress(store): a bar for its long operations (a large message, a backlog flush)'''

ACROSS_BINDER: list[tuple[str, str]] = [
    (
        "md",
        """## Pairing across two Binder sessions

Two kernels in **one** Binder session pair directly, as above.  Two students in **two**
sessions are in two pods, and a Binder pod lets only outbound TCP 80/443 out: the peers
cannot reach each other, and can only meet on a **TURN relay that answers on port 443**
(over TLS, `turns:HOST:443?transport=tcp`, or plain TCP).  Your teacher runs one (the
recipe is in `docs/deployment.md`: coturn on 443 and `volli-signal` behind TLS), and gives
you **either** the signaling server's address (it hands out TURN credentials by itself)
**or** a TURN URL with a username and credential.  Fill in one of them below, in both
notebooks; left empty, the cells only show what they would do.""",
    ),
    (
        "code",
        """SIGNAL_URL = ""   # e.g. "wss://signal.example.org" (volli-signal: rooms + TURN credentials)
ROOM = "class"    # the same room in both notebooks
CA = None         # a CA file (PEM) if the servers' certificates are not from a public CA
TURN_URL, TURN_USER, TURN_CREDENTIAL = "", "", ""  # or a TURN server you were given
NAME = ""         # your name, as the other student will see it (empty: this machine's name)""",
    ),
    (
        "md",
        """**The preflight.**  Before it gathers candidates, each connection asks every TURN URL
for a relay allocation (at most 5 s, all at once) and hands aiortc the fastest that works —
aiortc itself would use only the first, and say nothing when it fails.
`await me.network_store.preflight()` runs it now and shows its answer.""",
    ),
    (
        "code",
        """import socket
from volli_nb import NetworkConfig
me, NAME = None, NAME or socket.gethostname()   # each Binder session has its own
if SIGNAL_URL:    # relay-only: nothing but the TURN server's relay is offered
    me = MessagesStore.scratch(NAME, config=NetworkConfig(relay_only=True))
    await me.join(ROOM, SIGNAL_URL, ssl=CA)   # the server's TURN credentials arrive here
elif TURN_URL:
    me = MessagesStore.scratch(NAME, config=NetworkConfig.relay_via(
        TURN_URL, TURN_USER, TURN_CREDENTIAL, ca=CA))
if me is not None:
    report = await me.network_store.preflight()
    print(report.summary() if report else "the server handed out no TURN server")
else:
    print("fill in SIGNAL_URL, or TURN_URL and its credentials, above (in both notebooks)")""",
    ),
    (
        "md",
        """With `SIGNAL_URL`, both notebooks now see each other in the room and pair by
themselves (`me.room_session.online` lists who is there; then `await me.wait_connected(peer)`
and `await me.send_message(peer, "hi")`).  With only `TURN_URL`, pair by codes as above:
`code = await me.create_pairing_code()` and `pairing_qr(code)` in one notebook,
`await me.accept_pairing_code(code)` in the other, and `await me.complete_pairing(answer)`
back in the first.  The ICE panel (`IcePanel(me)`) then shows the relay candidate — or why
there is none.

**What a failure looks like.**  Here the preflight asks a port on this machine where no
TURN server listens (nothing leaves the machine):""",
    ),
    (
        "code",
        """from volli_nb import IceServer
from volli_nb.net.turn_preflight import preflight
nowhere = await preflight([IceServer("turn:127.0.0.1:9?transport=tcp", "user", "pw")], timeout=2)
print(nowhere.summary())
print(type(nowhere.failure()).__name__, "→", nowhere.failure())""",
    ),
    (
        "md",
        """**What each failure means** (each is a `TurnError`, a `TransportClosed`; the message
names the server and what to fix):

| error | what happened | what to do |
|---|---|---|
| `TurnAuthFailed` | the TURN server refused the username and credential (401) | check them; with `volli-signal`, coturn's `static-auth-secret` must equal `--turn-secret` |
| `TurnCredentialsExpired` | time-limited credentials are past their expiry | rejoin (volli-signal renews them while you stay joined); check the clock |
| `TurnCertificateError` | the `turns:` server's certificate is not trusted, or names another host | pass its CA (`ca=` / `ssl=`), or use the name on the certificate |
| `TurnRefused` | nothing listens there, TLS did not start, or the server refused the request | check the address and port (443), `turns:` versus `turn:` |
| `TurnTimeout` | no answer in time: over UDP, almost always a firewall | use `turns:HOST:443?transport=tcp` |
| `UntrustedServer` | the `wss://` signaling server's certificate is not trusted | pass `ssl="ca.pem"` to `join` |""",
    ),
    (
        "md",
        "When you are done, `await me.close()` closes the connection (the other student sees "
        "you go offline).",
    ),
]

# --- Notebook 01, second half (issue 28): the handshake, the ratchet turning, envelope v2 ---
KEY_EXCHANGE_SESSIONS: list[tuple[str, str]] = [
    (
        "md",
        """## Where forward secrecy comes from: sessions
The envelope above is the seed's *static-key* envelope, kept in `volli_nb.lab` for teaching.
Each content key is wrapped to the recipient's long-lived device key, so whoever later
steals that key unwraps every envelope ever sent to it: **no forward secrecy**.

The wire does it differently.  When a data channel opens, both sides run a **handshake**
with fresh keys, and a **Double Ratchet** then derives a new key for every message and
deletes it once used.  Nothing of a session is ever written to disk.  The rest of this
notebook watches that happen between two real stores (notebook
[06 forward secrecy](06-forward-secrecy.ipynb) then plays the thief).

### The handshake, from both sides
Each side sends one **hello** as soon as the channel opens: its keys, two fresh ones (an
ephemeral key and its first ratchet key), the digests of the two DTLS certificates *this
connection* uses, and a signature over all of it.  A tap on alice's frame trace records
what crosses her channel.""",
    ),
    (
        "code",
        """from volli_nb.core.crypto import handshake
from volli_nb.lab.recording import Recording
alice_app, bob_app = MessagesStore.scratch("alice"), MessagesStore.scratch("bob")
wire = Recording.tap(alice_app)                    # every frame on alice's channel, both ways
peer = await alice_app.complete_pairing(await bob_app.accept_pairing_code(await alice_app.create_pairing_code()))
await alice_app.wait_connected(peer); await bob_app.wait_connected(alice_app.peer_id)
sent = {"out": "alice", "in": "bob"}
hellos = {sent[d]: handshake.decode_hello(raw) for d, raw in wire.hellos()}
print(f"{'hello field':22} {'alice → bob':24} {'bob → alice':24}")
for field in ("identity_key", "device_key", "peer_identity_key", "ephemeral_key", "ratchet_key",
              "own_certificate", "peer_certificate", "signature"):
    a, b = (getattr(hellos[who], field).hex()[:16] + "…" for who in ("alice", "bob"))
    print(f"{field:22} {a:24} {b:24}")
print(f"each hello: {handshake.HELLO_BYTES} bytes")""",
    ),
    (
        "md",
        """**What each side checks** before it derives anything (the order of
`handshake.finish`): the hello comes from the pinned identity with the pinned device key,
its signature verifies, it is addressed to me, and — the **channel binding** — the two
certificate digests it signed are exactly the two certificates my own DTLS handshake
saw.  A relay in the middle would have shown each side a certificate of its own.""",
    ),
    (
        "code",
        """from volli_nb.core.crypto.identity import verify
from volli_nb.net.aiortc_compat import certificate_digests
apps = {"alice": alice_app, "bob": bob_app}
for me, other in (("alice", "bob"), ("bob", "alice")):
    app, theirs = apps[me], hellos[other]
    local, remote = certificate_digests(app.network_store.peers[apps[other].peer_id])
    pinned = app.contact(apps[other].peer_id)
    verify(theirs.identity_key, handshake.SIGN_DOMAIN, theirs.signed_part(), theirs.signature)
    checks = {
        "identity key = the pinned one": theirs.identity_key == pinned.identity_key,
        "device key = the pinned one": theirs.device_key == pinned.device_key,
        "signature verifies": True,   # verify() above raised nothing
        "addressed to me": theirs.peer_identity_key == app.identity.public.identity_key,
        "their certificate = the one my DTLS saw": theirs.own_certificate == remote,
        "my certificate = the one my DTLS used": theirs.peer_certificate == local,
    }
    print(f"{me} checks {other}'s hello: " + ", ".join(f"{k} {'✓' if ok else '✗'}" for k, ok in checks.items()))""",
    ),
    (
        "md",
        """Both sides then hash the two hellos into the **session id**, mix three Diffie-Hellman
results (two with the device keys, one between the two ephemeral keys) into the first root
key, and start the ratchet.  The ephemeral secrets are dropped at once: that is what a later
thief can never get back.  And the binding at work: a hello naming another certificate is
refused.""",
    ),
    (
        "code",
        """import hashlib
ids = [app.sessions.get(apps[o].peer_id).session_id for app, o in ((alice_app, "bob"), (bob_app, "alice"))]
first, second = sorted(hellos.values(), key=lambda h: (h.identity_key, h.device_key))
transcript = hashlib.sha256(handshake.TRANSCRIPT_PREFIX + first.encode() + second.encode()).digest()
print("both sides derived the same session id:", ids[0] == ids[1], ids[0].hex()[:16], "…")
print("and it is the hash of both hellos:", ids[0] == transcript)

mine = handshake.start(alice, bob.public, local_certificate=hashlib.sha256(b"alice's").digest(),
                       remote_certificate=hashlib.sha256(b"bob's").digest())
relayed = handshake.start(bob, alice.public, local_certificate=hashlib.sha256(b"a relay's").digest(),
                          remote_certificate=hashlib.sha256(b"alice's").digest())
try:
    handshake.finish(mine, relayed.hello)
except Exception as e:
    refused("a relayed channel", e)""",
    ),
    (
        "md",
        """### The ratchet, turning
Below is alice's side of her session with bob, **live**: a row per chain (→ hers, ← bob's),
a box per message key.  Run the next cell and watch it: each message takes the next key of
its chain, uses it once and deletes it (grey, struck through); the dashed box is where the
chain key stands.  When the direction changes, the receiver takes a **DH ratchet step**:
new chains both ways, from a fresh key pair.  Hover a box or a chain for what it is.""",
    ),
    ("code", "from volli_nb.ui.widgets import RatchetPanel\nratchet = RatchetPanel(alice_app, peer)\nratchet"),
    (
        "code",
        """import asyncio
steps = alice_app.sessions.summary(peer).dh_steps
for sender, receiver, text in [(alice_app, bob_app, "hi bob"), (alice_app, bob_app, "are you there?"),
                               (bob_app, alice_app, "yes!"), (alice_app, bob_app, "good"),
                               (bob_app, alice_app, "bye"), (bob_app, alice_app, "for now")]:
    m = await sender.send_message(receiver.peer_id, text)
    await sender.wait_delivered(m.message_id)
    s = alice_app.sessions.summary(peer)
    step = "  ⟳ a DH step at alice" if s.dh_steps > steps else ""
    steps = s.dh_steps
    print(f"{sender.name:5} → {receiver.name:5} {text!r:17} alice's keys: sent {s.sent}, received {s.received}{step}")
    await asyncio.sleep(1)   # time to watch the picture above turn""",
    ),
    (
        "md",
        """The same session from bob's side: his sending chains are alice's receiving ones, key for
key.  (The sequence diagram, `SequencePanel(alice_app)`, marks each DH step too.)""",
    ),
    ("code", "RatchetPanel(bob_app, alice_app.peer_id).snapshot()"),
    (
        "md",
        """### Keys held, and keys that expire
A data channel delivers in order, so a receiver never has to wait for a message.  When one
is lost or late, the receiver derives the keys it skipped and **holds** them (at most
2,048, each for at most an hour) until their message comes, then deletes them; unused,
they expire.  `ChannelPair` runs both sides of one session in this kernel, on a virtual
clock, and lets a letter arrive late, or never:""",
    ),
    (
        "code",
        """from volli_nb.lab.channel_pair import ChannelPair
from volli_nb.ui.widgets import ratchet_view
lab = ChannelPair(("alice", "bob"))
letters = [lab.send("alice", f"letter {i}") for i in range(4)]
print("bob opens", repr(lab.deliver(letters[3])), "first: keys 0, 1 and 2 are derived and held")
ratchet_view(lab.summary("bob"), me="bob", peer="alice")""",
    ),
    (
        "code",
        """print("bob opens", repr(lab.deliver(letters[0])), "with a held key, then deletes it")
lab.advance(3600)   # an hour later: the housekeeping timer drops what is left
print("letter 1, an hour late:", lab.deliver(letters[1]))
ratchet_view(lab.summary("bob"), me="bob", peer="alice")""",
    ),
    (
        "md",
        """### The v2 envelope, field by field, beside v1
The same text sealed both ways.  v2's per-recipient `nonce` is the ratchet header (which
key of which chain) and its `encryptedKey` is the content key under that single-use message
key; the signature moved to the bundle (one per frame, however many messages it carries).
v1 spells everything out in JSON and carries the sender's whole identity.""",
    ),
    (
        "code",
        """from volli_nb.core.body import encode_body
from volli_nb.core.crypto.envelope_wire import parse_bundle
from volli_nb.lab.envelope_bytes import table, v1_fields, v2_fields
letter = lab.send("alice", "meet at noon")
v2 = parse_bundle(letter.bundle).envelopes[0].raw
v1 = seal(lab.identities["alice"], [lab.identities["bob"].public], conversation_id="lab",
          plaintext=encode_body("meet at noon"), counter=1, timestamp_ms=lab.now_ms)
print(table("envelope v2 (the wire now)", v2_fields(v2)))
print(f"in its bundle: {len(letter.bundle)} bytes (+ version, count, length, one 64-byte signature)")
print()
print(table("envelope v1 (static keys, retired)", v1_fields(v1), text=True))""",
    ),
    (
        "md",
        "When you are done, `await alice_app.close(); await bob_app.close()` closes both peers "
        "(the panels keep their last view).",
    ),
]

# --- Notebook 06 (issue 28): the recording, the thief of keys and files, the thief of a state ---
FORWARD_SECRECY: list[tuple[str, str]] = [
    (
        "md",
        """# 06 · Forward secrecy: the recording and the thief

Someone records every frame alice's channel carries — not just the network's view, but
*inside* DTLS, all the two peers exchange.  Later they steal **both devices**: identity and
device keys, the profile files, and their passphrases.  What can they read?

1. **The stored history: all of it.**  That is what the files and passphrases are for.
2. **The recorded frames: none.**  Each was sealed under a session key that lived only in
   the two processes' memory, from ephemeral keys deleted after the handshake.
3. The same conversation in the retired **v1** envelope (sealed to the device keys): every
   message.

Then a different thief: one who copies a **live ratchet state** out of bob's running
process.  They read along — and lose the thread one round trip later, when fresh
Diffie-Hellman keys they do not have enter the ratchet.  ([docs/security.md](../docs/security.md)
gives the exact horizon; `tests/test_forward_secrecy.py` stages the same thefts with two
OS processes.)""",
    ),
    (
        "code",
        """%load_ext volli_nb
import tempfile, time
from pathlib import Path
from volli_nb import MessagesStore, NetworkConfig
from volli_nb.core.body import decode_body, encode_body
from volli_nb.core.store.database import KDF_MIN
from volli_nb.lab.recording import Recording

folder = Path(tempfile.mkdtemp(prefix="volli-06-"))
PASSPHRASES = {"alice": "alice's passphrase", "bob": "bob's passphrase"}

def open_profile(name):   # a profile that stays on disk when closed (KDF_MIN: a quick demo)
    return MessagesStore.open(folder / f"{name}.sqlite", PASSPHRASES[name], name=name,
                              kdf=KDF_MIN, config=NetworkConfig(loopback_only=True))

async def say(sender, receiver, text):
    m = await sender.send_message(receiver.peer_id, text)
    await sender.wait_delivered(m.message_id)

alice, bob = open_profile("alice"), open_profile("bob")
wire = Recording.tap(alice)            # the recorder, inside alice's channel
peer = await alice.complete_pairing(await bob.accept_pairing_code(await alice.create_pairing_code()))
await alice.wait_connected(peer)
lines = [(alice, bob, "the vault code is 4711"), (bob, alice, "got it"),
         (alice, bob, "now delete this chat"), (bob, alice, "done")]
for sender, receiver, text in lines:
    await say(sender, receiver, text)
live = alice.sessions.get(peer).state   # to check the files for it below (no thief has this)
print(f"recorded {len(wire.frames)} frames; {len(wire.crossed())} carry messages")""",
    ),
    (
        "md",
        """## 1. Later: the thief takes both devices' keys and files
Both apps close (their channel, and with it the session, is gone).  The thief copies both
profile files and opens them with the passphrases: both identities, both device keys, and
the stored history.""",
    ),
    (
        "code",
        """from volli_nb.lab.thief import steal, try_frames
await alice.close(); await bob.close()
loot = {name: steal(folder / f"{name}.sqlite", PASSPHRASES[name], tempfile.mkdtemp())
        for name in PASSPHRASES}
stolen_alice, stolen_bob = loot["alice"].identity, loot["bob"].identity
print("the thief holds alice's and bob's identity and device keys:",
      stolen_alice.peer_id == alice.peer_id, stolen_bob.peer_id == bob.peer_id)
conversation = loot["bob"].database.list_conversations()[0].id
for m in loot["bob"].database.history(conversation):
    print("  from bob's file:", decode_body(m.body))""",
    ),
    (
        "md",
        """**The recorded frames.**  With both key sets and the recorded hellos the thief can
compute the transcript and two of the handshake's three Diffie-Hellman results.  The third
needs an ephemeral secret that was never stored; `try_frames` builds every first ratchet
state the thief *can* (24 guesses) and tries each recorded frame with each, as either side.""",
    ),
    (
        "code",
        """now_ms = int(time.time() * 1000)
tried = try_frames(wire, stolen_alice, stolen_bob, now_ms=now_ms)
for i, t in enumerate(tried, 1):
    who = "alice → bob" if t.direction == "out" else "bob → alice"
    print(f"  frame {i} ({who}, {t.envelopes} message): {'OPENED' if t.opened else 'closed'}")
print(f"opened {sum(1 for t in tried if t.opened)} of {len(tried)} recorded frames")
files = b"".join(p.read_bytes() for p in folder.glob("*.sqlite*"))
keys = [k for k in (live.root_key, live.dhs_secret, live.cks, live.ckr) if k]
print("any key of the live session in either file:", any(k in files for k in keys))""",
    ),
    (
        "md",
        """**The same conversation in v1**, the seed's static-key envelope: each content key
wrapped to the recipient's device key.  The same theft opens every one.""",
    ),
    (
        "code",
        """from volli_nb.lab.static_key_envelope import open_envelope, seal as seal_v1
thief = {alice.peer_id: stolen_alice, bob.peer_id: stolen_bob}
pinned = {i.peer_id: i.public for i in thief.values()}
for i, (sender, receiver, text) in enumerate(lines, 1):
    v1 = seal_v1(sender.identity, [receiver.identity.public], conversation_id=conversation,
                 plaintext=encode_body(text), counter=i, timestamp_ms=now_ms)
    opened = open_envelope(v1, thief[receiver.peer_id], contacts=pinned.get, now_ms=now_ms)
    print(f"  v1 {sender.name} → {receiver.name}: opened: {decode_body(opened.plaintext)}")""",
    ),
    (
        "md",
        """## 2. A thief in the running process: a copied ratchet state
The apps open again; a new channel starts a fresh session.  Five messages go back and
forth; then the thief copies bob's live ratchet state (what a memory dump would hold),
and the conversation goes on.  `read_along` plays bob with the copy: his receiving chain
for alice's frames, his sending chain for his own.""",
    ),
    (
        "code",
        """from volli_nb.lab.thief import copy_state, read_along
alice, bob = open_profile("alice"), open_profile("bob")
wire = Recording.tap(alice)
peer = await alice.complete_pairing(await bob.accept_pairing_code(await alice.create_pairing_code()))
await alice.wait_connected(peer)
turns = [(alice, bob), (bob, alice)] * 2 + [(alice, bob)]
for i, (sender, receiver) in enumerate(turns):
    await say(sender, receiver, f"before {i}")
copy = copy_state(bob, alice.peer_id)   # the theft
copied_at = len(wire.crossed())
print("the thief's copy:", copy)
for i, (sender, receiver) in enumerate([(bob, alice), (alice, bob)] * 2 + [(bob, alice)]):
    await say(sender, receiver, f"after {i}")
frames = wire.crossed()
senders = {"out": alice, "in": bob}
readable = read_along(copy, [(senders[d].peer_id, b) for d, b in frames],
                      victim=bob.identity, other=alice.identity, now_ms=int(time.time() * 1000))
print("before the theft, read:", readable[:copied_at])
print("after the theft, read: ", readable[copied_at:])""",
    ),
    (
        "md",
        """**On a timeline.**  Red: the thief read it.  The copy holds bob's chain keys, so it
reads bob's next message and alice's answer (sealed to a ratchet key whose secret is in the
copy).  Then bob's ratchet turns: his next message comes under a fresh key pair (⟳) made
from randomness the thief never saw, and from there on nothing opens — **healed one round
trip after the theft**.  Nothing from before it opens either: those keys were already
deleted.""",
    ),
    (
        "code",
        """from volli_nb.ui.widgets.timeline import Beat, CompromiseTimeline
seen, beats = set(), []
for i, ((d, bundle), ok) in enumerate(zip(frames, readable)):
    sender, receiver = (alice, bob) if d == "out" else (bob, alice)
    key = bundle.envelopes[0].envelope.recipients[receiver.peer_id].header.dh
    beats.append(Beat(sender.name, f"{sender.name[0]}{i}", ok, new_key=key not in seen))
    seen.add(key)
CompromiseTimeline(beats, names=("alice", "bob"), victim="bob", copied_at=copied_at)""",
    ),
    (
        "md",
        """What this shows, and what it does not: the thief of a *running* process reads what
that channel carries until the victim's next DH step reaches the peer, plus whatever
skipped keys the copy held (at most 2,048, each at most an hour); never anything before
the theft, never another channel, and it cannot forge (every frame is signed with the
identity key).  An *active* attacker holding a side's identity and device keys could run a
handshake as that side, as with any authenticated key exchange.""",
    ),
    (
        "code",
        """await alice.close(); await bob.close()
for item in loot.values():
    item.close()""",
    ),
]

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "00-start-here.ipynb": [
        (
            "md",
            """# Start here: Volli and volli_nb

**Volli** is a peer-to-peer messenger: WebRTC data channels between people, end-to-end
encryption for each recipient, a persistent outbox that retries 1 s, 5 s, 15 s and 60 s
after a failure, and signed acknowledgements.  **volli_nb** is that stack in Python, made to
be looked at: every step can be run, printed and watched in these notebooks, in live panels,
and in a shell.

| notebook | what it teaches |
|---|---|
| [01 key exchange](01-key-exchange.ipynb) | identities, safety numbers, how two peers exchange keys when they pair, the anatomy of an envelope, tampering; then the session handshake from both sides, the Double Ratchet turning live, and envelope v2 beside v1 |
| [02 message flow](02-message-flow.ipynb) | the seed's two sequence diagrams, live: online → ACK, offline → retries → stuck → retried on return |
| [03 pairing two kernels](03-pairing-two-kernels.ipynb) | pairing by pasted (or scanned) codes, through the signaling server, and across two Binder sessions through TURN on 443, then chat |
| [03b pairing by hand](03b-pairing-by-hand.ipynb) | open it and a copy of it (two tabs of one file share one kernel): pair the two notebooks by pasting codes, compare safety numbers, chat |
| [04 debugging](04-debugging.ipynb) | every debug command of the seed, beside its panel |
| [05 network conditions](05-network-conditions.ipynb) | delivery under latency and loss, with plots |
| [06 forward secrecy](06-forward-secrecy.ipynb) | a recorded conversation a thief of both devices' keys and files cannot open (v1 envelopes they can), and a stolen live ratchet state that stops working one round trip later |

**A shell**: open a terminal (File → New → Terminal) and run `volli-shell`.  It preloads
`messagesStore`; top-level `await` works there as it does here.

Nothing in these notebooks contacts a public server: peers offer only 127.0.0.1 (until you
fill in a server of your own in notebook 03's last part).""",
        ),
        (
            "code",
            SETUP
            + """

alice, bob = MessagesStore.scratch("alice"), MessagesStore.scratch("bob")
show_progress(alice); show_progress(bob)
code = await alice.create_pairing_code()       # alice's offer, and who she is …
answer = await bob.accept_pairing_code(code)   # … bob's answer, and who he is …
peer = await alice.complete_pairing(answer)    # … applied by alice: they are paired
await alice.wait_connected(peer)
sent = await alice.send_message(peer, "hello from the first notebook")
status = await alice.wait_delivered(sent.message_id)   # bob's signed ACK came back
print("alice's message to bob:", status[peer])
reply = await bob.send_message(alice.peer_id, "hello back")
await bob.wait_delivered(reply.message_id)
for message in alice.history(peer):
    print(message)""",
        ),
        (
            "md",
            """What just happened, as the seed's sequence diagram, drawn from alice's event log:
pairing (offer, answer, ICE and DTLS, the signed channel binding), then the message:
`send_message` → outbox → encrypt → MESSAGE frame → bob's signed ACK → delivered.
Hover an arrow for its ids, sizes and timings; click one to pin them.  It keeps growing as
you run more cells; **pause** freezes it while you read.""",
        ),
        ("code", "from volli_nb.ui.widgets import SequencePanel\nSequencePanel(alice)"),
        (
            "md",
            """Every panel in tabs: **Peers** (bob, connected and verified), **ICE** (the
candidates and the pair in use), **Queue** (what waits to be delivered: nothing, here),
**Chat**, **Events** (alice's event log, newest first) and the **Sequence** diagram again.
They refresh about once a second; hover a column's name for what it means.""",
        ),
        ("code", "from volli_nb import dashboard\ndashboard(alice)"),
        (
            "md",
            "When you are done, `await alice.close(); await bob.close()` closes both peers "
            "(the panels keep their last view).",
        ),
    ],
    "01-key-exchange.ipynb": [
        (
            "md",
            """# 01 · Key exchange: identities, safety numbers, envelopes

Each person has an **Ed25519 identity key** (it signs) that signs a separate **X25519 device
key** (it receives encrypted keys).  The peer id is a short fingerprint of the identity
key, so whoever can sign for that key owns the id.""",
        ),
        (
            "code",
            """from volli_nb.core.crypto.identity import Identity, contact_safety_number, format_safety_number
from volli_nb.lab.static_key_envelope import seal, open_envelope, parse_envelope
alice, bob, carol, eve = (Identity.generate() for _ in range(4))
print("alice's peer id:", alice.peer_id)
print("identity key:", alice.public.identity_key.hex())
print("device key:  ", alice.public.device_key.hex())
alice.public.verify()   # the identity key really signed this device key
print("device key signed by the identity key: ok")""",
        ),
        (
            "md",
            """## Safety numbers
Both sides compute the same 60 digits (libsignal's algorithm) from the two identity keys.
Read them to each other over another channel: if they match, nobody sits in between.""",
        ),
        (
            "code",
            """print(format_safety_number(contact_safety_number(alice.public, bob.public)))
print(format_safety_number(contact_safety_number(bob.public, alice.public)))""",
        ),
        (
            "md",
            """## How alice learns bob's keys: pairing
So far alice simply *had* bob's public keys.  Between two people they travel in the
pairing codes: alice's offer code carries her name and public identity (identity key,
device key, and the signature linking them); bob checks that signature, pins alice's keys
to her peer id, and answers with a code that carries his; alice pins his.  Here are two
real profiles doing it (each with identities of its own):""",
        ),
        (
            "code",
            """from volli_nb import MessagesStore
from volli_nb.core.pairing_code import decode_code
alice_app, bob_app = MessagesStore.scratch("alice"), MessagesStore.scratch("bob")

code = await alice_app.create_pairing_code()             # alice → bob
offer = decode_code(code)
print(f"alice's code, {len(code)} characters: name {offer.name!r}, peer id {offer.peer_id}")
print("  identity key", offer.identity.identity_key.hex()[:24], "…")
print("  device key  ", offer.identity.device_key.hex()[:24], "… (signed by the identity key)")
offer.identity.verify()                                  # what bob's side checks first
answer = await bob_app.accept_pairing_code(code)         # bob pins alice's keys; bob → alice
reply = decode_code(answer)
print(f"bob's answer, {len(answer)} characters: name {reply.name!r}, peer id {reply.peer_id}")
peer = await alice_app.complete_pairing(answer)          # alice pins bob's keys
await alice_app.wait_connected(peer)                     # and the channel binding checks out
print("alice pinned bob's keys:", alice_app.contact(bob_app.peer_id) == bob_app.identity.public)
print("bob pinned alice's keys:", bob_app.contact(alice_app.peer_id) == alice_app.identity.public)
print("alice reads:", format_safety_number(alice_app.safety_number(bob_app.peer_id)))
print("bob reads:  ", format_safety_number(bob_app.safety_number(alice_app.peer_id)))
await alice_app.close(); await bob_app.close()""",
        ),
        (
            "md",
            """The codes are not secret and not trusted by themselves: someone who swaps the keys
in a code on its way gets pinned instead, and then the two safety numbers differ, which
is why people compare them.  And once the data channel opens, each side signs the DTLS
certificates the connection really uses (the channel binding), so a relay in the middle
that did not also swap the keys is caught at once.""",
        ),
        (
            "md",
            """## An envelope for two recipients, field by field
This is the seed's envelope (the wire now uses sessions, see the end).  A fresh content key encrypts the body once; it is wrapped separately for each recipient's
device key with a fresh ephemeral X25519 key; the header commits to the content key; the
identity key signs everything.""",
        ),
        (
            "code",
            """import time
from volli_nb.core.eventlog import wall_clock
now_ms = int(time.time() * 1000)
data = seal(alice, [bob.public, carol.public], conversation_id="demo", plaintext=b"meet at noon",
            counter=1, timestamp_ms=now_ms)
env = parse_envelope(data)
for field in ("version", "conversation_id", "counter"):
    print(f"{field:16}", getattr(env, field))
print(f"{'timestamp_ms':16}", wall_clock(env.timestamp_ms / 1000), "(milliseconds since 1970, shown as a time)")
print(f"{'message_id':16}", env.message_id.hex())
print(f"{'sender':16}", env.sender.peer_id)
for peer_id, wrap in env.recipients.items():
    print(f"recipient {peer_id}: encrypted_key {wrap.encrypted_key.hex()[:24]}…  nonce {wrap.nonce.hex()[:12]}…")
print(f"{'commitment':16}", env.commitment.hex()[:32], "…")
print(f"{'ciphertext':16}", len(env.ciphertext), "bytes (padded to a size bucket)")
print(f"{'signature':16}", env.signature.hex()[:32], "…")""",
        ),
        ("md", "## Who can open it\nBob and Carol can; Eve, who is not a recipient, cannot."),
        (
            "code",
            """pinned = {alice.peer_id: alice.public}
for who in (bob, carol, eve):
    try:
        opened = open_envelope(data, who, contacts=pinned.get, now_ms=now_ms)
        print(who.peer_id, "opens it:", opened.plaintext.decode())
    except Exception as e:
        print(who.peer_id, "cannot:", type(e).__name__)""",
        ),
        (
            "md",
            """## Tampering
The receiver checks in a fixed order, cheapest and least trusting first: the size, a
strict parse, the sender's pinned keys, the signature, the recipient set, freshness, then
replay.  Each attack below is refused by a different one of these checks, with its own
error.  (Any change to a signed field, such as adding a recipient or changing the
conversation, is caught by the signature, as the flipped byte is.)""",
        ),
        (
            "code",
            """import json, textwrap
from volli_nb.core.encoding import canonical_json

def tampered(change):
    obj = json.loads(data)
    change(obj)
    return canonical_json(obj)

def flip(obj):
    text = obj["ciphertext"]
    obj["ciphertext"] = ("B" if text[10] == "A" else "A").join([text[:10], text[11:]])

hour_ms = 3_600_000
attacks = {  # name: (the bytes bob receives, bob's clock)
    "add a field": (tampered(lambda o: o.update(note="hi")), now_ms),
    "eve writes as herself": (seal(eve, [bob.public], conversation_id="demo", plaintext=b"hi",
                                   counter=1, timestamp_ms=now_ms), now_ms),
    "flip a ciphertext byte": (tampered(flip), now_ms),
    "deliver it an hour late": (data, now_ms + hour_ms),
}
def refused(name, error):
    print(f"{name:24} → {type(error).__name__}")
    print(textwrap.fill(str(error), 88, initial_indent=" " * 6, subsequent_indent=" " * 6))

seen = set()
for name, (forged, clock) in attacks.items():
    try:
        open_envelope(forged, bob, contacts=pinned.get, now_ms=clock, seen=seen.__contains__)
        print(name, "→ accepted?!")
    except Exception as e:
        refused(name, e)

first = open_envelope(data, bob, contacts=pinned.get, now_ms=now_ms, seen=seen.__contains__)
seen.add(first.message_id)   # bob remembers the ids he accepted (on disk, across restarts)
try:
    open_envelope(data, bob, contacts=pinned.get, now_ms=now_ms, seen=seen.__contains__)
except Exception as e:
    refused("replay", e)""",
        ),
        *KEY_EXCHANGE_SESSIONS,
    ],
    "02-message-flow.ipynb": [
        (
            "md",
            """# 02 · Message flow: the seed's two sequence diagrams, live

The seed draws sending and receiving as two mermaid sequence diagrams.  Here they are drawn
from what actually happens: alice's event log records every step (calls into her store, her
outbox, frames on the data channel, ACKs, retry timers), and the diagram below appends an
arrow for each, as it happens.  Lifelines: **UI** (this notebook), **Store** (alice's
`MessagesStore`), **Queue** (her persistent outbox), **Network** (her `NetworkStore`) and
**bob**.  Hover an arrow for its details (ids, sizes, timings), click it to pin them;
**pause** freezes the picture while the log goes on.

A **virtual clock** makes the retry schedule (1 s, 5 s, 15 s, 60 s) run in a blink.""",
        ),
        (
            "code",
            SETUP
            + """
import time
from volli_nb.base.clock import VirtualClock
from volli_nb.ui.widgets import SequencePanel
clock = VirtualClock(time.time())   # starts now, and moves only when told to
alice, bob = MessagesStore.scratch("alice", clock=clock), MessagesStore.scratch("bob", clock=clock)
show_progress(alice); show_progress(bob)
diagram = SequencePanel(alice)
diagram""",
        ),
        (
            "md",
            """## 1. Peer online: encrypt → send → signed ACK → delivered
Run this and watch the diagram: pairing (offer, answer, ICE + DTLS, both sides' signed
HELLO), then `send_message` → enqueue → encrypt → MESSAGE → bob's signed ACK → delivered.""",
        ),
        (
            "code",
            """code = await alice.create_pairing_code()
peer = await alice.complete_pairing(await bob.accept_pairing_code(code))
await alice.wait_connected(peer)
sent = await alice.send_message(peer, "hello, online path")
status = await alice.wait_delivered(sent.message_id)
print("alice's message to bob:", status[peer])""",
        ),
        (
            "md",
            """## 2. Receive path: decrypt → store → update the conversation
The seed's second diagram is bob's side: the MESSAGE arrives, the store verifies, decrypts
and stores it, the conversation updates, and only then does bob send his signed ACK.""",
        ),
        (
            "code",
            """for m in bob.history(alice.peer_id):
    print(m, f"({m.status})")
SequencePanel(bob)""",
        ),
        (
            "md",
            """## 3. Peer offline: queue → retries at 1, 5, 15, 60 s → stuck → retried on return
Bob goes away.  Each attempt fails, and the queue sets its next timer (a `Queue → Queue`
arrow in alice's diagram above, with the wait); after the fourth retry the message is
**stuck**: no timer retries it any more.  A person can (`retry_now`), and so does bob's
return, by itself.""",
        ),
        (
            "code",
            """await alice.network_store.disconnect(peer)
await bob.network_store.disconnect()
queued = await alice.send_message(peer, "are you there?")

def show():
    for row in alice.message_queue.get_pending():
        if row.next_attempt_at is None:
            wait = "by hand"
        else:
            wait = f"in {row.next_attempt_at - clock():.0f} s"
        print(f"  t+{clock() - t0:5.0f} s  {row.status:8} failed attempts {row.attempts}  next retry {wait}")

t0 = clock()
show()
for step in (1, 5, 15, 60):
    clock.advance(step)
    await alice.process_due()
    show()""",
        ),
        (
            "md",
            "The queue panel and the event log, live (they refresh about once a second; on "
            "this notebook's virtual clock a countdown moves only when the clock is advanced):",
        ),
        ("code", "from volli_nb.ui.widgets import QueuePanel, EventLogPanel\nQueuePanel(alice)"),
        ("code", "EventLogPanel(alice)"),
        (
            "code",
            """# Bob comes back.  His return is new information: a message that went stuck while he
# was away gets one more attempt by itself, no call needed (docs/operations.md, "A peer's
# return").  One stuck while he was there and silent would still wait for retry_now().
peer = await alice.complete_pairing(await bob.accept_pairing_code(await alice.create_pairing_code()))
await alice.wait_connected(peer)
status = await alice.wait_delivered(queued.message_id)
print(alice.log.entries(text="is back:")[-1].message)
print("the stuck message, on his return:", status[peer])
print("bob got:", [m.text for m in bob.history(alice.peer_id)])""",
        ),
        (
            "md",
            """Carol is a contact who was never online.  Her message waits in the queue panel
above, and the diagram shows its retries under her name.  The virtual clock does not
move by itself, so her row says "in 1.0 s" until the clock is advanced; then the queue
tries again and her row shows the next wait:""",
        ),
        (
            "code",
            """from volli_nb.core.crypto.identity import Identity
carol = Identity.generate()
alice.add_contact(carol.public, name="carol")
await alice.send_message(carol.peer_id, "see you when you are online")
clock.advance(1)              # one virtual second: carol's first retry is due
await alice.process_due()     # the retry loop's step (it also runs by itself, each second)
(row,) = alice.message_queue.get_pending()
print(f"carol: {row.attempts} failed attempts, next retry in {row.next_attempt_at - clock():.0f} s")""",
        ),
        (
            "md",
            """## The whole story, frozen
`diagram.snapshot()` is the diagram as it is now, as a picture that no longer changes: what
an exported notebook (or GitHub) shows without a kernel.  `.save("flow.svg")` writes it as
SVG, `.save("flow.md")` as mermaid text.""",
        ),
        ("code", 'diagram.snapshot("alice: online send, receive, offline retries, stuck, retried on return")'),
        (
            "md",
            """## 4. Long operations show progress
A message of 3 MB of text takes a few seconds to encrypt, send and have acknowledged.
What travels is its sealed envelope, which is larger than the text (the encoding, and
padding up to a size bucket, so the size says less about the text), cut into chunks of at
most 64 KiB: the largest message a data channel takes when the other side names no limit.
The bar and the diagram count the envelope's bytes (M and MB are millions of bytes).  The
bar follows it (encrypting → sending → waiting for the signed ACK); in `volli-shell` the
same bar sits under the prompt, in a script nothing is drawn.""",
        ),
        (
            "code",
            """import secrets
text = secrets.token_urlsafe(2_250_000)   # 3,000,000 characters
big = await alice.send_message(peer, text, compress=False)
status = await alice.wait_delivered(big.message_id, timeout=120)
sent = alice.log.entries(category="frame", text=f"sent MESSAGE {big.short_id}")[-1].data
print(f"3 MB of text → a {sent['bytes'] / 1e6:.1f} MB envelope in {sent['chunks']} chunks:",
      status[peer])""",
        ),
        (
            "md",
            "When you are done, `await alice.close(); await bob.close()` closes both peers "
            "(the panels keep their last view).",
        ),
    ],
    "03-pairing-two-kernels.ipynb": [
        (
            "md",
            """# 03 · Pairing two kernels

Pairing takes two people (or two notebooks), each with a kernel of its own, pasting codes
between them.  So that this notebook runs top to bottom on its own, **B is simulated here
by a second store in the same kernel**; the calls are the same.

**To do it for real**, open [03b pairing by hand](03b-pairing-by-hand.ipynb) and a copy of
it: in the file browser, right-click it → *Duplicate*, and open the copy too.  Each file
gets its own kernel; two tabs of **one** file share one kernel (and one `me`).  Two
students in one JupyterLab each open their own copy.  It walks both sides through it,
from opening a profile to chatting.""",
        ),
        (
            "code",
            SETUP
            + """
a = MessagesStore.scratch("kernel-a"); show_progress(a)          # in notebook A
b = MessagesStore.scratch("kernel-b"); show_progress(b)          # in notebook B (simulated)""",
        ),
        (
            "md",
            "### By pasted codes\n**A**: make a code and copy it (about 300 characters), or "
            "scan its QR code with a phone and paste it on the other screen.",
        ),
        (
            "code",
            "from volli_nb.ui.qr import pairing_qr\n"
            "code = await a.create_pairing_code()\npairing_qr(code)",
        ),
        ("md", "**B**: paste A's code; copy the answer it prints."),
        (
            "code",
            'answer = await b.accept_pairing_code(code)   # paste: b.accept_pairing_code("volli2.…")\nprint(answer)',
        ),
        ("md", "**A**: paste B's answer."),
        (
            "code",
            """from volli_nb.core.crypto.identity import format_safety_number
peer = await a.complete_pairing(answer)
await a.wait_connected(peer)
print("A is connected to", peer)
print("safety number:", format_safety_number(a.safety_number(peer)))  # B reads the same""",
        ),
        (
            "code",
            """m = await a.send_message(peer, "hi from kernel A")
await a.wait_delivered(m.message_id)
m = await b.send_message(a.peer_id, "hi from kernel B")
await b.wait_delivered(m.message_id)
for message in a.history(peer):
    print(message)""",
        ),
        (
            "md",
            """### Through the signaling server
Start `volli-signal` in a terminal (it listens on 127.0.0.1:8765), or in-process as below;
then each kernel joins the same room.  The peer with the smaller id offers.""",
        ),
        (
            "code",
            """from volli_nb.net.signaling.server import SignalingServer
server = await SignalingServer(port=0).start()
print("signaling at", server.url)
c, d = MessagesStore.scratch("kernel-c"), MessagesStore.scratch("kernel-d")
show_progress(c); show_progress(d)
await c.join("lab", server.url)   # in notebook C
await d.join("lab", server.url)   # in notebook D
await c.wait_connected(d.peer_id); await d.wait_connected(c.peer_id)
m = await c.send_message(d.peer_id, "found you through the room")
status = await c.wait_delivered(m.message_id)
print("C's message to D:", status[d.peer_id])""",
        ),
        ("md", "### Chat"),
        ("code", "from volli_nb.ui.widgets import ChatPanel\nChatPanel(c)"),
        (
            "md",
            "When you are done, `for s in (a, b, c, d): await s.close()` and then "
            "`await server.close()` close the peers and the server (the chat panel keeps its "
            "last view).",
        ),
        *ACROSS_BINDER,
    ],
    "03b-pairing-by-hand.ipynb": [
        (
            "md",
            """# 03b · Pairing by hand: two notebooks, two people

Open this notebook **and a copy of it** (in the file browser, right-click it →
*Duplicate*, then open the copy): each file gets its own kernel, but two tabs of one file
share one kernel, and the second tab's `me` would replace the first's.  Two students in
the same JupyterLab or Binder session each open their own copy.  One side **starts** (A), the other
**answers** (B); codes go between them by copy and paste (or a phone camera).  Run every
cell in order on both sides: a step that belongs to the other side only says so.

Both notebooks must run on one machine: these profiles offer only 127.0.0.1.  For two
Binder sessions (two machines), see the last part of
[03 pairing two kernels](03-pairing-two-kernels.ipynb).""",
        ),
        (
            "code",
            SETUP
            + """
import os
NAME = ""   # your name, as the other side will see it, e.g. "ana" (empty: kernel-<pid>)
if "me" in globals():   # this cell ran before in this kernel: here, or in another tab
    print(f"this kernel had a profile already ({me.name}); closing it.  If another tab of "
          "this notebook ran this cell, both tabs share this kernel: run the other side "
          "in a copy of the notebook (right-click it in the file browser → Duplicate)")
    await me.close()
me = MessagesStore.scratch(NAME or f"kernel-{os.getpid()}")
show_progress(me)
print("I am", me.name, "· peer id", me.peer_id)""",
        ),
        ("md", "**Step 1 (A)**: who starts?  A makes a pairing code."),
        (
            "code",
            """ROLE = ""   # "A" if you start, "B" if the other side starts
from volli_nb.ui.qr import pairing_qr
if ROLE == "A":
    code = await me.create_pairing_code()
    print("A: copy this whole line to B (about 300 characters), or let B scan the QR code:")
    print(code)
    display(pairing_qr(code))
elif ROLE == "B":
    print("B: wait for A's code, and paste it in the next cell")
else:
    print('set ROLE = "A" or ROLE = "B" above, and run this cell again')""",
        ),
        ("md", "**Step 2 (B)**: B pastes A's code, and gets an answer code to send back."),
        (
            "code",
            """CODE_FROM_A = ""   # B: paste A's code between the quotes
if ROLE == "B" and CODE_FROM_A:
    answer = await me.accept_pairing_code(CODE_FROM_A)
    print("B: copy this whole line back to A:")
    print(answer)
elif ROLE == "B":
    print("B: paste A's code above, then run this cell")
else:
    print("(B's step: nothing to do here)")""",
        ),
        ("md", "**Step 3 (A)**: A pastes B's answer; the connection opens on both sides."),
        (
            "code",
            """ANSWER_FROM_B = ""   # A: paste B's answer between the quotes
if ROLE == "A" and ANSWER_FROM_B:
    await me.complete_pairing(ANSWER_FROM_B)
    print("A: paired; the connection is opening")
elif ROLE == "A":
    print("A: paste B's answer above, then run this cell")
else:
    print("(A's step: nothing to do here)")""",
        ),
        (
            "md",
            """**Step 4 (both)**: wait for the connection, then read your safety numbers to each
other (aloud, or side by side): the same 60 digits on both screens means nobody sits in
between.""",
        ),
        (
            "code",
            """from volli_nb.core.crypto.identity import format_safety_number
if me.contacts:
    other = me.contacts[-1]
    await me.wait_connected(other.peer_id, timeout=30)
    print("connected to", other.name, "·", other.peer_id)
    print("safety number:", format_safety_number(me.safety_number(other.peer_id)))
else:
    print("not paired yet: do the steps above first")""",
        ),
        (
            "md",
            """**Step 5 (both)**: chat.  Type a message and press *send*; the other side's
messages appear here as they arrive, ✓ marks a message whose signed ACK came back.  In
code it is `await me.send_message(other.peer_id, "hi")`.""",
        ),
        ("code", "from volli_nb.ui.widgets import ChatPanel, PeersPanel\nChatPanel(me)"),
        ("code", "PeersPanel(me)"),
        (
            "md",
            "When you are done, `await me.close()` closes the connection (the other side sees "
            "you go offline, and its messages to you wait in its queue).",
        ),
    ],
    "04-debugging.ipynb": [
        ("md", """# 04 · Debugging: the seed's debug commands, live, beside their panels"""),
        (
            "code",
            SETUP
            + """
from volli_nb.core.crypto.identity import Identity
from volli_nb.ui.widgets import PeersPanel, IcePanel, QueuePanel, EventLogPanel, SequencePanel, beside
messagesStore, other = MessagesStore.scratch("me"), MessagesStore.scratch("other")
show_progress(messagesStore); show_progress(other)
diagram = SequencePanel(messagesStore, column=100, max_height=420)   # shown beside the commands
peer_id = await messagesStore.complete_pairing(
    await other.accept_pairing_code(await messagesStore.create_pairing_code()))
await messagesStore.wait_connected(peer_id)
ghost = Identity.generate()
messagesStore.add_contact(ghost.public, name="ghost")    # never online
await messagesStore.send_message(ghost.peer_id, "queued for ghost")   # it waits: pending""",
        ),
        (
            "md",
            "**View all peer connections** (`Array.from(messagesStore.networkStore.peers.entries())…`)",
        ),
        (
            "code",
            """for pid, pc in messagesStore.network_store.peers.items():
    print(pid, {"state": pc.connectionState, "ice": pc.iceConnectionState})
PeersPanel(messagesStore)""",
        ),
        ("md", "**Check ICE candidates** (aiortc does not trickle: they are all in the SDP)"),
        (
            "code",
            """view = messagesStore.network_store.candidates(peer_id)
print(view)   # local and remote candidates, and the pair ICE selected
IcePanel(messagesStore)""",
        ),
        (
            "md",
            "**Monitor connection state** (`pc.onconnectionstatechange`), beside the sequence "
            "diagram of the same moments: offer, answer, ICE + DTLS connected, the signed "
            "HELLOs.",
        ),
        (
            "code",
            """pc = messagesStore.network_store.peers[peer_id]
pc.on("connectionstatechange", lambda: print("connection state:", pc.connectionState))
states = [e.format() for e in messagesStore.log.entries(category="connection")]
beside("\\n".join(states), diagram)""",
        ),
        (
            "md",
            "**Check message queue** (`console.table(await messagesStore.messageQueue.getPending())`)",
        ),
        (
            "code",
            """print(messagesStore.message_queue.get_pending())
QueuePanel(messagesStore)""",
        ),
        (
            "md",
            "**Force sync attempt** (`await messagesStore.syncMessages()`): it sends what can go "
            "now; ghost is offline, so its message waits for the queue's next retry (the "
            "`Queue → Queue` arrows in the diagram below, each with its wait).",
        ),
        ("code", "print(await messagesStore.sync_messages())\ndiagram"),
        ("code", "EventLogPanel(messagesStore)"),
        (
            "md",
            "When you are done, `await messagesStore.close(); await other.close()` closes both "
            "peers (the panels keep their last view).",
        ),
    ],
    "05-network-conditions.ipynb": [
        (
            "md",
            """# 05 · Network conditions: latency, loss and retries

The simulator runs two protocol sessions over a lossy *datagram* link on a virtual clock
(harsher than a real data channel, whose SCTP already retransmits).  Seeded, so each run
gives the same picture.""",
        ),
        (
            "code",
            """from volli_nb.lab.simulator import LinkConditions, Simulator
import statistics

def run(loss, latency=0.1, n=200, seed=1):
    sim = Simulator(LinkConditions(latency=latency, jitter=0.02, loss=loss, seed=seed))
    for i in range(n):
        sim.send("A", f"m{i}".encode())
    sim.run()
    lat = [d.latency for d in sim.delivered["B"]]
    return {"loss": loss, "delivered": len(lat), "median": statistics.median(lat),
            "p95": sorted(lat)[int(0.95 * len(lat)) - 1], "retransmissions": sim.retransmissions()}

results = [run(loss) for loss in (0.0, 0.05, 0.1, 0.2, 0.3, 0.4)]
print("loss  delivered  median latency  95th percentile  retransmissions")
for r in results:
    print(f"{r['loss']:4.0%}  {r['delivered']:9}  {r['median'] * 1000:11.0f} ms"
          f"  {r['p95'] * 1000:12.0f} ms  {r['retransmissions']:15}")""",
        ),
        (
            "code",
            """import matplotlib
matplotlib.use("module://matplotlib_inline.backend_inline") if "inline" in matplotlib.get_backend() else None
import matplotlib.pyplot as plt
losses = [r["loss"] * 100 for r in results]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
ax1.plot(losses, [r["median"] * 1000 for r in results], "o-", label="median")
ax1.plot(losses, [r["p95"] * 1000 for r in results], "s--", label="95th percentile")
ax1.set_xlabel("loss (%)"); ax1.set_ylabel("delivery latency (ms)"); ax1.legend()
ax2.bar(losses, [r["retransmissions"] for r in results], width=3)
ax2.set_xlabel("loss (%)"); ax2.set_ylabel("retransmissions (200 messages)")
fig.tight_layout()
print("every message delivered exactly once:", all(r["delivered"] == 200 for r in results))""",
        ),
        ("md", "The trace reads like the seed's sequence diagram:"),
        (
            "code",
            """sim = Simulator(LinkConditions(latency=0.1, loss=0.3, seed=4))
sim.send("A", b"hello")
sim.run()
print("\\n".join(sim.trace[:12]))""",
        ),
        (
            "md",
            """## Real peers through the impairment relay
`volli_nb.lab.relay` puts a userspace UDP relay between two real aiortc peers and applies
latency, jitter and loss to every datagram (this machine's kernel has no netem).""",
        ),
        (
            "code",
            """from volli_nb.lab.relay import Conditions, impaired_pair
from volli_nb import MessagesStore
import asyncio, time
a, b = MessagesStore.scratch("relay-a"), MessagesStore.scratch("relay-b")
relay = await impaired_pair(a, b, Conditions(latency_ms=50, jitter_ms=5, seed=1))
times = []
for i in range(10):
    t = time.perf_counter()
    m = await a.send_message(b.peer_id, f"ping {i}")
    await a.wait_delivered(m.message_id)
    times.append((time.perf_counter() - t) * 1000)
print(f"send → signed ACK through 2 × 50 ms: median {statistics.median(times):.0f} ms")
for side, s in relay.stats.items():
    print(f"relay, from {side}: {s.sent} datagrams, {s.dropped} dropped, {s.bytes:,} bytes")
await a.close(); await b.close(); relay.close()""",
        ),
        (
            "md",
            """## Bundling, one ACK for many, and timing that follows the link
A burst of small messages shares BUNDLE frames, and the receiver answers each bundle with one
signed ACK.  Here: 200 ms round trip and 5 % loss each way, like
`pytest --latency=200 --packet-loss=5`.

While connected, how long to wait for an ACK follows the *measured* round trip, loss and
goodput (`volli_nb.core.protocol.link_quality`); the 1/5/15/60 s schedule is for offline
peers.  Watch the round trip: idle, it is the link's 200 ms; right after the burst it can
read far longer (seconds, on a busy machine), because the pings that measure it wait in
line behind the burst on the one ordered channel, and the ACK deadline grows with it (a
healthy but busy link is not declared lost).  Whether the peer is *dead* is another
question, with its own limit: did anything at all arrive (SCTP's own acknowledgements
count, and they keep coming while a burst drains)?  So "dead after 2.5 s with nothing
received" can stand beside a round trip of seconds.  The stall estimate counts only what
the sender can see, round trips far above the usual: SCTP repairs most lost datagrams
before it shows, so it stays low while the relay drops 5 %.""",
        ),
        (
            "code",
            """a, b = MessagesStore.scratch("bundle-a"), MessagesStore.scratch("bundle-b")
relay = await impaired_pair(a, b, Conditions(latency_ms=100, loss=0.05, seed=2))
await asyncio.sleep(3)   # a few heartbeats measure the idle link
q = a.network_store.link_quality(b.peer_id)
print(f"idle:        round trip {q.srtt * 1000:5.0f} ms, ACK deadline {q.ack_timeout():4.1f} s")
got = []
b.on_message(lambda m: got.append(m.text))
texts = [f"burst {i}" for i in range(200)]
sent = [await a.send_message(b.peer_id, t) for t in texts]
for m in sent:
    await a.wait_delivered(m.message_id, timeout=120)
q = a.network_store.link_quality(b.peer_id)
print(f"after burst: round trip {q.srtt * 1000:5.0f} ms, ACK deadline {q.ack_timeout():4.1f} s, "
      f"dead after {q.silence_limit(2.5):.1f} s with nothing received")
s = a.network_store.session_stats(b.peer_id)
print(f"200 messages in {s.bundles_out} bundle(s), acknowledged by {s.acks_in} signed ACK(s)")
print("exactly once, in order:", got == texts)
dropped = sum(x.dropped for x in relay.stats.values()); total = sum(x.sent for x in relay.stats.values())
print(f"the relay dropped {dropped} of {total} datagrams; stalls seen: {q.loss:.1%}")
await a.close(); await b.close(); relay.close()""",
        ),
        (
            "md",
            """## `volli-nb bench` as a picture
The same function as `volli-nb bench` (small sizes here, so it takes ~20 s): every figure
is measured for plain aiortc and for volli_nb in the same run, and the chart shows
volli_nb's figure relative to plain aiortc's (right of 1: volli_nb does better).

**Expect the bars left of 1.**  Plain aiortc here sends plaintext and forgets it; for
each message volli_nb also encrypts for each recipient, signs, stores it in SQLite before
it leaves (so a crash loses nothing), and counts it delivered only when a *signed ACK*
comes back.  The chart is the price of those guarantees, row by row; the table's *aim*
notes say what price is acceptable.  On the impaired rows (200 ms, 5 % loss) the link's
own delays dominate and the bars come close to 1, on either side of it from run to run.
`volli-nb bench` runs each row 3 times (median, min–max); one run here.""",
        ),
        (
            "code",
            """from volli_nb.lab.bench import run as bench
rows = await bench.run(messages=300, bulk_mb=1, quick=True, flush=500, runs=1,
                       conditions=Conditions(latency_ms=100, loss=0.05, seed=3))
print(bench.format_table(rows))
shown = [r for r in rows if r.ratio]
fig, ax = plt.subplots(figsize=(9, 4))
ax.barh([r.metric for r in shown], [r.ratio if r.higher_is_better else 1 / r.ratio for r in shown])
ax.axvline(1.0, color="k", lw=1)
ax.set_xscale("log")
ticks = [t for t in (0.01, 0.03, 0.1, 0.3, 1, 3, 10) if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
ax.set_xticks(ticks, [f"{t:g}" for t in ticks]); ax.minorticks_off()   # 0.1, not 10⁻¹
ax.set_xlabel("volli_nb relative to plain aiortc (1: as good; 0.1: a tenth as good)")
ax.set_title("the price of encryption, signatures, a durable outbox and signed ACKs")
fig.tight_layout()""",
        ),
    ],
    "06-forward-secrecy.ipynb": FORWARD_SECRECY,
}


# --- notebook 07, groups (issue 27): its cells live in notebook_groups.py -------------
from notebook_groups import GROUPS  # noqa: E402  (a sibling module: tools/ is the path)

NOTEBOOKS["07-groups.ipynb"] = GROUPS
# --- end of notebook 07 --------------------------------------------------------------------


def build() -> dict[str, str]:
    out = {}
    for name, cells in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = KERNEL
        nb.cells = [
            nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text)
            for kind, text in cells
        ]
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"{name[:2]}-{i:02d}"
        out[name] = nbformat.writes(nb)
    return out


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    for name, text in build().items():
        (HERE / name).write_text(text)
        print("wrote", HERE / name)
