"""End to end in a real browser: JupyterLab on loopback, Debian's headless Chromium
through playwright (never `playwright install`), a notebook with two peers and an offline
contact; the rendered panels must show a connected peer, candidate rows with a selected
pair, and a pending message with a countdown.  A screenshot is saved as an artifact."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require

pytestmark = [pytest.mark.network, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
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
    assert "connected" in peers and "yes" in peers  # verified, connected row
    assert "host" in ice and "✔" in ice  # candidate rows, selected pair marked
    assert "pending" in queue and "in " in queue  # the offline contact's message, countdown


def test_message_flow_notebook_shows_the_queue_panel(tmp_path: Path) -> None:
    notebook = Path(__file__).parent.parent / "notebooks" / "02-message-flow.ipynb"
    tables = run_in_jupyterlab(
        tmp_path,
        notebook,
        ["QueuePanel(alice)", "EventLogPanel(alice)"],
        marker="bob got:",
        name="message-flow",
        expect={"QueuePanel(alice)": ["next retry", "pending", "peer offline"]},
    )
    # The queue panel shows carol's pending message (bob's was retried and delivered).
    assert any("next retry" in t and "pending" in t and "peer offline" in t for t in tables)
    assert any("channel binding verified" in t for t in tables)


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
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(90_000)
            page.goto(f"http://127.0.0.1:{port}/lab/tree/{notebook.name}?token={token}")
            page.wait_for_selector(".jp-Notebook", state="visible")
            page.wait_for_selector("text=Python 3 (ipykernel) | Idle")  # the kernel is up
            select = page.get_by_role("button", name="Select", exact=True)
            if select.count():  # a kernel dialog, on slow starts
                select.click()
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            page.wait_for_selector(f".jp-OutputArea-output:has-text('{marker}')")
            texts = []
            try:
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
            finally:
                page.screenshot(path=str(ARTIFACTS / f"jupyterlab-{name}.png"))
            highlighted = page.locator(".volli-table tr.volli-selected").count()
            browser.close()
            if len(cells) == 3:
                assert highlighted >= 2  # the selected pair, highlighted in the ICE grid
            return texts
    finally:
        lab.terminate()
        try:
            lab.wait(10)
        except subprocess.TimeoutExpired:
            lab.kill()
