"""One run folder, one writer: a new run claims its folder atomically, and a lock holds it.

Runs started in the same second with the same env, ``--exp-name`` and seed get the same run name;
``claim_run_folder`` creates the folder with an exclusive ``mkdir``, so the second one gets
``<name>__2`` (and so on) instead of writing into the first one's folder. ``lock_run_folder``
takes an exclusive ``flock`` on ``<run folder>/.lock`` for as long as the process lives: a
``--resume`` of a run that is still writing its folder is refused, naming the holder's pid. The
kernel drops the lock when the process ends, however it ends (``kill -9`` too), so no stale lock
is ever left to clean up.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from common.cli import UsageError

LOCK_FILE = ".lock"
MAX_CLAIMS = 1000  # name, name__2, ..., name__1000: far more runs than can start in one second


def claim_run_folder(runs_dir: str | Path, name: str) -> Path:
    """Create ``runs_dir/name`` (``runs_dir`` too, if missing), or the first free ``name__k``.

    ``mkdir`` either creates the folder or fails because it exists, atomically, so two processes
    never both get the same folder. Returns the folder created.
    """
    runs = Path(runs_dir)
    runs.mkdir(parents=True, exist_ok=True)
    for k in range(1, MAX_CLAIMS + 1):
        folder = runs / (name if k == 1 else f"{name}__{k}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise UsageError(
        "--exp-name", f"{MAX_CLAIMS} runs named {name} exist in {runs}; pick a new name"
    )


class RunLock:
    """An exclusive ``flock`` on a run folder's lock file, held until ``release`` or exit."""

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder, self._fd = folder, fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the lock
            self._fd = None


def lock_run_folder(folder: str | Path, flag: str = "--resume") -> RunLock:
    """Lock ``folder`` (created if missing) for this process, or raise UsageError naming ``flag``
    and the pid of the process holding it. The pid is written into the lock file for that message."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise UsageError(
            flag,
            f"{folder} is in use by process {holder}, which is still writing it; wait for it to "
            "end (or stop it) before resuming",
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return RunLock(folder, fd)
