"""Notebook 03b, as two students run it: the same notebook in two real kernels, each
filling in what the notebook asks (a name, a role, the code pasted from the other side),
pairs and chats.  The cells run exactly as stored, with only those blanks filled."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from kernels import execute, kernel

pytestmark = [pytest.mark.network, pytest.mark.slow]
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03b-pairing-by-hand.ipynb"
CODE = r"^(volli2\.[A-Za-z0-9_-]+\.[a-z2-7]{8})$"


def cells() -> list[str]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def filled(source: str, **blanks: str) -> str:
    """The cell with ``NAME = ""`` and the like filled in, as a student types them."""
    for name, value in blanks.items():
        blank = f'{name} = ""'
        if blank in source:
            source = source.replace(blank, f"{name} = {value!r}", 1)
    return source


def test_notebook_03b_pairs_two_kernels_by_hand(tmp_path: Path) -> None:
    opening, role, step_b, step_a, connected, chat, peers = cells()
    with kernel(str(tmp_path)) as ka, kernel(str(tmp_path)) as kb:
        assert "I am ana" in execute(ka, filled(opening, NAME="ana"))
        assert "I am ben" in execute(kb, filled(opening, NAME="ben"))
        offered = execute(ka, filled(role, ROLE="A"))
        code = re.search(CODE, offered, re.M)
        assert code and "copy this whole line to B" in offered, offered
        assert "wait for A's code" in execute(kb, filled(role, ROLE="B"))
        assert "B's step: nothing to do here" in execute(ka, step_b)
        answered = execute(kb, filled(step_b, CODE_FROM_A=code.group(1)))
        answer = re.search(CODE, answered, re.M)
        assert answer and "copy this whole line back to A" in answered, answered
        assert "A: paired" in execute(ka, filled(step_a, ANSWER_FROM_B=answer.group(1)))
        assert "A's step: nothing to do here" in execute(kb, step_a)
        numbers = []
        for k, other in ((ka, "ben"), (kb, "ana")):
            out = execute(k, connected)
            assert f"connected to {other} ·" in out, out
            numbers.append(re.search(r"safety number: ([\d ]{71})", out).group(1))  # type: ignore[union-attr]
        assert numbers[0] == numbers[1]  # what the two students read to each other
        # The chat panel sends as a student would: the text box, then the button.
        execute(ka, chat)
        execute(ka, "_panel = ChatPanel(me); _panel.text.value = 'hi ben'; await _panel._send()")
        last = "me.history(me.contacts[-1].peer_id)[-1]"
        execute(ka, f"await me.wait_delivered({last}.message_id)")  # ben stored it, and ACKed
        out = execute(kb, "print(*me.history(me.contacts[-1].peer_id), sep='\\n')")
        assert re.search(r"\d\d:\d\d:\d\d ana: hi ben", out), out
        assert "ben" in execute(ka, peers)
        execute(ka, "await me.close()")
        execute(kb, "await me.close()")


def test_a_second_tab_of_03b_shares_the_kernel_and_says_so(tmp_path: Path) -> None:
    """Two tabs of one notebook share one kernel (JupyterLab keys a session by the file's
    path), though 03 and 03b said each tab got its own: the second tab's first cell
    silently replaced the first tab's ``me``.  Now it says so, closes the old profile, and
    the notebooks say to open a copy."""
    opening = cells()[0]
    with kernel(str(tmp_path)) as k:
        first = execute(k, filled(opening, NAME="ana"))
        assert "I am ana" in first and "had a profile already" not in first
        execute(k, "tab_a = me")
        second = execute(k, filled(opening, NAME="ben"))  # the other tab, same kernel
        assert "this kernel had a profile already (ana); closing it" in second, second
        assert "Duplicate" in second and "I am ben" in second
        assert execute(k, "print(tab_a.closed, me.name, me.closed)").split() == [
            "True",
            "ben",
            "False",
        ]
        execute(k, "await me.close()")
    for name in ("03-pairing-two-kernels.ipynb", "03b-pairing-by-hand.ipynb"):
        text = (NOTEBOOK.parent / name).read_text()
        assert "each tab gets its own kernel" not in text and "Duplicate" in text, name
