"""The generalisation panel where people read about a model: its card and notebooks 02 and 04.

:func:`card_panel` runs :func:`irnlib.experiments.panel.panel` on a published model and writes
the panel's files (``panel_x{s}.csv``, ``panel_x{s}.md``, ``panel_x{s}_worst.png``) into the
model's folder; :func:`panel_card_summary` is what its ``card.json`` keeps (per goal: how many
images fail and which; the median and worst IRN − bicubic margin; the largest ``|z|``; the LR's
extremes) and :func:`panel_card_lines` the card README's section (the goals table, as
:func:`irnlib.experiments.panel.panel_summary` renders it, and links to the files).

:func:`find_panel` finds the panel a checkpoint already has (beside it, else under
``<results>/panel`` or the repository's ``results/panel``), accepted only when its page names
the same file by SHA-256; :func:`notebook_panel` finds it or measures it anew, as notebook 02's
``panel`` parameter asks, and :func:`panel_overview`, :func:`flagged_images` and
:func:`panel_hint` are what the notebooks show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from irnlib.experiments.panel import GOALS, MAX_SIDE, goals_table, panel
from irnlib.runtime.paths import REPO_ROOT, results_root, sha256_file, short_path

__all__ = [
    "PANEL_MODES",
    "PanelFiles",
    "panel_files",
    "goal_failures",
    "panel_card_summary",
    "card_panel",
    "panel_card_lines",
    "find_panel",
    "notebook_panel",
    "panel_overview",
    "flagged_images",
    "panel_hint",
]

PANEL_MODES = ("committed", "measure", "skip")  # notebook 02's `panel` parameter
FLAGGED_COLUMNS = ["image", "psnr_y_irn", "psnr_y_bicubic", "psnr_gap_db", "worst_block_irn", "worst_block_bicubic",
                   "lr_min", "lr_max", "z_max"]  # fmt: skip


def panel_files(scale: int) -> dict[str, str]:
    """The panel's file names by role (``csv``, ``markdown``, ``figure``), as
    :func:`irnlib.experiments.panel.write_panel` writes them."""
    return {"csv": f"panel_x{scale}.csv", "markdown": f"panel_x{scale}.md", "figure": f"panel_x{scale}_worst.png"}


def goal_failures(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The images failing each goal, by flag (:data:`irnlib.experiments.panel.GOALS`), in the frame's order."""
    return {flag: frame.loc[frame[flag].astype(bool), "image"].tolist() for flag, _ in GOALS}


def panel_card_summary(frame: pd.DataFrame, *, max_side: int = MAX_SIDE, seed: int = 0) -> dict:
    """``card.json``'s ``panel`` entry: a summary of one panel (rows of :func:`irnlib.experiments.panel.run_panel`).

    Returns
    -------
    dict
        ``images``, ``scale``, ``max_side``, ``seed``, ``files`` (:func:`panel_files`), ``goals``
        (per flag: the goal's text, how many images fail it and which), ``median_margin_db`` and
        ``worst_margin_db`` (IRN − bicubic Y-PSNR, dB), ``z_max``, ``lr_min`` and ``lr_max`` (the
        extremes over the images), each extreme with the image it comes from (``..._image``).
    """

    def extreme(column: str, largest: bool) -> dict:
        row = frame.loc[frame[column].idxmax() if largest else frame[column].idxmin()]
        return {column: float(row[column]), f"{column}_image": str(row["image"])}

    scale, failing = int(frame["scale"].iloc[0]), goal_failures(frame)
    worst = extreme("psnr_gap_db", largest=False)
    return {
        "images": len(frame),
        "scale": scale,
        "max_side": max_side,
        "seed": seed,
        "files": panel_files(scale),
        "goals": {flag: {"goal": goal, "failing": len(failing[flag]), "images": failing[flag]} for flag, goal in GOALS},
        "median_margin_db": float(frame["psnr_gap_db"].median()),
        "worst_margin_db": worst["psnr_gap_db"],
        "worst_margin_image": worst["psnr_gap_db_image"],
        **extreme("z_max", largest=True),
        **extreme("lr_min", largest=False),
        **extreme("lr_max", largest=True),
    }


def card_panel(
    scale: int, checkpoint, folder, *, max_side: int = MAX_SIDE, seed: int = 0, progress: bool = True
) -> dict:
    """Run the panel on a model (:func:`irnlib.experiments.panel.panel`), write its files into
    ``folder`` (the model's own) and return :func:`panel_card_summary`."""
    frame = panel(scale, checkpoint, folder, max_side=max_side, seed=seed, progress=progress)
    return panel_card_summary(frame, max_side=max_side, seed=seed)


def panel_card_lines(card: dict) -> list[str]:
    """The card README's section on the panel: what was measured, the goals table, links to the files."""
    s, summary = card["scale"], card.get("panel")
    lines = ["## Generalisation panel", ""]
    if not summary:
        return lines + [
            f"Not measured for this card. `python -m irnlib.experiments.panel --scale {s} --checkpoint "
            f"<folder>/{card['file']} --out <folder>` measures it for the weights with the SHA-256 above (the "
            "notebooks then show it); publishing without `--no-panel` measures it with the card.",
            "",
        ]
    files = summary["files"]
    return lines + [
        f"{summary['images']} images unlike the training data (scikit-image's photographs whole up to "
        f"{summary['max_side']} px a side, its grey images, rendered and synthetic ones; one draw of z, seed "
        f"{summary['seed']}), measured with this card (`irnlib.experiments.panel`). IRN − bicubic Y-PSNR: "
        f"median {summary['median_margin_db']:+.2f} dB, worst {summary['worst_margin_db']:+.2f} dB "
        f"({summary['worst_margin_image']}); largest |z| {summary['z_max']:.1f} ({summary['z_max_image']}); "
        f"LR before quantisation {summary['lr_min']:.2f} ({summary['lr_min_image']}) to "
        f"{summary['lr_max']:.2f} ({summary['lr_max_image']}).",
        "",
        *goals_table({flag: goal["images"] for flag, goal in summary["goals"].items()}, summary["images"]),
        "",
        f"Flagged images and provenance: [{files['markdown']}]({files['markdown']}); every image: "
        f"[{files['csv']}]({files['csv']}); the worst blocks beside bicubic's: [{files['figure']}]({files['figure']}).",
        "",
    ]


@dataclass(frozen=True)
class PanelFiles:
    """A panel on disk (``csv``, ``markdown`` page, ``figure``) and the provenance its page records."""

    csv: Path
    markdown: Path
    figure: Path
    record: dict = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        """The panel's rows (columns :data:`irnlib.experiments.panel.PANEL_COLUMNS`)."""
        return pd.read_csv(self.csv)


def _page_record(page: Path) -> dict[str, str]:
    """The ``- key: value`` lines of a panel page's provenance section."""
    text = page.read_text(encoding="utf-8").split("## Provenance", 1)
    return dict(re.findall(r"^- ([^:\n]+): (.*)$", text[1], re.M)) if len(text) == 2 else {}


def _panel_in(folder: Path, scale: int, digest: str) -> PanelFiles | None:
    paths = {role: folder / name for role, name in panel_files(scale).items()}
    if not all(path.is_file() for path in paths.values()):
        return None
    record = _page_record(paths["markdown"])
    return PanelFiles(**paths, record=record) if record.get("sha256") == digest else None


def find_panel(checkpoint, scale: int, results=None) -> PanelFiles | None:
    """The panel already measured for ``checkpoint``, or None.

    Looked for beside the checkpoint (a model folder: :func:`card_panel`), then in
    ``<results>/panel`` (:func:`irnlib.runtime.paths.results_root`) and the repository's
    ``results/panel``; a panel counts only when its page's provenance names the checkpoint's SHA-256.
    """
    if checkpoint is None or not Path(checkpoint).is_file():
        return None
    digest = sha256_file(checkpoint)
    folders = [Path(checkpoint).parent, results_root(results) / "panel", REPO_ROOT / "results" / "panel"]
    for folder in dict.fromkeys(f.resolve() for f in folders):
        found = _panel_in(folder, scale, digest)
        if found:
            return found
    return None


def notebook_panel(checkpoint, scale: int, mode: str = "committed", results=None, progress: bool = False):
    """What notebook 02 shows for ``mode`` (:data:`PANEL_MODES`): ``"committed"`` the panel on disk
    (:func:`find_panel`), ``"measure"`` a new one written to ``<results>/panel`` (minutes per scale on
    a CPU), ``"skip"`` none. Returns :class:`PanelFiles` or None."""
    if mode not in PANEL_MODES:
        raise ValueError(f"panel mode {mode!r}: use one of {', '.join(PANEL_MODES)}")
    if mode == "skip" or checkpoint is None or not Path(checkpoint).is_file():
        return None
    if mode == "measure":
        out = results_root(results) / "panel"
        panel(scale, checkpoint, out, progress=progress)
        return _panel_in(out.resolve(), scale, sha256_file(checkpoint))
    return find_panel(checkpoint, scale, results)


def panel_overview(found: PanelFiles) -> str:
    """Markdown: which model and files the panel is, and its goals table."""
    frame, record = found.frame(), found.record
    scale = int(frame["scale"].iloc[0]) if len(frame) else "?"
    head = (
        f"**×{scale}: {record.get('model', '?')}** (SHA-256 `{record.get('sha256', '?')[:12]}`; photographs "
        f"up to {record.get('max side', '?')} px; measured {record.get('date', '?')}, commit "
        f"{record.get('commit', '?')}) — `{short_path(found.csv)}`"
    )
    return "\n".join([head, "", *goals_table(goal_failures(frame), len(frame))]) + "\n"


def flagged_images(frame: pd.DataFrame) -> pd.DataFrame:
    """The images with any flag, worst IRN block first: CSV columns and ``flags`` (comma-separated)."""
    flags = [flag for flag, _ in GOALS]
    flagged = frame[frame[flags].astype(bool).any(axis=1)].sort_values("worst_block_irn", ascending=False)
    table = flagged[FLAGGED_COLUMNS].reset_index(drop=True)
    table["flags"] = [", ".join(f for f in flags if bool(row[f])) for _, row in flagged.iterrows()]
    return table


def panel_hint(checkpoint, scale: int) -> str:
    """One line for a model without a panel on disk: how to measure it."""
    if checkpoint is None or not Path(checkpoint).is_file():
        return f"×{scale}: no trained weights chosen, so no panel (an untrained or missing network)."
    return (
        f"×{scale}: no panel measured for {short_path(checkpoint)}; `python -m irnlib.experiments.panel "
        f"--scale {scale} --checkpoint {short_path(checkpoint)}` measures it (minutes on a CPU) into results/panel/."
    )
