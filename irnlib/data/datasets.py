"""Compatibility re-exports: the former ``irnlib.data.datasets``, now split by job.

- :mod:`irnlib.data.folders`: where the images of a dataset are, checksums, verification,
  :func:`~irnlib.data.folders.dataset_table`, :func:`~irnlib.data.folders.dataset_version`;
- :mod:`irnlib.data.lr_cache`: the cached MATLAB-bicubic LR references of test images;
- :mod:`irnlib.data.test_pairs`: :class:`~irnlib.data.test_pairs.PairedTestSet` and
  :func:`~irnlib.data.test_pairs.prepare_lr_references`;
- :mod:`irnlib.data.patches`: :class:`~irnlib.data.patches.TrainingPatches` and the official
  preparation of training images;
- :func:`irnlib.runtime.paths.sha256_file`.

New code imports from those modules; this one goes once its importers are repointed.
"""

from __future__ import annotations

from irnlib.data.folders import (
    CHECKSUM_FILE,
    EMBEDDED,
    IMAGE_SUFFIXES,
    Verification,
    available_datasets,
    dataset_dir,
    dataset_table,
    dataset_version,
    list_images,
    verify_dataset,
    verify_folder,
    write_checksums,
)
from irnlib.data.lr_cache import LR_CACHE_VERSION, lr_cache_dir, lr_cache_path, lr_reference
from irnlib.data.patches import (
    LR_TARGETS,
    SAMPLINGS,
    TrainingPatches,
    bilinear_resize,
    epoch_order,
    official_training_image,
    official_training_size,
)
from irnlib.data.test_pairs import PairedTestSet, TestPair, prepare_lr_references
from irnlib.runtime.paths import sha256_file

__all__ = [
    "IMAGE_SUFFIXES",
    "EMBEDDED",
    "CHECKSUM_FILE",
    "LR_CACHE_VERSION",
    "dataset_dir",
    "list_images",
    "available_datasets",
    "sha256_file",
    "dataset_version",
    "write_checksums",
    "Verification",
    "verify_folder",
    "verify_dataset",
    "dataset_table",
    "lr_cache_dir",
    "lr_cache_path",
    "lr_reference",
    "prepare_lr_references",
    "TestPair",
    "PairedTestSet",
    "TrainingPatches",
    "SAMPLINGS",
    "LR_TARGETS",
    "official_training_size",
    "bilinear_resize",
    "official_training_image",
    "epoch_order",
]
