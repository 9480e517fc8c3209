"""Fetch a registered dataset: resumable, verified, atomically extracted, idempotent.

``download("Set5")`` does, in order:

1. If ``<root>/Set5`` exists and verifies (count, names, sizes from the image headers), it
   returns at once: calling it again is free.
2. Fetches the archive into ``<root>/downloads/<file>`` through ``<file>.part``, with a tqdm
   bar. An interrupted transfer keeps the ``.part`` file; the next attempt (automatic, up to
   ``retries`` times, or the next call) resumes it with an HTTP ``Range`` request. The finished
   file is checked against the archive's size and SHA-256 where the registry knows them.
3. Extracts the dataset's members into a hidden temporary folder ``<root>/.Set5.partial-*``,
   converting non-PNG images to PNG (PNG files are copied byte for byte), verifies every image
   (decoding each one), writes ``SHA256SUMS``, and only then renames the folder to
   ``<root>/Set5``. A crash at any point leaves no folder that looks like a dataset; the stale
   temporary folder is removed by the next call.

Every failure raises :class:`DownloadError` naming the dataset, the file and the URL. A
corrupt archive is deleted (so the next call fetches it anew); an interrupted one is kept for
resuming. Archives shared by several datasets (the benchmark mirror) are fetched once. Run one
download of a given dataset at a time.
"""

from __future__ import annotations

import gzip
import http.client
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from irnlib.data.folders import IMAGE_SUFFIXES, dataset_dir, verify_folder, write_checksums
from irnlib.data.registry import Archive, DatasetInfo, dataset_info
from irnlib.imaging.images import ImageFileError, load_image, save_png
from irnlib.runtime.paths import data_root, sha256_file

__all__ = ["DownloadError", "download", "fetch", "extract"]

CHUNK_BYTES = 1 << 20
RETRY_WAIT_S = 2.0  # wait before retry n is n times this
USER_AGENT = "irnlib (IRN reproducibility kit)"
_CORRUPT_ARCHIVE = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


class DownloadError(RuntimeError):
    """A dataset could not be fetched or extracted; the message names dataset, file and URL."""


class _Interrupted(Exception):
    """A transfer that stopped early and can be resumed."""


class _BadContent(Exception):
    """An archive whose content fails verification (unreadable, undecodable or unexpected images)."""


def download(
    dataset: str | DatasetInfo,
    root=None,
    *,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
    keep_archive: bool = True,
) -> Path:
    """Make dataset ``dataset`` present and verified under the data root; return its folder.

    Parameters
    ----------
    dataset : str or DatasetInfo
        A registered name or alias (``"Set5"``, ``"B100"``, ``"DIV2K_train_HR"``), or an
        entry of your own (another mirror, say). The embedded datasets need no download:
        their folder is returned.
    root : path, optional
        Data root (see :func:`irnlib.runtime.paths.data_root`); must be writable unless the
        dataset is already there.
    progress : bool
        tqdm bars for the transfer, the extraction and the verification.
    retries : int
        Transfer attempts (each resumes the previous one) before giving up.
    timeout : float
        Seconds without data before a connection counts as broken.
    keep_archive : bool
        Keep ``<root>/downloads/<archive>`` after extraction (other datasets may come from
        the same archive; DIV2K's training archive is 3.5 GB).

    Raises
    ------
    DownloadError
        Unreachable server, HTTP error, transfer still interrupted after ``retries``
        attempts, wrong size or checksum, corrupt archive, images that do not verify, or an
        existing folder that does not verify.
    """
    info = dataset if isinstance(dataset, DatasetInfo) else dataset_info(dataset)
    if info.archive is None:
        return dataset_dir(info.name)
    root = data_root(root)
    target = root / info.name
    if target.exists():
        check = verify_folder(target, info, thorough=False)
        if check.ok:
            return target
        raise DownloadError(
            f"{info.name}: {target} already exists but does not verify ({'; '.join(check.problems[:3])}); "
            "move it away or delete it, then run download again"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"{info.name}: cannot create the data root {root} ({err})") from err
    for stale in root.glob(f".{info.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a crashed extraction
    archive = fetch(
        info.archive, root / "downloads", label=info.name, progress=progress, retries=retries, timeout=timeout
    )
    extract(info, archive, target, progress=progress)
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return target


# --------------------------------------------------------------------------- transfer


def fetch(
    archive: Archive,
    folder,
    *,
    label: str | None = None,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Download ``archive`` into ``folder`` (resuming ``<file>.part``), check it, return its path.

    An archive already in ``folder`` is checked (size, SHA-256 where known) and reused.
    """
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    label = label or archive.filename
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / archive.filename
    if dest.is_file():
        _check_archive(dest, archive, label)
        return dest
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, retries + 1):
        try:
            _transfer(archive, part, label, progress, timeout)
            break
        except _Interrupted as err:
            problem = str(err)
            if attempt < retries:
                tqdm.write(f"{label}: {problem}; retrying ({attempt}/{retries - 1})")
                time.sleep(RETRY_WAIT_S * attempt)
    else:
        kept = part.stat().st_size if part.is_file() else 0
        raise DownloadError(
            f"{label}: downloading {archive.url} failed after {retries} attempts: {problem}. "
            f"{kept} bytes are kept in {part}; run download again to resume"
        )
    _check_archive(part, archive, label)
    os.replace(part, dest)
    return dest


def _content_range_start(header: str | None) -> int | None:
    """First byte of a ``Content-Range: bytes a-b/n`` header, or None."""
    try:
        return int(header.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return None


def _transfer(archive: Archive, part: Path, label: str, progress: bool, timeout: float) -> None:
    """Append the rest of ``archive`` to ``part``; raise :class:`_Interrupted` if it stops early."""
    url = archive.url
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # our partial file is not a prefix the server can extend
            part.unlink()
            raise _Interrupted(f"the server cannot resume at byte {offset} (HTTP 416); starting over") from err
        raise DownloadError(f"{label}: {url} answered HTTP {err.code} ({err.reason})") from err
    except (urllib.error.URLError, OSError) as err:
        raise _Interrupted(f"cannot connect to {url} ({getattr(err, 'reason', err)})") from err
    with response:
        if response.status == 206 and _content_range_start(response.headers.get("Content-Range")) != offset:
            part.unlink(missing_ok=True)
            raise _Interrupted(f"the server answered a different byte range than {offset}-; starting over")
        if response.status != 206:
            offset = 0  # the server sends the whole file (it does not do ranges)
        remaining = response.headers.get("Content-Length")
        total = offset + int(remaining) if remaining else archive.size
        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"{label}: {archive.filename}",
            disable=not progress,
        )
        with open(part, "ab" if offset else "wb") as f, bar:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (http.client.HTTPException, OSError) as err:
                    raise _Interrupted(
                        f"the connection broke after {f.tell()} bytes ({type(err).__name__}: {err})"
                    ) from err
                if not chunk:
                    break
                f.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Interrupted(f"the connection closed after {size} of {total} bytes")


def _check_archive(path: Path, archive: Archive, label: str) -> None:
    """Delete ``path`` and raise if its size or SHA-256 differs from what the registry knows."""
    size = path.stat().st_size
    if archive.size is not None and size != archive.size:
        path.unlink()
        raise DownloadError(
            f"{label}: {path.name} from {archive.url} has {size} bytes, expected {archive.size}; "
            "the file was deleted, run download again"
        )
    if archive.sha256 is not None:
        digest = sha256_file(path)
        if digest != archive.sha256.lower():
            path.unlink()
            raise DownloadError(
                f"{label}: {path.name} from {archive.url} has SHA-256 {digest}, expected {archive.sha256} "
                f"({archive.checksum_source}); the file was deleted, run download again"
            )


# --------------------------------------------------------------------------- extraction


def _is_member(name: str, pattern: str | None) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
        return False  # not an image, or macOS resource-fork litter (._0001.png)
    return pattern is None or path.match(pattern)


def _archive_images(path: Path, pattern: str | None):
    """Yield ``(member name, bytes)`` for the image members matching ``pattern``."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for member in zf.infolist():
                if not member.is_dir() and _is_member(member.filename, pattern):
                    yield member.filename, zf.read(member)  # checks the member's CRC
    else:
        with tarfile.open(path, "r:*") as tf:
            for member in tf:
                if member.isfile() and _is_member(member.name, pattern):
                    yield member.name, tf.extractfile(member).read()


def _write_png(folder: Path, member: str, data: bytes) -> None:
    """Store one archive member in ``folder`` as ``<stem>.png``: PNGs verbatim, others converted."""
    name = PurePosixPath(member.replace("\\", "/")).name
    out = folder / (Path(name).stem + ".png")
    if out.exists():
        raise _BadContent(f"two members would both become {out.name} (second: {member})")
    if name.lower().endswith(".png"):
        out.write_bytes(data)
        return
    source = folder / f".source-{name}"
    source.write_bytes(data)
    try:
        save_png(out, load_image(source))
    except ImageFileError as err:
        raise _BadContent(f"member {member} cannot be decoded ({err})") from err
    finally:
        source.unlink(missing_ok=True)


def _extract_verified(info: DatasetInfo, archive_path: Path, folder: Path, progress: bool) -> None:
    """Write the dataset's members into ``folder`` and verify them; raise :class:`_BadContent` if they fail."""
    try:
        members = tqdm(
            _archive_images(archive_path, info.members),
            desc=f"{info.name}: extract",
            unit=" images",
            total=info.count,
            disable=not progress,
            leave=False,
        )
        for member, data in members:
            _write_png(folder, member, data)
    except _CORRUPT_ARCHIVE as err:
        raise _BadContent(f"the archive is corrupt ({err})") from err
    check = verify_folder(folder, info, thorough=True, progress=progress)
    if not check.ok:
        problems = "; ".join(
            p.replace(f"{folder}/", "").replace(str(folder), "extracted folder") for p in check.problems[:5]
        )
        raise _BadContent(f"the images matching {info.members!r} do not verify: {problems}")


def _discard(archive_path: Path, info: DatasetInfo) -> str:
    """Delete a downloaded archive whose content failed verification; say what was done.

    Kept, not deleted: a local file the caller gave (no download entry), and an archive that
    matched its published SHA-256 (it is the right file; the entry's expectations are wrong,
    and fetching it again would only fail again).
    """
    if info.archive is None:
        return f"fix or replace {archive_path}"
    if info.archive.sha256 is not None:
        return (
            "the archive matches its published SHA-256 and is kept, so the dataset's entry "
            "(count, names, sizes, member pattern) does not describe it: correct the entry"
        )
    archive_path.unlink(missing_ok=True)
    return "the archive was deleted: run download again to fetch it anew"


def extract(info: DatasetInfo, archive_path, target, *, progress: bool = True) -> Path:
    """Extract dataset ``info`` from ``archive_path`` into the new folder ``target``, atomically.

    The images go to a temporary sibling folder first, are verified, get a ``SHA256SUMS``,
    and the folder is renamed to ``target`` only then. A downloaded archive whose content
    fails verification (corrupt, an image that does not decode, images that do not match the
    entry) is deleted so that the next call fetches it anew, unless it matched a published
    SHA-256 (see :func:`_discard`).
    """
    archive_path, target = Path(archive_path), Path(target)
    url = info.archive.url if info.archive is not None else "a local file"
    where = f"{info.name}: archive {archive_path} (from {url})"
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        try:
            _extract_verified(info, archive_path, tmp, progress)
        except _BadContent as err:
            raise DownloadError(f"{where}: {err}; {_discard(archive_path, info)}") from err.__cause__
        write_checksums(tmp)
        try:
            os.rename(tmp, target)  # atomic: the dataset appears complete or not at all
        except OSError as err:
            if not (target.is_dir() and verify_folder(target, info, thorough=False).ok):
                raise DownloadError(f"{info.name}: cannot move the extracted images to {target} ({err})") from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
