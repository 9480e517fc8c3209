"""The kit's reference models: IRN trained by this kit, published under ``models/`` with a card.

A reference model is a training run's exported ``IRN_x{s}.pth`` (the official format) copied
into ``models/kit_reference_x{s}/`` together with the run's ``config.json`` and
``provenance.json`` (so :func:`irnlib.model.checkpoint_info.describe_checkpoint` describes it like any
run), its training curves as ``val_log.csv``, and a card: ``card.json`` (every number, with
the file's SHA-256), ``measured_per_image.csv`` (what the numbers average) and ``README.md``
(the same for people). The card's numbers are measured
when it is written, with the paper's test protocol; the paper's own numbers stand beside
them, labelled as the paper's. The card also holds the generalisation panel of the model
(:mod:`irnlib.experiments.panel_card`: ``panel_x{s}.csv``, ``.md``, ``_worst.png`` and a summary)
and its saturation stress (:mod:`irnlib.experiments.saturation_stress`: ``saturation_x{s}.csv``).
A model trained in stages keeps the previous stage's card in ``started_from/`` (and the one
before in ``started_from/started_from/``, and so on).

Publishing a run::

    python -m irnlib.experiments.modelcard results/runs/quick_x2            # measure, copy, write the card
    python -m irnlib.experiments.modelcard results/runs/quick_x2 --draws 1  # faster, labelled as such
    python -m irnlib.experiments.modelcard results/runs/quick_x2 --no-panel # without the panel and the stress
    python -m irnlib.experiments.modelcard models/kit_reference_x2 --add-saturation  # to a card older than it
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
from pathlib import Path

import pandas as pd

from irnlib.data.folders import available_datasets, dataset_version
from irnlib.experiments.card_health import HEALTH_FILE, add_health, health_summary, write_health
from irnlib.experiments.card_markdown import STARTED_FROM, card_markdown, card_stage, previous_card
from irnlib.experiments.panel_card import card_panel, panel_files
from irnlib.experiments.saturation_stress import card_saturation, saturation_file
from irnlib.model.checkpoint import load_checkpoint
from irnlib.protocol.evaluate import evaluate_dataset, write_csv
from irnlib.protocol.summary import summarize_draws
from irnlib.protocol.weights import MODELS_DIR, exported_weights, reference_weights
from irnlib.runtime.paths import atomic_write, sha256_file, write_json
from irnlib.runtime.provenance import provenance
from irnlib.runtime.threads import apply_thread_policy
from irnlib.train import RESUMABLE_CHANGES, TrainConfig, as_trained, make_config

__all__ = [
    "MODELS_DIR",
    "CARD_DATASETS",
    "STARTED_FROM",
    "card_stage",
    "reference_dir",
    "training_deviations",
    "recipe_overrides",
    "training_seconds",
    "measure",
    "card_summary",
    "publish",
    "add_saturation",
]

CARD_DATASETS = ("embedded-test", "Set5", "Set14", "BSD100")  # measured where present


def reference_dir(scale: int, models_dir=MODELS_DIR) -> Path:
    """``models/kit_reference_x{scale}/``: where the kit's reference model of a scale lives
    (:func:`irnlib.protocol.weights.reference_weights`'s folder, or the same name under ``models_dir``)."""
    return Path(models_dir) / reference_weights(scale).parent.name


def training_deviations(config: dict) -> dict[str, tuple]:
    """Fields of a run configuration that differ from the paper's training, as ``{field: (paper, run)}``.

    Fields that do not change the mathematics (bookkeeping, device, speed settings) are left
    out; the number of iterations is kept.
    """
    paper = dataclasses.asdict(TrainConfig(scale=int(config["scale"])))
    ignore = RESUMABLE_CHANGES - {"iterations"}  # bookkeeping and speed settings; the length of training counts
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731  (JSON has lists)
    return {
        k: (norm(paper[k]), config[k]) for k in paper if k not in ignore and k in config and norm(paper[k]) != config[k]
    }


def recipe_overrides(config: dict, profile: str = "quick") -> list[str]:
    """``field=value`` arguments that make ``profile``'s training equal to a run's configuration
    (its mathematics and its length; bookkeeping and speed settings aside), ``scale`` first.
    ``config`` holds every field (:func:`irnlib.train.as_trained` fills those a run predates)."""
    base = json.loads(json.dumps(dataclasses.asdict(make_config(profile, scale=int(config["scale"])))))
    ignore = RESUMABLE_CHANGES - {"iterations"}
    fields = [k for k in base if k not in ignore and k in config and base[k] != config[k]]
    text = lambda v: ",".join(map(str, v)) if isinstance(v, list) else str(v)  # noqa: E731
    return [f"scale={config['scale']}"] + [f"{k}={text(config[k])}" for k in fields if k != "scale"]


def measure(checkpoint, datasets=None, draws: int = 5, progress: bool = True) -> pd.DataFrame:
    """Per-image metrics of a checkpoint and of Bicubic & Bicubic on each test set present.

    The paper's protocol (:func:`irnlib.protocol.evaluate.evaluate_dataset`): 8-bit LR, ``draws``
    draws of z ~ N(0, 1) per image, Y channel, border = scale.

    Returns
    -------
    pandas.DataFrame
        The per-image CSV rows (columns of :data:`irnlib.protocol.evaluate.CSV_COLUMNS`), IRN and bicubic.
    """
    net = load_checkpoint(checkpoint).eval()
    present = set(available_datasets())
    frames = []
    for name in [d for d in (datasets or CARD_DATASETS) if d in present]:
        frames.append(evaluate_dataset(name, net.scale, net=net, draws=draws, progress=progress))
        frames.append(evaluate_dataset(name, net.scale, progress=progress))
    return pd.concat(frames, ignore_index=True)


def card_summary(per_image: pd.DataFrame) -> list[dict]:
    """One record per test set: IRN and bicubic averages (:func:`irnlib.protocol.summary.summarize_draws`),
    their margin, IRN's LR fidelity; ``psnr_y_range`` is IRN's max − min over the draws of z."""
    summary = summarize_draws(per_image)
    rows = []
    for name, group in summary.groupby("dataset", sort=False):
        irn, bic = group[group["method"] == "irn"].iloc[0], group[group["method"] == "bicubic"].iloc[0]
        rows.append({
            "dataset": name, "images": int(irn["images"]), "draws": int(irn["draws"]),
            "irn_psnr_y": float(irn["psnr_y"]), "irn_ssim_y": float(irn["ssim_y"]),
            "psnr_y_range": float(irn["psnr_y_range"]), "lr_psnr_y": float(irn["lr_psnr_y"]),
            "bicubic_psnr_y": float(bic["psnr_y"]), "bicubic_ssim_y": float(bic["ssim_y"]),
            "margin_psnr_y": float(irn["psnr_y"] - bic["psnr_y"]),
        })  # fmt: skip
    return rows


def training_seconds(run_dir) -> pd.DataFrame:
    """Cumulative seconds spent in training steps (validation and saving excluded) at each
    logged iteration of a run, from its ``train_log.csv``: columns ``iteration, train_s``."""
    log = pd.read_csv(Path(run_dir) / "train_log.csv")
    steps = log["iteration"].diff().fillna(log["iteration"])
    return pd.DataFrame({"iteration": log["iteration"], "train_s": (steps * log["s_per_it"]).cumsum()})


CARD_TEXT = ("README.md", "card.json", "config.json", "provenance.json", "val_log.csv", "measured_per_image.csv",
             HEALTH_FILE)  # fmt: skip


def _copy_present(src: Path, dest: Path, names) -> None:
    """Copy each of ``names`` that exists in ``src`` into ``dest``, atomically."""
    for name in names:
        if (src / name).is_file():
            atomic_write(dest / name, lambda tmp, f=src / name: shutil.copyfile(f, tmp))


def publish(
    run_dir,
    models_dir=MODELS_DIR,
    datasets=None,
    draws: int = 5,
    progress: bool = True,
    data_root=None,
    note: str | None = None,
    panel: bool = True,
) -> Path:
    """Copy a run's exported model into ``models/kit_reference_x{s}/``, measure it, write its card.

    A run that started from the model published there (``init_from``, same SHA-256) is its
    next stage: that model's card (its text files and panel, not its weights) moves to
    ``started_from/`` first, and the earlier stages' ``started_from/`` moves inside it
    (:func:`_keep_lineage`), so the new card's lineage stays readable.

    Parameters
    ----------
    run_dir : path
        A training run folder (``config.json``, ``provenance.json``, ``IRN_x{s}.pth``, logs).
    draws : int
        Draws of ``z`` per image (the paper: 5).
    data_root : path, optional
        Where the run's training data is on this machine, for its fingerprint (default: the
        run's own ``data_root``, which names the machine it trained on).
    note : str, optional
        A sentence the card prints with the training facts (how its data was made, say).
    panel : bool
        Also run the generalisation panel (:func:`irnlib.experiments.panel_card.card_panel`) and the
        saturation stress (:func:`irnlib.experiments.saturation_stress.card_saturation`), minutes on a
        CPU, and write them into the folder and the card; False leaves them out (and removes an
        earlier model's files of them from the folder).

    Returns the model folder.
    """
    run_dir = Path(run_dir)
    config = as_trained(json.loads((run_dir / "config.json").read_text()))  # older runs lack newer fields
    record = json.loads((run_dir / "provenance.json").read_text())
    scale = int(config["scale"])
    model = exported_weights(run_dir, scale)
    if not model.is_file():
        raise FileNotFoundError(f"{run_dir}: no exported model {model.name}; train (or resume) the run first")
    dest = reference_dir(scale, models_dir)
    dest.mkdir(parents=True, exist_ok=True)
    stage, kept = _keep_lineage(dest, record.get("init_from"), scale)
    for earlier in sorted(dest.glob(f"{STARTED_FROM}/**/card.json")):
        refresh_card(earlier.parent)  # their retrain commands against today's quick profile
    _copy_present(run_dir, dest, (model.name, "config.json", "provenance.json", "val_log.csv"))
    per_image = measure(dest / model.name, datasets, draws, progress)
    write_csv(per_image, dest / "measured_per_image.csv")
    health = write_health(dest, dest / model.name, per_image["dataset"], progress)
    for name in (*panel_files(scale).values(), saturation_file(scale)):
        (dest / name).unlink(missing_ok=True)  # an earlier model's panel never passes for this one's
    panel_summary = card_panel(scale, dest / model.name, dest, progress=progress) if panel else None
    saturation = card_saturation(dest / model.name, dest, progress=progress) if panel else None
    train_data = dataset_version(config["train_set"], data_root or config.get("data_root"))
    card = {
        "scale": scale,
        "file": model.name,
        "sha256": sha256_file(dest / model.name),
        "draws": draws,
        "config": config,
        "deviations": training_deviations(config),
        "recipe_overrides": recipe_overrides(config),
        "recipe_iterations": make_config("quick", scale=scale).iterations,
        "training": _training_record(run_dir, record, train_data),
        "stage": stage,
        "previous_card": f"{STARTED_FROM}/README.md" if kept else None,
        "first_stage_kept": _first_stage_kept(dest, stage, kept),
        **({"note": note} if note else {}),
        "measured": card_summary(per_image),
        "health": health_summary(health),
        "panel": panel_summary,
        "saturation": saturation,
        "provenance": provenance("cpu", purpose="kit reference model card"),
    }
    write_json(dest / "card.json", card)
    atomic_write(dest / "README.md", lambda tmp: tmp.write_text(card_markdown(card), encoding="utf-8"))
    return dest


def refresh_card(folder) -> Path:
    """Bring a published card's retrain command up to date with today's quick profile.

    When the quick profile changes, the ``field=value`` arguments a card prints must change
    too, or its command would train something else: ``recipe_overrides`` is recomputed from the
    folder's ``config.json`` (fields the run predates at their old values,
    :func:`irnlib.train.as_trained`) and ``README.md`` is rewritten from ``card.json``. Nothing
    measured changes, and a card already up to date is left untouched. Returns the folder.
    """
    folder = Path(folder)
    recorded = json.loads((folder / "card.json").read_text())
    card = dict(recorded)
    card["recipe_overrides"] = recipe_overrides(as_trained(json.loads((folder / "config.json").read_text())))
    card["recipe_iterations"] = make_config("quick", scale=int(card["scale"])).iterations
    text, readme = card_markdown(card), folder / "README.md"
    if card == recorded and readme.is_file() and readme.read_text(encoding="utf-8") == text:
        return folder  # already up to date: nothing is rewritten
    write_json(folder / "card.json", card)
    atomic_write(readme, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return folder


def add_saturation(folder, progress: bool = True) -> Path:
    """Run the saturation stress on a published model folder and write ``card.json``'s ``saturation``
    entry; the caller rewrites the README (:func:`refresh_card`). Returns the folder."""
    folder = Path(folder)
    card = json.loads((folder / "card.json").read_text())
    saturation = card_saturation(folder / card["file"], folder, progress=progress)
    write_json(folder / "card.json", {**card, "saturation": saturation})
    return folder


def _keep_lineage(dest: Path, init: dict | None, scale: int) -> tuple[int, bool]:
    """Keep the card of the model a new stage started from, in ``dest/started_from/``.

    A run that started (``init``) from the model published in ``dest`` is its next stage: that
    model's text files, panel and saturation stress (not its weights) go to ``started_from/``, and the
    ``started_from/`` already there (the stages before it) moves inside, to
    ``started_from/started_from/``; built aside and renamed, so an interruption loses no card.
    Publishing the same stage again finds its previous stage kept and moves nothing. A model
    that did not start from the one published there (a first stage, or weights published
    elsewhere) replaces its lineage: the ``started_from/`` there belonged to the replaced model
    and is removed (git history keeps it).

    Returns
    -------
    stage : int
        The new model's stage: 1 without ``init``, the previous stage's + 1 (:func:`card_stage`).
    kept : bool
        Whether ``started_from/`` holds the card of the model it started from.
    """
    read = lambda path: json.loads(path.read_text())  # noqa: E731
    kept, card = dest / STARTED_FROM / "card.json", dest / "card.json"
    if init and kept.is_file() and read(kept)["sha256"] == init["sha256"]:
        return card_stage(read(kept)) + 1, True  # published before: the lineage is in place
    if not (init and card.is_file() and read(card)["sha256"] == init["sha256"]):
        _drop_lineage(dest)  # a first stage, or weights published elsewhere: their card is not here
        return (2 if init else 1), False
    new = dest / f".{STARTED_FROM}.new"
    new.mkdir(exist_ok=True)
    _copy_present(dest, new, CARD_TEXT + (*panel_files(scale).values(), saturation_file(scale)))
    if (dest / STARTED_FROM).exists():
        os.replace(dest / STARTED_FROM, new / STARTED_FROM)
    os.replace(new, dest / STARTED_FROM)
    return card_stage(read(card)) + 1, True


def _first_stage_kept(folder: Path, stage: int, kept: bool) -> bool:
    """Whether the cards kept in ``folder/started_from/`` (nested) go back to the first stage: a
    lineage begun from a model whose card is not kept counts its stages as "at least"."""
    if stage == 1 or not kept:
        return stage == 1
    previous = json.loads((folder / STARTED_FROM / "card.json").read_text())
    return _first_stage_kept(folder / STARTED_FROM, card_stage(previous), previous_card(previous) is not None)


def _drop_lineage(dest: Path) -> None:
    """Remove ``dest/started_from/`` (the replaced model's earlier stages), renamed aside first."""
    if (dest / STARTED_FROM).exists():
        old = dest / f".{STARTED_FROM}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest / STARTED_FROM, old)
        shutil.rmtree(old)


def _training_record(run_dir: Path, record: dict, train_data: dict) -> dict:
    """The card's ``training`` entry: how far, how long, where and on what the run trained."""
    init = record.get("init_from")
    log = run_dir / "train_log.csv"
    return {
        "iterations_done": int(record.get("iterations_done", 0)),
        "status": record.get("status"),
        "train_hours": float(training_seconds(run_dir)["train_s"].iloc[-1]) / 3600 if log.is_file() else math.nan,
        "device": record.get("device"),
        "commit": record.get("commit"),
        "date": record.get("date"),
        "started": record.get("started", {k: record.get(k) for k in ("commit", "date", "device")}),
        "train_data": {k: train_data[k] for k in ("images", "sha256")},
        **({"init_from": init} if init else {}),
    }


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(
        prog="python -m irnlib.experiments.modelcard",
        description="Publish a training run as the kit's reference model.",
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--draws", type=int, default=5, help="draws of z per image (the paper: 5)")
    parser.add_argument(
        "--datasets", nargs="+", default=None, help=f"test sets (default: those of {CARD_DATASETS} present)"
    )
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="where the run's training data is on this machine (for its fingerprint; default: the run's data_root)",
    )
    parser.add_argument("--note", default=None, help="a sentence for the card (how its training data was made, say)")
    parser.add_argument(
        "--no-panel", action="store_true", help="leave out the generalisation panel (it takes minutes on a CPU)"
    )
    parser.add_argument("--add-health", action="store_true", help="run_dir is a published model folder: add the "
                        "LR-range and |z| checks on its test images to its card (cards older than them)")  # fmt: skip
    parser.add_argument("--add-saturation", action="store_true", help="run_dir is a published model folder: "
                        "add the saturation stress to its card (cards older than it)")  # fmt: skip
    args = parser.parse_args(argv)
    apply_thread_policy()  # IRN_THREADS / OMP_NUM_THREADS, or sized for the machine's load
    if args.add_health:
        return refresh_card(add_health(args.run_dir))
    if args.add_saturation:
        return refresh_card(add_saturation(args.run_dir))
    dest = publish(
        args.run_dir, args.models_dir, args.datasets, args.draws,
        data_root=args.data_root, note=args.note, panel=not args.no_panel,
    )  # fmt: skip
    print((dest / "README.md").read_text())
    return dest


if __name__ == "__main__":
    main()
