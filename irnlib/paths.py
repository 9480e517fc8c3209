"""Where the kit reads and writes, and how it writes (atomically).

Three roots, each overridable by an argument or an environment variable:

- the data root (:func:`data_root`): ``$IRN_DATA``, else ``<repo>/data``; may be read-only;
- the results folder (:func:`results_root`): ``$IRN_RESULTS``, else ``<repo>/results``
  (tables, figures, training runs, executed notebooks);
- the cache folder (:func:`cache_root`): ``$IRN_CACHE``, else ``<results>/cache`` (derived
  data: LR references, decoded training images).

Every file the kit writes goes through :func:`atomic_write` (or :func:`write_json`): a
crash never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = [
    "REPO_ROOT",
    "data_root",
    "results_root",
    "cache_root",
    "pretrained_checkpoint",
    "short_path",
    "atomic_write",
    "write_json",
]

REPO_ROOT = Path(__file__).resolve().parents[1]


def _root(given, variable: str, default: Path) -> Path:
    if given is not None and str(given) != "":
        return Path(given).expanduser()
    env = os.environ.get(variable)
    return Path(env).expanduser() if env else default


def data_root(root=None) -> Path:
    """The data root: ``root`` if given, else ``$IRN_DATA``, else ``<repo>/data``."""
    return _root(root, "IRN_DATA", REPO_ROOT / "data")


def results_root(root=None) -> Path:
    """The results folder: ``root`` if given, else ``$IRN_RESULTS``, else ``<repo>/results``.

    Tests point ``IRN_RESULTS`` at a temporary folder so that they never overwrite the
    results a user (or the committed pipeline run) produced.
    """
    return _root(root, "IRN_RESULTS", REPO_ROOT / "results")


def cache_root(cache_dir=None) -> Path:
    """The cache folder: ``cache_dir`` if given, else ``$IRN_CACHE``, else ``<results>/cache``."""
    return _root(cache_dir, "IRN_CACHE", results_root() / "cache")


def pretrained_checkpoint(scale: int) -> Path:
    """Where the officially released ``IRN_x{scale}.pth`` goes: ``<repo>/data/pretrained/``."""
    return REPO_ROOT / "data" / "pretrained" / f"IRN_x{scale}.pth"


def short_path(path) -> str:
    """``path`` relative to the repository if it lies inside it (for labels), else as given."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT.resolve()))
    except ValueError:
        return str(path)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path, write) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` only once it is complete.

    A crash or an exception leaves ``path`` as it was (absent or the previous version) and
    no temporary file behind. The temporary file lives in the same folder, so the final
    ``os.replace`` is atomic.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path, record) -> Path:
    """Write a record (run configuration, provenance, RUN.json) as indented JSON, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))
