"""End to end in a real browser: JupyterLab on loopback, Debian's headless Chromium
through playwright (never `playwright install`), 1,280 px wide with the file browser open,
as a student would have it.  A notebook with two peers and an offline contact: the
rendered panels show a connected peer, candidate rows with a selected pair, and a pending
message with a countdown.  Notebooks 00 and 02: every output readable (no column clipped
or overflowing its cell, no epoch float, no bytes literal), and a screenshot of each
dashboard tab written to docs/screenshots/ (so the docs show what the code draws now).
Notebook 01: the ratchet picture turns as messages are sent."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import require

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.network, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 1000}
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


# Render every cell (no windowing, which leaves off-screen outputs out of the DOM) and
# never fetch news.
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": '{"windowingMode": "none"}',
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": '{"fetchNews": "false"}',
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_jupyterlab_renders_live_panels(tmp_path: Path) -> None:
    tables = run_in_jupyterlab(
        tmp_path,
        Path(__file__).parent / "notebooks" / "panels.ipynb",
        ["PeersPanel(alice)", "IcePanel(alice)", "QueuePanel(alice)"],
    )
    peers, ice, queue = tables
    assert "connected" in peers and "skipped held" in peers  # connected, with a session
    assert "host" in ice and "✔" in ice  # candidate rows, selected pair marked
    assert "pending" in queue and "in " in queue  # the offline contact's message, countdown


ONLINE = [
    r"^send_message\(…\) → ",
    r"^MESSAGE [0-9a-f]{8} ",
    r"^signed ACK \(",
    r"^ACK signature ok: ",
    r"^✓ delivered ",
]
OFFLINE = [
    *(
        rf"^bob: retry in {s} s \(attempt {i} failed: peer offline\)"
        for i, s in enumerate((1, 5, 15, 60), 1)
    ),
    r"^stuck [0-9a-f]{8} to bob: retry by hand",
    r"^bob is back: 1 stuck → due again",  # bob's return released it
    r"^send [0-9a-f]{8}, attempt 6",
    r"^✓ delivered ",
]


def in_order(labels: list[str], patterns: list[str], start: int = 0) -> int:
    """Each pattern matches a later label than the one before; returns where it ended."""
    at = start
    for pattern in patterns:
        hits = [i for i in range(at, len(labels)) if re.search(pattern, labels[i])]
        assert hits, f"{pattern!r} after #{at} not in {labels}"
        at = hits[0] + 1
    return at


def test_message_flow_notebook_draws_the_sequence_diagram(tmp_path: Path) -> None:
    """Notebook 02 in JupyterLab: the live diagram holds the online path and the offline path
    in order; an arrow clicked pins its details; pause freezes it; the static copy meant for
    exports is hidden while the live one is drawn.  Also the queue panel and event log."""
    notebook = Path(__file__).parent.parent / "notebooks" / "02-message-flow.ipynb"
    with jupyterlab(tmp_path, notebook, "chunks: delivered", "message-flow") as page:
        cell = page.locator(".jp-CodeCell", has_text="diagram = SequencePanel(alice)").first
        live = cell.locator(".widget-html .volli-seq").first
        live.wait_for(timeout=60_000)
        labels: list[str] = []
        until = time.monotonic() + 20  # the panel redraws about once a second
        while time.monotonic() < until:
            labels = live.locator(".arrow > title").evaluate_all(
                "ts => ts.map(t => t.textContent.split('\\n')[0])"
            )
            if any(x.startswith("encrypt for bob (4.") for x in labels):  # the 3 MB message, last
                break
            time.sleep(0.5)
        end = in_order(labels, ONLINE)
        in_order(labels, OFFLINE, end)
        names = live.locator(".head text").all_text_contents()
        assert names == ["UI", "Store", "Queue", "Network", "bob"]
        # The time column follows the virtual clock: the retries 1, 5, 15 and 60 s apart.
        times = live.locator(".arrow").evaluate_all(
            "gs => gs.filter(g => /^bob: retry in/.test(g.querySelector('title').textContent))"
            ".map(g => parseFloat(g.querySelector('.time').textContent.slice(1)))"
        )
        assert [round(t - times[0]) for t in times[:4]] == [0, 1, 6, 21], times
        assert any(x.startswith("carol: retry in 1 s") for x in labels)  # carol by name
        drawn = " ".join(live.locator("text:not(.time)").all_text_contents())
        assert "…" not in drawn.replace("send_message(…)", "")  # no label cut short

        # Click the first MESSAGE arrow: its details box is pinned (ids, size, timing).
        number = live.locator(".arrow").evaluate_all(
            "gs => gs.find(g => g.querySelector('title').textContent.startsWith('MESSAGE'))"
            ".dataset.n"
        )
        arrow, tip = live.locator(f".arrow.a{number}"), live.locator(f".tip.t{number}")
        assert tip.is_hidden()
        arrow.scroll_into_view_if_needed()
        arrow.click()
        tip.wait_for(state="visible", timeout=5_000)
        details = tip.text_content() or ""
        assert re.search(r"messages: [0-9a-f]{32}", details)
        assert re.search(r"size: \d+ B", details)  # a sealed 100-byte text: a few hundred bytes
        assert re.search(r"time: \d\d:\d\d:\d\d\.\d{3} \(\+\d+\.\d{3} s\)", details)
        live.screenshot(path=str(ARTIFACTS / "jupyterlab-sequence-online.png"))
        stuck = live.locator(".arrow").evaluate_all(
            "gs => gs.find(g => g.querySelector('title').textContent.startsWith('stuck')).dataset.n"
        )
        live.locator(f".arrow.a{stuck}").scroll_into_view_if_needed()
        live.locator(f".arrow.a{stuck}").click()
        pinned = live.locator(f".tip.t{stuck}")
        pinned.wait_for(state="visible", timeout=5_000)
        assert "failed attempts: 5" in (pinned.text_content() or "")
        assert tip.is_hidden()  # one pinned box at a time: the focused arrow's
        live.screenshot(path=str(ARTIFACTS / "jupyterlab-sequence-offline.png"))

        static = cell.locator("[class$='-static'] .volli-seq").first
        assert static.count() == 1 and static.is_hidden()  # only the export shows it

        cell.get_by_role("button", name="pause").click()
        cell.get_by_text("paused", exact=False).wait_for(timeout=10_000)
        cell.get_by_role("button", name="pause").click()

        # The queue panel shows carol's pending message (bob's was retried and delivered).
        queue = page.locator(".jp-CodeCell", has_text="QueuePanel(alice)").first
        queue.scroll_into_view_if_needed()
        table = queue.locator(".volli-table").first
        table.wait_for(timeout=60_000)
        text = table.inner_text()
        assert "next retry" in text and "pending" in text and "peer offline" in text
        events = page.locator(".jp-CodeCell", has_text="EventLogPanel(alice)").first
        events.scroll_into_view_if_needed()
        log = events.locator(".volli-table").first.inner_text()
        assert "channel binding verified" in log
        assert re.search(r"\d\d:\d\d:\d\d\.\d{3}\s+\+\d+\.\d{3} s", log)  # readable times
        assert_readable(page)


def test_key_exchange_notebook_draws_the_ratchet_turning(tmp_path: Path) -> None:
    """Notebook 01 in JupyterLab: the live ratchet picture changes as the messages go (its
    counters, a DH step when the direction changes, a new chain's row), every box has its
    hover text, it fits the output at 1,280 px, and a screenshot goes to docs/screenshots/."""
    notebook = ROOT / "notebooks" / "01-key-exchange.ipynb"
    marker = "and it is the hash of both hellos: True"  # the cell before the picture
    with jupyterlab(tmp_path, notebook, marker, "key-exchange") as page:
        cell = page.locator(".jp-CodeCell", has_text="ratchet = RatchetPanel(alice_app, peer)")
        live = cell.first.locator(".widget-html .volli-ratchet").first
        live.wait_for(timeout=60_000)
        seen: list[tuple[int, int, int, int]] = []  # (sent, received, DH steps, chain rows)
        until = time.monotonic() + 60  # six messages, a second apart
        while time.monotonic() < until:
            state = live.evaluate(
                "e => [+e.dataset.sent, +e.dataset.received, +e.dataset.steps,"
                " e.querySelectorAll('g.chain').length]"
            )
            if not seen or tuple(state) != seen[-1]:
                seen.append(tuple(state))
            if state[:2] == [3, 3]:
                break
            time.sleep(0.2)
        assert seen[-1][:2] == (3, 3), seen
        assert len(seen) >= 3, f"the picture did not change as messages were sent: {seen}"
        assert [s[:2] for s in seen] == sorted(s[:2] for s in seen)  # counters only grow
        assert seen[-1][2] >= seen[0][2] + 2  # bob answered twice: two DH steps at alice
        assert seen[-1][3] > seen[0][3]  # and each drew new chains
        titles = live.locator("g.k > title").all_text_contents()
        assert titles and all(t.startswith("message key ") for t in titles)
        drawn = live.locator("svg[viewBox]").first  # not the legend's swatches
        assert drawn.locator("g.k-used").count() >= 6 and drawn.locator("g.k-next").count() == 2
        assert_unclipped(page, "the ratchet picture")
        page.mouse.move(1, 1)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        live.scroll_into_view_if_needed()
        live.screenshot(path=str(SCREENSHOTS / "ratchet-alice.png"))
        page.locator(
            ".jp-OutputArea-output", has_text="in its bundle: "
        ).first.wait_for()  # all ran
        assert_readable(page)


TABS = ["Peers", "ICE", "Queue", "Chat", "Groups", "Events", "Sequence"]


def test_start_here_dashboard_reads_at_1280_px(tmp_path: Path) -> None:
    """Notebook 00 as a student runs it: each dashboard tab fits the output at 1,280 px with
    the file browser open, names instead of ids, and a screenshot of each tab for the docs."""
    notebook = ROOT / "notebooks" / "00-start-here.ipynb"
    with jupyterlab(tmp_path, notebook, "hello back", "start-here") as page:
        cell = page.locator(".jp-CodeCell", has_text="dashboard(alice)").first
        tabs = cell.locator(".jupyter-widget-Tab, .widget-tab").first
        tabs.wait_for(timeout=60_000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        expect = {
            "Peers": ["bob", "connected", "ICE completed", "DH step", "↔ host 127.0.0.1:"],
            "ICE": ["bob", "host", "✔"],
            "Queue": ["nothing waits"],
            "Chat": ["bob (", "me: hello from the first notebook", "bob: hello back"],
            "Groups": ["Groups", "none yet"],
            "Events": ["channel binding verified", "bob"],
            "Sequence": ["ACK signature ok", "✓ delivered"],
        }
        for name in TABS:
            tabs.get_by_role("tab", name=name).click()
            panel = tabs.locator(".widget-tab-contents > :not(.lm-mod-hidden)").first
            until = time.monotonic() + 15  # a panel refreshes about once a second
            text = ""
            while time.monotonic() < until:
                text = panel.inner_text()
                if all(word in text for word in expect[name]):
                    break
                time.sleep(0.3)
            missing = [word for word in expect[name] if word not in text]
            assert not missing, f"{name} tab lacks {missing}:\n{text}"
            assert "dm-" not in text, f"{name} tab shows a conversation id:\n{text}"
            assert_unclipped(page, f"the {name} tab")
            page.mouse.move(1, 1)  # no row or arrow highlighted by the pointer
            tabs.screenshot(path=str(SCREENSHOTS / f"dashboard-{name.lower()}.png"))
        assert_readable(page)


# A raw epoch (float seconds, or 13-digit milliseconds), or a bytes literal.
RAW = re.compile(r"\b1[6-9]\d{8}\.\d+\b|\b1[6-9]\d{11}\b|(?<![\w'\"])b['\"]")
# Every visible table and diagram of every output must fit its output area (or the tab
# it sits in), and no cell's text may overflow the cell: the check a reader's eye makes.
CLIPPED = """() => {
  const problems = [];
  const drawn = '.volli-table, .volli-seq svg, .volli-seq-details, .volli-ratchet svg';
  for (const el of document.querySelectorAll(drawn)) {
    const r = el.getBoundingClientRect();
    if (r.width === 0) continue;  // hidden: an inactive tab, a static copy
    const area = el.closest('.widget-tab-contents, .jp-OutputArea-output');
    const box = area.getBoundingClientRect();
    if (r.left < box.left - 1 || r.right > box.right + 1) {
      problems.push(`${el.className.baseVal ?? el.className} spans ${r.left}-${r.right}, ` +
                    `its output ${box.left}-${box.right}`);
    }
  }
  for (const td of document.querySelectorAll('.volli-table td, .volli-table th')) {
    if (td.getBoundingClientRect().width > 0 && td.scrollWidth > td.clientWidth + 1) {
      problems.push(`cell "${td.innerText}" overflows (${td.scrollWidth} > ${td.clientWidth})`);
    }
  }
  return problems;
}"""


def assert_unclipped(page: Page, where: str) -> None:
    problems = page.evaluate(CLIPPED)
    assert not problems, f"clipped in {where}: {problems}"


def assert_readable(page: Page) -> None:
    """No output shows an epoch float or a bytes literal, hover texts included."""
    outputs = page.locator(".jp-OutputArea-output").evaluate_all(
        "os => os.map(o => { const c = o.cloneNode(true);"
        " c.querySelectorAll('style, script').forEach(s => s.remove()); return c.textContent; })"
    )
    for text in outputs:
        found = RAW.search(text)
        assert found is None, f"{found.group(0)!r} in an output: {text[:400]!r}"
    assert_unclipped(page, "the notebook")


@contextlib.contextmanager
def jupyterlab(tmp_path: Path, notebook: Path, marker: str, name: str) -> Iterator[Page]:
    """JupyterLab on loopback with ``notebook`` open, every cell run until an output shows
    ``marker``; yields the page, and saves a screenshot as an artifact when done."""
    require(os.path.exists(CHROMIUM), "Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    shutil.copy(notebook, tmp_path / notebook.name)
    settings = tmp_path / "lab-settings"
    for path, body in SETTINGS.items():
        (settings / path).parent.mkdir(parents=True, exist_ok=True)
        (settings / path).write_text(body)
    port, token = free_port(), secrets.token_hex(16)
    lab = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path}",
            "--ServerApp.open_browser=False",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "jupyterlab.log").open("w"),
        env={
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
        },
    )
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            page.set_default_timeout(90_000)
            page.goto(f"http://127.0.0.1:{port}/lab/tree/{notebook.name}?token={token}")
            page.wait_for_selector(".jp-Notebook", state="visible")
            page.wait_for_selector("text=Python 3 (ipykernel) | Idle")  # the kernel is up
            select = page.get_by_role("button", name="Select", exact=True)
            if select.count():  # a kernel dialog, on slow starts
                select.click()
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            try:
                try:
                    page.locator(".jp-OutputArea-output", has_text=marker).first.wait_for()
                except Exception:
                    errors = page.locator("[data-mime-type='application/vnd.jupyter.stderr']")
                    stderr = errors.all_inner_texts()
                    raise AssertionError(f"no {marker!r}; stderr: {stderr}") from None
                yield page
            finally:
                page.screenshot(path=str(ARTIFACTS / f"jupyterlab-{name}.png"), full_page=True)
                browser.close()
    finally:
        lab.terminate()
        try:
            lab.wait(10)
        except subprocess.TimeoutExpired:
            lab.kill()


def run_in_jupyterlab(
    tmp_path: Path,
    notebook: Path,
    cells: list[str],
    marker: str = "READY {",
    name: str = "panels",
    expect: dict[str, list[str]] | None = None,
) -> list[str]:
    """Open ``notebook`` in JupyterLab, run all cells, and return the rendered panel table
    of each cell whose source contains one of ``cells`` (scrolled into view first)."""
    with jupyterlab(tmp_path, notebook, marker, name) as page:
        texts = []
        for snippet in cells:
            cell = page.locator(".jp-CodeCell", has_text=snippet).first
            cell.scroll_into_view_if_needed()
            table = cell.locator(".volli-table").first
            table.wait_for(timeout=60_000)
            text = table.inner_text()
            wanted = (expect or {}).get(snippet, [])
            until = time.monotonic() + 15  # live panels refresh about once a second
            while not all(w in text for w in wanted) and time.monotonic() < until:
                time.sleep(0.5)
                text = table.inner_text()
            texts.append(text)
        highlighted = page.locator(".volli-table tr.volli-selected").count()
        assert_unclipped(page, notebook.name)
    if len(cells) == 3:
        assert highlighted >= 2  # the selected pair, highlighted in the ICE grid
    return texts
