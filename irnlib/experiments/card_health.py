"""The guard's two checks on every test image a model card measures.

The generalisation panel (:mod:`irnlib.experiments.panel`) looks for failures on images unlike the
training data; it leaves out the embedded-test photographs by design. A model can still blow up on
one of those, or on a Set14/BSD100 image: a forward pass whose LR leaves [−0.1, 1.1] or whose
latent reaches far past N(0, 1) in a small region damages that region while the test set's mean
PSNR hides it (a ×4 stage on the GPU, 2026-12-04: a green blob on the wood of `coffee`, LR −8.3 …
3.0, |z| 164, with Set5 at its best). This module runs the forward pass of
:func:`irnlib.model.inference.downscale_health` (what ``irn downscale`` warns with) on each image.

- :func:`health_per_image` — one row per image: LR range before quantisation, largest ``|z|``,
  the two flags and the box of the flagged LR pixels (HR pixels).
- :func:`health_summary` — the card's record: images, which fail each check, the extremes.
- :func:`health_lines` — the card README's section.
- :func:`write_health` — the rows for a card's folder (publishing and :func:`add_health` both use it).
- :func:`add_health` — the check for a card published before it existed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from irnlib.data.folders import available_datasets
from irnlib.imaging.images import to_batch
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.inference import LR_RANGE, TILE, Z_LIMIT, downscale_health, forward
from irnlib.model.network import IRN
from irnlib.protocol.evaluate import evaluation_pairs, write_csv
from irnlib.runtime.device import net_device
from irnlib.runtime.markdown import markdown_table
from irnlib.runtime.paths import write_json
from irnlib.runtime.provenance import provenance

HEALTH_FILE = "health_per_image.csv"
HEALTH_COLUMNS = ["dataset", "image", "height", "width", "lr_min", "lr_max", "z_max", "latent_far", "lr_out_of_range",
                  "box_top", "box_left", "box_bottom", "box_right"]  # fmt: skip


def health_per_image(net: IRN, datasets: list[str], progress: bool = True, tile: int | None = TILE) -> pd.DataFrame:
    """The LR range before quantisation and the largest ``|z|`` of ``net`` on every image of ``datasets``.

    Each HR image is mod-cropped to the scale (the protocol's test image) and passed forward once.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`HEALTH_COLUMNS`; the box columns are empty (NaN) for a healthy image.
    """
    rows = []
    for name in datasets:
        pairs = evaluation_pairs(name, net.scale)
        for pair in tqdm(pairs, desc=f"health x{net.scale} {name}", disable=not progress, leave=False):
            with torch.inference_mode():
                y = forward(net, to_batch(pair.hr).to(net_device(net)), tile=tile)
            health = downscale_health(net, y, size=pair.hr.shape[:2])
            box = dict(zip(("box_top", "box_left", "box_bottom", "box_right"), health.box or (None,) * 4))
            rows.append({
                "dataset": name, "image": pair.name, "height": pair.hr.shape[0], "width": pair.hr.shape[1],
                "lr_min": health.lr_min, "lr_max": health.lr_max, "z_max": health.z_max,
                "latent_far": health.latent_far, "lr_out_of_range": health.lr_out_of_range, **box,
            })  # fmt: skip
    return pd.DataFrame(rows, columns=HEALTH_COLUMNS)


def health_summary(frame: pd.DataFrame) -> dict:
    """The card's ``health`` record of :func:`health_per_image`'s rows."""
    named = frame["dataset"] + "/" + frame["image"]

    def extreme(column: str, pick) -> tuple[float, str]:
        at = pick(frame[column])
        return float(frame.loc[at, column]), str(named[at])

    (z_max, z_at), (lr_min, lr_min_at), (lr_max, lr_max_at) = (
        extreme("z_max", pd.Series.idxmax),
        extreme("lr_min", pd.Series.idxmin),
        extreme("lr_max", pd.Series.idxmax),
    )
    return {
        "images": len(frame),
        "latent_far": list(named[frame["latent_far"]]),
        "lr_out_of_range": list(named[frame["lr_out_of_range"]]),
        "z_max": z_max, "z_max_image": z_at,
        "lr_min": lr_min, "lr_min_image": lr_min_at, "lr_max": lr_max, "lr_max_image": lr_max_at,
    }  # fmt: skip


def _names(images: list[str], shown: int = 6) -> str:
    if not images:
        return "none"
    rest = len(images) - shown
    return ", ".join(images[:shown]) + (f" and {rest} more" if rest > 0 else "")


def health_lines(card: dict) -> list[str]:
    """The card README's section on the test images' LR range and latent (nothing for older cards)."""
    health = card.get("health")
    if not health:
        return []
    n = health["images"]
    lr_range = f"LR before quantisation within [{LR_RANGE[0]:g}, {LR_RANGE[1]:g}]"
    rows = [
        [f"|z| ≤ {Z_LIMIT:g}", f"{len(health['latent_far'])} of {n}", _names(health["latent_far"])],
        [lr_range, f"{len(health['lr_out_of_range'])} of {n}", _names(health["lr_out_of_range"])],
    ]
    return [
        "## Latent and LR on the test images",
        "",
        "The checks `irn downscale` warns with, on every image measured above (the panel leaves the",
        f"embedded-test photographs out); per image in `{HEALTH_FILE}`.",
        "",
        *markdown_table(["check", "failing", "which"], rows),
        "",
        f"Largest |z| {health['z_max']:.2f} ({health['z_max_image']}); LR before quantisation "
        f"{health['lr_min']:.3f} ({health['lr_min_image']}) … {health['lr_max']:.3f} ({health['lr_max_image']}).",
        "",
    ] + _added_later(health)


def _added_later(health: dict) -> list[str]:
    """A line naming when and where checks added to an earlier card were measured (nothing otherwise)."""
    record = health.get("provenance")
    if not record:
        return []
    return [f"Added to this card later: measured {record['date']}, commit {record['commit']}, {record['device']}.", ""]


def write_health(folder, weights, measured_datasets, progress: bool = True) -> pd.DataFrame:
    """:func:`health_per_image` of ``weights`` on the test sets a card measured (``measured_datasets``:
    their names, repeats allowed, in order; those absent here are left out), written to
    ``folder/``:data:`HEALTH_FILE`. Returns the rows."""
    datasets = [d for d in dict.fromkeys(measured_datasets) if d in available_datasets()]
    frame = health_per_image(load_checkpoint(weights).eval(), datasets, progress)
    write_csv(frame, Path(folder) / HEALTH_FILE)
    return frame


def add_health(folder, progress: bool = True) -> Path:
    """Run :func:`health_per_image` for a published model folder on the test sets its card measured
    (those present here), write :data:`HEALTH_FILE` and ``card.json``'s ``health``; the caller
    rewrites the README (:func:`irnlib.experiments.modelcard.refresh_card`). Returns the folder."""
    folder = Path(folder)
    card = json.loads((folder / "card.json").read_text())
    measured = pd.read_csv(folder / "measured_per_image.csv")["dataset"]
    frame = write_health(folder, folder / card["file"], measured, progress)
    measured_here = provenance("cpu", purpose="the test images' health checks, added to an earlier card")
    write_json(folder / "card.json", {**card, "health": {**health_summary(frame), "provenance": measured_here}})
    return folder
