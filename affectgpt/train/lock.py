"""One training per run folder: `<run>/train.lock` holds the owner's pid, host and process start time.

A second training into the same folder (resume=auto would interleave checkpoints and logs; resume=never would
delete the first one's) is refused with one line naming the owner. A lock whose pid is dead on this host (a
kill -9, a power loss) is stale: it is taken over with a warning. The file is created with O_EXCL, so two
starts racing for a free folder cannot both win. Another host's lock is never judged stale (its pid means
nothing here): the message says how to remove it by hand.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

logger = logging.getLogger("affectgpt.train")

LOCK_FILE = "train.lock"


class RunLockedError(RuntimeError):
    """Another live training owns the run folder."""


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (Linux /proc), so a reused pid is not taken for the lock's owner."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    now = _start_time(pid)
    return started is None or now is None or now == started


class RunLock:
    """acquire() on the main process before touching the folder; release() when the run ends (also at exit)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.held = False

    def _owner(self) -> dict:
        pid = os.getpid()
        return {"pid": pid, "host": socket.gethostname(), "started": _start_time(pid), "since": time.time()}

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self._owner(), f)
        return True

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a stale lock removed by us (or a racing start) is retried
            if self._create():
                self.held = True
                return
            try:
                owner = json.loads(self.path.read_text(encoding="utf-8"))
                pid, host = int(owner["pid"]), str(owner["host"])
            except FileNotFoundError:
                continue  # released between our two calls
            except (OSError, ValueError, KeyError, TypeError):
                owner, pid, host = {}, -1, socket.gethostname()  # torn by a kill while written: stale
            if host != socket.gethostname():
                raise RunLockedError(
                    f"{self.path.parent} is in use by a training on host {host} (pid {pid}, {self.path}); wait for "
                    f"it to end or use another train.run_name (delete {self.path} only if that run is gone)"
                )
            if pid > 0 and _alive(pid, owner.get("started")):
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(owner.get("since", 0))))
                raise RunLockedError(
                    f"{self.path.parent} is in use by another training (pid {pid} on {host}, since {since}; "
                    f"{self.path}): wait for it to end, stop it, or use another train.run_name"
                )
            logger.warning("taking over the stale lock %s (pid %s on %s is not running)", self.path, pid, host)
            self.path.unlink(missing_ok=True)
        raise RunLockedError(f"{self.path}: could not take the run lock (other starts keep racing for it)")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            if json.loads(self.path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass
