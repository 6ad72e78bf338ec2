"""Run directories: one search at a time (an exclusive lock), writable before any work, never half-claimed.

A search holds an exclusive, non-blocking ``flock`` on ``RUN_DIR/run.lock`` for its whole ``fit``; a second
search (a new start or a resume) on the same directory is refused with :class:`RunDirLocked`, naming the
holder's pid. The lock dies with its process, so a ``kill -9`` never leaves a directory locked. Before any
training, every file the run will write is probed (the directory by creating the lock and a temporary file,
existing files by opening them for appending, which changes nothing), so a read-only directory fails at
once with :class:`RunDirError` instead of after the first generation.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, a warning
    fcntl = None

logger = logging.getLogger(__name__)

LOCK_NAME = "run.lock"
WRITTEN = ("config.json", "checkpoint.json", "checkpoint.json.tmp", "config.json.tmp", "best.json.tmp",
           "log.jsonl", "hall_of_fame.csv", "best.json", "best.tex", "best.py", "fitness.png", "pareto.png",
           "mirror.png")
"""Every file a run writes (atomic writes go through ``NAME.tmp``)."""


class RunDirError(ValueError):
    """A run directory cannot be used as asked (read-only, holds another run, tampered); the message says why
    and how to proceed."""


class RunDirLocked(RunDirError):
    """Another search (in this or another process) holds the run directory's lock."""


def _unwritable(run_dir: Path, what: str, exc: OSError) -> RunDirError:
    reason = exc.strerror or type(exc).__name__
    return RunDirError(f"run_dir={str(run_dir)!r}: cannot write {what} ({reason}); nothing was trained. Copy "
                       f"it somewhere writable (cp -r {run_dir} NEW_DIR, then resume NEW_DIR) or make it "
                       f"writable (chmod -R u+w {run_dir})")


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        return "unknown pid"
    return f"pid {text}" if text.isdigit() else "unknown pid"


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``run_dir`` (created if missing) for the block; refuse if someone holds it."""
    path = run_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _unwritable(run_dir, f"its lock file {LOCK_NAME}", exc) from exc
    try:
        if fcntl is None:  # pragma: no cover
            logger.warning("no fcntl on this platform: run directory %s is not locked", run_dir)
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise _unwritable(run_dir, f"a lock on {LOCK_NAME}", exc) from exc
                raise RunDirLocked(
                    f"run_dir={str(run_dir)!r} is in use by another search ({_holder(path)}, as recorded in "
                    f"{path}); wait for it to finish or stop it, then resume (`symloss search --resume "
                    f"{run_dir}`). Nothing was changed."
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def check_writable(run_dir: Path) -> None:
    """Raise :class:`RunDirError` unless the run can write every file of :data:`WRITTEN` in ``run_dir``."""
    try:
        handle, probe = tempfile.mkstemp(dir=run_dir, prefix=".write-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise _unwritable(run_dir, "new files in it", exc) from exc
    for name in WRITTEN:
        path = run_dir / name
        if not os.path.lexists(path):
            continue
        try:  # opening for appending changes nothing, but fails as a write would (read-only, a directory, ...)
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        except OSError as exc:
            raise _unwritable(run_dir, name, exc) from exc


def claim_new(run_dir: Path) -> None:
    """Refuse a new start in a directory that holds a run; a lone config.json of a failed start is replaced.

    Call with the lock held. A start that failed before its first generation (a bad option, a crash while
    building the dataset) leaves only config.json: it holds nothing computed, so a new start may reuse it.
    """
    if (run_dir / "checkpoint.json").exists():
        raise RunDirError(
            f"run_dir={str(run_dir)!r} already holds a run; continue it with resume "
            f"(`symloss search --resume {run_dir}`) or choose another directory. Nothing was overwritten."
        )
    if (run_dir / "config.json").exists():
        logger.warning("run_dir %s holds only the config.json of a start that completed no generation; "
                       "replacing it", run_dir)


def make_dir(run_dir: Path) -> None:
    """Create ``run_dir`` (and its parents), or raise :class:`RunDirError` naming why not."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise RunDirError(f"run_dir={str(run_dir)!r}: exists and is not a directory; choose another path") from exc
    except OSError as exc:
        raise RunDirError(f"run_dir={str(run_dir)!r}: cannot create it ({exc.strerror or exc}); choose a "
                          "writable location") from exc
