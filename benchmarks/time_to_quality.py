"""Time to quality: validation PSNR against training seconds and iterations; prints a table.

For each scale and each recipe, trains IRN (the paper's network and objective) from scratch
in chunks of ``--val-every`` iterations until ``--minutes`` of training time are spent,
validating after every chunk, and records

- the Y-PSNR of the reconstruction ``upscale(downscale(hr))`` (z ~ N(0, 1), 8-bit LR,
  border = scale), i.e. the test-time protocol, and
- the Y-PSNR of IRN's LR against the MATLAB-bicubic LR,

as functions of the iterations done and of the seconds spent in training steps (validation
and checkpoint writing excluded, so both recipes are charged the same way). The
"Bicubic & Bicubic" Y-PSNR of the same validation images is the line to cross.

Recipes (see :mod:`irnlib.protocol.profiles`):

- ``paper``: the paper's optimiser settings (Adam 2e-4, its schedule, no weight average) at the
  quick profile's CPU-sized batches and data, so that only the optimiser settings differ;
- ``quick``: the kit's fast recipe (the ``quick`` profile).

Validation: Set5 when the data root holds it (``IRN_DATA``), else the embedded test
photographs. Training data: the profile's (T91 + BSD200 when present, else the embedded
training photographs).

Run it on an otherwise idle machine; every row of one run comes from the same machine::

    python benchmarks/time_to_quality.py --minutes 30              # the README's table
    python benchmarks/time_to_quality.py --minutes 1 --scales 2    # a quick look
    python benchmarks/time_to_quality.py --minutes 30 --scales 2 --side-by-side
    python benchmarks/time_to_quality.py --recipes quick --scales 2 --side-by-side --versus amp=bf16

``--side-by-side`` trains the recipes at the same time, each on one torch thread (on a 2-core
machine, one core each), so that they are measured under the same conditions in half the wall
time; their minutes are then one core's, not the machine's. ``--versus field=value ...`` trains
each recipe twice, as it is and with those changes (e.g. bf16 autocast against fp32).

Writes ``results/benchmarks/time_to_quality.{csv,json}`` (curves and provenance) and
``results/figures/time_to_quality.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irnlib.data.folders import available_datasets  # noqa: E402
from irnlib.data.test_pairs import PairedTestSet  # noqa: E402
from irnlib.experiments.modelcard import training_seconds  # noqa: E402
from irnlib.protocol.evaluate import bicubic_rescale, sr_metrics  # noqa: E402
from irnlib.protocol.profiles import QUICK  # noqa: E402
from irnlib.runtime.paths import atomic_write, results_root, write_json  # noqa: E402
from irnlib.runtime.provenance import provenance  # noqa: E402
from irnlib.train import TrainConfig, make_config, parse_overrides, train  # noqa: E402

RECIPES = ("paper", "quick")


def recipe_config(
    recipe: str, scale: int, runs_dir: Path, val_set: str, train_set: str, val_every: int, changes: dict | None = None
):
    """The training configuration of one recipe: the quick profile's data and batches, and
    for ``paper`` the paper's optimiser settings on top; ``changes`` (TrainConfig fields) last."""
    changes = changes or {}
    run_name = "_".join([recipe, *(f"{k}-{v}" for k, v in changes.items()), f"x{scale}"]).replace(",", "-")
    common = dict(
        scale=scale, runs_dir=str(runs_dir), run_name=run_name, val_set=val_set, val_crop=None,
        train_set=train_set, val_every=val_every, checkpoint_every=val_every, log_every=val_every,
        keep_every=0, progress=False, iterations=0,
    )  # fmt: skip
    if recipe == "quick":
        return make_config("quick", **{**changes, **common})
    paper = TrainConfig()  # the paper's defaults
    settings = (
        "lr",
        "betas",
        "weight_decay",
        "lr_milestones",
        "lr_gamma",
        "warmup_iterations",
        "grad_clip",
        "ema_decay",
    )
    optimiser = {k: getattr(paper, k) for k in settings}
    quick = {k: v for k, v in QUICK.train.items() if k not in optimiser}
    return make_config("paper", **{**quick, **optimiser, **changes, **common})


def run_recipe(
    recipe: str, scale: int, minutes: float, runs_dir: Path, val_set: str, train_set: str, val_every: int,
    changes: dict | None = None, label: str | None = None, max_iterations: int | None = None,
):  # fmt: skip
    """Train one recipe in chunks until ``minutes`` of training time (or ``max_iterations``); return its curve."""
    config = recipe_config(recipe, scale, runs_dir, val_set, train_set, val_every, changes)
    name = label or recipe  # what the table and the log call it
    spent, done = 0.0, 0
    while spent < 60 * minutes and (max_iterations is None or done < max_iterations):
        done += val_every
        run_dir = train(dataclasses.replace(config, iterations=done))
        spent = float(training_seconds(run_dir)["train_s"].iloc[-1])
        print(f"  {name} x{scale}: {done} iterations, {spent:.0f} s of training", flush=True)
    val = pd.read_csv(run_dir / "val_log.csv")
    curve = val.merge(training_seconds(run_dir), on="iteration", how="left").fillna({"train_s": 0.0})
    curve.insert(0, "scale", scale)
    curve.insert(0, "recipe", name)
    return curve


def run_side_by_side(jobs: list[dict]) -> list[pd.DataFrame]:
    """:func:`run_recipe` for each of ``jobs`` (its keyword arguments) at once, one process and
    one torch thread each; returns the curves in the order of ``jobs``."""
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # the workers inherit it; the thread policy then leaves them at 1
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(len(jobs), mp_context=context) as pool:
            futures = [pool.submit(run_recipe, **job) for job in jobs]
            return [f.result() for f in futures]
    finally:
        if before is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = before


def bicubic_psnr(val_set: str, scale: int) -> float:
    """Mean "Bicubic & Bicubic" Y-PSNR of the validation images (the paper's baseline)."""
    dataset = PairedTestSet(val_set, scale)
    return float(np.mean([sr_metrics(bicubic_rescale(p, scale), p.hr, scale)["psnr_y"] for p in dataset]))


def crossing(curve: pd.DataFrame, level: float, column: str) -> float:
    """First ``column`` value (iteration or seconds) at which the validation PSNR reaches ``level``."""
    above = curve[curve["psnr_y"] >= level]
    return float(above[column].iloc[0]) if len(above) else float("nan")


def plot(curves: pd.DataFrame, bicubic: dict[int, float], path: Path, title: str) -> None:
    """Validation Y-PSNR of each recipe against training minutes and iterations, one column a scale."""
    matplotlib.use("Agg")  # before the first figure: a headless script

    scales = sorted(curves["scale"].unique())
    fig, axes = plt.subplots(2, len(scales), figsize=(5.5 * len(scales), 7), squeeze=False)
    for col, scale in enumerate(scales):
        for row, x in enumerate(("train_s", "iteration")):
            ax = axes[row][col]
            for recipe, curve in curves[curves["scale"] == scale].groupby("recipe"):
                ax.plot(
                    curve[x] / (60 if x == "train_s" else 1),
                    curve["psnr_y"],
                    "o-",
                    ms=3,
                    label=f"{recipe}: reconstruction",
                )
            ax.axhline(bicubic[scale], color="k", ls="--", lw=1, label="Bicubic & Bicubic")
            ax.set(
                xlabel="training minutes" if x == "train_s" else "iterations", ylabel="Y-PSNR (dB)", title=f"×{scale}"
            )
            ax.legend(fontsize=8)
    fig.suptitle(textwrap.fill(title, width=60 * len(scales)), fontsize=9)  # the provenance is long: wrap, not clip
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training minutes per recipe and scale")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--iterations", type=int, default=None, help="also stop each recipe after this many iterations")
    parser.add_argument("--val-every", type=int, default=50, help="iterations between validations")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: results/)")
    parser.add_argument(
        "--change",
        nargs="+",
        default=[],
        metavar="field=value",
        help="recipe research: TrainConfig fields changed in every recipe (e.g. lr=1e-3 warmup_iterations=100)",
    )
    parser.add_argument(
        "--versus",
        nargs="+",
        default=[],
        metavar="field=value",
        help="also train each recipe with these changes on top (e.g. amp=bf16), to compare the two",
    )
    parser.add_argument(
        "--label", default=None, help="the recipe's name in the table (default: recipe, plus the changes)"
    )
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="train the recipes of a scale at the same time, one thread each (minutes are one core's)",
    )
    args = parser.parse_args(argv)

    # (words, fields) of each variant, parsed once so that a bad field=value fails before any training
    try:
        variants = [
            (words, parse_overrides(words))
            for words in [args.change] + ([args.change + args.versus] if args.versus else [])
        ]
    except ValueError as err:
        parser.error(str(err))
    if args.label and len(variants) > 1:
        parser.error("--label names one variant; with --versus the labels are the recipes and their changes")

    present = available_datasets()
    val_set = "Set5" if "Set5" in present else "embedded-test"
    train_set = "T91+BSD200" if {"T91", "BSD200"} <= set(present) else "embedded-train"
    try:  # every configuration built once, so that a value only TrainConfig refuses fails before any training
        for scale in args.scales:
            for recipe in args.recipes:
                for _, changes in variants:
                    recipe_config(recipe, scale, Path("."), val_set, train_set, args.val_every, changes)
    except ValueError as err:
        parser.error(str(err))
    out = results_root(args.out)
    started = time.time()
    curves = []
    with tempfile.TemporaryDirectory(prefix="irn-ttq-") as runs_dir:
        for scale in args.scales:
            jobs = [
                dict(recipe=recipe, scale=scale, minutes=args.minutes, runs_dir=Path(runs_dir), val_set=val_set,
                     train_set=train_set, val_every=args.val_every, changes=changes,
                     label=args.label or " ".join([recipe, *words]), max_iterations=args.iterations)
                for recipe in args.recipes
                for words, changes in variants
            ]  # fmt: skip
            if args.side_by_side:
                curves += run_side_by_side(jobs)
            else:
                curves += [run_recipe(**job) for job in jobs]
    curves = pd.concat(curves, ignore_index=True)
    bicubic = {s: bicubic_psnr(val_set, s) for s in args.scales}

    rows = []
    for (recipe, scale), curve in curves.groupby(["recipe", "scale"], sort=False):
        last = curve.iloc[-1]
        rows.append({
            "recipe": recipe, "scale": f"x{scale}", "iterations": int(last["iteration"]),
            "train min": round(last["train_s"] / 60, 1), "PSNR-Y (dB)": round(last["psnr_y"], 2),
            "LR vs bicubic (dB)": round(last["lr_psnr_y"], 2), "bicubic (dB)": round(bicubic[scale], 2),
            "crosses bicubic at (min)": round(crossing(curve, bicubic[scale], "train_s") / 60, 1),
            "crosses at (iterations)": crossing(curve, bicubic[scale], "iteration"),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    record = provenance(
        "cpu", benchmark="time_to_quality", validation=val_set, training=train_set, minutes_per_recipe=args.minutes,
        changes=args.change, versus=args.versus,
        threads="one per recipe, side by side" if args.side_by_side else "the kit's policy",
        wall_minutes=round((time.time() - started) / 60, 1),
    )  # fmt: skip
    (out / "benchmarks").mkdir(parents=True, exist_ok=True)
    curves.to_csv(out / "benchmarks" / "time_to_quality.csv", index=False)
    write_json(out / "benchmarks" / "time_to_quality.json", {"provenance": record, "summary": rows})
    title = (
        f"time to quality, validation {val_set}, training {train_set} "
        f"({record['device']}; threads: {record['threads']}; "
        f"{record['date']}, commit {record['commit']})"
    )
    plot(curves, bicubic, out / "figures" / "time_to_quality.png", title)
    print("| " + " | ".join(table.columns) + " |")
    print("|" + " --- |" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in row) + " |")
    print(f"\n{title}")
    return table


if __name__ == "__main__":
    main()
