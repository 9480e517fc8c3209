"""The paper's numbers (irnlib.paper), tables built from per-image CSVs (irnlib.experiments.table1 and its
page, figures and job), notebook 02."""

import json
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from conftest import randomize

from irnlib import IRN, paper, save_model
from irnlib.app.notebook import parse_parameter
from irnlib.experiments import figures, table1, table1_job, table1_markdown
from irnlib.protocol import evaluate as ev
from irnlib.protocol import profiles
from irnlib.protocol.weights import choose_weights
from irnlib.runtime.paths import REPO_ROOT

matplotlib.use("Agg")


pytestmark = pytest.mark.usefixtures("one_thread")  # small convolutions: see conftest.one_thread


PAPER_ROWS = {
    2: [
        "Bicubic & Bicubic",
        "Bicubic & SRCNN",
        "Bicubic & EDSR",
        "Bicubic & RDN",
        "Bicubic & RCAN",
        "Bicubic & SAN",
        "TAD & TAU",
        "CNN-CR & CNN-SR",
        "CAR & EDSR",
        "IRN (ours)",
    ],
    4: [
        "Bicubic & Bicubic",
        "Bicubic & SRCNN",
        "Bicubic & EDSR",
        "Bicubic & RDN",
        "Bicubic & RCAN",
        "Bicubic & ESRGAN",
        "Bicubic & SAN",
        "TAD & TAU",
        "CAR & EDSR",
        "IRN (ours)",
    ],
}


# ----------------------------------------------------------------------------- paper data


@pytest.mark.parametrize("scale", [2, 4])
def test_paper_table_has_every_row_and_every_cell_parses(scale):
    table = paper.paper_table(scale)
    assert list(table["method"]) == PAPER_ROWS[scale]
    assert list(table.columns) == ["scale", "method", "params"] + list(paper.PAPER_DATASETS)
    for _, row in table.iterrows():
        for dataset in paper.PAPER_DATASETS:
            psnr, ssim = paper.parse_cell(row[dataset])
            assert math.isnan(psnr) or 20 < psnr < 50, (row["method"], dataset)
            assert math.isnan(ssim) or 0.5 < ssim < 1, (row["method"], dataset)
    assert table["params"].str.fullmatch(r"/|–|[0-9.]+[KM]").all()


def test_paper_values_spot_checks_and_dashes():
    assert paper.paper_value("IRN (ours)", 2, "Set5") == (43.99, 0.9871)
    assert paper.paper_value("IRN (ours)", 4, "Set5") == (36.19, 0.9451)
    assert paper.paper_value("Bicubic & Bicubic", 2, "Set5") == (33.66, 0.9299)
    assert paper.paper_value("Bicubic & Bicubic", 4, "Set5") == (28.42, 0.8104)
    assert paper.paper_value("IRN (ours)", 4, "DIV2K_valid_HR") == (35.07, 0.9318)
    psnr, ssim = paper.paper_value("TAD & TAU", 4, "Set5")
    assert psnr == 31.81 and math.isnan(ssim)
    assert all(math.isnan(v) for v in paper.paper_value("Bicubic & SRCNN", 2, "DIV2K"))
    assert all(math.isnan(v) for v in paper.paper_value("IRN (ours)", 4, "embedded-test"))
    params = paper.paper_table(4).set_index("method")["params"]
    assert (
        params["IRN (ours)"] == "4.35M" and paper.paper_table(2).set_index("method")["params"]["IRN (ours)"] == "1.66M"
    )
    assert "pkuxmq/Invertible-Image-Rescaling" in paper.paper_source()


def test_parse_cell_refuses_garbage():
    with pytest.raises(ValueError, match="12.3"):
        paper.parse_cell("12.3")
    with pytest.raises(ValueError, match="abc"):
        paper.parse_cell("abc / 0.9")


# ----------------------------------------------------------------------------- tables


def fake_per_image() -> pd.DataFrame:
    rows = []
    for image, value in (("a", 28.0), ("b", 29.0)):
        rows.append(
            dict(
                dataset="Set5",
                image=image,
                method="bicubic",
                scale=4,
                draw=0,
                seed="",
                height=8,
                width=8,
                psnr_y=value,
                ssim_y=0.8,
                psnr_rgb=value - 1,
                checkpoint="",
            )
        )
        for draw in range(3):
            rows.append(
                dict(
                    dataset="Set5",
                    image=image,
                    method="irn",
                    scale=4,
                    draw=draw,
                    seed=draw,
                    height=8,
                    width=8,
                    psnr_y=value + 8 + 0.01 * draw,
                    ssim_y=0.95,
                    psnr_rgb=value + 7,
                    lr_psnr_y=40.0,
                    lr_ssim_y=0.99,
                    lr_psnr_rgb=39.0,
                    checkpoint="ck.pth",
                )
            )
    return pd.DataFrame(rows, columns=ev.CSV_COLUMNS)


KIT_ROWS = [
    table1.KitRow("Bicubic & Bicubic (this kit)", "bicubic", "Bicubic & Bicubic", params="/"),
    table1.KitRow("IRN (this kit)", "irn", "IRN (ours)", checkpoint="ck.pth", training="10 iterations"),
]


def test_table_is_computed_from_the_per_image_csv(tmp_path):
    path = ev.write_csv(fake_per_image(), tmp_path / "per_image.csv")
    table = table1.build_table(table1.load_per_image(path), 4, KIT_ROWS, ["Set5"], run_id="r1", generated="now")
    kit = table[table["source"] == "this kit"].set_index("row")
    assert kit.loc["Bicubic & Bicubic (this kit)", "psnr"] == pytest.approx(28.5)
    assert kit.loc["Bicubic & Bicubic (this kit)", "diff_psnr"] == pytest.approx(28.5 - 28.42)
    assert kit.loc["IRN (this kit)", "psnr"] == pytest.approx(36.51)
    assert kit.loc["IRN (this kit)", "psnr_y_range"] == pytest.approx(0.02)
    assert kit.loc["IRN (this kit)", "draws"] == 3
    assert kit.loc["IRN (this kit)", "weights"] == "ck.pth" and kit.loc["IRN (this kit)", "training"] == "10 iterations"

    # change one value in the CSV on disk: the table follows
    frame = pd.read_csv(path)
    frame.loc[(frame["method"] == "bicubic") & (frame["image"] == "a"), "psnr_y"] = 30.0
    frame.to_csv(path, index=False)
    changed = table1.build_table(table1.load_per_image(path), 4, KIT_ROWS, ["Set5"])
    row = changed[changed["row"] == "Bicubic & Bicubic (this kit)"].iloc[0]
    assert row["psnr"] == pytest.approx(29.5)
    assert "29.50 / 0.8000" in table1_markdown.render_markdown(changed, 4)
    assert "28.50 / 0.8000" not in table1_markdown.render_markdown(changed, 4)


def test_bicubic_on_the_irn_rows_images_compares_like_with_like():
    # IRN measured on image "b" only (the first N of a set): a bicubic row over "b" alone
    frame = fake_per_image()
    frame = frame[(frame["method"] == "bicubic") | (frame["image"] == "b")]
    same = table1.KitRow(
        "Bicubic & Bicubic (this kit, on the IRN rows' images)", "bicubic", "", params="/", images_of="ck.pth"
    )
    table = table1.build_table(frame, 4, [KIT_ROWS[0], same, KIT_ROWS[1]], ["Set5"])
    kit = table[table["source"] == "this kit"].set_index("row")
    assert kit.loc["Bicubic & Bicubic (this kit)", "psnr"] == pytest.approx(28.5)  # every image
    assert kit.loc[same.label, "psnr"] == pytest.approx(29.0) and kit.loc[same.label, "images"] == 1
    assert math.isnan(kit.loc[same.label, "paper_psnr"])  # not the paper's set: no comparison with it
    assert same.label in table1_markdown.render_markdown(table, 4)


def test_not_available_rows_say_how_to_get_them():
    missing_ckpt = table1.KitRow(
        "IRN (this kit, x.pth)", "irn", "IRN (ours)", missing="checkpoint x.pth not found: train it"
    )
    rows = [KIT_ROWS[0], missing_ckpt]
    table = table1.build_table(
        fake_per_image(), 4, rows, ["Set5", "Urban100"], {"Urban100": table1_job.fetch_command("Urban100")}
    )
    kit = table[table["source"] == "this kit"]
    urban = kit[kit["dataset"] == "Urban100"]
    assert (urban["status"] == table1.NOT_AVAILABLE).all()
    assert "00_data_preparation.ipynb" in urban["note"].iloc[0] and '["Urban100"]' in urban["note"].iloc[0]
    assert (kit[kit["row"] == "IRN (this kit, x.pth)"]["status"] == table1.NOT_AVAILABLE).all()
    md = table1_markdown.render_markdown(table, 4)
    assert md.count("not available [1]") == 1 and md.count("not available [2]") == 2
    assert "-p download True" in md and "checkpoint x.pth not found" in md


def test_markdown_separates_the_papers_numbers_from_the_kits(tmp_path):
    table = table1.build_table(fake_per_image(), 4, KIT_ROWS, ["Set5"], run_id="run-123", generated="2026-01-01")
    md = table1_markdown.render_markdown(
        table, 4, {"commit": "abc123", "device": "CPU"}, "**Smoke profile** - shortened"
    )
    paper_part, kit_part = md.split("## Measured by this kit")
    assert "as printed in" in paper_part and "not measured by this kit" in paper_part
    assert "36.19 / 0.9451" in paper_part and "(this kit" not in paper_part
    assert "IRN (this kit)¹" in kit_part and "+0.08 / -0.0104" in kit_part
    assert "1. weights `ck.pth`; trained: 10 iterations" in kit_part  # the footnote under the measured table
    assert "run-123" in md and "Smoke profile" in md and "- commit: abc123" in md
    csv_path, md_path = table1_job.write_table(table, md, tmp_path / "table1_x4")
    assert md_path.read_text() == md
    assert pd.read_csv(csv_path)["run_id"].eq("run-123").all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table1_x4.csv", "table1_x4.md"]  # no temporaries left


def test_figures_draw():
    table = table1.build_table(fake_per_image(), 4, KIT_ROWS, ["Set5", "embedded-test"])
    fig = figures.plot_paper_vs_kit(table, 4)
    assert len(fig.axes[0].lines) == 4
    rng = np.random.default_rng(0)
    hr = (rng.random((64, 80, 3)) * 255).astype(np.uint8)
    lr = hr[::4, ::4]
    fig = figures.qualitative_figure(hr, hr, hr, lr, lr, 4)
    assert len(fig.axes) == 5
    assert len(figures.qualitative_figure(hr, hr, None, lr, None, 4).axes) == 3


def tiny_checkpoint(folder, scale=4, iterations=50):
    folder.mkdir(parents=True, exist_ok=True)
    net = randomize(IRN(scale, block_num=[1] * (scale // 2)), seed=1)
    path = save_model(net, folder / f"IRN_x{scale}.pth")
    (folder / "config.json").write_text(json.dumps({"profile": "smoke", "iterations": iterations}))
    return path


def test_make_table1_end_to_end(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "run")
    result = table1_job.make_table1(
        4,
        datasets=["embedded-test", "Urban100"],
        checkpoint=ckpt,
        draws=2,
        root=tmp_path / "nodata",
        out_dir=tmp_path / "tables",
        progress=False,
    )
    per_image = pd.read_csv(result.per_image_path)
    assert set(per_image["method"]) == {"bicubic", "irn"}
    irn_rows = per_image[per_image["method"] == "irn"]
    from_reference = irn_rows["checkpoint"].astype(str).str.contains("kit_reference")
    assert len(irn_rows[~from_reference]) == 3 * 2  # the committed kit reference model adds its own rows
    kit = result.table[result.table["source"] == "this kit"]
    measured = kit[kit["status"] == "measured"]
    assert set(measured["dataset"]) == {"embedded-test"}
    irn = measured[measured["paper_row"] == "IRN (ours)"].iloc[0]
    assert irn["row"] == "IRN (this kit)" and irn["weights"] == str(ckpt)  # outside the repository: as given
    assert "50 iterations" in irn["training"] and "shortened" in irn["training"]
    md = result.md_path.read_text()
    assert "Smoke profile" in md and result.provenance["run_id"] in md and "Urban100" in md
    assert result.provenance["checkpoint_config"].endswith("config.json")


def test_make_table1_with_a_missing_checkpoint(tmp_path, monkeypatch):
    # The profile's default checkpoint is absent (a named one that is absent is an error: test_tables_faults).
    monkeypatch.setenv("IRN_RESULTS", str(tmp_path / "results"))
    result = table1_job.make_table1(2, datasets=["embedded-test"], draws=1, out_dir=tmp_path, progress=False)
    irn = result.table[(result.table["source"] == "this kit") & (result.table["paper_row"] == "IRN (ours)")]
    irn = irn[~irn["row"].str.startswith("IRN (kit reference")]  # the committed reference model is measured
    assert (irn["status"] == table1.NOT_AVAILABLE).all() and "01_train.ipynb" in irn["note"].iloc[0]


def _two_models_on_a_subset(tmp_path, monkeypatch):
    """make_table1 as the quick profile runs it: the profile's model, the kit's reference model (a
    long training description: a run not finished) and IRN on the first image of each set only."""
    ckpt = tiny_checkpoint(tmp_path / "run")
    reference = tiny_checkpoint(tmp_path / "models" / "kit_reference_x4", iterations=1_700)
    (reference.parent / "config.json").write_text(
        json.dumps({"profile": "quick", "iterations": 1_700, "train_set": "T91+BSD200-first90"})
    )
    (reference.parent / "provenance.json").write_text(json.dumps({"status": "running", "iterations_done": 1_000}))
    monkeypatch.setattr(table1_job, "reference_weights", lambda scale: reference)
    return table1_job.make_table1(
        4, datasets=["embedded-test"], checkpoint=ckpt, draws=1, max_images=1, root=tmp_path / "nodata",
        out_dir=tmp_path / "tables", progress=False,
    )  # fmt: skip


def test_row_labels_are_short_and_what_a_row_measured_is_in_fields_and_footnotes(tmp_path, monkeypatch):
    result = _two_models_on_a_subset(tmp_path, monkeypatch)
    kit = result.table[result.table["source"] == "this kit"]
    assert list(dict.fromkeys(kit["row"])) == [
        "Bicubic & Bicubic (this kit)",
        "Bicubic & Bicubic (this kit, first 1)",
        "IRN (this kit)",
        "IRN (kit reference)",
    ]
    assert kit["row"].str.len().max() <= 40
    reference = kit[kit["row"] == "IRN (kit reference)"].iloc[0]
    assert reference["weights"].endswith("kit_reference_x4/IRN_x4.pth") and reference["method"] == "irn"
    assert "run not finished (1,000 of 1,700 planned iterations)" in reference["training"]
    assert "first 1 images" in reference["image_subset"]
    same = kit[kit["row"] == "Bicubic & Bicubic (this kit, first 1)"].iloc[0]
    assert same["images"] == 1 and "IRN rows' images" in same["image_subset"] and same["weights"] == ""
    written = pd.read_csv(result.csv_path)  # the fields survive the CSV
    assert {"method", "weights", "training", "image_subset"} <= set(written.columns)

    md = result.markdown
    measured, rest = md.split("## Measured by this kit")[1].split("## Difference")
    assert "| IRN (kit reference)³ |" in measured and "| Bicubic & Bicubic (this kit, first 1)¹ |" in measured
    footnotes = [line for line in measured.splitlines() if line[:3] in ("1. ", "2. ", "3. ")]
    assert len(footnotes) == 3 and "weights `" in footnotes[1] and "1,000 of 1,700" in footnotes[2]
    diffs, details = rest.split("## Details of the kit's measurements")
    diff_rows = [line for line in diffs.splitlines() if line.startswith("| ") and "paper's" in line]
    assert len(diff_rows) == 3 and all(not line.split(" | ")[0].endswith("paper's") for line in diff_rows)
    assert "(this kit, first 1)" not in diffs  # a row without a paper row has no difference to show
    table_lines = [line for line in details.split("Range over draws")[0].splitlines() if line.startswith("| ")]
    detail_rows = [line.split(" | ")[0] for line in table_lines[2:]]  # each row's label, header and rule aside
    assert sorted(detail_rows) == sorted(f"| {label}" for label in ["Bicubic & Bicubic (this kit)",
               "Bicubic & Bicubic (this kit, first 1)¹", "IRN (this kit)²", "IRN (kit reference)³"])  # fmt: skip


def test_figure_legend_lists_each_drawn_series_once(tmp_path):
    reference = table1.KitRow("IRN (kit reference)", "irn", "IRN (ours)", checkpoint="ck.pth")
    same = table1.KitRow("Bicubic & Bicubic (this kit, first 1)", "bicubic", "", params="/", images_of="ck.pth")
    unmeasured = table1.KitRow("IRN (this kit)", "irn", "IRN (ours)", checkpoint="x.pth", missing="not found")
    rows = [KIT_ROWS[0], same, unmeasured, reference]
    table = table1.build_table(fake_per_image(), 4, rows, ["Set5", "embedded-test"])
    ax = figures.plot_paper_vs_kit(table, 4).axes[0]
    handles, labels = ax.get_legend_handles_labels()
    assert len(labels) == len(set(labels))
    assert labels.count("paper: IRN (ours)") == 1 and "this kit: IRN (this kit)" not in labels  # nothing measured
    for handle in handles:
        assert np.isfinite(np.asarray(handle.get_ydata(), dtype=float)).any(), handle.get_label()
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == labels and all(label.strip() not in ("paper:", "this kit:") for label in legend)


def test_profile_defaults(tmp_path):
    assert profiles.default_datasets("paper") == ["Set5", "Set14", "BSD100", "Urban100", "DIV2K_valid_HR"]
    assert profiles.default_datasets("smoke", tmp_path) == ["embedded-test"]
    (tmp_path / "Set14").mkdir()
    assert profiles.default_datasets("smoke", tmp_path) == ["embedded-test", "Set14"]
    assert choose_weights("table1", 4, "smoke") == REPO_ROOT / "results/runs/smoke_x4/IRN_x4.pth"
    assert choose_weights("table1", 2, "paper") == REPO_ROOT / "data/pretrained/IRN_x2.pth"
    assert parse_parameter('["Set5"]') == ["Set5"] and parse_parameter({"4": "a"}) == {"4": "a"}
    with pytest.raises(ValueError, match="profile"):
        profiles.default_datasets("fast")


def test_notebook_02_runs_under_papermill(tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    # x2: the profile's default checkpoint, absent here ("not available"); a named one that is absent is
    # an error (test_tables_faults).
    monkeypatch.setenv("IRN_RESULTS", str(tmp_path / "no-runs"))
    ckpt = tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "results"
    papermill.execute_notebook(
        str(REPO_ROOT / "notebooks" / "02_results_tables.ipynb"),
        str(tmp_path / "02.ipynb"),
        parameters={
            "scales": [2, 4],
            "datasets": '["embedded-test"]',  # JSON text, as `papermill -p` passes it
            "checkpoints": {"4": str(ckpt)},
            "draws": 2,
            "out_dir": str(out),
        },
        cwd=str(REPO_ROOT / "notebooks"),
        kernel_name="python3",
        progress_bar=False,
    )
    for name in ("table1_x2.csv", "table1_x2.md", "table1_x4.csv", "table1_x4.md", "table1_x4_per_image.csv"):
        assert (out / "tables" / name).is_file(), name
    for name in ("table1_x4_paper_vs_kit.png", "qualitative_x4.png", "qualitative_x2.png"):
        assert (out / "figures" / name).is_file(), name
    x2 = (out / "tables" / "table1_x2.md").read_text()
    assert "not available" in x2 and "01_train.ipynb" in x2
    x4 = pd.read_csv(out / "tables" / "table1_x4.csv")
    assert (x4[(x4["source"] == "this kit") & (x4["dataset"] == "embedded-test")]["status"] == "measured").all()
