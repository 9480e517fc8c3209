"""Table 1 for one scale, the whole job (what notebook 02 runs): measure, write, say what is missing.

:func:`make_table1` evaluates Bicubic & Bicubic and IRN (the profile's checkpoint and, where
present, the kit's reference model) on each available test set, writes the per-image CSV,
reads it back, and writes the table (:mod:`irnlib.experiments.table1`) as CSV and Markdown
(:mod:`irnlib.experiments.table1_markdown`). A missing test set or checkpoint becomes a
"not available" entry whose note says how to get it (:func:`fetch_command`, :func:`checkpoint_help`),
except in the main job, which reports only what it measured: there the row of the profile's own
model at a scale the main job does not train (:data:`MAIN_JOB_SCALES`) is left out, and the page
says why once (:func:`left_out_note`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from irnlib.data.folders import dataset_version
from irnlib.experiments.table1 import KitRow, build_table, load_per_image
from irnlib.experiments.table1_markdown import render_markdown
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.checkpoint_info import describe_checkpoint
from irnlib.protocol import evaluate as ev
from irnlib.protocol import profiles
from irnlib.protocol.weights import choose_weights, reference_weights
from irnlib.runtime.device import resolve_device
from irnlib.runtime.paths import atomic_write, data_root, results_root, sha256_file, short_path
from irnlib.runtime.provenance import current_run_id, provenance

__all__ = ["Table1", "MAIN_JOB_SCALES", "fetch_command", "checkpoint_help", "left_out_note", "write_table",
           "make_table1"]  # fmt: skip

BICUBIC = "Bicubic & Bicubic"
IRN_PAPER_ROW = "IRN (ours)"
# The scales at which the main job (`irn reproduce`: notebook 01 with its default `scale`) trains the
# profile's own model; tests/test_table1_job.py checks that notebook 01 still says so.
MAIN_JOB_SCALES = (4,)


@dataclass
class Table1:
    """The outputs of :func:`make_table1` for one scale."""

    scale: int
    table: pd.DataFrame
    markdown: str
    per_image_path: Path
    csv_path: Path
    md_path: Path
    provenance: dict


def fetch_command(dataset: str) -> str:
    """How to get a missing test set: the data notebook's command."""
    return (
        f"{dataset} is not on disk; fetch it with "
        f"`papermill notebooks/00_data_preparation.ipynb out.ipynb -p download True -p datasets '[\"{dataset}\"]'` "
        "(or point data_root / IRN_DATA at a folder that holds it)"
    )


def checkpoint_help(profile: str, scale: int, path) -> str:
    """How to get a missing IRN checkpoint."""
    if profiles.get(profile).official_checkpoints:
        return (
            f"checkpoint {path} not found: place the official IRN_x{scale}.pth (released by the authors, linked "
            "from their repository pkuxmq/Invertible-Image-Rescaling) in data/pretrained/, or train one with "
            f"`papermill notebooks/01_train.ipynb out.ipynb -p profile paper -p scale {scale}`"
        )
    return (
        f"checkpoint {path} not found: train the {profile} model first with "
        f"`papermill notebooks/01_train.ipynb out.ipynb -p profile {profile} -p scale {scale}`, "
        "or pass checkpoints={scale: path}"
    )


def left_out_note(profile: str, scale: int) -> str:
    """Why the main job's ×``scale`` table has no row of the profile's own model (said once, in a footnote)."""
    trains = "/".join(f"×{s}" for s in MAIN_JOB_SCALES)
    return (
        f"the {profile} profile trains {trains} only; ×{scale} rows of this run's own model are left out "
        f"(to measure one, train it: `papermill notebooks/01_train.ipynb out.ipynb -p profile {profile} "
        f"-p scale {scale}`)"
    )


def _leaves_out(profile: profiles.Profile, scale: int, main_job: bool | None) -> bool:
    """Does this run leave out the row of the profile's own (absent) model at ``scale``? Only the main job
    (``main_job`` None: inside ``irn reproduce``, which sets ``$IRN_RUN_ID``), only for a profile that
    trains its own model (not one whose checkpoints the user fetches) and only at a scale it does not train."""
    main_job = bool(os.environ.get("IRN_RUN_ID")) if main_job is None else main_job
    return main_job and not profile.official_checkpoints and scale not in MAIN_JOB_SCALES


def write_table(table: pd.DataFrame, markdown: str, stem) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and ``<stem>.md`` atomically; returns both paths."""
    stem = Path(stem)
    csv_path = atomic_write(stem.with_suffix(".csv"), lambda tmp: table.to_csv(tmp, index=False, float_format="%.6f"))
    md_path = atomic_write(stem.with_suffix(".md"), lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
    return csv_path, md_path


def _temperature_label(temperature: float) -> str:
    return "z = 0" if float(temperature) == 0 else f"temperature {float(temperature):g}"


def _irn_label(who: str, temperature: float = 1.0) -> str:
    """``"IRN (kit reference)"``, or ``"IRN (kit reference, z = 0)"`` at another temperature than the paper's."""
    return f"IRN ({who})" if float(temperature) == 1.0 else f"IRN ({who}, {_temperature_label(temperature)})"


def _conditions(
    profile: profiles.Profile, draws: int, irn: KitRow | None, max_images: int | None, temperatures=(1.0,)
) -> str:
    text = profile.table_note
    if profile.indicative:
        if irn is not None and not irn.missing:
            text += (
                f"; IRN is the {profile.name}-trained checkpoint named in its row's footnote (and, where present, "
                "the kit's reference model, trained on a CPU far shorter than the paper), measured on at most "
                f"{max_images} images per dataset, so its numbers are not comparable with the paper's"
            )
        text += "."
    text += (
        f" Protocol: HR mod-cropped to the scale, IRN's LR quantized to 8 bits, upscaled with z ~ N(0, 1), "
        f"{draws} seeded draws of z, Y-channel PSNR/SSIM with a border of the scale; "
        "Bicubic & Bicubic is MATLAB bicubic down and up with uint8 in between."
    )
    others = [float(t) for t in temperatures if float(t) != 1.0]
    if others:
        text += (
            " Rows marked "
            + ", ".join(f'"{_temperature_label(t)}"' for t in others)
            + " upscale with z ~ N(0, T²) at that temperature T instead (z = 0: T = 0), not the paper's protocol."
        )
    return text


def _load_for_table(path: Path, scale: int, device, row: KitRow):
    """Load an IRN checkpoint for the ``scale`` table and fill in ``row.params``."""
    net = load_checkpoint(path, map_location=device)
    if net.scale != scale:
        raise ValueError(f"{path}: is an x{net.scale} checkpoint, but the x{scale} table was asked for")
    row.params = f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f}M"
    return net


def _checkpoint_of(checkpoint, scale: int, profile: profiles.Profile) -> Path:
    """The checkpoint to measure: a named one (which must exist), else the profile's (which may be absent)."""
    if checkpoint and not Path(checkpoint).is_file():  # named by the caller: must exist (a default may be absent)
        raise FileNotFoundError(
            f"checkpoint {checkpoint} not found: correct the path, or pass checkpoint=None "
            f"for the profile's ({choose_weights('table1', scale, profile.name)})"
        )
    return Path(checkpoint) if checkpoint else choose_weights("table1", scale, profile.name)


def _data_versions(datasets: list[str], root) -> tuple[dict, dict]:
    """``(versions, missing)``: the fingerprint of each test set on disk, how to get each other."""
    versions, missing = {}, {}
    for name in datasets:
        try:
            versions[name] = dataset_version(name, root)
        except FileNotFoundError:
            missing[name] = fetch_command(name)
    return versions, missing


def _irn_models(
    checkpoint: Path, scale: int, device, profile: str, max_images, leave_out: bool = False
) -> list[tuple[str, KitRow, object]]:
    """``(who, row, network or None)``: the profile's checkpoint ("this kit"; an absent one is left out
    when ``leave_out``, else "not available"), then the kit's reference model ("kit reference", see models/)."""
    subset = f"at most the first {max_images} images of each test set" if max_images else ""
    info = describe_checkpoint(checkpoint)
    irn = KitRow(_irn_label("this kit"), "irn", IRN_PAPER_ROW, checkpoint=short_path(checkpoint), subset=subset)
    if not info.exists:
        irn.missing = checkpoint_help(profile, scale, short_path(checkpoint))
        models = [] if leave_out else [("this kit", irn, None)]
    else:
        irn.training = info.training
        models = [("this kit", irn, _load_for_table(checkpoint, scale, device, irn))]
    reference = reference_weights(scale)
    if reference.is_file() and reference.resolve() != checkpoint.resolve():
        ref = KitRow(
            _irn_label("kit reference"),
            "irn",
            IRN_PAPER_ROW,
            checkpoint=short_path(reference),
            training=describe_checkpoint(reference).training,
            subset=subset,
        )
        models.append(("kit reference", ref, _load_for_table(reference, scale, device, ref)))
    return models


def _at_temperatures(models, temperatures) -> list[tuple[KitRow, object]]:
    """One row per model and temperature (a row at a temperature other than 1 says so in its label)."""
    rows = []
    for who, base, net in models:
        rows += [(dataclasses.replace(base, label=_irn_label(who, t), temperature=t), net) for t in temperatures]
    return rows


def _measure(versions: dict, scale: int, irn_rows, root, **irn_settings) -> pd.DataFrame:
    """Per-image rows of Bicubic & Bicubic and of every IRN row with a network, on each test set on disk."""
    progress = irn_settings["progress"]
    frames = []
    for name in versions:
        frames.append(ev.evaluate_dataset(name, scale, root=root, progress=progress))
        for row, net in irn_rows:
            if net is not None:
                frames.append(
                    ev.evaluate_dataset(
                        name,
                        scale,
                        net=net,
                        root=root,
                        checkpoint=row.checkpoint,
                        temperature=row.temperature,
                        **irn_settings,
                    )
                )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ev.CSV_COLUMNS)


def _kit_rows(irn_rows, versions: dict, max_images: int | None) -> list[KitRow]:
    """Bicubic, bicubic on the IRN rows' images (when IRN saw only the first images of a set), the IRN rows."""
    rows = [KitRow(f"{BICUBIC} (this kit)", "bicubic", BICUBIC, params="/"), *(row for row, _ in irn_rows)]
    measured = [row for row, net in irn_rows if net is not None]
    if max_images and measured and any(v["images"] > max_images for v in versions.values()):
        same = KitRow(
            f"{BICUBIC} (this kit, first {max_images})",
            "bicubic",
            "",
            params="/",
            images_of=measured[0].checkpoint,
            subset=f"the IRN rows' images (at most the first {max_images} of each test set)",
        )
        rows.insert(1, same)
    return rows


def _measured_table(models, versions: dict, missing_data: dict, datasets, run: dict, out_dir: Path, progress: bool):
    """Measure every row at every temperature, write the per-image CSV, build the table from it read back."""
    scale, generated = run["scale"], run["generated"]
    irn_rows = _at_temperatures(models, run["temperatures"])
    settings = {k: run[k] for k in ("draws", "seed", "max_images")}
    per_image = _measure(versions, scale, irn_rows, run["root"], progress=progress, **settings)
    per_image_path = ev.write_csv(per_image, out_dir / f"table1_x{scale}_per_image.csv")
    kit_rows = _kit_rows(irn_rows, versions, run["max_images"])
    table = build_table(
        load_per_image(per_image_path), scale, kit_rows, datasets, missing_data, run["run_id"], generated
    )
    return table, per_image_path


def _record(device, versions: dict, models, checkpoint: Path, per_image_path: Path, run: dict) -> dict:
    """The provenance of the page (``run``: the settings :func:`make_table1` resolved)."""
    info = describe_checkpoint(checkpoint)
    reference = reference_weights(run["scale"])
    data = ", ".join(f"{v['dataset']} ({v['images']} images, sha256 {v['sha256']})" for v in versions.values())
    measured_reference = any(who == "kit reference" for who, _, _ in models)  # the profile's own may be left out
    card = f"{short_path(reference)} (sha256 {sha256_file(reference)[:16]}; its card: " if measured_reference else ""
    return provenance(
        device,
        run_id=run["run_id"],
        profile=run["profile"],
        scale=run["scale"],
        data_root=str(data_root(run["root"])),
        data=data or "none",
        checkpoint=f"{short_path(checkpoint)} ({info.training if info.exists else 'missing'})",
        reference_model=f"{card}{short_path(reference.parent / 'README.md')})" if measured_reference else "none",
        checkpoint_config=short_path(info.config_path) if info.config_path else "none",
        draws=run["draws"],
        temperatures=", ".join(f"{t:g}" for t in run["temperatures"]),
        seed=run["seed"],
        irn_images_per_dataset=run["max_images"] or "all",
        per_image_csv=short_path(per_image_path),
    )


def make_table1(
    scale: int,
    *,
    profile: str = "smoke",
    datasets: list[str] | None = None,
    checkpoint=None,
    draws: int | None = None,
    root=None,
    device="auto",
    out_dir=None,
    run_id: str | None = None,
    seed: int = 0,
    max_images: int | None = None,
    progress: bool = True,
    temperatures=(1.0,),
    main_job: bool | None = None,
) -> Table1:
    """Measure and write Table 1 for one scale: ``<out_dir>/table1_x{s}_per_image.csv``, then, from it
    read back, ``table1_x{s}.csv`` and ``.md`` (``out_dir`` default ``results/tables``).

    Parameters
    ----------
    profile : str
        A profile of :mod:`irnlib.protocol.profiles`: defaults for ``datasets``
        (:func:`~irnlib.protocol.profiles.default_datasets`), ``checkpoint``, ``draws`` and
        ``max_images``, and the label of the page.
    checkpoint : path, optional
        IRN checkpoint for this scale (default :func:`irnlib.protocol.weights.choose_weights`
        ``("table1", ...)``). A given path that does not exist raises ``FileNotFoundError`` (an
        absent default is "not available").
    draws, seed : int
        Draws of z per image for IRN (the paper: 5) and the base seed of those draws.
    root, device, run_id
        Data root; ``"auto"``, ``"cpu"``, ``"cuda"``, ...; default
        :func:`irnlib.runtime.provenance.current_run_id` (the pipeline's run id, or a new one).
    max_images : int, optional
        Measure IRN on at most this many images per dataset (default the profile's ``irn_images``:
        smoke 5, paper all). Bicubic always uses every image (and, then, IRN's images too).
    temperatures : sequence of float
        One IRN row per temperature, the standard deviation of ``z`` at upscaling: ``1`` is the
        paper's protocol, ``0`` upscales with ``z = 0``; another than 1 is in the label (``"IRN (this kit, z = 0)"``).
    main_job : bool, optional
        Whether this is the main job (default: inside ``irn reproduce``, i.e. ``$IRN_RUN_ID`` set). The main
        job reports only what it measured: at a scale it does not train (:data:`MAIN_JOB_SCALES`), the row
        of the profile's own model (absent) is left out and a footnote says why (:func:`left_out_note`);
        elsewhere that row is "not available" with how to train it. Rows of checkpoints the user fetches
        (the paper profile's official ones) and absent test sets stay "not available".
    """
    profile = profiles.get(profile)
    out_dir = Path(out_dir) if out_dir is not None else results_root() / "tables"
    datasets = list(datasets) if datasets else profiles.default_datasets(profile.name, root)
    checkpoint = _checkpoint_of(checkpoint, scale, profile)
    max_images = profile.irn_images if max_images is None else max_images
    draws, device = draws or profile.draws, resolve_device(device)
    temperatures = [float(t) for t in dict.fromkeys(temperatures)] or [1.0]
    run = dict(run_id=run_id or current_run_id(), profile=profile.name, scale=scale, root=root, draws=draws)
    run["generated"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    run.update(temperatures=temperatures, seed=seed, max_images=max_images)
    versions, missing_data = _data_versions(datasets, root)
    leave_out = _leaves_out(profile, scale, main_job) and not describe_checkpoint(checkpoint).exists
    models = _irn_models(checkpoint, scale, device, profile.name, max_images, leave_out)
    table, per_image_path = _measured_table(models, versions, missing_data, datasets, run, out_dir, progress)
    record = _record(device, versions, models, checkpoint, per_image_path, run)
    own = next((row for who, row, _ in models if who == "this kit"), None)
    conditions = _conditions(profile, draws, own, max_images, temperatures)
    left_out = left_out_note(profile.name, scale) if leave_out else ""
    markdown = render_markdown(table, scale, record, conditions, left_out=left_out)
    csv_path, md_path = write_table(table, markdown, out_dir / f"table1_x{scale}")
    return Table1(scale, table, markdown, per_image_path, csv_path, md_path, record)
