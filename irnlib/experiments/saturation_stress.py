"""Colour photographs with their saturation raised: where an IRN's LR and latent run away (issue 27).

A change of colour saturation is an ordinary edit (a phone's "vivid" filter, a graded film still),
and it pushes a photograph's colours towards the gamut's edge, where one channel sits near 0 or
255 under texture. Measured on the kit's ×4 models (``results/panel/quiet_x4/README.md``), a model
whose panel and test sets look healthy can send its LR there far outside [0, 1]: this module finds
that. Each scikit-image colour photograph is measured as it is and with its chroma scaled by
``gain`` about its luma (:func:`saturate`), through the generalisation panel's own protocol
(:func:`irnlib.experiments.panel.measure_image`: one draw of z, IRN beside Bicubic & Bicubic).
The photographs include embedded-test's; this is a stress test, not the held-out panel.

A model card includes it (:func:`card_saturation` writes ``saturation_x{s}.csv`` and returns
``card.json``'s ``saturation`` entry; :func:`saturation_card_lines` is the card README's section).

    python -m irnlib.experiments.saturation_stress WEIGHTS [WEIGHTS ...] [--gains 1 2 3] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import skimage.data
from tqdm.auto import tqdm

from irnlib.data.synthetic import scale_chroma
from irnlib.experiments.panel import measure_image
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.inference import LR_RANGE, Z_LIMIT
from irnlib.protocol.evaluate import write_csv
from irnlib.runtime.markdown import markdown_table
from irnlib.runtime.paths import sha256_file, short_path, write_or_print
from irnlib.runtime.provenance import command_line, provenance
from irnlib.runtime.threads import apply_thread_policy

__all__ = [
    "PHOTOGRAPHS",
    "GAINS",
    "saturate",
    "photographs",
    "saturation_stress",
    "saturation_file",
    "card_saturation",
    "saturation_card_lines",
    "card_saturation_of",
    "main",
]

PHOTOGRAPHS = ("astronaut", "chelsea", "coffee", "immunohistochemistry", "rocket")  # skimage.data colour photos
GAINS = (1.0, 2.0, 3.0)


def saturate(img: np.ndarray, gain: float) -> np.ndarray:
    """``img`` with its chroma scaled by ``gain`` about its luma, rounded and clipped to 8 bits.

    Parameters
    ----------
    img : ndarray of uint8, shape (H, W, 3)
    gain : float
        1 leaves the image as it is; 2 doubles every pixel's distance from its grey (BT.601 luma).

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
    """
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"saturate: img must be uint8 (H, W, 3), got {img.dtype} {img.shape}")
    return np.clip(np.round(scale_chroma(img.astype(np.float64), gain)), 0, 255).astype(np.uint8)


def photographs(names=PHOTOGRAPHS) -> dict[str, np.ndarray]:
    """scikit-image's colour photographs by name, uint8 (H, W, 3), as they ship."""
    return {name: getattr(skimage.data, name)() for name in names}


def saturation_stress(
    net, images: dict[str, np.ndarray], gains=GAINS, seed: int = 0, progress: bool = False
) -> pd.DataFrame:
    """One row per image and gain: the panel's columns of :func:`measure_image`, ``photograph`` and ``gain``."""
    rows = []
    cells = [(name, img, gain) for name, img in images.items() for gain in gains]
    for name, img, gain in tqdm(cells, desc=f"saturation x{net.scale}", disable=not progress, leave=False):
        row, _ = measure_image(net, f"{name} ×{gain:g}", saturate(img, gain), seed=seed)
        rows.append({**row, "photograph": name, "gain": gain})
    frame = pd.DataFrame(rows)
    return frame.assign(flagged=frame["lr_out_of_range"] | frame["latent_far"] | frame["local_failure"])


def _cell(row) -> str:
    """``LR min … max, |z|, margin``, in bold where the panel flags it (LR out of range, latent far, local failure)."""
    text = f"{row['lr_min']:.2f} … {row['lr_max']:.2f}, {row['z_max']:.1f}, {row['psnr_gap_db']:+.2f}"
    return f"**{text}**" if row["flagged"] else text


def _legend() -> str:
    return (
        "Each cell: the LR's range before quantisation, the largest |z|, IRN − Bicubic & Bicubic Y-PSNR "
        f"(dB, one draw of z); bold where the LR leaves {list(LR_RANGE)}, |z| passes {Z_LIMIT:g} or a "
        "32×32 block fails."
    )


def saturation_file(scale: int) -> str:
    """The card's file of every measurement: ``saturation_x{scale}.csv``."""
    return f"saturation_x{scale}.csv"


CARD_FIELDS = ["photograph", "gain", "lr_min", "lr_max", "z_max", "psnr_gap_db", "flagged"]


def card_saturation(weights, folder, progress: bool = True) -> dict:
    """Measure a published model (``weights``) and write :func:`saturation_file` into ``folder``.

    Every one of :func:`photographs` at every one of :data:`GAINS`. Returns ``card.json``'s
    ``saturation`` entry: ``file``, ``gains``, ``photographs``, ``flagged`` (``"coffee ×2"``, ...),
    ``cells`` (per photograph and gain: LR range, largest ``|z|``, IRN − bicubic dB, ``flagged``)
    and ``provenance``.
    """
    net = load_checkpoint(weights).eval()
    frame = saturation_stress(net, photographs(), GAINS, progress=progress)
    write_csv(frame, Path(folder) / saturation_file(net.scale))
    return {
        "file": saturation_file(net.scale),
        "gains": list(GAINS),
        "photographs": list(dict.fromkeys(frame["photograph"])),
        "flagged": frame.loc[frame["flagged"], "image"].tolist(),
        "cells": [
            {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in frame[CARD_FIELDS].to_dict("records")
        ],
        "provenance": provenance("cpu", purpose="saturation stress of a kit model"),
    }


def saturation_card_lines(card: dict) -> list[str]:
    """The card README's section on the saturation stress (none for a card without it)."""
    entry = card.get("saturation")
    if not entry:
        return []
    cells = {(c["photograph"], c["gain"]): _cell(c) for c in entry["cells"]}
    rows = [[name] + [cells[(name, gain)] for gain in entry["gains"]] for name in entry["photographs"]]
    flagged = entry["flagged"]
    return [
        "## Saturation stress",
        "",
        'scikit-image\'s colour photographs with their chroma scaled about their luma (an ordinary "vivid" '
        "edit), through the panel's protocol; they include embedded-test's, so this is a stress test, not held "
        f"out. {_legend()} Flagged: {len(flagged)} of {len(entry['cells'])}"
        + (f" ({', '.join(flagged)})" if flagged else "")
        + f". Every measurement: `{entry['file']}`.",
        "",
        *markdown_table(["photograph"] + [f"chroma ×{g:g}" for g in entry["gains"]], rows),
        "",
    ]


def card_saturation_of(weights) -> list[str]:
    """The saturation section of the card beside ``weights`` (``card.json`` naming the same file by
    SHA-256, as :func:`card_saturation` wrote it), or ``[]`` when there is none."""
    card_file = Path(weights).parent / "card.json"
    if not (Path(weights).is_file() and card_file.is_file()):
        return []
    card = json.loads(card_file.read_text())
    return saturation_card_lines(card) if card.get("sha256") == sha256_file(weights) else []


def main(argv=None) -> int:
    """``python -m irnlib.experiments.saturation_stress``: a Markdown table, a column per model."""
    parser = argparse.ArgumentParser(
        prog="python -m irnlib.experiments.saturation_stress", description=__doc__.split("\n")[0]
    )
    parser.add_argument("weights", nargs="+", help="IRN_x<s>.pth files")
    parser.add_argument("--gains", nargs="+", type=float, default=list(GAINS))
    parser.add_argument("--photographs", nargs="+", default=list(PHOTOGRAPHS), choices=PHOTOGRAPHS)
    parser.add_argument("--out", help="write the Markdown here (default: print it)")
    parser.add_argument("--csv", help="also write every measurement here")
    args = parser.parse_args(argv)
    apply_thread_policy()
    images = photographs(args.photographs)
    frames = []
    for path in args.weights:
        frame = saturation_stress(load_checkpoint(path).eval(), images, args.gains)
        frames.append(frame.assign(model=short_path(path), sha256=sha256_file(path)[:12]))
    table = pd.concat(frames, ignore_index=True)
    if args.csv:
        table.to_csv(args.csv, index=False)
    header = ["photograph", "gain"] + [
        f"`{short_path(p)}` ({f['sha256'].iloc[0]})" for p, f in zip(args.weights, frames, strict=True)
    ]
    rows = [
        [name, f"{gain:g}"] + [_cell(f[(f.photograph == name) & (f.gain == gain)].iloc[0]) for f in frames]
        for name in args.photographs
        for gain in args.gains
    ]
    lines = [
        "# Saturation stress: colour photographs with their chroma scaled about their luma", "",
        f"{_legend()} " + command_line("irnlib.experiments.saturation_stress", argv), "",
    ] + markdown_table(header, rows)  # fmt: skip
    write_or_print("\n".join(lines) + "\n", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
