"""Extract a dataset's images from its archive: streamed, bounded, verified, atomic.

:func:`extract` writes the members matching the dataset's pattern into a hidden temporary
folder (non-PNG images converted to PNG, PNG copied byte for byte), verifies every image,
writes ``SHA256SUMS`` and only then renames the folder into place. Each member is streamed to
disk and refused once its declared or actual size exceeds the entry's
:attr:`~irnlib.data.registry.DatasetInfo.member_byte_limit` (all members together:
:attr:`~irnlib.data.registry.DatasetInfo.max_total_bytes`); a converted member is measured from
its header and refused before decoding when a side exceeds the entry's ``max_side``.
:mod:`irnlib.data.download` fetches the archive and calls :func:`extract`.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from irnlib.data.folders import IMAGE_SUFFIXES, verify_folder, write_checksums
from irnlib.data.registry import DatasetInfo
from irnlib.imaging.images import ImageFileError, image_size, load_image, save_png

__all__ = ["DownloadError", "ArchiveContentError", "MemberTooLarge", "extract"]

CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """A dataset could not be fetched or extracted; the message names dataset, file and URL."""


class ArchiveContentError(Exception):
    """An archive whose content fails verification (unreadable, undecodable or unexpected images)."""


class MemberTooLarge(ArchiveContentError):
    """A member to convert whose header declares a side above the entry's bound: not decoded, and
    reported with the verification's other problems."""


CORRUPT_ARCHIVE = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


def is_member(name: str, pattern: str | None) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
        return False  # not an image, or macOS resource-fork litter (._0001.png)
    return pattern is None or path.match(pattern)


class MemberBudget:
    """What the members of one dataset may still take on disk, and what one member may take."""

    def __init__(self, info: DatasetInfo):
        self.name = info.name
        self.member_limit = info.member_byte_limit
        self.total_limit = info.max_total_bytes
        self.used = 0

    def refuse_declared(self, member: str, declared: int | None) -> str | None:
        """Why a member that declares ``declared`` bytes is refused before it is read, or None."""
        if declared is None:
            return None
        if declared > self.member_limit:
            return (
                f"member {member} declares {declared} bytes, more than the {self.member_limit} bytes "
                f"one image of {self.name} may take (the entry's member_byte_limit); refused before extracting it"
            )
        if self.used + declared > self.total_limit:
            return (
                f"member {member} ({declared} bytes) would bring the extracted images to {self.used + declared} "
                f"bytes, more than the {self.total_limit} bytes {self.name} may take (the entry's max_total_bytes)"
            )
        return None


class BoundedReader:
    """A member's stream that raises :class:`ArchiveContentError` once it gives more than the budget allows."""

    def __init__(self, stream, member: str, budget: MemberBudget):
        self.stream, self.member, self.budget = stream, member, budget
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        """At most ``min(n, CHUNK_BYTES)`` bytes (``CHUNK_BYTES`` for ``n < 0``)."""
        chunk = self.stream.read(CHUNK_BYTES if n is None or n < 0 else min(n, CHUNK_BYTES))
        self.count += len(chunk)
        self.budget.used += len(chunk)
        if self.count > self.budget.member_limit:
            raise ArchiveContentError(
                f"member {self.member} holds more than {self.budget.member_limit} bytes, the most one image "
                f"of {self.budget.name} may take (the entry's member_byte_limit); extraction stopped there"
            )
        if self.budget.used > self.budget.total_limit:
            raise ArchiveContentError(
                f"the extracted images exceed {self.budget.total_limit} bytes at member {self.member}, the "
                f"most {self.budget.name} may take (the entry's max_total_bytes); extraction stopped there"
            )
        return chunk


def archive_images(path: Path, pattern: str | None):
    """Yield ``(member name, declared size, binary stream)`` for the image members matching ``pattern``.

    Each stream must be read before the next item is asked for (tar archives are read in order).
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for member in zf.infolist():
                if not member.is_dir() and is_member(member.filename, pattern):
                    with zf.open(member) as stream:  # checks the member's CRC at its end
                        yield member.filename, member.file_size, stream
    else:
        with tarfile.open(path, "r:*") as tf:
            for member in tf:
                if member.isfile() and is_member(member.name, pattern):
                    with tf.extractfile(member) as stream:
                        yield member.name, member.size, stream


def write_member_png(folder: Path, member: str, stream, info: DatasetInfo) -> None:
    """Store one archive member in ``folder`` as ``<stem>.png``: PNGs verbatim, others converted.

    ``stream`` is copied to disk chunk by chunk (a :class:`BoundedReader` stops it at the
    entry's bounds). A converted member whose header declares a side above ``info.max_side``
    is not decoded (:class:`MemberTooLarge`).
    """
    name = PurePosixPath(member.replace("\\", "/")).name
    out = folder / (Path(name).stem + ".png")
    if out.exists():
        raise ArchiveContentError(f"two members would both become {out.name} (second: {member})")
    is_png = name.lower().endswith(".png")
    target = out if is_png else folder / f".source-{name}"
    with open(target, "wb") as f:
        shutil.copyfileobj(stream, f, CHUNK_BYTES)
    if is_png:
        return
    try:
        h, w = image_size(target)
        if max(h, w) > info.max_side:
            raise MemberTooLarge(
                f"{name}: size {h}×{w} outside the expected {info.min_side}..{info.max_side} pixels per side "
                f"(member {member}, not decoded)"
            )
        save_png(out, load_image(target))
    except ImageFileError as err:
        raise ArchiveContentError(f"member {member} cannot be decoded ({err})") from err
    finally:
        target.unlink(missing_ok=True)


def extract_verified(info: DatasetInfo, archive_path: Path, folder: Path, progress: bool) -> None:
    """Write the dataset's members into ``folder`` and verify them; raise :class:`ArchiveContentError` if they fail."""
    budget, oversized = MemberBudget(info), []
    try:
        members = tqdm(
            archive_images(archive_path, info.members),
            desc=f"{info.name}: extract",
            unit=" images",
            total=info.count,
            disable=not progress,
            leave=False,
        )
        for member, declared, stream in members:
            problem = budget.refuse_declared(member, declared)
            if problem:
                raise ArchiveContentError(problem)
            try:
                write_member_png(folder, member, BoundedReader(stream, member, budget), info)
            except MemberTooLarge as err:
                oversized.append(str(err))
    except CORRUPT_ARCHIVE as err:
        raise ArchiveContentError(f"the archive is corrupt ({' '.join(str(err).split())})") from err  # one line
    check = verify_folder(folder, info, thorough=True, progress=progress)
    if oversized or not check.ok:
        found = oversized + [
            p.replace(f"{folder}/", "").replace(str(folder), "extracted folder") for p in check.problems
        ]
        problems = "; ".join(found[:5])
        raise ArchiveContentError(f"the images matching {info.members!r} do not verify: {problems}")


def discard_archive(archive_path: Path, info: DatasetInfo) -> str:
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
    SHA-256 (see :func:`discard_archive`).
    """
    archive_path, target = Path(archive_path), Path(target)
    url = info.archive.url if info.archive is not None else "a local file"
    where = f"{info.name}: archive {archive_path} (from {url})"
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        try:
            extract_verified(info, archive_path, tmp, progress)
        except ArchiveContentError as err:
            raise DownloadError(f"{where}: {err}; {discard_archive(archive_path, info)}") from err.__cause__
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
