"""One-line descriptions of the errors a user can hit, for the CLIs (the traceback goes to a log file instead).

`describe(err)` turns an exception into one line that names the file and the cause: an OSError says what the
errno means ("no space left on /mnt (device) while writing /mnt/run/x.bin"), anything else is its own message
(our errors already name the file). `report(err, log_path, debug)` prints that line and keeps the traceback.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from pathlib import Path

_CAUSES = {
    errno.ENOSPC: "no space left on {mount}",
    errno.EDQUOT: "disk quota exceeded on {mount}",
    errno.EFBIG: "file too large for the file-size limit (ulimit -f) on {mount}",
    errno.EACCES: "permission denied",
    errno.EROFS: "read-only file system {mount}",
    errno.ENOENT: "no such file or directory",
}


def mount_of(path: str | os.PathLike) -> str:
    """The mount point holding `path` (the nearest existing parent's), for "no space left on <mount>"."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return str(p)


def describe(err: BaseException, writing: str | os.PathLike | None = None) -> str:
    """One line: `<cause> while writing <file>` for OSErrors (the file from the error or `writing`), else the
    exception's own message (prefixed with its type when it is not one of ours)."""
    path = writing or getattr(err, "filename", None)
    if isinstance(err, OSError) and err.errno is not None and path:
        cause = _CAUSES.get(err.errno, (err.strerror or str(err)).lower()).format(mount=mount_of(path))
        return f"{cause} while writing {path}" if writing is not None else f"{cause}: {path}"
    text = " ".join(str(err).split()) or "(no message)"
    if type(err).__module__.startswith("affectgpt"):
        return text
    return f"{type(err).__name__}: {text}"


def report(err: BaseException, log_path: Path | None, debug: bool) -> str:
    """Print `error: <one line>` to stderr; the traceback to stderr with `debug`, else appended to `log_path`."""
    line = describe(err, getattr(err, "writing", None))
    trace = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    if debug:
        sys.stderr.write(trace)
    elif log_path is not None:
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(trace + "\n")
            line += f" (traceback in {log_path}; --debug prints it)"
        except OSError:  # e.g. the disk that is full: the line alone must still come out
            line += " (--debug prints the traceback)"
    print(f"error: {line}", file=sys.stderr, flush=True)
    return line
