"""How much a trained IRN depends on the scale of its latent: Y-PSNR against the temperature of z.

IRN upscales with a drawn ``z ~ N(0, T²)``; the paper uses ``T = 1``. A short-trained kit model
gave 20.1 dB on Set5 ×2 at ``T = 0`` against 37.1 dB at ``T = 1`` (issue 29). Whether that gap
belongs to IRN or to short training shows when the same measurement is taken on models of
different training lengths: :func:`temperature_curve` measures each checkpoint at each
temperature (the paper's protocol otherwise: 8-bit LR, Y channel, border = scale, seeded draws),
:func:`latent_gaps` reduces it to the gap ``PSNR(T=1) − PSNR(T=0)`` per checkpoint.
:func:`latent_use` says why a gap is there: how large the forward pass's own latent is, and how
much the upscaler reads from it (its own ``z`` against a drawn one and zero).

Command line (``LABEL=ITERATIONS=PATH`` per checkpoint)::

    python -m irnlib.experiments.latent_scale --dataset Set5 \\
        --checkpoint "reference=5400=models/kit_reference_x2/IRN_x2.pth" ... --out results/latent_scale
"""

from __future__ import annotations

import argparse
import datetime as _dt
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from irnlib.imaging.images import to_batch, to_image
from irnlib.model import inference
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.network import quantize
from irnlib.protocol import evaluate
from irnlib.runtime.markdown import markdown_table
from irnlib.runtime.paths import atomic_write, save_figure, sha256_file, short_path
from irnlib.runtime.provenance import cpu_model, git_commit
from irnlib.runtime.threads import apply_thread_policy

__all__ = [
    "TEMPERATURES", "temperature_curve", "latent_gaps", "latent_markdown", "latent_figure",
    "latent_use", "latent_use_markdown", "main",
]  # fmt: skip

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


@torch.inference_mode()
def latent_use(
    checkpoints: list[tuple[str, int, Path]], dataset: str = "Set5", data_root=None, progress: bool = True
) -> pd.DataFrame:
    """What a trained IRN's upscaler takes from the latent: its own ``z`` against a drawn one and zero.

    Per image, the forward pass gives the LR and its own latent ``z``; the 8-bit LR (the protocol's)
    is then upscaled three ways: with that ``z`` (what the downscale kept there), with ``z ~ N(0, 1)``
    drawn exactly as the protocol's first draw (:func:`irnlib.protocol.evaluate.draw_seed`, seed 0;
    :func:`temperature_curve` at ``T = 1`` with one draw gives the same number), and with ``z = 0``.
    An upscaler that ignores ``z`` scores the same with all three; one that reads detail from a
    tiny ``z`` scores far higher with its own ``z`` than with zero.

    Returns
    -------
    DataFrame, one row per checkpoint: label, iterations, checkpoint, sha256, scale, dataset,
    images, z_rms (root mean square of the forward pass's ``z``, mean over images; ``N(0, 1)``
    has 1), z_abs_max (largest ``|z|`` over the set), psnr_y_own_z, psnr_y_drawn_z, psnr_y_zero_z,
    bicubic_psnr_y (dB, means over images; Y channel, border = scale).
    """
    rows = []
    for label, iterations, path in tqdm(checkpoints, desc="checkpoints", disable=not progress, leave=False):
        net = load_checkpoint(path).eval()
        c, s = net.channels, net.scale
        per_image = []
        for pair in evaluate.evaluation_pairs(dataset, s, data_root):
            y = inference.forward(net, to_batch(pair.hr))  # (1, C·s², h, w): LR, then z
            lr, z = quantize(y[:, :c]), y[:, c:]
            own = to_image(inference.inverse(net, torch.cat((lr, z), 1))[:, :c])
            lr_image = to_image(lr)  # the 8-bit LR; the protocol's round trip upscales it with drawn and zero z
            gen = torch.Generator().manual_seed(evaluate.draw_seed(0, dataset, pair.name, 0))
            drawn = evaluate.round_trip(net, pair, [gen], lr=lr_image).sr_metrics[0]
            zero = evaluate.round_trip(net, pair, [None], temperature=0.0, lr=lr_image).sr_metrics[0]
            bicubic = evaluate.sr_metrics(evaluate.bicubic_rescale(pair, s), pair.hr, s)
            per_image.append(dict(z_rms=float(z.pow(2).mean().sqrt()), z_abs_max=float(z.abs().max()),
                                  psnr_y_own_z=evaluate.sr_metrics(own, pair.hr, s)["psnr_y"],
                                  psnr_y_drawn_z=drawn["psnr_y"], psnr_y_zero_z=zero["psnr_y"],
                                  bicubic_psnr_y=bicubic["psnr_y"]))  # fmt: skip
        measured = pd.DataFrame(per_image)
        rows.append({"label": label, "iterations": int(iterations), "checkpoint": short_path(path),
                     "sha256": sha256_file(path), "scale": s, "dataset": dataset, "images": len(measured),
                     **measured.mean().to_dict(), "z_abs_max": float(measured["z_abs_max"].max())})  # fmt: skip
    return pd.DataFrame(rows)


def latent_use_markdown(use: pd.DataFrame, record: dict) -> str:
    """:func:`latent_use` as a Markdown page with the provenance at its foot."""
    header = ["model", "scale", "iterations", "z rms", "max |z|", "own z", "drawn z", "z = 0", "bicubic"]
    rows = [[r.label, f"×{r.scale}", f"{r.iterations:,}", f"{r.z_rms:.3g}", f"{r.z_abs_max:.3g}",
             f"{r.psnr_y_own_z:.2f}", f"{r.psnr_y_drawn_z:.2f}", f"{r.psnr_y_zero_z:.2f}", f"{r.bicubic_psnr_y:.2f}"]
            for r in use.itertuples()]  # fmt: skip
    notes = ["z rms: the forward pass's own latent (N(0, 1) has 1). own z: upscaled with that latent;",
             "drawn z: with z ~ N(0, 1), the protocol's first draw; z = 0: with zeros."]  # fmt: skip
    return _page("What the upscaler takes from the latent (Y-PSNR dB, 8-bit LR)", header, rows, record, notes)


def _page(title: str, header: list, rows: list, record: dict, notes: list[str] = ()) -> str:
    """A results page: title, table, notes under it, provenance at its foot."""
    lines = [f"# {title}", ""] + markdown_table(header, rows) + (["", *notes] if notes else [])
    lines += ["", "## Provenance", ""] + [f"- {k}: {v}" for k, v in record.items()]
    return "\n".join(lines) + "\n"


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
    return _page("IRN against the temperature of z (Y-PSNR dB)", header, rows, record)


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
    """``python -m irnlib.experiments.latent_scale``: write ``latent_scale_x{s}.{csv,md,png}`` and
    ``latent_use_x{s}.{csv,md}`` into ``--out``."""
    parser = argparse.ArgumentParser(
        prog="python -m irnlib.experiments.latent_scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--checkpoint", type=_checkpoint, nargs="+", required=True, help="LABEL=ITERATIONS=PATH")
    parser.add_argument("--dataset", default="Set5")
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/latent_scale"))
    args = parser.parse_args(argv)
    apply_thread_policy()  # IRN_THREADS / OMP_NUM_THREADS, or sized for the machine's load
    curve = temperature_curve(args.checkpoint, args.dataset, draws=args.draws)
    use = latent_use(args.checkpoint, args.dataset)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"latent_scale_x{'_'.join(str(s) for s in sorted(set(curve['scale'])))}"
    evaluate.write_csv(curve, args.out / f"{stem}.csv")
    record = {"dataset": args.dataset, "draws of z": args.draws, "commit": git_commit(), "CPU": cpu_model(),
              "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "torch threads": torch.get_num_threads(),
              "command": f"python -m irnlib.experiments.latent_scale {shlex.join(argv or sys.argv[1:])}"}  # fmt: skip
    page = latent_markdown(latent_gaps(curve), record)
    atomic_write(args.out / f"{stem}.md", lambda tmp: Path(tmp).write_text(page))
    save_figure(latent_figure(curve), f"{stem}.png", folder=args.out)
    use_stem = stem.replace("latent_scale", "latent_use")
    evaluate.write_csv(use, args.out / f"{use_stem}.csv")
    use_page = latent_use_markdown(use, {k: v for k, v in record.items() if k != "draws of z"})
    atomic_write(args.out / f"{use_stem}.md", lambda tmp: Path(tmp).write_text(use_page))
    print(page + "\n" + use_page)
    return curve


if __name__ == "__main__":
    main()
