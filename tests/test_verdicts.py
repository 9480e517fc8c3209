"""The verdict rule on the paper's claims, and this run's verdicts beside the committed study's."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from irnlib.experiments import ablation_tables as at
from irnlib.experiments import ablations as ab
from irnlib.experiments import verdicts as vd


@pytest.mark.parametrize(
    "margins, expected",
    [
        ([2.0, 3.0], vd.HOLDS),  # every seed, mean 2.5 > spread 1.0
        ([3.0, 4.0, 5.0], vd.HOLDS),  # mean 4 > spread 2
        ([-4.0, -5.0], vd.REVERSED),  # every seed, reversed margin 4.5 > spread 1.0: a confident reversal
        ([3.0, -1.0], vd.NOT_SEPARABLE),  # mixed signs
        ([-3.0, 0.0], vd.NOT_SEPARABLE),  # a tie for one seed is not a reversal for every seed
        ([0.5, 4.0], vd.NOT_SEPARABLE),  # same sign, but spread 3.5 > mean 2.25
        ([-0.5, -4.0], vd.NOT_SEPARABLE),  # reversed for every seed, but within the spread: never "reversed"
        ([1.0, 3.0], vd.NOT_SEPARABLE),  # spread 2 = mean 2: at least as large as the margin
        ([5.0], f"{vd.NOT_SEPARABLE} (1 seed)"),  # one seed shows no spread
        ([-5.0, np.nan], f"{vd.NOT_SEPARABLE} (1 seed)"),  # a seed without both variants does not count
        ([], f"{vd.NOT_SEPARABLE} (no seed)"),
    ],
)
def test_the_verdict_rule(margins, expected):
    assert vd.verdict(margins) == expected


def test_the_seed_spread_is_the_range_of_the_per_seed_margins():
    assert vd.seed_spread([1.0, -2.0, 4.0]) == pytest.approx(6.0)
    assert vd.seed_spread([2.0, np.nan, 2.5]) == pytest.approx(0.5)
    assert np.isnan(vd.seed_spread([3.0]))


def test_margin_fields_carry_the_numbers_the_verdict_is_made_from():
    fields = vd.margin_fields(pd.Series([20.0, -6.0], index=[0, 1]))
    assert fields == {
        "seeds": 2, "margins_by_seed": "+20.00 / -6.00", "margin_db": pytest.approx(7.0),
        "spread_db": pytest.approx(26.0), "held": 1, "holds": "1 of 2", "verdict": vd.NOT_SEPARABLE,
    }  # fmt: skip
    one = vd.margin_fields([1.5])
    assert one["seeds"] == 1 and np.isnan(one["spread_db"]) and one["verdict"].endswith("(1 seed)")


def _ordering(verdicts: dict[str, str]) -> pd.DataFrame:
    rows = [{"claim": claim, "seeds": 2, "margins_by_seed": "+1.00 / +2.00", "margin_db": 1.5, "spread_db": 1.0,
             "held": 2, "holds": "2 of 2", "verdict": v} for claim, v in verdicts.items()]  # fmt: skip
    return pd.DataFrame(rows)


def test_compare_verdicts_says_whether_two_studies_agree():
    own = _ordering({"a > b": vd.HOLDS, "a > c": vd.NOT_SEPARABLE, "a > d": vd.HOLDS, "a > e": vd.REVERSED,
                     "a > f": f"{vd.NOT_SEPARABLE} (1 seed)", "a > g": vd.HOLDS})  # fmt: skip
    other = _ordering({"a > b": vd.HOLDS, "a > c": vd.REVERSED, "a > d": vd.REVERSED, "a > e": vd.NOT_SEPARABLE,
                       "a > f": vd.NOT_SEPARABLE})  # fmt: skip
    study = vd.Study(vd.COMMITTED_STUDY, pd.DataFrame(), {"run_id": "r0", "commit": "abc", "date": "2026-11-26",
                                                          "training_budget": "500 iterations, seeds 0, 1"})  # fmt: skip
    both = vd.compare_verdicts(own, other, study).set_index("claim")
    assert both["agreement"].to_dict() == {
        "a > b": "agree", "a > c": "smoke not separable", "a > d": "disagree", "a > e": "committed study not separable",
        "a > f": "agree", "a > g": "",  # not in the other study
    }  # fmt: skip
    assert both.loc["a > d", "committed_verdict"] == vd.REVERSED and both.loc["a > b", "committed_seeds"] == 2
    assert (both["committed_commit"] == "abc").all() and (
        both["committed_budget"] == "500 iterations, seeds 0, 1"
    ).all()
    assert pd.isna(both.loc["a > g", "committed_verdict"])
    quick = vd.compare_verdicts(own, other, study, run_label="quick").set_index("claim")
    assert quick.loc["a > c", "agreement"] == "quick not separable"
    absent = vd.compare_verdicts(own, None)  # the other study's files are absent: its fields are empty
    assert list(absent.columns) == list(own.columns) + vd.COMMITTED_FIELDS
    assert (absent["agreement"] == "").all() and (absent["committed_verdict"] == "").all()


def _row(variant, group, train_seed, draw, value):
    return {"variant": variant, "group": group, "train_seed": train_seed, "condition": ab.PAPER_CONDITION,
            "temperature": 1.0, "jpeg_quality": np.nan, "dataset": "toy", "image": "a", "method": "irn", "scale": 2,
            "draw": draw, "seed": draw, "height": 8, "width": 8, "psnr_y": value, "ssim_y": 0.5, "psnr_rgb": value,
            "lr_psnr_y": 40.0, "lr_ssim_y": 0.9, "lr_psnr_rgb": 40.0, "checkpoint": variant}  # fmt: skip


def _study(values: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """A per-image frame: each variant's Y-PSNR for seeds 0 and 1 (one image, one draw)."""
    group = {ab.FULL: "reference", "without L_back": "objective", "without L_distr": "objective"}
    rows = [_row(v, group[v], seed, 0, psnr) for v, by_seed in values.items() for seed, psnr in enumerate(by_seed)]
    return pd.DataFrame(rows + [_row("Bicubic & Bicubic", "baseline", None, 0, 33.0)])


def test_the_page_sets_this_runs_verdicts_beside_the_committed_studys(tmp_path):
    setup = ab.ablation_setup("smoke")
    longer = _study({ab.FULL: (30.0, 31.0), "without L_back": (10.0, 12.0), "without L_distr": (35.0, 35.5)})
    record = {"run_id": "r-long", "training_budget": "500 iterations, seeds 0, 1", "commit": "abc123", "date": "d0"}
    at.write_tables(longer, dataclasses.replace(setup, profile="quick"), tmp_path / "long", record)
    smoke = _study({ab.FULL: (12.0, 10.0), "without L_back": (9.0, 8.0), "without L_distr": (11.0, 12.0)})
    _, page, paths = at.write_tables(smoke, setup, tmp_path / "smoke", {"run_id": "r"}, tmp_path / "long")
    ordering = pd.read_csv(paths["ordering"]).set_index("claim")
    # recomputed from the longer study's per-image CSV: full > without L_back holds (+20, +19: spread 1)
    assert ordering.loc["IRN (full) > without L_back", "committed_verdict"] == vd.HOLDS
    assert ordering.loc["IRN (full) > without L_back", "verdict"] == vd.HOLDS  # +3, +2: spread 1
    assert ordering.loc["IRN (full) > without L_back", "agreement"] == "agree"
    # full > without L_distr: the longer study reverses it (-5, -4.5); here +1, -2: not separable
    assert ordering.loc["IRN (full) > without L_distr", "committed_verdict"] == vd.REVERSED
    assert ordering.loc["IRN (full) > without L_distr", "agreement"] == "smoke not separable"
    assert (ordering["committed_run_id"] == "r-long").all() and (ordering["committed_commit"] == "abc123").all()
    assert "| IRN (full) > without L_distr | -0.50 | +1.00 / -2.00 | 3.00 | 1 of 2 seeds | not separable at" in page
    assert "| reversed (-4.75; spread 0.50) | smoke not separable |" in page
    assert page.count("commit abc123") == 1 and "500 iterations, seeds 0, 1" in page  # its provenance, once


def test_an_absent_committed_study_is_said_once(tmp_path):
    setup = ab.ablation_setup("smoke")
    smoke = _study({ab.FULL: (12.0, 10.0), "without L_back": (9.0, 8.0), "without L_distr": (11.0, 12.0)})
    _, page, paths = at.write_tables(smoke, setup, tmp_path, {"run_id": "r"}, tmp_path / "absent")
    assert page.count("is not in this checkout") == 1 and "agreement" not in page
    ordering = pd.read_csv(paths["ordering"])
    assert ordering["agreement"].isna().all() and ordering["committed_verdict"].isna().all()
    assert set(vd.COMMITTED_FIELDS) <= set(ordering.columns)
    _, page, paths = at.write_tables(smoke, setup, tmp_path, {"run_id": "r"}, tmp_path)  # the study itself
    assert "committed" not in page and "agreement" not in pd.read_csv(paths["ordering"])


def test_the_committed_study_is_read_with_its_provenance():
    study = vd.read_study()
    if not study.found:
        pytest.skip(f"no committed study in {vd.COMMITTED_STUDY}")
    for key in ("run_id", "profile", "training_budget", "seeds", "commit", "date"):
        assert study.provenance.get(key), key
    ordering = at.ordering_table(study.per_image)
    assert len(ordering) == 6 and (ordering["seeds"] == 2).all()
    assert set(ordering["verdict"]) <= {vd.HOLDS, vd.REVERSED, vd.NOT_SEPARABLE}
    assert "commit " + study.provenance["commit"] in vd.describe_study(study)


def test_a_shorter_runs_verdict_the_longer_study_does_not_share_is_not_separable():
    own = _ordering({"a > b": vd.HOLDS, "a > c": vd.REVERSED, "a > d": vd.HOLDS, "a > e": vd.NOT_SEPARABLE})
    other = _ordering({"a > b": vd.HOLDS, "a > c": vd.NOT_SEPARABLE, "a > d": vd.REVERSED, "a > e": vd.HOLDS})
    both = vd.compare_verdicts(own, other, shorter=True).set_index("claim")
    assert both.loc["a > b", "verdict"] == vd.HOLDS and both.loc["a > b", "agreement"] == "agree"
    assert both.loc["a > c", "verdict"] == (
        f"{vd.NOT_SEPARABLE} (reversed for every seed here; the longer study: {vd.NOT_SEPARABLE})"
    )
    assert both.loc["a > d", "verdict"].startswith(vd.NOT_SEPARABLE + " (holds for every seed here")
    assert both.loc["a > c", "agreement"] == "agree"  # neither study separates it
    assert both.loc[["a > d", "a > e"], "agreement"].eq("smoke not separable").all()
    assert vd.compare_verdicts(own, other).set_index("claim").loc["a > c", "verdict"] == vd.REVERSED  # same budget


def test_a_studys_iterations_come_from_its_recorded_budget():
    study = vd.Study(vd.COMMITTED_STUDY, None, {"training_budget": "1,500 iterations, batch 4 of 48² patches"})
    assert vd.study_iterations(study) == 1500
    assert vd.study_iterations(vd.Study(vd.COMMITTED_STUDY)) is None
