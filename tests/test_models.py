"""The kit's reference models under models/: the files match their cards, load as official
checkpoints, give the numbers their cards print; publishing a run writes such a folder."""

import json

import numpy as np
import pandas as pd
import pytest

from irnlib.data.test_pairs import PairedTestSet
from irnlib.experiments.modelcard import MODELS_DIR, publish, recipe_overrides, reference_dir, training_deviations
from irnlib.model.checkpoint import load_checkpoint
from irnlib.protocol.evaluate import evaluate_pair
from irnlib.runtime.paths import sha256_file
from irnlib.train import RESUMABLE_CHANGES, as_trained, make_config, parse_overrides, train

REFERENCE_FOLDERS = sorted(MODELS_DIR.glob("kit_reference_x*"))


def test_the_kit_ships_its_reference_models():
    assert [p.name for p in REFERENCE_FOLDERS] == ["kit_reference_x2", "kit_reference_x4"]


@pytest.mark.parametrize("folder", REFERENCE_FOLDERS, ids=lambda p: p.name)
def test_a_reference_model_is_the_file_its_card_describes(folder):
    card = json.loads((folder / "card.json").read_text())
    model = folder / card["file"]
    assert sha256_file(model) == card["sha256"]
    net = load_checkpoint(model)  # strict load, finite weights
    assert net.scale == card["scale"] == json.loads((folder / "config.json").read_text())["scale"]
    assert folder == reference_dir(card["scale"])
    readme = (folder / "README.md").read_text()
    assert card["sha256"] in readme and "trained **by this kit**" in readme
    assert {m["dataset"] for m in card["measured"]} >= {"embedded-test"}


@pytest.mark.parametrize(
    "folder",
    [f for p in REFERENCE_FOLDERS for f in (p, p / "started_from") if (f / "card.json").is_file()],
    ids=lambda p: p.relative_to(MODELS_DIR).as_posix(),
)
def test_a_cards_retrain_command_trains_what_its_run_trained(folder):
    trained = as_trained(json.loads((folder / "config.json").read_text()))  # fields it predates: their old values
    card = json.loads((folder / "card.json").read_text())
    overrides = card["recipe_overrides"]
    assert overrides == recipe_overrides(trained)  # the card is up to date with the quick profile
    retrained = json.loads(json.dumps(make_config("quick", **parse_overrides(overrides)).__dict__))
    for field, value in retrained.items():
        if field not in RESUMABLE_CHANGES and field in trained:
            assert value == trained[field], field


@pytest.mark.slow
@pytest.mark.parametrize("folder", REFERENCE_FOLDERS, ids=lambda p: p.name)
def test_a_cards_numbers_are_what_the_model_gives(folder, one_thread):
    card = json.loads((folder / "card.json").read_text())
    per_image = pd.read_csv(folder / "measured_per_image.csv")
    net = load_checkpoint(folder / card["file"]).eval()
    pair = PairedTestSet("embedded-test", net.scale)[0]
    row = evaluate_pair(pair, net.scale, "embedded-test", net=net, draws=1)[0]
    printed = per_image[(per_image["dataset"] == "embedded-test") & (per_image["image"] == pair.name)]
    printed = printed[(printed["method"] == "irn") & (printed["draw"] == 0)].iloc[0]
    # Other CPUs round convolutions differently: equal to a hundredth of a dB, not bit for bit.
    assert row["psnr_y"] == pytest.approx(printed["psnr_y"], abs=0.01)
    assert row["lr_psnr_y"] == pytest.approx(printed["lr_psnr_y"], abs=0.01)
    summary = {m["dataset"]: m for m in card["measured"]}["embedded-test"]
    irn = per_image[(per_image["dataset"] == "embedded-test") & (per_image["method"] == "irn")]
    # the CSV holds 10 significant digits (write_csv), the card the unrounded mean
    assert summary["irn_psnr_y"] == pytest.approx(irn.groupby("draw")["psnr_y"].mean().mean(), abs=1e-7)


def test_deviations_list_what_differs_from_the_papers_training_and_nothing_else():
    config = json.loads(json.dumps(make_config("paper", scale=2, lr=5e-4, batch_size=6, device="cpu").__dict__))
    assert training_deviations(config) == {"lr": (2e-4, 5e-4), "batch_size": (16, 6)}


@pytest.mark.slow
def test_publishing_a_run_copies_the_model_and_writes_its_card(tmp_path, one_thread):
    config = make_config(
        "smoke",
        scale=2,
        iterations=2,
        patch_size=32,
        batch_size=2,
        val_crop=64,
        runs_dir=str(tmp_path / "runs"),
        progress=False,
    )
    run_dir = train(config)
    dest = publish(run_dir, tmp_path / "models", datasets=["embedded-test"], draws=1, progress=False, panel=False)
    assert dest == tmp_path / "models" / "kit_reference_x2"
    assert sha256_file(dest / "IRN_x2.pth") == sha256_file(run_dir / "IRN_x2.pth")
    card = json.loads((dest / "card.json").read_text())
    assert card["sha256"] == sha256_file(dest / "IRN_x2.pth")
    assert card["training"]["iterations_done"] == 2 and card["deviations"]["iterations"] == [500_000, 2]
    (measured,) = card["measured"]
    per_image = pd.read_csv(dest / "measured_per_image.csv")
    assert measured["images"] == per_image["image"].nunique() == 3
    bicubic = per_image[per_image["method"] == "bicubic"]["psnr_y"].mean()
    assert measured["margin_psnr_y"] == pytest.approx(measured["irn_psnr_y"] - bicubic)
    assert np.isfinite(measured["lr_psnr_y"])
    readme = (dest / "README.md").read_text()
    assert "2 of the run's 2 planned iterations (the quick recipe plans 4,400)" in readme
    assert "| `iterations` | 500000 | 2 |" in readme and card["recipe_overrides"][0] == "scale=2"
    assert "iterations=2" in card["recipe_overrides"]  # the retrain command trains as long as this run did


@pytest.mark.slow
def test_a_second_stage_keeps_the_first_stages_card(tmp_path, one_thread):
    tiny = dict(
        scale=2, iterations=2, patch_size=32, batch_size=2, val_crop=64, runs_dir=str(tmp_path / "runs"), progress=False
    )
    models = tmp_path / "models"
    first = publish(
        train(make_config("smoke", run_name="first", **tiny)),
        models,
        datasets=["embedded-test"],
        draws=1,
        progress=False,
        panel=False,  # the panel's part of a card: test_modelcard_panel
    )
    first_card = json.loads((first / "card.json").read_text())
    second_run = train(make_config("smoke", run_name="second", init_from=str(first / "IRN_x2.pth"), lr=1e-4, **tiny))
    dest = publish(
        second_run, models, datasets=["embedded-test"], draws=1, progress=False, note="made for a test", panel=False
    )
    assert dest == first
    assert json.loads((dest / "started_from" / "card.json").read_text()) == first_card
    assert not (dest / "started_from" / "IRN_x2.pth").exists()  # its text, not its weights
    card = json.loads((dest / "card.json").read_text())
    assert card["training"]["init_from"]["sha256"] == first_card["sha256"] != card["sha256"]
    readme = (dest / "README.md").read_text()
    assert "in two stages" in readme and first_card["sha256"] in readme and "- note: made for a test" in readme
    assert "init_from=results/runs/quick_x2/IRN_x2.pth run_name=quick_x2_stage2" in readme
