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
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Archive",
    "DatasetInfo",
    "EMBEDDED",
    "DATASETS",
    "PAPER_TRAINING",
    "PAPER_TEST",
    "dataset_info",
]


@dataclass(frozen=True)
class Archive:
    """A downloadable archive (zip or tar, optionally compressed).

    ``size`` (bytes) and ``sha256`` are ``None`` where they are not known; ``checksum_source``
    says where known values come from.
    """

    url: str
    size: int | None = None
    sha256: str | None = None
    checksum_source: str = "not known"

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
# the member layout follows EDSR-PyTorch's data/benchmark.py. No published checksum.
_BENCHMARK = Archive("https://cv.snu.ac.kr/research/EDSR/benchmark.tar")
# The LapSRN authors' training archive (T91/, BSDS200/, General100/). No published checksum.
_TRAINING_291 = Archive("http://vllab.ucmerced.edu/wlai24/LapSRN/results/SR_training_datasets.zip")

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


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for ``name`` or one of its aliases (case-insensitive: ``"B100"``).

    Raises
    ------
    KeyError
        If the name is unknown; the message lists the known names.
    """
    key = _ALIASES.get(str(name).lower())
    if key is None:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[key]
