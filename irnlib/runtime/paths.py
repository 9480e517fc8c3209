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

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

__all__ = [
    "save_figure",
    "REPO_ROOT",
    "data_root",
    "results_root",
    "cache_root",
    "short_path",
    "atomic_write",
    "write_or_print",
    "remove_stale_temporaries",
    "write_json",
    "sha256_file",
]

REPO_ROOT = Path(__file__).resolve().parents[2]


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


# ``.<name>.<pid>-<random>.tmp``: the writer's temporary file, named after the process writing it.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(folder, name: str | None = None) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left in ``folder`` when its process was killed.

    Only files of the writer's naming pattern whose process no longer exists are removed (a
    concurrent writer's file is left alone); ``name`` limits it to one target's temporaries.

    Returns
    -------
    list of Path
        The files removed.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder yet, or not readable: nothing of ours to clean
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not match or (name is not None and match["name"] != name) or _alive(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass  # a read-only folder: the write itself will report it
    return removed


def atomic_write(path, write) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` only once it is complete.

    An exception leaves ``path`` as it was (absent or the previous version) and no
    temporary file behind. The temporary file lives in the same folder, so the final
    ``os.replace`` is atomic; it is named ``.<name>.<pid>-<random>.tmp``, and one left by a
    killed process (``kill -9``, a power cut) is removed by the next write of ``path``
    (see :func:`remove_stale_temporaries`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_or_print(text: str, path=None) -> None:
    """Write a report's ``text`` to ``path`` atomically, or print it when ``path`` is None
    (a command's ``--out``)."""
    if path:
        atomic_write(path, lambda tmp: tmp.write_text(text))
    else:
        print(text)


def write_json(path, record) -> Path:
    """Write a record (run configuration, provenance, RUN.json) as indented JSON, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))


def save_figure(fig, name: str, folder=None, dpi: int = 120) -> Path:
    """Write a matplotlib figure as PNG atomically, as ``<folder>/<name>``.

    ``folder`` defaults to the results' ``figures/`` (:func:`irnlib.runtime.paths.results_root`).
    Returns the path written.
    """
    folder = Path(folder) if folder is not None else results_root() / "figures"
    return atomic_write(folder / name, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))


def sha256_file(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
