"""The kit's reference models: IRN trained by this kit, published under ``models/`` with a card.

A reference model is a training run's exported ``IRN_x{s}.pth`` (the official format) copied
into ``models/kit_reference_x{s}/`` together with the run's ``config.json`` and
``provenance.json`` (so :func:`irnlib.protocol.evaluate.describe_checkpoint` describes it like any
run), its training curves as ``val_log.csv``, and a card: ``card.json`` (every number, with
the file's SHA-256), ``measured_per_image.csv`` (what the numbers average) and ``README.md``
(the same for people). The card's numbers are measured
when it is written, with the paper's test protocol; the paper's own numbers stand beside
them, labelled as the paper's.

Publishing a run::

    python -m irnlib.experiments.modelcard results/runs/quick_x2            # measure, copy, write the card
    python -m irnlib.experiments.modelcard results/runs/quick_x2 --draws 1  # faster, labelled as such
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
from pathlib import Path

import pandas as pd

from irnlib.data.folders import available_datasets, dataset_version
from irnlib.model.checkpoint import load_checkpoint
from irnlib.paper import BICUBIC_ROW, IRN_ROW, paper_value
from irnlib.protocol.evaluate import evaluate_dataset, write_csv
from irnlib.protocol.summary import summarize_draws
from irnlib.protocol.weights import MODELS_DIR, exported_weights, reference_weights
from irnlib.runtime.markdown import markdown_table
from irnlib.runtime.paths import atomic_write, sha256_file, write_json
from irnlib.runtime.provenance import provenance
from irnlib.train import RESUMABLE_CHANGES, TrainConfig, as_trained, make_config

__all__ = [
    "MODELS_DIR",
    "CARD_DATASETS",
    "STARTED_FROM",
    "reference_dir",
    "training_deviations",
    "recipe_overrides",
    "training_seconds",
    "measure",
    "card_summary",
    "publish",
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


def _card_facts(card: dict) -> list[str]:
    """The card's title and its facts: file, training, data, commits."""
    s, run, cfg = card["scale"], card["training"], card["config"]
    start = run.get("init_from")  # a second stage: started from another model's weights
    done, planned, recipe = run["iterations_done"], int(cfg["iterations"]), card["recipe_iterations"]
    stage = (
        [
            f"- second stage: started from the weights of `{start['file']}` (SHA-256 `{start['sha256']}`), the "
            "model described in `started_from/`, with a fresh optimiser and learning-rate schedule"
        ]
        if start
        else []
    )
    return [
        f"# IRN ×{s} — kit reference model",
        "",
        f"IRN ×{s} trained **by this kit** (not the authors' released checkpoint), with the paper's",
        "network and objective and the kit's quick recipe"
        + (" in two stages (the first stage's card: `started_from/README.md`)" if start else "")
        + ". Tests and the main job use it when no",
        f"official `data/pretrained/IRN_x{s}.pth` is present.",
        "",
        f"- file: `{card['file']}`, SHA-256 `{card['sha256']}`",
        f"- training: {done:,} of the run's {planned:,} planned iterations"
        + (" (**run not finished: a shortened model**)" if done < planned else "")
        + (f" (the quick recipe plans {recipe:,})" if recipe != planned else "")
        + "; the paper trains 500,000 iterations of 16 × 144² patches on DIV2K",
        *stage,
        f"- training time: {run['train_hours']:.2f} h of training steps"
        + (" (this stage)" if start else "")
        + f"; begun on {run['started'].get('device')}, last resumed on {run['device']}",
        f"- training data: `{cfg['train_set']}` ({run['train_data']['images']} images, fingerprint "
        f"`{run['train_data']['sha256']}`); validation during training: `{cfg['val_set']}`",
        *([f"- note: {card['note']}"] if card.get("note") else []),
        f"- training began at commit {run['started']['commit']}, {run['started']['date']}; last resumed at commit "
        f"{run['commit']}, {run['date']}; card written at commit {card['provenance']['commit']}, "
        f"{card['provenance']['date']}, measured on {card['provenance']['device']}",
        "",
    ]


MEASURED_HEADER = ["test set", "images", "IRN (this model)", "Bicubic & Bicubic (this kit)", "IRN − bicubic",
                   "IRN LR vs bicubic LR", "paper IRN", "paper Bicubic"]  # fmt: skip


def _paper_pair(value: tuple[float, float]) -> str:
    return "–" if math.isnan(value[0]) else f"{value[0]:.2f} / {value[1]:.4f}"


def _measured_lines(card: dict) -> list[str]:
    """The card's numbers next to the paper's, one row per test set."""
    s, rows = card["scale"], []
    for m in card["measured"]:
        paper_irn, paper_bic = paper_value(IRN_ROW, s, m["dataset"]), paper_value(BICUBIC_ROW, s, m["dataset"])
        rows.append([
            m["dataset"], m["images"], f"{m['irn_psnr_y']:.2f} / {m['irn_ssim_y']:.4f}",
            f"{m['bicubic_psnr_y']:.2f} / {m['bicubic_ssim_y']:.4f}", f"{m['margin_psnr_y']:+.2f}",
            f"{m['lr_psnr_y']:.2f}", _paper_pair(paper_irn), _paper_pair(paper_bic),
        ])  # fmt: skip
    return [
        f"## Measured (Y-PSNR dB / SSIM, border {s}, z ~ N(0, 1), {card['draws']} draw(s) of z)",
        "",
        *markdown_table(MEASURED_HEADER, rows),
        "",
        "The paper columns are the paper's published Table 1 (`data/paper_tables.csv`), not measured here.",
        "",
    ]


def _retrain_lines(card: dict) -> list[str]:
    """How to train the model again (both stages of a second stage) and publish it here."""
    s, start = card["scale"], card["training"].get("init_from")
    lines = ["## Retrain or continue", "", "```bash"]
    if start:
        # the first stage's own command, then this stage from the first stage's export
        first = f"results/runs/quick_x{s}/IRN_x{s}.pth"
        overrides = [o if not o.startswith("init_from=") else f"init_from={first}" for o in card["recipe_overrides"]]
        lines += [
            f"# first stage: the command in started_from/README.md (results/runs/quick_x{s}), then",
            f"python -m irnlib.train --profile quick {' '.join(overrides)} run_name=quick_x{s}_stage2",
            f"python -m irnlib.experiments.modelcard results/runs/quick_x{s}_stage2  # measure and publish here",
        ]
    else:
        lines += [
            f"python -m irnlib.train --profile quick {' '.join(card['recipe_overrides'])}  "
            f"# results/runs/quick_x{s}; resumes it if there",
            f"python -m irnlib.experiments.modelcard results/runs/quick_x{s}  # measure and publish here",
        ]
    return lines + ["```", ""]


def _card_markdown(card: dict) -> str:
    deviations = [[f"`{k}`", p, r] for k, (p, r) in card["deviations"].items()]
    lines = _card_facts(card) + ["## Deviations from the paper's training", ""]
    lines += markdown_table(["field", "paper", "this model"], deviations)
    lines += [
        "",
        "Unchanged: the network (Haar + 8 InvBlocks per level, official weights layout), the objective",
        "(L_forw, L_back, L_distr with the official weights) and the test-time protocol.",
        "",
    ]
    return "\n".join(lines + _measured_lines(card) + _retrain_lines(card))


STARTED_FROM = "started_from"  # a second stage's folder keeps the card of the model it started from


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
) -> Path:
    """Copy a run's exported model into ``models/kit_reference_x{s}/``, measure it, write its card.

    A run that started from the model published there (``init_from``, same SHA-256) is its
    second stage: that model's card (its text files, not its weights) moves to
    ``started_from/`` first, so the new card's lineage stays readable.

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

    Returns the model folder.
    """
    run_dir = Path(run_dir)
    config = as_trained(json.loads((run_dir / "config.json").read_text()))  # older runs lack newer fields
    record = json.loads((run_dir / "provenance.json").read_text())
    model = exported_weights(run_dir, int(config["scale"]))
    if not model.is_file():
        raise FileNotFoundError(f"{run_dir}: no exported model {model.name}; train (or resume) the run first")
    dest = reference_dir(int(config["scale"]), models_dir)
    dest.mkdir(parents=True, exist_ok=True)
    _keep_first_stage(dest, record.get("init_from"))
    _copy_present(run_dir, dest, (model.name, "config.json", "provenance.json", "val_log.csv"))
    per_image = measure(dest / model.name, datasets, draws, progress)
    write_csv(per_image, dest / "measured_per_image.csv")
    train_data = dataset_version(config["train_set"], data_root or config.get("data_root"))
    card = {
        "scale": int(config["scale"]),
        "file": model.name,
        "sha256": sha256_file(dest / model.name),
        "draws": draws,
        "config": config,
        "deviations": training_deviations(config),
        "recipe_overrides": recipe_overrides(config),
        "recipe_iterations": make_config("quick", scale=int(config["scale"])).iterations,
        "training": _training_record(run_dir, record, train_data),
        **({"note": note} if note else {}),
        "measured": card_summary(per_image),
        "provenance": provenance("cpu", purpose="kit reference model card"),
    }
    write_json(dest / "card.json", card)
    atomic_write(dest / "README.md", lambda tmp: tmp.write_text(_card_markdown(card), encoding="utf-8"))
    return dest


def _keep_first_stage(dest: Path, init: dict | None) -> None:
    """A second stage of the model published in ``dest``: move that model's card to ``started_from/``."""
    card = dest / "card.json"
    if init and card.is_file() and json.loads(card.read_text())["sha256"] == init["sha256"]:
        (dest / STARTED_FROM).mkdir(exist_ok=True)
        _copy_present(dest, dest / STARTED_FROM, ("README.md", "card.json", "config.json", "provenance.json",
                                                  "val_log.csv", "measured_per_image.csv"))  # fmt: skip


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
    args = parser.parse_args(argv)
    dest = publish(args.run_dir, args.models_dir, args.datasets, args.draws, data_root=args.data_root, note=args.note)
    print((dest / "README.md").read_text())
    return dest


if __name__ == "__main__":
    main()
