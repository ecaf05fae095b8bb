"""What the benchmark is measuring now, as a bar where one fits.

A full ``volli-nb bench`` takes minutes; the bar says which measurement runs (and, during
the backlog flush and the bulk send, how far the store's own progress is).  It goes to
stderr, so ``--json`` on stdout stays clean; in a notebook it is a ``tqdm.auto`` widget;
with no terminal and no kernel (a test, CI, a pipe) nothing is drawn.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm as auto_tqdm
from tqdm.std import tqdm as std_tqdm

from volli_nb.base.console import Target, progress_target
from volli_nb.core.progress import ProgressFeed, ProgressUpdate


class BenchProgress:
    """Steps of a bench run; ``watch(store.progress)`` adds the store's own tasks."""

    def __init__(self, steps: int, *, target: Target | str | None = "auto") -> None:
        chosen = progress_target(sys.stderr) if target == "auto" else target
        self.enabled = chosen is not None
        kind: Any = auto_tqdm if chosen == "notebook" else std_tqdm
        self.bar = kind(
            total=steps,
            desc="bench",
            unit="step",
            file=sys.stderr,
            disable=not self.enabled,
            leave=False,
            dynamic_ncols=True,
        )
        self.step_name = ""
        self.prefix = ""  # e.g. "run 2/3: ", put before every step's name
        self._removers: list[Any] = []

    def step(self, name: str) -> None:
        """``name`` starts now (the previous step is done)."""
        if self.step_name:
            self.bar.update(1)
        self.step_name = self.prefix + name
        self.bar.set_postfix_str(self.step_name)

    def watch(self, feed: ProgressFeed) -> None:
        if self.enabled:
            self._removers.append(feed.subscribe(self._on_task))

    def _on_task(self, update: ProgressUpdate) -> None:
        if update.finished:
            self.bar.set_postfix_str(self.step_name)
            return
        total = f"/{update.total:,.0f}" if update.total else ""
        self.bar.set_postfix_str(
            f"{self.step_name}: {update.done:,.0f}{total} {update.unit} {update.stage}".rstrip()
        )

    def close(self) -> None:
        for remove in self._removers:
            remove()
        if self.step_name:
            self.bar.update(1)
        self.bar.close()
