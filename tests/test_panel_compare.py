"""Before/after comparison of two models on the panel and the test sets (constructed panels and cards)."""

import json

import pandas as pd
import pytest

from irnlib.experiments.panel import PANEL_COLUMNS
from irnlib.experiments.panel_compare import compare_panels, compare_test_sets, goal_counts, main, write_comparison


def panel_rows(gaps, worst, z, scale=2):
    rows = []
    for k, (gap, block, zmax) in enumerate(zip(gaps, worst, z)):
        rows.append(dict(image=f"synthetic/img{k}", scale=scale, height=64, width=64, psnr_y_irn=30 + gap,
                         psnr_y_bicubic=30.0, psnr_gap_db=gap, worst_block_irn=block, worst_block_bicubic=2.0,
                         worst_block_top=0, worst_block_left=32, lr_min=0.0, lr_max=1.0, z_max=zmax,
                         local_failure=block > 20 and block > 4, below_bicubic=gap < -0.5,
                         lr_out_of_range=False, latent_far=zmax > 8, seed=0))  # fmt: skip
    return pd.DataFrame(rows, columns=PANEL_COLUMNS)


def card(irn_set5, sha="ab" * 32):
    # a card as modelcard.publish writes it: its own panel summary beside the measured test sets
    return {"file": "IRN_x2.pth", "sha256": sha, "training": {"iterations_done": 10, "commit": "abc"},
            "panel": {"images": 2, "scale": 2, "median_margin_db": 1.0},
            "measured": [{"dataset": "Set5", "images": 5, "draws": 1, "irn_psnr_y": irn_set5,
                          "bicubic_psnr_y": 33.7, "margin_psnr_y": irn_set5 - 33.7}]}  # fmt: skip


def test_goal_counts_and_margins_before_and_after():
    before = panel_rows([-25.0, 3.0, -1.0], [110.0, 5.0, 30.0], [77.0, 1.0, 9.0])
    after = panel_rows([-0.2, 4.0, 1.0], [12.0, 4.0, 25.0], [2.0, 1.0, 0.5])
    goals = goal_counts(compare_panels(before, after)).set_index("flag")
    assert goals.loc["below_bicubic", "failing_before"] == 2 and goals.loc["below_bicubic", "failing_after"] == 0
    assert goals.loc["local_failure", "failing_before"] == 2 and goals.loc["local_failure", "failing_after"] == 1
    assert goals.loc["local_failure", "which_after"] == "synthetic/img2"
    assert goals.loc["latent_far", "failing_before"] == 2 and goals.loc["latent_far", "failing_after"] == 0
    frame = goal_counts(compare_panels(before, after))
    assert frame.attrs["median_margin_before"] == -1.0 and frame.attrs["median_margin_after"] == 1.0


def test_panels_of_two_scales_or_no_common_image_are_refused():
    with pytest.raises(ValueError, match="scales"):
        compare_panels(panel_rows([0.0], [1.0], [1.0]), panel_rows([0.0], [1.0], [1.0], scale=4))
    other = panel_rows([0.0], [1.0], [1.0]).assign(image="grey/camera")
    with pytest.raises(ValueError, match="share no image"):
        compare_panels(panel_rows([0.0], [1.0], [1.0]), other)


def test_test_sets_side_by_side_and_the_files_written(tmp_path):
    sets = compare_test_sets(card(37.06), card(37.5))
    assert sets.loc[0, "irn_change_db"] == pytest.approx(0.44)
    before, after = tmp_path / "b.csv", tmp_path / "a.csv"
    panel_rows([-25.0, 3.0], [110.0, 5.0], [77.0, 1.0]).to_csv(before, index=False)
    panel_rows([0.1, 3.5], [10.0, 4.0], [2.0, 1.0]).to_csv(after, index=False)
    (tmp_path / "b.json").write_text(json.dumps(card(37.06)))
    (tmp_path / "a.json").write_text(json.dumps(card(37.5, sha="cd" * 32)))
    paths = write_comparison(before, tmp_path / "b.json", after, tmp_path / "a.json", tmp_path / "out")
    page = paths["markdown"].read_text()
    assert "| Set5 | 5 | 37.06 | 37.50 | +0.44 |" in page
    assert "| 1 of 2 | 0 of 2 |" in page and "`cdcdcdcdcdcdcdcd…`" in page and "`abababababababab…`" in page
    assert "the panel `" not in page  # both models named by their cards
    assert paths["figure"].stat().st_size > 1000
    assert len(pd.read_csv(paths["csv"])) == 2


def test_models_without_cards_are_compared_on_the_panel_alone(tmp_path):
    before, after = tmp_path / "full.csv", tmp_path / "other.csv"
    panel_rows([-5.5, 3.0], [4.0, 5.0], [0.1, 1.0]).to_csv(before, index=False)
    panel_rows([1.9, 3.5], [0.5, 4.0], [150.0, 1.0]).to_csv(after, index=False)
    paths = main(["--before", str(before), "--after", str(after), "--out", str(tmp_path / "out")])
    page = paths["markdown"].read_text()
    assert "| 1 of 2 | 0 of 2 |" in page  # below bicubic: 1 before, none after
    assert "| 0 of 2 | 1 of 2 | synthetic/img0 |" in page  # |z| > 8 after
    assert "Test sets: not compared" in page and f"the panel `{after}`" in page


def test_more_than_a_panel_and_a_card_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--before", "a.csv", "b.json", "c.json", "--after", "d.csv"])
    assert "--before: a panel CSV and at most one card.json" in capsys.readouterr().err
