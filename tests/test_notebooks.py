"""The tutorial notebooks: stored without outputs, linked correctly, and they run."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_are_stored_without_outputs_and_match_their_source() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    from build_notebooks import build

    built = build()
    assert sorted(built) == [p.name for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name
        assert path.read_text() == built[path.name], f"{path.name}: run tools/build_notebooks.py"


def test_relative_links_point_at_existing_notebooks() -> None:
    for path in NOTEBOOKS:
        for link in re.findall(r"\]\(([^)#]+\.ipynb)\)", path.read_text()):
            assert (path.parent / link).exists(), f"{path.name} links to missing {link}"


EXPECT = {
    "00-start-here.ipynb": [
        "alice's message to bob: delivered",
        " me: hello from the first notebook",
        " bob: hello back",
    ],
    "01-key-exchange.ipynb": [
        "alice pinned bob's keys: True",
        "bob pinned alice's keys: True",
        "opens it: meet at noon",
        "cannot: NotARecipient",
        # each attack refused by a check of its own
        *(
            f"{attack:24} → {error}\n"
            for attack, error in [
                ("add a field", "MalformedEnvelope"),
                ("eve writes as herself", "UnknownPeer"),
                ("flip a ciphertext byte", "BadSignature"),
                ("deliver it an hour late", "StaleMessage"),
                ("replay", "ReplayError"),
                ("a relayed channel", "ChannelBindingFailed"),
            ]
        ),
        # the handshake, checked from both sides
        *(
            f"{me} checks {other}'s hello: identity key = the pinned one ✓, device key = the "
            "pinned one ✓, signature verifies ✓, addressed to me ✓, their certificate = the "
            "one my DTLS saw ✓, my certificate = the one my DTLS used ✓"
            for me, other in (("alice", "bob"), ("bob", "alice"))
        ),
        "both sides derived the same session id: True",
        "and it is the hash of both hellos: True",
        # the ratchet turning: a DH step where the direction changes, and only there
        "alice → bob   'are you there?'  alice's keys: sent 2, received 0\n",
        "bob   → alice 'yes!'            alice's keys: sent 2, received 1  ⟳ a DH step at alice",
        "bob   → alice 'bye'             alice's keys: sent 3, received 2  ⟳ a DH step at alice",
        "bob   → alice 'for now'         alice's keys: sent 3, received 3\n",
        "sent 3 · received 3 · 0 skipped keys held",
        # keys held for a late letter, one used, the rest expired
        "sent 0 · received 1 · 3 skipped keys held",
        "0⏳ 1⏳ 2⏳ 3✓ →4",
        "letter 1, an hour late: refused: MessageKeyUnavailable",
        "0✓ 1✕ 2✕ 3✓ →4",
        # the same text as envelope v2 and v1
        "total                                    333",
        "in its bundle: 401 bytes",
        "total                                   1240",
    ],
    "02-message-flow.ipynb": [
        "failed attempts 1  next retry in 1 s",
        "failed attempts 2  next retry in 5 s",
        "failed attempts 3  next retry in 15 s",
        "failed attempts 4  next retry in 60 s",
        "stuck    failed attempts 5  next retry by hand",
        "is back: 1 message(s) that went stuck while it was away are due again",
        "the stuck message, on his return: delivered",
        "bob got: ['hello, online path', 'are you there?']",
        "carol: 2 failed attempts, next retry in 5 s",
        # the diagram's snapshot: the offline path, arrow by arrow, with names
        "bob: retry in 1 s (attempt 1 failed: peer offline)",
        "bob: retry in 60 s (attempt 4 failed: peer offline)",
        "retry by hand",
        "bob is back: 1 stuck → due again",
        "carol: retry in 1 s (attempt 1 failed: peer offline)",
        "chunks: delivered",
    ],
    "03-pairing-two-kernels.ipynb": [
        " me: hi from kernel A",
        " kernel-b: hi from kernel B",
        "C's message to D: delivered",
    ],
    "03b-pairing-by-hand.ipynb": [
        'set ROLE = "A" or ROLE = "B" above',
        "not paired yet: do the steps above first",
        "no conversation yet",
    ],
    "04-debugging.ipynb": [
        "'state': 'connected'",
        "selected: host 127.0.0.1:",
        "SyncReport(",
        "→ ",
        "pending, 1 failed attempt",
    ],
    "06-forward-secrecy.ipynb": [
        "from bob's file: the vault code is 4711",
        "opened 0 of 4 recorded frames",
        "any key of the live session in either file: False",
        "v1 alice → bob: opened: the vault code is 4711",
        "v1 bob → alice: opened: done",
        "before the theft, read: [False, False, False, False, False]",
        "after the theft, read:  [True, True, False, False, False]",
        "── the thief copies bob's live ratchet state ──\n     bob → alice    b5         READ",
        "── healed: the thief reads no more ──\n     bob → alice    b7         closed",
    ],
    "05-network-conditions.ipynb": [
        "every message delivered exactly once: True",
        "A→B MESSAGE",
        "median latency",
        "200 messages in",
        "exactly once, in order: True",
        "flush 500 pending",
    ],
    "07-groups.ipynb": [
        "connections before the group: []",
        "bob holds version 1",
        "carol holds version 1",
        "delivery per member: {'bob': 'delivered', 'carol': 'delivered'}",
        "one body, 2 key wrap(s) now",
        "carol shows ['hello, study group', 'hi all']",
        "while carol is away: {'bob': 'delivered', 'carol': 'pending'}",
        "carol, back online, shows: ['hello, study group', 'hi all', 'carol, you missed this']",
        "carol is still a member: False",
        "recipients: ['bob']",
        "carol shows it: False",
        "UsageError → not a member of 'study'",
        "carol's store stored 0 message(s); refused: ['NotARecipient']",
    ],
}
RAW = re.compile(r"\b1[6-9]\d{8}\.\d+\b|\b1[6-9]\d{11}\b|(?<![\w'\"])b['\"]|object at 0x")


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = ""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text += output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
            text += str(output.get("data", {}).get("text/html", ""))
    for expected in EXPECT[path.name]:
        assert expected in text, f"{path.name}: {expected!r} not in output"
    # What a person reads: no epoch floats, bytes literals or object addresses (a figure's
    # plain-text form is "<Figure size …>", and 01 shows keys in hex on purpose).
    # HTML outputs are the panels' static copies, checked in a browser (test_browser.py).
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            shown = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
            found = RAW.search(shown)
            assert found is None, f"{path.name}: {found.group(0)!r} in {shown[:300]!r}"


def test_run_all_leaves_the_live_panels_live() -> None:
    """Run All is how many students run a notebook: a closing cell after the panels
    (01, 03's chat, 04's debug panels, 07) froze every panel at once ("… was closed: this
    is its last view"), and 03's chat panel could not send.  Closing is a sentence to
    act on when done, as in 00."""
    live = re.compile(r"\b(\w*Panel|dashboard|beside)\(")
    for path in NOTEBOOKS:
        code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        shown = [i for i, source in enumerate(code) if live.search(source)]
        if shown:
            closing = [s for s in code[shown[0] + 1 :] if ".close()" in s]
            assert not closing, f"{path.name}: {closing[0]!r} closes what its panels show"
