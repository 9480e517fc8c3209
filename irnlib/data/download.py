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

Bounds (see :mod:`irnlib.data.registry`): a transfer stops as soon as the file exceeds the
archive's :attr:`~irnlib.data.registry.Archive.byte_limit` (a ``Content-Length`` above it is
refused before any byte is written; a body without one, or with a malformed one such as
``abc``, which counts as unknown, is cut at the limit) and the partial file is deleted. A
transfer that stalls (no byte for ``timeout`` seconds, 30 by default) keeps every byte received
in ``<file>.part``: the retries, and the next call, resume from there with a ``Range`` request
(or start over when the server does not do ranges). Extraction streams each member to disk and
refuses a member whose declared or actual size exceeds the entry's
:attr:`~irnlib.data.registry.DatasetInfo.member_byte_limit`, or members that together exceed
:attr:`~irnlib.data.registry.DatasetInfo.max_total_bytes`, before writing more than that; a
converted (non-PNG) member is measured from its header and refused before decoding when a side
exceeds the entry's ``max_side``.
"""

from __future__ import annotations

import http.client
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from irnlib.data.archives import CHUNK_BYTES, DownloadError, extract
from irnlib.data.folders import dataset_dir, verify_folder
from irnlib.data.registry import DEFAULT_ARCHIVE_LIMIT, Archive, DatasetInfo, dataset_info
from irnlib.runtime.paths import data_root, sha256_file

__all__ = ["DownloadError", "download", "fetch", "extract"]

RETRY_WAIT_S = 2.0  # wait before retry n is n times this
TIMEOUT_S = 30.0  # seconds without a byte before a transfer counts as stalled
USER_AGENT = "irnlib (IRN reproducibility kit)"


class _Interrupted(Exception):
    """A transfer that stopped early and can be resumed."""


def download(
    dataset: str | DatasetInfo,
    root=None,
    *,
    progress: bool = True,
    retries: int = 3,
    timeout: float = TIMEOUT_S,
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
        Seconds without data before a connection counts as stalled (the bytes received so
        far are kept for the next attempt to resume).
    keep_archive : bool
        Keep ``<root>/downloads/<archive>`` after extraction (other datasets may come from
        the same archive; DIV2K's training archive is 3.5 GB).

    Raises
    ------
    DownloadError
        Unreachable server, HTTP error, transfer still interrupted (or stalled) after
        ``retries`` attempts, a body larger than the archive's byte limit, wrong size or
        checksum, corrupt archive, a member larger than the entry's bounds, images that do not
        verify, or an existing folder that does not verify.
    UnknownDatasetError
        ``dataset`` is not a registered name (a ValueError; the message lists the known ones).
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
    timeout: float = TIMEOUT_S,
) -> Path:
    """Download ``archive`` into ``folder`` (resuming ``<file>.part``), check it, return its path.

    An archive already in ``folder`` is checked (size, SHA-256 where known) and reused. The
    transfer never writes more than :attr:`Archive.byte_limit` bytes (see the module's notes).
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


def _content_length(header: str | None) -> int | None:
    """The byte count of a ``Content-Length`` header, or None when absent or malformed.

    Only plain decimal digits (surrounding blanks allowed) count: ``"abc"``, ``"-5"``,
    ``"1_000"``, ``"+7"`` or ``"5, 5"`` are treated as an unknown length, and the transfer is
    then bounded by the archive's byte limit alone.
    """
    if header is None:
        return None
    text = header.strip()
    if not text or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def _limit_source(archive: Archive) -> str:
    """Where :attr:`Archive.byte_limit` comes from, for messages."""
    if archive.size is not None:
        return "the archive's registered size"
    if archive.max_size is not None:
        return "the registry's bound for this archive (max_size)"
    return f"the default bound for an archive of unknown size ({DEFAULT_ARCHIVE_LIMIT} bytes)"


def _too_large(archive: Archive, part: Path, label: str, what: str) -> DownloadError:
    """Delete ``part`` and describe a transfer that exceeds the archive's byte limit."""
    part.unlink(missing_ok=True)
    return DownloadError(
        f"{label}: {archive.url} {what}, more than the {archive.byte_limit} bytes allowed by "
        f"{_limit_source(archive)}; refused and {part.name} deleted: the server does not send the "
        "expected archive (check the URL, or correct the entry's size)"
    )


def _open(archive: Archive, part: Path, label: str, timeout: float):
    """``(response, offset)``: the server's answer to a request for the rest of ``part``."""
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
    if response.status == 206 and _content_range_start(response.headers.get("Content-Range")) != offset:
        response.close()
        part.unlink(missing_ok=True)
        raise _Interrupted(f"the server answered a different byte range than {offset}-; starting over")
    return response, (offset if response.status == 206 else 0)  # 200: the whole file (no ranges)


def _transfer(archive: Archive, part: Path, label: str, progress: bool, timeout: float) -> None:
    """Append the rest of ``archive`` to ``part``; raise :class:`_Interrupted` if it stops early.

    Raises :class:`DownloadError` (and deletes ``part``) as soon as the file would exceed the
    archive's byte limit. Every byte received is written at once, so a stall loses none.
    """
    response, offset = _open(archive, part, label, timeout)
    limit = archive.byte_limit
    with response:
        remaining = _content_length(response.headers.get("Content-Length"))
        if remaining is not None and offset + remaining > limit:
            raise _too_large(archive, part, label, f"announces {offset + remaining} bytes (Content-Length)")
        total = offset + remaining if remaining is not None else archive.size
        bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=f"{label}: {archive.filename}", disable=not progress)  # fmt: skip
        with open(part, "ab" if offset else "wb") as f, bar:
            while True:
                try:
                    chunk = response.read1(CHUNK_BYTES)  # what has arrived: nothing waits in a buffer
                except TimeoutError as err:
                    raise _Interrupted(
                        f"the transfer stalled: no data for {timeout:g} s after {f.tell()} bytes"
                    ) from err
                except (http.client.HTTPException, OSError) as err:
                    raise _Interrupted(
                        f"the connection broke after {f.tell()} bytes ({type(err).__name__}: {err})"
                    ) from err
                if not chunk:
                    break
                if f.tell() + len(chunk) > limit:
                    sent = f.tell() + len(chunk)
                    f.close()
                    raise _too_large(archive, part, label, f"sent at least {sent} bytes")
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
