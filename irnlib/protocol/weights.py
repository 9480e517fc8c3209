"""Which weights: where each kind of IRN weights lives, and which serve each purpose.

"Weights" (a checkpoint) here always means an IRN state dict in the official format, one
``IRN_x{s}.pth`` file that :func:`irnlib.model.checkpoint.load_checkpoint` reads. A training
run's resumable state (``checkpoints/last.pt``: weights, optimiser, RNG) is the *training
state*, never called weights.

Three kinds exist:

- **official**: the authors' released ``IRN_x{s}.pth``, placed by the user in ``data/pretrained/``;
- **kit reference**: the kit's own trained model, committed with its card in
  ``models/kit_reference_x{s}/``;
- **run export**: what a training run writes when it finishes, ``<run folder>/IRN_x{s}.pth``.

:func:`choose_weights` decides, for every purpose at once, which of them is used when the user
names none; nothing else in the kit makes that choice.
"""

from __future__ import annotations

from pathlib import Path

from irnlib.protocol import profiles
from irnlib.runtime.paths import REPO_ROOT, results_root

__all__ = [
    "MODELS_DIR",
    "PURPOSES",
    "weights_file",
    "official_weights",
    "reference_weights",
    "run_folder",
    "exported_weights",
    "choose_weights",
    "weights_kind",
    "available_weights",
]

MODELS_DIR = REPO_ROOT / "models"  # the kit's reference models, one folder per scale
PRETRAINED_DIR = REPO_ROOT / "data" / "pretrained"  # where users place the official release

# What a default is chosen for. "rescale": `irn downscale/upscale`, the explorer's first choice
# and the ablation study's test-time conditions; "table1": the IRN row of Table 1 for a profile.
PURPOSES = ("rescale", "table1")


def weights_file(scale: int) -> str:
    """The file name of IRN weights at ``scale``: ``"IRN_x{scale}.pth"`` (the official name)."""
    return f"IRN_x{scale}.pth"


def official_weights(scale: int) -> Path:
    """Where the officially released weights go: ``<repo>/data/pretrained/IRN_x{scale}.pth``."""
    return PRETRAINED_DIR / weights_file(scale)


def reference_weights(scale: int) -> Path:
    """The kit's reference model: ``<repo>/models/kit_reference_x{scale}/IRN_x{scale}.pth``,
    committed with its card (see :mod:`irnlib.experiments.modelcard`)."""
    return MODELS_DIR / f"kit_reference_x{scale}" / weights_file(scale)


def run_folder(profile: str, scale: int, results=None) -> Path:
    """A profile's default training run folder: ``<results>/runs/<profile>_x<scale>``."""
    return results_root(results) / "runs" / profiles.run_name(profile, scale)


def exported_weights(run_dir, scale: int) -> Path:
    """The weights a finished training run exports: ``<run_dir>/IRN_x{scale}.pth``."""
    return Path(run_dir) / weights_file(scale)


def choose_weights(purpose: str, scale: int, profile: str | None = None) -> Path:
    """The weights used for ``purpose`` at ``scale`` when the user names none.

    Parameters
    ----------
    purpose : {"rescale", "table1"}
        ``"rescale"`` (command line, explorer, ablation conditions): the official weights when
        they are in ``data/pretrained/``, else the kit's reference model.
        ``"table1"``: for a profile that uses the official checkpoints (``paper``), the official
        weights; otherwise the weights exported by that profile's own training run.
    scale : int
    profile : str, optional
        Required for ``"table1"``.

    Returns
    -------
    Path
        Returned whether or not the file exists; callers say what is missing and how to get it.
    """
    if purpose == "rescale":
        official = official_weights(scale)
        return official if official.is_file() else reference_weights(scale)
    if purpose == "table1":
        if profile is None:
            raise ValueError("choose_weights('table1', ...) needs the profile")
        if profiles.get(profile).official_checkpoints:
            return official_weights(scale)
        return exported_weights(run_folder(profile, scale), scale)
    raise ValueError(f"unknown purpose {purpose!r}; choose one of {PURPOSES}")


def weights_kind(path, scale: int) -> str:
    """``"official"``, ``"kit reference"`` or ``"other"``: which kind ``path`` is at ``scale``."""
    path = Path(path)
    if path == official_weights(scale):
        return "official"
    if path == reference_weights(scale):
        return "kit reference"
    return "other"


def available_weights(scale: int, results=None) -> dict[str, Path]:
    """Every set of weights on disk at ``scale``, labelled, in the order a user would pick:
    the official release, the kit's reference model, then each training run's export."""
    found = {}
    official, reference = official_weights(scale), reference_weights(scale)
    if official.is_file():
        found[f"official {weights_file(scale)}"] = official
    if reference.is_file():
        found[f"kit reference x{scale}"] = reference
    for path in sorted((results_root(results) / "runs").glob(f"*/{weights_file(scale)}")):
        found[f"run {path.parent.name}"] = path
    return found
