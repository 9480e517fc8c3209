"""Publishing a model (irnlib.experiments.modelcard): the generalisation panel in its card, and a
lineage of stages that nests in started_from/ (issue 27). Nothing is measured for real: the
test-set measurement is a recorded CSV and the panel runs a tiny random IRN on two small images."""

import dataclasses
import json
import shutil

import pandas as pd
import pytest
import skimage.data
from conftest import randomize

from irnlib import IRN, save_model
from irnlib.experiments import card_health as H
from irnlib.experiments import modelcard as M
from irnlib.experiments import panel as P
from irnlib.experiments import saturation_stress as S
from irnlib.experiments.card_markdown import STAGE_WORDS
from irnlib.experiments.panel_card import find_panel
from irnlib.runtime.paths import sha256_file
from irnlib.train import make_config

RECORDED = M.MODELS_DIR / "kit_reference_x2" / "measured_per_image.csv"  # a real measurement, reused
PANEL = ("panel_x2.csv", "panel_x2.md", "panel_x2_worst.png")


@pytest.fixture(autouse=True)
def no_measuring(monkeypatch):
    monkeypatch.setattr(M, "measure", lambda *args, **kwargs: pd.read_csv(RECORDED))
    monkeypatch.setattr(M, "dataset_version", lambda *args: {"images": 91, "sha256": "0123456789abcdef"})
    images = {"synthetic/gradients": P._gradients(64), "synthetic/flat_colours": P._flat_colours(16)}
    monkeypatch.setattr(P, "panel_images", lambda *args, **kwargs: images)
    monkeypatch.setattr(H, "available_datasets", lambda: ["embedded-test"])  # health: no data root needed
    crops = {"coffee": skimage.data.coffee()[100:164, 200:264], "rocket": skimage.data.rocket()[200:248, 300:364]}
    monkeypatch.setattr(S, "photographs", lambda *args: crops)  # the saturation stress on two small crops


def fake_run(folder, seed: int, init_from=None):
    """A training run folder as the kit writes one, with a tiny random IRN ×2 (different per seed)."""
    folder.mkdir(parents=True)
    save_model(randomize(IRN(2, block_num=[1]), seed=seed).eval(), folder / "IRN_x2.pth")
    config = make_config(
        "quick", scale=2, block_num=[1], iterations=10, init_from=str(init_from) if init_from else None
    )
    (folder / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    record = {"iterations_done": 10, "status": "finished", "device": "cpu", "commit": "abc1234", "date": "2026-12-02"}
    if init_from:
        record["init_from"] = {"file": str(init_from), "sha256": sha256_file(init_from)}
    (folder / "provenance.json").write_text(json.dumps(record))
    return folder


def read(path):
    return json.loads(path.read_text())


def texts(folder):
    """Every file under ``folder`` (relative path -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_publishing_writes_the_panel_into_the_model_folder_and_its_card(tmp_path):
    dest = M.publish(fake_run(tmp_path / "runs" / "a", seed=1), tmp_path / "models", draws=1, progress=False)
    assert all((dest / name).is_file() for name in PANEL)
    health = pd.read_csv(dest / "health_per_image.csv")
    assert list(health["image"]) == ["astronaut", "chelsea", "coffee"]
    assert read(dest / "card.json")["health"]["images"] == 3
    assert "## Latent and LR on the test images" in (dest / "README.md").read_text()
    frame = pd.read_csv(dest / "panel_x2.csv")
    summary = read(dest / "card.json")["panel"]
    assert summary["images"] == len(frame) == 2 and summary["max_side"] == P.MAX_SIDE
    assert list(summary["goals"]) == [flag for flag, _ in P.GOALS]
    for flag, goal in summary["goals"].items():
        assert goal["images"] == frame.loc[frame[flag], "image"].tolist() and goal["failing"] == len(goal["images"])
    assert summary["median_margin_db"] == pytest.approx(frame["psnr_gap_db"].median())
    assert summary["z_max"] == pytest.approx(frame["z_max"].max())
    assert summary["lr_min"] == pytest.approx(frame["lr_min"].min()) and summary["lr_max_image"] in set(frame["image"])
    readme = (dest / "README.md").read_text()
    assert "## Generalisation panel" in readme and "| Goal | Images failing | Which |" in readme
    assert "[panel_x2_worst.png](panel_x2_worst.png)" in readme and "[panel_x2.md](panel_x2.md)" in readme
    found = find_panel(dest / "IRN_x2.pth", 2)
    assert found is not None and found.csv == (dest / "panel_x2.csv").resolve()


def test_publishing_writes_the_saturation_stress_into_the_card(tmp_path):
    dest = M.publish(fake_run(tmp_path / "runs" / "a", seed=1), tmp_path / "models", draws=1, progress=False)
    frame, entry = pd.read_csv(dest / "saturation_x2.csv"), read(dest / "card.json")["saturation"]
    assert entry["file"] == "saturation_x2.csv" and entry["photographs"] == ["coffee", "rocket"]
    assert [(c["photograph"], c["gain"]) for c in entry["cells"]] == [
        (p, g) for p in ("coffee", "rocket") for g in S.GAINS
    ]
    assert [c["z_max"] for c in entry["cells"]] == pytest.approx(frame["z_max"].tolist())
    assert entry["flagged"] == frame.loc[frame["flagged"], "image"].tolist()
    readme = (dest / "README.md").read_text()
    assert "## Saturation stress" in readme and "| photograph | chroma ×1 | chroma ×2 | chroma ×3 |" in readme
    assert f"Flagged: {len(entry['flagged'])} of 6" in readme and readme.count("| rocket |") == 1
    assert S.card_saturation_of(dest / "IRN_x2.pth")[0] == "## Saturation stress"  # notebook 02 shows it
    other = fake_run(tmp_path / "runs" / "b", seed=2) / "IRN_x2.pth"
    shutil.copyfile(dest / "card.json", other.parent / "card.json")
    assert S.card_saturation_of(other) == [] and S.card_saturation_of(tmp_path / "none.pth") == []  # not its card


def test_an_older_card_gets_the_saturation_stress_added_and_keeps_its_numbers(tmp_path):
    dest = M.publish(fake_run(tmp_path / "runs" / "a", seed=1), tmp_path / "models", draws=1, progress=False)
    card = read(dest / "card.json")
    older = {k: v for k, v in card.items() if k != "saturation"}
    (dest / "card.json").write_text(json.dumps(older))
    (dest / "saturation_x2.csv").unlink()
    assert M.main([str(dest), "--add-saturation"]) == dest
    again = read(dest / "card.json")
    assert {k: v for k, v in again.items() if k != "saturation"} == older
    assert [c["z_max"] for c in again["saturation"]["cells"]] == pytest.approx(
        [c["z_max"] for c in card["saturation"]["cells"]]
    )
    assert "## Saturation stress" in (dest / "README.md").read_text() and (dest / "saturation_x2.csv").is_file()


def test_without_the_panel_the_card_says_so_and_no_earlier_panel_stays(tmp_path):
    models = tmp_path / "models"
    dest = M.publish(fake_run(tmp_path / "runs" / "a", seed=1), models, draws=1, progress=False)
    assert (dest / "panel_x2.csv").is_file()
    other = fake_run(tmp_path / "runs" / "b", seed=2)  # not started from the first: no lineage
    assert M.main([str(other), "--models-dir", str(models), "--draws", "1", "--no-panel"]) == dest
    assert not any((dest / name).exists() for name in (*PANEL, "saturation_x2.csv"))  # gone with the first model
    card = read(dest / "card.json")
    assert card["panel"] is None and card["saturation"] is None
    assert card["stage"] == 1 and not (dest / "started_from").exists()
    assert "Not measured for this card" in (dest / "README.md").read_text()


def test_a_third_stage_nests_the_lineage_and_counts_its_stages(tmp_path):
    models, runs = tmp_path / "models", tmp_path / "runs"
    dest = M.publish(fake_run(runs / "one", seed=1), models, draws=1, progress=False)
    first = texts(dest)
    dest = M.publish(fake_run(runs / "two", 2, dest / "IRN_x2.pth"), models, draws=1, progress=False, panel=False)
    assert texts(dest / "started_from") == {k: v for k, v in first.items() if k != "IRN_x2.pth"}  # panel too
    second = read(dest / "card.json")
    assert second["stage"] == 2 and second["previous_card"] == "started_from/README.md"
    assert "in two stages (the first stage's card: `started_from/README.md`)" in (dest / "README.md").read_text()
    kept_before = texts(dest / "started_from")
    second_files = texts(dest)

    dest = M.publish(fake_run(runs / "three", 3, dest / "IRN_x2.pth"), models, draws=1, progress=False)
    # The second stage's card moved to started_from/, the first's (every file) one level down.
    assert texts(dest / "started_from" / "started_from") == kept_before
    assert read(dest / "started_from" / "card.json") == second
    assert {k for k in texts(dest / "started_from") if "/" not in k} == {
        k for k in second_files if "/" not in k and k != "IRN_x2.pth"
    }
    card, readme = read(dest / "card.json"), (dest / "README.md").read_text()
    assert card["stage"] == 3 and card["training"]["init_from"]["sha256"] == second["sha256"]
    assert "in three stages (the previous stage's card: `started_from/README.md`" in readme
    assert card["first_stage_kept"] is True
    assert "- third stage: started from the weights of" in readme
    assert "init_from=results/runs/quick_x2_stage2/IRN_x2.pth run_name=quick_x2_stage3" in readme
    assert not list(dest.glob(".started_from*"))

    # Publishing the same stage again keeps the lineage as it is.
    before = texts(dest / "started_from")
    M.publish(runs / "three", models, draws=1, progress=False, panel=False)
    assert texts(dest / "started_from") == before and read(dest / "card.json")["stage"] == 3


def test_a_model_that_replaces_a_lineage_drops_its_earlier_stages(tmp_path):
    models, runs = tmp_path / "models", tmp_path / "runs"
    dest = M.publish(fake_run(runs / "one", seed=1), models, draws=1, progress=False, panel=False)
    dest = M.publish(fake_run(runs / "two", 2, dest / "IRN_x2.pth"), models, draws=1, progress=False, panel=False)
    assert (dest / "started_from" / "card.json").is_file()
    elsewhere = tmp_path / "elsewhere.pth"
    save_model(randomize(IRN(2, block_num=[1]), seed=4).eval(), elsewhere)
    dest = M.publish(fake_run(runs / "four", 4, elsewhere), models, draws=1, progress=False, panel=False)
    card = read(dest / "card.json")
    assert card["stage"] == 2 and card["previous_card"] is None and not (dest / "started_from").exists()
    readme = (dest / "README.md").read_text()  # its retrain command starts from the file it did, not started_from/
    assert f"then from {elsewhere}:" in readme and "started_from/README.md" not in readme
    dest = M.publish(fake_run(runs / "six", 6, dest / "IRN_x2.pth"), models, draws=1, progress=False, panel=False)
    assert read(dest / "started_from" / "card.json") == card
    assert read(dest / "card.json")["first_stage_kept"] is False  # its lineage begins at a card not kept
    assert "in at least three stages (the previous stage's card" in (dest / "README.md").read_text()
    dest = M.publish(fake_run(runs / "five", seed=5), models, draws=1, progress=False, panel=False)  # from scratch
    card = read(dest / "card.json")
    assert card["stage"] == 1 and card["previous_card"] is None and not (dest / "started_from").exists()
    assert "started_from" not in (dest / "README.md").read_text() and not list(dest.glob(".started_from*"))


def test_publishing_the_committed_models_next_stage_keeps_their_lineage(tmp_path):
    """What publishing a run started from today's models/kit_reference_x2 will do (no weights copied)."""
    committed = M.MODELS_DIR / "kit_reference_x2"
    dest = tmp_path / "models" / "kit_reference_x2"
    shutil.copytree(committed, dest, ignore=shutil.ignore_patterns("*.pth"))
    run = fake_run(tmp_path / "runs" / "stage3", 3, committed / "IRN_x2.pth")
    assert read(run / "provenance.json")["init_from"]["sha256"] == read(committed / "card.json")["sha256"]
    M.publish(run, tmp_path / "models", draws=1, progress=False, panel=False)
    assert texts(dest / "started_from" / "started_from") == texts(committed / "started_from")
    assert texts(dest / "started_from") == {
        **{k: v for k, v in texts(committed).items() if k != "IRN_x2.pth" and not k.startswith("started_from/")},
        **{f"started_from/{k}": v for k, v in texts(committed / "started_from").items()},
    }
    stage = M.card_stage(read(committed / "card.json")) + 1
    count, which = STAGE_WORDS[stage][0], "first" if stage == 2 else "previous"
    assert f"in {count} stages (the {which} stage's card: `started_from/README.md`" in (dest / "README.md").read_text()


def test_card_stage_reads_cards_older_than_the_field():
    assert M.card_stage({"training": {}}) == 1
    assert M.card_stage({"training": {"init_from": {"file": "x", "sha256": "y"}}}) == 2
    assert M.card_stage({"stage": 3, "training": {"init_from": {"file": "x", "sha256": "y"}}}) == 3


def test_refreshing_a_card_gives_today_s_retrain_command_and_keeps_its_numbers(tmp_path):
    dest = M.publish(
        fake_run(tmp_path / "runs" / "a", seed=1), tmp_path / "models", draws=1, progress=False, panel=False
    )
    card = read(dest / "card.json")
    stale = {**card, "recipe_overrides": ["scale=2", "iterations=10"]}  # written before a profile change
    (dest / "card.json").write_text(json.dumps(stale))
    M.refresh_card(dest)
    refreshed = read(dest / "card.json")
    assert refreshed == card
    assert " ".join(card["recipe_overrides"]) in (dest / "README.md").read_text()
    before = texts(dest)
    written = {name: (dest / name).stat().st_mtime_ns for name in ("card.json", "README.md")}
    M.refresh_card(dest)
    assert texts(dest) == before  # idempotent
    assert {name: (dest / name).stat().st_mtime_ns for name in written} == written  # and not rewritten


def test_a_card_without_a_training_log_says_its_time_was_not_recorded(tmp_path):
    dest = M.publish(
        fake_run(tmp_path / "runs" / "a", seed=1), tmp_path / "models", draws=1, progress=False, panel=False
    )
    readme = (dest / "README.md").read_text()
    assert "training time: not recorded" in readme and "nan" not in readme


def test_a_card_names_every_part_of_the_objective_that_differs_from_the_papers(tmp_path):
    run = fake_run(tmp_path / "runs" / "a", seed=1)  # the quick recipe: the clipped quantiser gradient
    readme = (M.publish(run, tmp_path / "models", draws=1, progress=False, panel=False) / "README.md").read_text()
    assert "; only the quantiser's gradient in L_back differs, as listed)" in readme
    config = read(run / "config.json") | {"distr_loss": "unit_kl"}
    (run / "config.json").write_text(json.dumps(config))
    dest = M.publish(run, tmp_path / "models", draws=1, progress=False, panel=False)
    readme = (dest / "README.md").read_text()
    assert "only the quantiser's gradient in L_back and L_distr's form (`distr_loss`) differ, as listed" in readme
    assert read(dest / "card.json")["deviations"]["distr_loss"] == ["sum_of_squares", "unit_kl"]
    assert "L_stress" not in readme
    (run / "config.json").write_text(json.dumps(config | {"lambda_stress": 1.0}))
    readme = (M.publish(run, tmp_path / "models", draws=1, progress=False, panel=False) / "README.md").read_text()
    assert "Added, not in the paper: the kit's stress term L_stress (`lambda_stress`, `stress_eps`)." in readme
    assert "L_range" not in readme
    (run / "config.json").write_text(json.dumps(config | {"lambda_stress": 1.0, "lambda_range": 10.0}))
    readme = (M.publish(run, tmp_path / "models", draws=1, progress=False, panel=False) / "README.md").read_text()
    assert "L_stress (`lambda_stress`, `stress_eps`) and the kit's range term L_range (`lambda_range`)." in readme


def test_a_card_older_than_the_health_check_gets_it_added(tmp_path):
    dest = M.publish(
        fake_run(tmp_path / "runs" / "a", seed=1), tmp_path / "models", draws=1, progress=False, panel=False
    )
    card = read(dest / "card.json")
    del card["health"]  # as published before the check existed
    (dest / "card.json").write_text(json.dumps(card))
    (dest / "health_per_image.csv").unlink()
    measured = (dest / "measured_per_image.csv").read_bytes()
    assert M.main([str(dest), "--add-health"]) == dest
    health = read(dest / "card.json")["health"]
    assert health["images"] == 3 and health["provenance"]["commit"]
    assert list(pd.read_csv(dest / "health_per_image.csv")["image"]) == ["astronaut", "chelsea", "coffee"]
    readme = (dest / "README.md").read_text()
    assert "## Latent and LR on the test images" in readme and "Added to this card later: measured" in readme
    assert (dest / "measured_per_image.csv").read_bytes() == measured  # nothing else measured again
