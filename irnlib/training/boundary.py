"""The training's boundary around its run folder: an unwritable folder or a full disk as one line,
and the folders a failed run made removed again while they hold nothing of it."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from irnlib.training.errors import RunFolderUnwritable
from irnlib.training.run_folder import LOCK_NAME
from irnlib.training.state import training_state_path

__all__ = ["WRITING_ERRNOS", "writing_error", "unwritable", "missing_folders", "remove_unused"]

# What the environment, not the run, gets wrong when a file cannot be written.
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
WRITING_ERRNOS = DISK_FULL_ERRNOS | {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR}


def writing_error(err: OSError, run_dir: Path) -> bool:
    """Whether ``err`` is a failure to write the run folder (or make it): not a missing input elsewhere."""
    if err.errno not in WRITING_ERRNOS:
        return False
    if err.filename is None:  # a write or flush of an open file: the run folder's (the data are only read)
        return True
    path, run_dir = Path(os.path.abspath(err.filename)), Path(os.path.abspath(run_dir))
    return path == run_dir or run_dir in path.parents or path in run_dir.parents


def _free_space(folder: Path) -> str:
    """``"12.3 MB free"`` on the disk of ``folder`` (or of its nearest existing parent)."""
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return f"{shutil.disk_usage(folder).free / 1e6:.1f} MB free"
    except OSError:
        return "free space unknown"


def unwritable(run_dir: Path, err: OSError) -> RunFolderUnwritable:
    """The one-line error for a run folder that cannot be written, with the way on."""
    reason = err.strerror or os.strerror(err.errno)
    last = training_state_path(run_dir)
    if err.errno in DISK_FULL_ERRNOS:
        kept = f"the last saved training state {last} is intact" if last.is_file() else "no training state was saved"
        return RunFolderUnwritable(
            f"{run_dir}: cannot write the run's files ({reason}; {_free_space(run_dir)}); {kept}. Free space on "
            "that disk and run the same command again to resume, or train elsewhere with runs_dir=<folder on "
            "another disk>"
        )
    where = f" ({err.filename})" if err.filename else ""
    return RunFolderUnwritable(
        f"{run_dir}: cannot write the run folder{where} ({reason}); nothing was changed there. Make it writable, "
        "or train elsewhere with runs_dir=<a writable folder>"
    )


def missing_folders(run_dir: Path) -> list[Path]:
    """``run_dir`` and its ancestors that do not exist yet (deepest first): what training will make."""
    made, folder = [], Path(os.path.abspath(run_dir))
    while not folder.exists() and folder != folder.parent:
        made.append(folder)
        folder = folder.parent
    return made


def remove_unused(made: list[Path]) -> None:
    """Remove the folders of :func:`missing_folders` again, deepest first, while they hold nothing of
    the run: only the lock file and an empty ``checkpoints/``. A folder holding anything else stays."""
    for folder in made:
        for leftover in (folder / LOCK_NAME, folder / "checkpoints"):
            try:
                leftover.rmdir() if leftover.is_dir() else leftover.unlink(missing_ok=True)
            except OSError:
                pass  # not empty: the run wrote into it
        try:
            folder.rmdir()
        except OSError:
            return  # it holds something: keep it and every folder above it
