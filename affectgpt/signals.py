"""Graceful stop on SIGTERM / Ctrl-C, shared by training and inference.

The handler only sets a flag; the caller checks it at a safe point (a step or batch boundary) and
stops there. The first signal restores the previous handler, so a second Ctrl-C aborts at once.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

logger = logging.getLogger("affectgpt")


class StopFlag:
    """SIGTERM / SIGINT set `requested`; `action` says what the caller then does (for the log line)."""

    def __init__(self, action: str = "stopping") -> None:
        self.action = action
        self.requested = False
        self.signum: int | None = None  # the first signal received (CLIs exit with 128 + it)
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        self.signum = signum
        logger.warning("received %s: %s (send it again to abort at once)", signal.Signals(signum).name, self.action)
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. embedded use): no graceful stop
                pass

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
