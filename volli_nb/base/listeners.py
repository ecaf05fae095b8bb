"""Handlers for one kind of news: ``add`` returns the remover, ``emit`` calls each one.

The stores, the network and the event log all let callers register handlers for what
happens.  A handler belongs to the caller, so a handler that raises is logged and the
others still run: a broken panel must not break delivery.  Emitting iterates over a
copy, so a handler may remove itself (or add another) while it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, ParamSpec

P = ParamSpec("P")


class Listeners(Generic[P]):
    """An ordered set of handlers taking the same arguments (``Listeners[[Event]]``)."""

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self._what = what  # named in the log line when a handler fails
        self._logger = logger
        self._handlers: list[Callable[P, None]] = []

    def add(self, handler: Callable[P, None]) -> Callable[[], None]:
        """Register ``handler``; the returned function unregisters it (idempotent)."""
        self._handlers.append(handler)

        def remove() -> None:
            if handler in self._handlers:
                self._handlers.remove(handler)

        return remove

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for handler in list(self._handlers):
            try:
                handler(*args, **kwargs)
            except Exception:
                self._logger.exception("%s failed", self._what)

    def __len__(self) -> int:
        return len(self._handlers)


__all__ = ["Listeners"]
