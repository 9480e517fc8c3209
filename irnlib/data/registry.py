"""The datasets the paper uses: what each is for, where to get it, how the kit checks it.

A plain table (:data:`DATASETS`, name -> :class:`DatasetInfo`). The name of a dataset is the
name of its folder under the data root (``<root>/Set5/*.png``, ``<root>/DIV2K_train_HR/*.png``).
After :func:`irnlib.data.download.download` every folder holds lossless PNGs only, plus a
``SHA256SUMS`` file (``sha256sum -c SHA256SUMS`` format) recording what was extracted.

How each dataset is verified (:func:`irnlib.data.folders.verify_dataset`): the number of images,
their file names where they are fixed (DIV2K), every file decodes with the kit's loader,
every side within ``[min_side, max_side]``, and the folder's ``SHA256SUMS`` when present.
Archives are checked against their size and SHA-256 where those are known (the official DIV2K
archives); the benchmark mirrors publish none, so for them the kit relies on the checks above.

Bounds (what a hostile or broken server can cost). Every transfer stops as soon as it exceeds
:attr:`Archive.byte_limit`: the archive's exact ``size`` where known, else its ``max_size`` (a
generous bound stated below), else :data:`DEFAULT_ARCHIVE_LIMIT`. Every extracted member stops
at :attr:`DatasetInfo.max_image_bytes` (by default the raw size of the largest image the entry
allows, ``max_side``² pixels at 8 bytes each, plus 1 MiB of headers: no PNG, BMP or TIFF of a
valid image is larger), and a dataset's members together at :attr:`DatasetInfo.max_total_bytes`
(``count`` times that).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = [
    "Archive",
    "DatasetInfo",
    "UnknownDatasetError",
    "DEFAULT_ARCHIVE_LIMIT",
    "IMAGE_BYTES_PER_PIXEL",
    "IMAGE_HEADER_BYTES",
    "EMBEDDED",
    "DATASETS",
    "PAPER_TRAINING",
    "PAPER_TEST",
    "dataset_info",
    "unknown_dataset_message",
]

MiB = 1 << 20
GiB = 1 << 30
DEFAULT_ARCHIVE_LIMIT = 16 * GiB  # an archive of unknown size (an entry of your own) stops here
IMAGE_BYTES_PER_PIXEL = 8  # 16-bit RGBA, uncompressed: the most any image format stores per pixel
IMAGE_HEADER_BYTES = 1 * MiB  # headers, metadata, an embedded ICC profile or thumbnail


class UnknownDatasetError(ValueError, KeyError):
    """A dataset name the registry does not know; the message lists the known names.

    A :class:`ValueError` (what the command line reports as one line) and, for older callers,
    a :class:`KeyError`, whose quoting of the message it does not inherit.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Archive:
    """A downloadable archive (zip or tar, optionally compressed).

    ``size`` (bytes) and ``sha256`` are ``None`` where they are not known; ``checksum_source``
    says where known values come from. ``max_size`` bounds an archive whose exact size is not
    known (see :attr:`byte_limit`).
    """

    url: str
    size: int | None = None
    sha256: str | None = None
    checksum_source: str = "not known"
    max_size: int | None = None

    @property
    def byte_limit(self) -> int:
        """The most bytes a download of this archive may take: ``size``, else ``max_size``, else
        :data:`DEFAULT_ARCHIVE_LIMIT`."""
        if self.size is not None:
            return self.size
        return self.max_size if self.max_size is not None else DEFAULT_ARCHIVE_LIMIT

    @property
    def filename(self) -> str:
        """The archive's file name, the last component of its URL."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset: its folder name, role, expected content and source.

    ``members`` selects the archive members that make up the dataset: a path pattern matched
    from the right (``"Set5/HR/*"`` matches ``benchmark/Set5/HR/baby.png``), among image
    files only. ``stems`` lists the expected file names (without suffix) where they are fixed.
    ``max_image_bytes`` bounds one extracted member (None: derived from ``max_side``, see
    :attr:`member_byte_limit`).
    """

    name: str
    purpose: str  # "training", "test" or "validation"
    count: int
    description: str
    min_side: int  # sanity bounds, in pixels, for both sides of every image
    max_side: int
    archive: Archive | None = None  # None: embedded, ships with scikit-image
    members: str | None = None
    stems: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()
    max_image_bytes: int | None = None

    @property
    def member_byte_limit(self) -> int:
        """The most bytes one extracted member may hold: ``max_image_bytes``, else the raw size
        of a ``max_side``² image at :data:`IMAGE_BYTES_PER_PIXEL` plus :data:`IMAGE_HEADER_BYTES`."""
        if self.max_image_bytes is not None:
            return self.max_image_bytes
        return IMAGE_BYTES_PER_PIXEL * self.max_side**2 + IMAGE_HEADER_BYTES

    @property
    def max_total_bytes(self) -> int:
        """The most bytes the dataset's members may hold together: ``count`` members at most."""
        return self.count * self.member_byte_limit


# scikit-image's bundled colour photographs (file names inside skimage/data/). The larger,
# more varied ones train; three classic photographs test.
EMBEDDED = {
    "embedded-train": (
        "ihc.png",
        "motorcycle_left.png",
        "motorcycle_right.png",
        "rocket.jpg",
        "hubble_deep_field.jpg",
        "retina.jpg",
    ),
    "embedded-test": ("astronaut.png", "chelsea.png", "coffee.png"),
}

_DIV2K_SITE = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
_DIV2K_CHECKSUMS = "tensorflow/datasets, tensorflow_datasets/url_checksums/div2k.txt"
# The EDSR authors' benchmark archive (benchmark/<set>/HR/*.png, plus LR images we ignore);
# the member layout follows EDSR-PyTorch's data/benchmark.py. No published checksum or size: the
# EDSR README calls it 250 MB, so 1 GiB bounds a download without refusing a re-packed copy.
_BENCHMARK = Archive("https://cv.snu.ac.kr/research/EDSR/benchmark.tar", max_size=1 * GiB)
# The LapSRN authors' training archive (T91/, BSDS200/, General100/, tens of MB). No published
# checksum or size: bounded at 512 MiB.
_TRAINING_291 = Archive("http://vllab.ucmerced.edu/wlai24/LapSRN/results/SR_training_datasets.zip", max_size=512 * MiB)
# The file names of the test sets whose names are the same in every copy (Set14's vary: lena/lenna).
_SET5_STEMS = ("baby", "bird", "butterfly", "head", "woman")
_BSD100_STEMS = tuple(
    str(i)
    for i in (
        3096, 8023, 12084, 14037, 16077, 19021, 21077, 24077, 33039, 37073, 38082, 38092, 41033, 41069, 42012,
        42049, 43074, 45096, 54082, 55073, 58060, 62096, 65033, 66053, 69015, 69020, 69040, 76053, 78004, 85048,
        86000, 86016, 86068, 87046, 89072, 97033, 101085, 101087, 102061, 103070, 105025, 106024, 108005, 108070,
        108082, 109053, 119082, 123074, 126007, 130026, 134035, 143090, 145086, 147091, 148026, 148089, 156065,
        157055, 159008, 160068, 163085, 167062, 167083, 170057, 175032, 175043, 182053, 189080, 196073, 197017,
        208001, 210088, 216081, 219090, 220075, 223061, 227092, 229036, 236037, 241004, 241048, 253027, 253055,
        260058, 271035, 285079, 291000, 295087, 296007, 296059, 299086, 300091, 302008, 304034, 304074, 306005,
        351093, 361010, 376043, 385039,
    )
)  # fmt: skip

_ENTRIES = (
    DatasetInfo(
        name="DIV2K_train_HR",
        purpose="training",
        count=800,
        description="DIV2K training images 0001-0800 (2K): what the paper trains on",
        min_side=256,
        max_side=2040,
        archive=Archive(
            _DIV2K_SITE + "DIV2K_train_HR.zip",
            size=3530603713,
            sha256="9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",
            checksum_source=_DIV2K_CHECKSUMS,
        ),
        members="DIV2K_train_HR/*",
        stems=tuple(f"{i:04d}" for i in range(1, 801)),
        aliases=("DIV2K-train",),
    ),
    DatasetInfo(
        name="DIV2K_valid_HR",
        purpose="validation",
        count=100,
        description="DIV2K validation images 0801-0900 (2K): the paper's 'DIV2K' test column",
        min_side=256,
        max_side=2040,
        archive=Archive(
            _DIV2K_SITE + "DIV2K_valid_HR.zip",
            size=448993893,
            sha256="20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
            checksum_source=_DIV2K_CHECKSUMS,
        ),
        members="DIV2K_valid_HR/*",
        stems=tuple(f"{i:04d}" for i in range(801, 901)),
        aliases=("DIV2K-valid",),
    ),
    DatasetInfo(
        name="Set5",
        purpose="test",
        count=5,
        description="Set5 (Bevilacqua et al. 2012)",
        min_side=200,
        max_side=520,
        archive=_BENCHMARK,
        members="Set5/HR/*",
        stems=_SET5_STEMS,
    ),
    DatasetInfo(
        name="Set14",
        purpose="test",
        count=14,
        description="Set14 (Zeyde et al. 2010)",
        min_side=200,
        max_side=800,
        archive=_BENCHMARK,
        members="Set14/HR/*",
    ),
    DatasetInfo(
        name="BSD100",
        purpose="test",
        count=100,
        description="B100: 100 BSDS300 test images (Martin et al. 2001)",
        min_side=300,
        max_side=481,
        archive=_BENCHMARK,
        members="B100/HR/*",
        stems=_BSD100_STEMS,
        aliases=("B100", "BSDS100"),
    ),
    DatasetInfo(
        name="Urban100",
        purpose="test",
        count=100,
        description="Urban100 (Huang et al. 2015)",
        min_side=200,
        max_side=1400,
        archive=_BENCHMARK,
        members="Urban100/HR/*",
        aliases=("U100",),
    ),
    DatasetInfo(
        name="T91",
        purpose="training",
        count=91,
        description="T91 (Yang et al. 2010): classical small training set",
        min_side=64,
        max_side=512,
        archive=_TRAINING_291,
        members="T91/*",
    ),
    DatasetInfo(
        name="BSD200",
        purpose="training",
        count=200,
        description="200 BSDS300 training images: classical small training set (with T91: '291')",
        min_side=300,
        max_side=481,
        archive=_TRAINING_291,
        members="BSDS200/*",
        aliases=("BSDS200",),
    ),
    DatasetInfo(
        name="embedded-train",
        purpose="training",
        count=len(EMBEDDED["embedded-train"]),
        description="scikit-image photographs (no download): the smoke profile's training set",
        min_side=256,
        max_side=1500,
    ),
    DatasetInfo(
        name="embedded-test",
        purpose="test",
        count=len(EMBEDDED["embedded-test"]),
        description="scikit-image photographs (no download): the smoke profile's test set",
        min_side=256,
        max_side=1500,
    ),
)

DATASETS: dict[str, DatasetInfo] = {info.name: info for info in _ENTRIES}

# What the paper trains on and reports (Table 1 columns, in the paper's order).
PAPER_TRAINING = ("DIV2K_train_HR",)
PAPER_TEST = ("Set5", "Set14", "BSD100", "Urban100", "DIV2K_valid_HR")

_ALIASES = {alias.lower(): info.name for info in _ENTRIES for alias in (info.name, *info.aliases)}


def unknown_dataset_message(name) -> str:
    """``"unknown dataset 'Nope'; known: DIV2K_train_HR, ..."``, with a close match if there is one."""
    close = difflib.get_close_matches(str(name).lower(), list(_ALIASES), n=1, cutoff=0.6)
    hint = f" (did you mean {_ALIASES[close[0]]!r}?)" if close else ""
    aliases = ", ".join(alias for info in _ENTRIES for alias in info.aliases)
    return f"unknown dataset {name!r}{hint}; known: {', '.join(DATASETS)} (aliases: {aliases})"


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for ``name`` or one of its aliases (case-insensitive: ``"B100"``).

    Raises
    ------
    UnknownDatasetError
        If the name is unknown (a ValueError and a KeyError); the message lists the known names.
    """
    key = _ALIASES.get(str(name).lower())
    if key is None:
        raise UnknownDatasetError(unknown_dataset_message(name))
    return DATASETS[key]
