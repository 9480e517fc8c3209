"""How much a trained IRN depends on the scale of its latent: Y-PSNR against the temperature of z.

IRN upscales with a drawn ``z ~ N(0, T²)``; the paper uses ``T = 1``. A short-trained kit model
gave 20.1 dB on Set5 ×2 at ``T = 0`` against 37.1 dB at ``T = 1`` (issue 29). Whether that gap
belongs to IRN or to short training shows when the same measurement is taken on models of
different training lengths: :func:`temperature_curve` measures each checkpoint at each
temperature (the paper's protocol otherwise: 8-bit LR, Y channel, border = scale, seeded draws),
:func:`latent_gaps` reduces it to the gap ``PSNR(T=1) − PSNR(T=0)`` per checkpoint.

Command line (``LABEL=ITERATIONS=PATH`` per checkpoint)::

    python -m irnlib.experiments.latent_scale --dataset Set5 \\
        --checkpoint "reference=5400=models/kit_reference_x2/IRN_x2.pth" ... --out results/latent_scale
"""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from irnlib.model.checkpoint import load_checkpoint
from irnlib.protocol import evaluate
from irnlib.runtime.markdown import markdown_table
from irnlib.runtime.paths import atomic_write, save_figure, sha256_file, short_path
from irnlib.runtime.provenance import cpu_model, git_commit

__all__ = ["TEMPERATURES", "temperature_curve", "latent_gaps", "latent_markdown", "latent_figure", "main"]

TEMPERATURES = (0.0, 0.25, 0.5, 0.75, 1.0)  # standard deviations of z at upscaling; 1 is the paper's


def temperature_curve(
    checkpoints: list[tuple[str, int, Path]],
    dataset: str = "Set5",
    temperatures=TEMPERATURES,
    draws: int = 2,
    data_root=None,
    progress: bool = True,
) -> pd.DataFrame:
    """Mean Y-PSNR over a test set's images and ``draws`` draws of z, per checkpoint and temperature.

    Parameters
    ----------
    checkpoints : list of (label, iterations, path)
        ``iterations``: how long the model trained in all (for the x axis; the caller knows it).
    temperatures : sequence of float
        Standard deviations of z; draw ``d`` of image ``i`` uses the same seed at every temperature.

    Returns
    -------
    DataFrame with columns label, iterations, checkpoint, sha256, scale, dataset, temperature,
    draws, psnr_y (dB), bicubic_psnr_y (dB, Bicubic & Bicubic on the same images).
    """
    rows = []
    for label, iterations, path in tqdm(checkpoints, desc="checkpoints", disable=not progress, leave=False):
        net = load_checkpoint(path).eval()
        pairs = evaluate.evaluation_pairs(dataset, net.scale, data_root)
        bicubic = np.mean(
            [evaluate.sr_metrics(evaluate.bicubic_rescale(p, net.scale), p.hr, net.scale)["psnr_y"] for p in pairs]
        )
        scores = {t: [] for t in temperatures}
        with torch.inference_mode():
            for pair in pairs:
                lr = evaluate.round_trip(net, pair, []).lr  # the 8-bit LR, once
                for t in temperatures:
                    gens = [
                        torch.Generator().manual_seed(evaluate.draw_seed(0, dataset, pair.name, d))
                        for d in range(draws)
                    ]
                    trip = evaluate.round_trip(net, pair, gens, temperature=t, lr=lr)
                    scores[t] += [m["psnr_y"] for m in trip.sr_metrics]
        for t in temperatures:
            rows.append(dict(label=label, iterations=int(iterations), checkpoint=short_path(path),
                             sha256=sha256_file(path), scale=net.scale, dataset=dataset, temperature=float(t),
                             draws=draws, psnr_y=float(np.mean(scores[t])), bicubic_psnr_y=float(bicubic)))  # fmt: skip
    return pd.DataFrame(rows)


def latent_gaps(curve: pd.DataFrame) -> pd.DataFrame:
    """Per checkpoint: Y-PSNR at T = 1 and T = 0, the gap between them, and the best temperature measured."""
    rows = []
    for (label, iterations), part in curve.groupby(["label", "iterations"], sort=False):
        at = part.set_index("temperature")["psnr_y"]
        best = float(at.idxmax())
        rows.append(dict(label=label, iterations=iterations, scale=int(part["scale"].iloc[0]),
                         psnr_y_t1=at.get(1.0, np.nan), psnr_y_t0=at.get(0.0, np.nan),
                         gap_db=at.get(1.0, np.nan) - at.get(0.0, np.nan), best_temperature=best,
                         psnr_y_best=float(at.max()),
                         bicubic_psnr_y=float(part["bicubic_psnr_y"].iloc[0])))  # fmt: skip
    return pd.DataFrame(rows).sort_values(["scale", "iterations"]).reset_index(drop=True)


def latent_markdown(gaps: pd.DataFrame, record: dict) -> str:
    """The gaps as a Markdown page with the provenance at its foot."""
    header = ["model", "scale", "iterations", "T = 1", "T = 0", "gap (dB)", "best T", "at best T", "bicubic"]
    rows = [[r.label, f"×{r.scale}", f"{r.iterations:,}", f"{r.psnr_y_t1:.2f}", f"{r.psnr_y_t0:.2f}",
             f"{r.gap_db:+.2f}", f"{r.best_temperature:g}", f"{r.psnr_y_best:.2f}", f"{r.bicubic_psnr_y:.2f}"]
            for r in gaps.itertuples()]  # fmt: skip
    lines = ["# IRN against the temperature of z (Y-PSNR dB)", ""] + markdown_table(header, rows)
    lines += ["", "## Provenance", ""] + [f"- {k}: {v}" for k, v in record.items()]
    return "\n".join(lines) + "\n"


def latent_figure(curve: pd.DataFrame) -> Figure:
    """Y-PSNR against the temperature, one line per checkpoint, bicubic dashed."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for (label, iterations), part in curve.groupby(["label", "iterations"], sort=False):
        ax.plot(part["temperature"], part["psnr_y"], marker="o", label=f"{label} ({iterations:,} it.)")
    for scale, part in curve.groupby("scale"):
        ax.axhline(part["bicubic_psnr_y"].iloc[0], ls="--", color="0.5", lw=0.8)
    ax.set_xlabel("temperature T of z (the paper: 1)")
    ax.set_ylabel(f"Y-PSNR on {curve['dataset'].iloc[0]} (dB)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _checkpoint(text: str) -> tuple[str, int, Path]:
    try:
        label, iterations, path = text.split("=", 2)
        return label, int(iterations), Path(path)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use LABEL=ITERATIONS=PATH, e.g. reference=5400=IRN_x2.pth"
        ) from None


def main(argv=None) -> pd.DataFrame:
    """``python -m irnlib.experiments.latent_scale``: write ``latent_scale_x{s}.{csv,md,png}`` into ``--out``."""
    parser = argparse.ArgumentParser(
        prog="python -m irnlib.experiments.latent_scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--checkpoint", type=_checkpoint, nargs="+", required=True, help="LABEL=ITERATIONS=PATH")
    parser.add_argument("--dataset", default="Set5")
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/latent_scale"))
    args = parser.parse_args(argv)
    curve = temperature_curve(args.checkpoint, args.dataset, draws=args.draws)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"latent_scale_x{'_'.join(str(s) for s in sorted(set(curve['scale'])))}"
    evaluate.write_csv(curve, args.out / f"{stem}.csv")
    record = {"dataset": args.dataset, "draws of z": args.draws, "commit": git_commit(), "CPU": cpu_model(),
              "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "torch threads": torch.get_num_threads()}  # fmt: skip
    page = latent_markdown(latent_gaps(curve), record)
    atomic_write(args.out / f"{stem}.md", lambda tmp: Path(tmp).write_text(page))
    save_figure(latent_figure(curve), f"{stem}.png", folder=args.out)
    print(page)
    return curve


if __name__ == "__main__":
    main()
